"""The pure parts of :mod:`harness.cluster.promoperator`: reading the operator's Secret,
pointing the generated discovery at the loopback API server, and the pins it relies on.

The real run (operator, Prometheus, KServe's pods) is tests/install/test_scrape_real.py."""

from __future__ import annotations

import base64
import gzip
import re
from pathlib import Path

import pytest
import yaml
from support.chart import ROOT

from harness.cluster.kubeapi import KubeSetupError
from harness.cluster.promoperator import (
    OPERATOR_CRDS,
    OPERATOR_VERSION,
    decode_config,
    expand_env,
    on_loopback,
    prometheus_object,
    prometheus_version,
    reloader_env,
)
from harness.cluster.promreload import render, sync
from harness.cluster.upstream_crds import PROMETHEUS_OPERATOR

GENERATED = """\
global:
  evaluation_interval: 30s
  scrape_interval: 30s
  external_labels:
    prometheus: monitoring/scrape
scrape_configs:
- job_name: podMonitor/monitoring/canary-controller-variants/0
  honor_labels: false
  kubernetes_sd_configs:
  - role: pod
  - role: pod
    namespaces:
      names: [ml-serving]
  relabel_configs:
  - source_labels: [job]
    target_label: __tmp_prometheus_job_name
- job_name: static
  static_configs:
  - targets: [localhost:9090]
"""


def test_on_loopback_points_every_kubernetes_discovery_at_the_server_and_changes_nothing_else() -> (
    None
):
    out = yaml.safe_load(
        on_loopback(GENERATED, "https://127.0.0.1:6443", Path("ca.crt"), Path("t"))
    )
    sds = out["scrape_configs"][0]["kubernetes_sd_configs"]
    for sd in sds:
        assert sd.pop("api_server") == "https://127.0.0.1:6443"
        assert sd.pop("tls_config") == {"ca_file": "ca.crt"}
        assert sd.pop("authorization") == {"type": "Bearer", "credentials_file": "t"}
    assert out == yaml.safe_load(GENERATED)


def test_decode_config_reads_the_gzipped_key_and_names_a_secret_without_it() -> None:
    packed = base64.b64encode(gzip.compress(GENERATED.encode())).decode()
    secret = {"metadata": {"name": "prometheus-scrape"}, "data": {"prometheus.yaml.gz": packed}}
    assert decode_config(secret) == GENERATED
    with pytest.raises(KubeSetupError, match=r"prometheus-scrape has no prometheus\.yaml\.gz"):
        decode_config({"metadata": {"name": "prometheus-scrape"}, "data": {}})


def test_prometheus_version_is_read_from_the_version_banner() -> None:
    banner = "prometheus, version 2.42.0+ds (branch: debian/sid, revision: 2.42.0+ds-5+deb12u1)\n"
    assert prometheus_version(banner) == "v2.42.0"
    with pytest.raises(KubeSetupError, match="no version"):
        prometheus_version("command not found")


def test_the_prometheus_object_selects_every_podmonitor_for_the_given_version() -> None:
    obj = prometheus_object("scrape", "monitoring", "v2.42.0")
    assert obj["spec"]["version"] == "v2.42.0"
    assert obj["spec"]["podMonitorSelector"] == {}
    assert obj["spec"]["podMonitorNamespaceSelector"] == {}


def test_operator_binary_and_crds_are_one_version() -> None:
    script = (ROOT / "scripts" / "build-kube.sh").read_text()
    (pinned,) = re.findall(r'^PROMETHEUS_OPERATOR_VERSION="(v[^"]+)"', script, re.MULTILINE)
    assert pinned == OPERATOR_VERSION == PROMETHEUS_OPERATOR.version == OPERATOR_CRDS.version
    assert set(PROMETHEUS_OPERATOR.files) <= set(OPERATOR_CRDS.files)


def test_expand_env_does_what_the_config_reloader_does_and_names_an_unset_variable() -> None:
    text = "external_labels: {prometheus_replica: $(POD_NAME)}\nregex: $(SHARD);|.+;.+\n"
    out = expand_env(text, reloader_env("scrape"))
    assert out == "external_labels: {prometheus_replica: prometheus-scrape-0}\nregex: 0;|.+;.+\n"
    assert expand_env("no references, $HOME kept", {}) == "no references, $HOME kept"
    with pytest.raises(KubeSetupError, match=r"refers to \$\(NODE\), which is unset"):
        expand_env("a: $(NODE)", reloader_env("scrape"))


def test_the_reloader_renders_a_new_secret_and_reloads_only_on_a_change(tmp_path: Path) -> None:
    """:mod:`harness.cluster.promreload`: what the config reloader does for the loopback
    Prometheus, the Secret's configuration rendered as the first one was, written and reloaded
    once per change, never for the same text again."""
    text = GENERATED.replace("localhost:9090", "$(POD_NAME):9090")
    packed = base64.b64encode(gzip.compress(text.encode())).decode()
    secret = {"metadata": {"name": "prometheus-scrape"}, "data": {"prometheus.yaml.gz": packed}}
    rendered = render(secret, "scrape", "https://127.0.0.1:6443", Path("ca.crt"), Path("t"))
    expected = on_loopback(
        expand_env(text, reloader_env("scrape")),
        "https://127.0.0.1:6443",
        Path("ca.crt"),
        Path("t"),
    )
    assert rendered == expected
    assert "prometheus-scrape-0:9090" in rendered
    config, reloads = tmp_path / "prometheus.yml", []
    assert sync(rendered, config, lambda: reloads.append(1))
    assert config.read_text() == rendered
    assert not sync(rendered, config, lambda: reloads.append(1))  # the same text: no reload
    assert sync(rendered + "# a new PodMonitor\n", config, lambda: reloads.append(1))
    assert len(reloads) == 2
