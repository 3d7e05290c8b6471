"""The Helm chart without a cluster: it lints, renders for the default values and the main
variations, every rendered object fits the Kubernetes schemas (or, for the Prometheus Operator
kinds, tests/chart/schemas), and bad values are rejected by values.schema.json with the key."""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml
from support.chart import (
    CHART,
    NAMESPACE,
    chart_copy,
    container,
    notes,
    of_kind,
    one,
    render,
    validate,
)

VARIATIONS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "namespaced": {"rbac": {"scope": "namespaced"}, "watchNamespaces": ["ml-serving", "team-b"]},
    "single-replica": {"replicas": 1},
    "three-replicas": {"replicas": 3},
    "network-policy": {"networkPolicy": {"enabled": True}},
    "network-policy-off-pdb-off": {
        "networkPolicy": {"enabled": False},
        "podDisruptionBudget": {"enabled": False},
        "podAntiAffinity": "none",
    },
    "monitors-off": {
        "podMonitor": {"enabled": False},
        "serviceMonitor": {"enabled": False},
        "prometheusRule": {"enabled": False},
        "dashboards": {"enabled": False},
    },
    "scrape-tls-sidecars-off": {
        "podMonitor": {
            "llmInferenceService": {"scheme": "https"},
            "istioSidecar": {"enabled": False},
        }
    },
    "host-network": {
        "hostNetwork": True,
        "controller": {
            "extraEnv": [
                {"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
                {"name": "KUBERNETES_SERVICE_PORT", "value": "6443"},
            ]
        },
    },
    "custom-image": {"image": {"repository": "registry.example/ml/canaryctl", "tag": "9.9.9"}},
    "api-token": {"api": {"tokenSecret": {"name": "canary-api", "key": "token"}}},
    "git-source": {
        "gitSource": {
            "repo": "https://git.example/ml/models.git",
            "prune": True,
            "tokenSecret": {"name": "git-token", "key": "token"},
        }
    },
    "minimal-rbac": {
        "rbac": {"readSecrets": False, "argoCDApplications": False},
        "api": {"kubernetesAuth": False},
    },
    "scheduling": {
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops"}],
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "x"}},
                        },
                    }
                ]
            }
        },
    },
}


def test_lint_is_clean_in_strict_mode() -> None:
    report = helm.lint(CHART, strict=True, namespace=NAMESPACE, kube_version="v1.34.0")
    assert report["errors"] == []
    # only the info "icon is recommended" may remain (we ship no icon)
    assert {m["error"] for m in report["messages"] if m["severity"] > 1} == set()


@pytest.mark.parametrize("values", VARIATIONS.values(), ids=VARIATIONS.keys())
def test_every_rendered_object_fits_its_schema(values: dict[str, Any]) -> None:
    docs = render(values)
    assert docs
    checked = {
        (d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): validate(d)
        for d in docs
    }
    assert len(checked) == len(docs), "two objects with the same kind, namespace and name"
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE)
    assert report["errors"] == []


def test_the_validator_rejects_a_broken_object() -> None:
    deployment = copy.deepcopy(one(render(), "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)
    monitor = copy.deepcopy(one(render(), "PodMonitor"))
    monitor["spec"]["podMetricsEndpoints"][0]["relabellings"] = []  # misspelled
    with pytest.raises(jsonschema.ValidationError):
        validate(monitor)


def test_every_kind_has_a_schema() -> None:
    kinds = {d["kind"] for values in VARIATIONS.values() for d in render(values)}
    for kind in sorted(kinds):
        doc = next(d for values in VARIATIONS.values() for d in render(values) if d["kind"] == kind)
        assert validate(doc), kind


def test_default_deployment_is_hardened_and_leader_elected() -> None:
    docs = render()
    deployment = one(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    main = container(docs)
    assert deployment["spec"]["replicas"] == 2
    assert main["args"][0] == "controller"
    assert "--leader-elect" in main["args"]
    assert f"--lease-namespace={NAMESPACE}" in main["args"]
    assert "--api-port=8080" in main["args"]
    assert "--prometheus=http://kube-prometheus-stack-prometheus.monitoring:9090" in main["args"]
    sc = main["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsUser"] == 65532
    mounts = {m["mountPath"]: m["name"] for m in main["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert main["resources"]["limits"]["memory"] == "512Mi"
    assert main["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert main["image"] == "canaryctl:0.1.0"


@pytest.mark.parametrize(
    ("values", "elected"),
    [
        ({"replicas": 1}, False),
        ({"replicas": 2}, True),
        ({"replicas": 3}, True),
        ({"replicas": 1, "leaderElection": {"enabled": True}}, True),
        ({"replicas": 3, "leaderElection": {"enabled": False}}, False),
    ],
    ids=["1", "2", "3", "1-forced-on", "3-forced-off"],
)
def test_leader_election_follows_replicas_unless_forced(
    values: dict[str, Any], elected: bool
) -> None:
    docs = render(values)
    assert ("--leader-elect" in container(docs)["args"]) is elected
    lease_roles = [
        r for r in of_kind(docs, "Role") if r["metadata"]["name"].endswith("-leader-election")
    ]
    assert bool(lease_roles) is elected
    assert one(docs, "Deployment")["spec"]["replicas"] == values["replicas"]


def test_namespaced_scope_watches_and_binds_only_its_namespaces() -> None:
    docs = render(VARIATIONS["namespaced"])
    cluster_wide = {d["metadata"]["name"] for d in docs if d["kind"].startswith("Cluster")}
    cluster_wide.discard("modelcanaries.canary.controlplane.dev")  # the CRD
    # TokenReview/SAR are cluster-scoped; so are GatewayClasses, and a canary's Gateway may be
    # in another namespace (KServe's)
    assert cluster_wide == {"cp-controlplane-auth-delegator", "cp-controlplane-gateways"}
    placed = {
        (d["kind"], d["metadata"]["name"], d["metadata"]["namespace"])
        for d in docs
        if d["kind"] in ("Role", "RoleBinding")
    }
    for kind in ("Role", "RoleBinding"):
        assert {p for p in placed if p[0] == kind} == {
            (kind, "cp-controlplane", "ml-serving"),
            (kind, "cp-controlplane", "team-b"),
            (kind, "cp-controlplane-leader-election", NAMESPACE),
            (kind, "cp-controlplane-argocd", "argocd"),
        }
    for binding in of_kind(docs, "RoleBinding"):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "cp-controlplane", "namespace": NAMESPACE}
        ]
    args = container(docs)["args"]
    assert [a for a in args if a.startswith("--namespace")] == [
        "--namespace=ml-serving",
        "--namespace=team-b",
    ]
    monitor = one(docs, "PodMonitor")
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["ml-serving", "team-b"]}


def test_cluster_scope_watches_every_namespace() -> None:
    docs = render()
    assert not [a for a in container(docs)["args"] if a.startswith("--namespace")]
    assert one(docs, "PodMonitor")["spec"]["namespaceSelector"] == {"any": True}


def test_namespaced_scope_without_namespaces_fails_with_the_reason() -> None:
    with pytest.raises(helm.HelmValuesError, match="watchNamespaces"):
        render({"rbac": {"scope": "namespaced"}})


def test_monitors_off_render_no_monitoring_objects() -> None:
    docs = render(VARIATIONS["monitors-off"])
    kinds = {d["kind"] for d in docs}
    assert not kinds & {"PodMonitor", "ServiceMonitor", "PrometheusRule", "ConfigMap"}
    assert {d["apiVersion"] for d in docs}.isdisjoint({"monitoring.coreos.com/v1"})


def test_host_network_takes_the_nodes_network_and_dns() -> None:
    pod = one(render({}), "Deployment")["spec"]["template"]["spec"]
    assert "hostNetwork" not in pod
    assert "dnsPolicy" not in pod
    docs = render(VARIATIONS["host-network"])
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    env = {e["name"]: e.get("value") for e in container(docs)["env"]}
    assert env["KUBERNETES_SERVICE_HOST"] == "127.0.0.1"


def test_custom_image_and_digest() -> None:
    assert container(render(VARIATIONS["custom-image"]))["image"] == (
        "registry.example/ml/canaryctl:9.9.9"
    )
    digest = "sha256:" + "ab" * 32
    image = container(render({"image": {"repository": "r/c", "digest": digest}}))["image"]
    assert image == f"r/c@{digest}"


def test_api_token_secret_is_mounted_and_passed() -> None:
    docs = render(VARIATIONS["api-token"])
    main = container(docs)
    assert "--api-token-file=/etc/controlplane/api-token/token" in main["args"]
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == "canary-api"
    assert any(m["mountPath"] == "/etc/controlplane/api-token" for m in main["volumeMounts"])
    assert not any(a.startswith("--api-token-file") for a in container(render())["args"])


def test_token_review_and_git_webhook_flags() -> None:
    assert "--api-token-review=on" in container(render())["args"]
    docs = render(
        {"api": {"kubernetesAuth": False}, "gitWebhook": {"secret": {"name": "hook", "key": "s"}}}
    )
    args = container(docs)["args"]
    assert "--api-token-review=off" in args
    assert "--git-webhook-secret-file=/etc/controlplane/git-webhook/s" in args
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert {
        "name": "git-webhook",
        "secret": {"secretName": "hook", "items": [{"key": "s", "path": "s"}]},
    } in pod["volumes"]


def test_git_source_flags_and_credentials() -> None:
    docs = render(VARIATIONS["git-source"])
    args = container(docs)["args"]
    assert [a for a in args if a.startswith("--git-")] == [
        "--git-repo=https://git.example/ml/models.git",
        "--git-path=canary/",
        "--git-branch=main",
        "--git-interval=1m",
        "--git-namespace=default",
        "--git-prune",
        "--git-token-file=/etc/controlplane/git-source/token",
    ]
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert {
        "name": "git-source",
        "secret": {
            "secretName": "git-token",
            "defaultMode": 0o400,
            "items": [{"key": "token", "path": "token"}],
        },
    } in pod["volumes"]
    ssh = {"repo": "git@git.example:ml/models.git", "sshKeySecret": {"name": "k", "key": "id"}}
    assert (
        "--git-ssh-key-file=/etc/controlplane/git-source/id"
        in container(render({"gitSource": ssh}))["args"]
    )
    assert not [a for a in container(render())["args"] if a.startswith("--git-")]
    namespaced = render(
        {**VARIATIONS["namespaced"], "gitSource": {"repo": "https://git.example/m.git"}}
    )
    assert "--git-namespace=ml-serving" in container(namespaced)["args"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"controller": {"extraArgs": ["--git-repo=https://git.example/m.git"]}},
            "controller.extraArgs has --git-repo=https://git.example/m.git: set gitSource.repo",
        ),
        (
            {
                "gitSource": {
                    "tokenSecret": {"name": "a", "key": "t"},
                    "sshKeySecret": {"name": "b", "key": "k"},
                }
            },
            "gitSource.tokenSecret and gitSource.sshKeySecret exclude each other",
        ),
        (
            {
                **VARIATIONS["namespaced"],
                "gitSource": {"repo": "https://git.example/m.git", "namespace": "elsewhere"},
            },
            'gitSource.namespace "elsewhere" is not one of watchNamespaces [ml-serving team-b]',
        ),
    ],
    ids=["extra-args", "two-credentials", "namespace-not-watched"],
)
def test_git_source_mistakes_fail_with_the_reason(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmRenderError) as caught:
        render(values)
    assert message in str(caught.value)


def test_argocd_namespace_reaches_the_flag() -> None:
    assert "--argocd-namespace=argocd" in container(render())["args"]
    moved = render({"rbac": {"argoCDNamespace": "gitops"}})
    assert "--argocd-namespace=gitops" in container(moved)["args"]
    off = render({"rbac": {"argoCDApplications": False}})
    assert not [a for a in container(off)["args"] if a.startswith("--argocd")]


def test_grafana_url_and_log_level_reach_the_flags() -> None:
    values = {
        "alerts": {"grafanaUrl": "https://grafana.example"},
        "controller": {"logLevel": "DEBUG"},
    }
    args = container(render(values))["args"]
    assert "--grafana-url=https://grafana.example" in args
    assert "--log-level=DEBUG" in args


def test_allowed_endpoints_reach_the_flags_and_the_policy() -> None:
    from controlplane.cli import controller as command

    assert not [a for a in container(render())["args"] if a.startswith("--allow-")]
    values = {
        "allowedEndpoints": {
            "prometheus": ["http://prom.team-a:9090", "https://thanos.example/tenant-a"],
            "argoServers": ["https://argo-server.argo:2746"],
            "alerts": ["https://hooks.example.com/canary"],
        },
        "gates": {"argoServer": "https://argo.ops:2746"},
    }
    args = container(render(values))["args"]
    assert [a for a in args if a.startswith("--allow-")] == [
        "--allow-prometheus=http://prom.team-a:9090",
        "--allow-prometheus=https://thanos.example/tenant-a",
        "--allow-argo-server=https://argo-server.argo:2746",
        "--allow-alert-url=https://hooks.example.com/canary",
    ]
    parser = argparse.ArgumentParser()
    command.add_parser(parser.add_subparsers())
    policy = command.endpoints_from(parser.parse_args(args))
    assert policy.allows("prometheus", "https://thanos.example/tenant-a/api")
    assert policy.allows("prometheus", "http://kube-prometheus-stack-prometheus.monitoring:9090")
    assert not policy.allows("prometheus", "https://thanos.example/tenant-b")
    assert policy.allows("argo", "https://argo.ops:2746")
    assert policy.allows("argo", "https://argo-server.argo:2746")
    assert not policy.allows("argo", "http://127.0.0.1:2746")
    assert policy.allows("alerts", "https://hooks.example.com/canary/team-a")


def test_network_policy_admits_only_the_named_namespaces_on_the_port() -> None:
    docs = render(VARIATIONS["network-policy"])
    policy = one(docs, "NetworkPolicy")
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    names = {
        p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for p in rule["from"]
    }
    assert names == {"monitoring", NAMESPACE}
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= (
        one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"].items()
    )
    assert of_kind(render(), "NetworkPolicy")  # on by default
    assert not of_kind(render({"networkPolicy": {"enabled": False}}), "NetworkPolicy")


def test_service_monitor_and_service_and_deployment_agree() -> None:
    docs = render()
    service, monitor = one(docs, "Service"), one(docs, "ServiceMonitor")
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    assert monitor["spec"]["endpoints"][0]["port"] == "http"
    # the shipped alert rules select the controller by job=~"canary-controller.*"
    (job,) = monitor["spec"]["endpoints"][0]["relabelings"]
    assert job == {"targetLabel": "job", "replacement": "canary-controller", "action": "replace"}
    rules = (CHART / "rules" / "controller-rules.yaml").read_text()
    assert 'job=~"canary-controller.*"' in rules
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}


def test_pod_monitor_turns_pod_labels_into_canary_and_variant() -> None:
    monitor = one(render(), "PodMonitor")
    endpoints = monitor["spec"]["podMetricsEndpoints"]
    assert len(endpoints) == 3
    for endpoint in endpoints:
        relabel = [r for r in endpoint["relabelings"] if r.get("targetLabel") != "__address__"]
        assert {r["targetLabel"]: r["sourceLabels"] for r in relabel if "targetLabel" in r} == {
            "canary": ["__meta_kubernetes_pod_label_canary_controlplane_dev_canary"],
            "variant": ["__meta_kubernetes_pod_label_canary_controlplane_dev_variant"],
            "namespace": ["__meta_kubernetes_namespace"],
        }
    keys = {e["key"] for e in monitor["spec"]["selector"]["matchExpressions"]}
    assert keys == {"canary.controlplane.dev/canary", "canary.controlplane.dev/variant"}


def test_pod_monitor_finds_kserve_llminferenceservice_and_istio_pods() -> None:
    """Issue #22: KServe's Hugging Face runtime declares no container port, so a port filter
    (``targetPort``/``portNumber``/``port``) on the predictor endpoint keeps nothing. The real
    run is tests/install/test_scrape_real.py."""
    kserve, llm, mesh = one(render(), "PodMonitor")["spec"]["podMetricsEndpoints"]
    assert not {"port", "portNumber", "targetPort"} & kserve.keys()
    keep = [r for r in kserve["relabelings"] if r.get("action") == "keep"]
    assert keep[0]["regex"] == "kserve-container;false"
    address = [r for r in kserve["relabelings"] if r.get("targetLabel") == "__address__"]
    # IPv6 first: after the IPv4 rewrite the address has a colon, which the IPv6 rule would take
    assert [r["replacement"] for r in address] == ["[${1}]:8080", "${1}:8080"]
    assert (llm["portNumber"], llm["scheme"], llm["path"]) == (8000, "http", "/metrics")
    assert "tlsConfig" not in llm
    assert llm["relabelings"][0]["regex"] == "llminferenceservice;main"
    assert (mesh["port"], mesh["path"]) == ("http-envoy-prom", "/stats/prometheus")


def test_pod_monitor_scheme_https_skips_verification_and_endpoints_turn_off() -> None:
    values = {"podMonitor": {"llmInferenceService": {"scheme": "https"}}}
    llm = one(render(values), "PodMonitor")["spec"]["podMetricsEndpoints"][1]
    assert llm["scheme"] == "https"
    assert llm["tlsConfig"] == {"insecureSkipVerify": True}
    off = {"kserve": {"enabled": False}, "istioSidecar": {"enabled": False}}
    (only,) = one(render({"podMonitor": off}), "PodMonitor")["spec"]["podMetricsEndpoints"]
    assert only["portNumber"] == 8000


def test_dashboards_become_configmaps_with_the_sidecar_label(tmp_path: Path) -> None:
    chart = chart_copy(tmp_path)
    for old in (chart / "dashboards").glob("*.json"):
        old.unlink()
    board = {"title": "ModelCanary", "panels": [{"type": "timeseries", "title": "weight"}]}
    (chart / "dashboards" / "modelcanary-dashboard.json").write_text(json.dumps(board, indent=2))
    docs = render({"dashboards": {"folder": "Canaries"}}, chart=chart)
    (cm,) = of_kind(docs, "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Canaries"}
    assert json.loads(cm["data"]["modelcanary-dashboard.json"]) == board
    validate(cm)
    assert not of_kind(render({"dashboards": {"enabled": False}}, chart=chart), "ConfigMap")


RULES = """\
groups:
- name: canary-controller
  rules:
  - alert: CanaryControllerDown
    expr: absent(up{job="cp-controlplane"} == 1)
    for: 5m
    labels: {severity: critical}
    annotations: {summary: "the canary controller is not being scraped"}
  - record: canary:reconcile_errors:rate5m
    expr: sum(rate(canary_controller_reconcile_errors_total[5m]))
"""


@pytest.mark.binary
@pytest.mark.parametrize("wrapped", [False, True], ids=["rule-file", "prometheusrule-object"])
def test_rules_file_becomes_a_prometheus_rule_that_promtool_accepts(
    tmp_path: Path, wrapped: bool
) -> None:
    chart = chart_copy(tmp_path)
    text = RULES
    if wrapped:
        body = {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PrometheusRule",
            "metadata": {"name": "x"},
            "spec": yaml.safe_load(RULES),
        }
        text = yaml.safe_dump(body)
    (chart / "rules" / "controller-rules.yaml").write_text(text)
    rule = one(render(chart=chart), "PrometheusRule")
    validate(rule)
    assert rule["spec"] == yaml.safe_load(RULES)
    promtool_check(rule["spec"], tmp_path)
    assert not of_kind(
        render({"prometheusRule": {"enabled": False}}, chart=chart), "PrometheusRule"
    )


def promtool_check(spec: dict[str, Any], tmp: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not on PATH (scripts/ensure-prometheus.sh installs it)")
    path = tmp / "rules.yaml"
    path.write_text(yaml.safe_dump(spec))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.binary
def test_shipped_rules_pass_promtool(tmp_path: Path) -> None:
    rules = of_kind(render(), "PrometheusRule")
    shipped = (CHART / "rules" / "controller-rules.yaml").exists()
    assert bool(rules) is shipped
    for rule in rules:
        promtool_check(rule["spec"], tmp_path)


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"replicas": "three"}, "/replicas"),
        ({"replicas": -1}, "/replicas"),
        ({"rbac": {"scope": "everywhere"}}, "/rbac/scope"),
        ({"leaderElection": {"enabled": "yes"}}, "/leaderElection/enabled"),
        ({"controller": {"logLevel": "TRACE"}}, "/controller/logLevel"),
        ({"controller": {"prometheusUrl": "prometheus:9090"}}, "/controller/prometheusUrl"),
        ({"controller": {"progressDeadline": "30 minutes"}}, "/controller/progressDeadline"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"api": {"port": 70000}}, "/api/port"),
        ({"watchNamespaces": ["Not_A_Namespace"]}, "/watchNamespaces/0"),
        ({"securityContext": {"readOnlyRootFilesystem": False}}, "/securityContext"),
        ({"podMonitor": {"enabled": "true"}}, "/podMonitor/enabled"),
        (
            {"podMonitor": {"llmInferenceService": {"scheme": "tls"}}},
            "/podMonitor/llmInferenceService/scheme",
        ),
        ({"podMonitor": {"port": 8080}}, "podMonitor"),
        ({"replicaCount": 2}, "replicaCount"),
        ({"gitSource": {"repo": "not a url"}}, "/gitSource/repo"),
        ({"gitSource": {"interval": "often"}}, "/gitSource/interval"),
        ({"gitSource": {"prune": "yes"}}, "/gitSource/prune"),
        ({"allowedEndpoints": {"prometheus": ["http://u:p@prom:9090"]}}, "/allowedEndpoints"),
        ({"allowedEndpoints": {"alerts": ["hooks.example.com"]}}, "/allowedEndpoints/alerts/0"),
        ({"allowedEndpoints": {"argo": []}}, "allowedEndpoints"),
    ],
    ids=lambda v: json.dumps(v) if isinstance(v, dict) else v,
)
def test_wrong_values_are_rejected_with_the_key(values: dict[str, Any], where: str) -> None:
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmValuesError) as caught:
        chart.validate_schema(values)
    assert where in str(caught.value)
    with pytest.raises(helm.HelmValuesError):
        render(values)


def test_notes_tell_the_next_steps() -> None:
    text = notes()
    assert "kubectl canary get -w" in text
    assert "kubectl apply -f" in text
    assert "grafana_dashboard=1" in text
    assert "port-forward svc/cp-controlplane 8080" in text
    namespaced = notes(VARIATIONS["namespaced"])
    assert "manages ModelCanaries in: ml-serving, team-b" in namespaced
    assert "WARNING" in notes({"controller": {"prometheusUrl": ""}})
