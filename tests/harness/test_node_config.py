"""The real node's configuration and its record of the machine, without starting anything.

What :mod:`harness.node` writes for containerd, the CNI plugins and kubelet, and how
:class:`~harness.node.host.Footprint` tells what a node left behind (the binary tests in
``test_node.py`` run them for real).
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from harness import cli
from harness.cluster.kubeapi import KubeSetupError
from harness.node import host, images, node, services, serving
from harness.node.controller_image import image_key


def test_containerd_keeps_every_folder_under_the_node_and_never_lowers_oom_scores(
    tmp_path: Path,
) -> None:
    text = node.containerd_config(tmp_path)
    for key in ("root", "state", "address", "conf_dir", "Root"):
        line = next(line for line in text.splitlines() if line.strip().startswith(f"{key} ="))
        assert str(tmp_path) in line, line
    assert 'sandbox_image = "localhost/pause:3.10.1"' in text
    assert "restrict_oom_score_adj = true" in text


def test_the_pod_network_writes_no_iptables_rule(tmp_path: Path) -> None:
    config = node.cni_config(tmp_path)
    (bridge,) = config["plugins"]
    assert bridge["type"] == "bridge"
    assert bridge["bridge"] == node.BRIDGE
    assert bridge["ipMasq"] is False  # masquerade is the bridge plugin's only iptables rule
    assert [p["type"] for p in config["plugins"]] == ["bridge"]  # no portmap
    assert bridge["ipam"]["ranges"] == [[{"subnet": node.POD_SUBNET, "gateway": node.NODE_IP}]]
    assert bridge["ipam"]["dataDir"].startswith(str(tmp_path))
    assert "routes" not in bridge["ipam"]  # the bridge's subnet only: nothing beyond
    (routed,) = node.cni_config(tmp_path, "10.0.0.0/24")["plugins"]
    assert routed["ipam"]["routes"] == [{"dst": "10.0.0.0/24", "gw": node.NODE_IP}]


def test_kubelet_runs_under_its_own_cgroup_root_and_logs_in_the_node_folder(
    tmp_path: Path,
) -> None:
    config = node.kubelet_config(tmp_path)
    assert config["cgroupRoot"] == f"/{node.CGROUP}"
    assert config["cgroupDriver"] == "cgroupfs"
    assert config["podLogsDir"].startswith(str(tmp_path))
    assert config["containerRuntimeEndpoint"] == (
        f"unix://{tmp_path / 'containerd' / 'containerd.sock'}"
    )
    assert config["address"] == node.NODE_IP
    assert config["podCIDR"] == node.POD_SUBNET


def _footprint(**changes: object) -> host.Footprint:
    empty: dict[str, frozenset[str]] = {kind: frozenset() for kind in host.KINDS}
    return host.Footprint(**{**empty, "ip_forward": "0", **changes})  # type: ignore[arg-type]


def test_left_over_names_only_what_is_new() -> None:
    before = _footprint(links=frozenset({"lo", "eth0"}), files=frozenset({"/run/netns"}))
    after = _footprint(
        links=frozenset({"lo", "eth0", "veth1"}),
        files=frozenset({"/run/netns", "/run/netns/cni-1"}),
        ip_forward="1",
    )
    assert after.left_over(before) == {
        "links": ["veth1"],
        "files": ["/run/netns/cni-1"],
        "ip_forward": ["0 -> 1"],
    }
    assert before.left_over(before) == {}
    # what went missing is not left over
    assert before.left_over(after) == {"ip_forward": ["1 -> 0"]}


def test_a_footprint_survives_the_state_file() -> None:
    one = _footprint(mounts=frozenset({"/a", "/b"}), iptables=frozenset({"nat -A X -j Y"}))
    assert host.Footprint.from_json(one.to_json()) == one


def test_a_layer_is_the_folder_and_the_same_for_the_same_files(tmp_path: Path) -> None:
    folder = tmp_path / "site"
    (folder / "pkg" / "__pycache__").mkdir(parents=True)
    (folder / "pkg" / "mod.py").write_text("x = 1\n")
    (folder / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0")
    first, tag = images.layer_of(folder, "/opt/engine/src", tmp_path / "one.tar")
    (folder / "pkg" / "mod.py").touch()  # a new mtime changes nothing
    again, tag_again = images.layer_of(folder, "/opt/engine/src", tmp_path / "two.tar")
    assert tag == tag_again
    assert first.read_bytes() == again.read_bytes()
    with tarfile.open(first) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["opt/engine/src/pkg", "opt/engine/src/pkg/mod.py"]
    assert {(m.uid, m.gid, m.mtime) for m in members} == {(0, 0, 0)}
    (folder / "pkg" / "mod.py").write_text("x = 2\n")
    assert images.layer_of(folder, "/opt/engine/src", tmp_path / "three.tar")[1] != tag


def test_the_engine_base_is_rebuilt_when_the_lock_changes() -> None:
    assert images.base_key("aiohttp==3.12.0\n") != images.base_key("aiohttp==3.12.1\n")
    assert images.base_key("x\n") == images.base_key("x\n")


def test_the_image_keys_do_not_depend_on_where_the_checkout_is() -> None:
    """``uv export`` names the project's path in a comment: two clones must share the cache."""
    here = "#    uv export --frozen --project /one/clone\naiohttp==3.12.0\n    # via x\n"
    there = "#    uv export --frozen --project /another\naiohttp==3.12.0\n    # via y\n"
    assert images.base_key(here) == images.base_key(there)
    assert image_key(here) == image_key(there)
    assert image_key(here) != image_key("aiohttp==3.12.1\n")


def test_a_cached_blob_is_copied_where_it_cannot_be_linked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The image cache and the node's folder may sit on two file systems (EXDEV)."""
    source = tmp_path / "blob"
    source.write_bytes(b"layer")

    def cross_device(src: str, dst: str) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(images.os, "link", cross_device)
    images._link_or_copy(str(source), str(tmp_path / "copy"))
    assert (tmp_path / "copy").read_bytes() == b"layer"


def _upstream() -> dict[str, Any]:
    """The shape of KServe's ``kserve-huggingfaceserver`` runtime that engine_runtime edits."""
    return {
        "kind": "ClusterServingRuntime",
        "spec": {
            "containers": [
                {
                    "name": "kserve-container",
                    "args": ["--model_name={{.Name}}"],
                    "resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "1"}},
                }
            ]
        },
    }


def test_the_runtime_mounts_the_transformers_stack_last_on_the_path(tmp_path: Path) -> None:
    plain = serving.engine_runtime(_upstream(), "localhost/engine:x")
    assert "volumes" not in plain["spec"]
    assert "PYTHONPATH" not in {e["name"] for e in plain["spec"]["containers"][0]["env"]}

    runtime = serving.engine_runtime(_upstream(), "localhost/engine:x", tmp_path)
    (volume,) = runtime["spec"]["volumes"]
    assert volume["hostPath"] == {"path": str(tmp_path), "type": "Directory"}
    container = runtime["spec"]["containers"][0]
    (mount,) = container["volumeMounts"]
    assert mount == {"name": volume["name"], "mountPath": serving.STACK_MOUNT, "readOnly": True}
    # KServe's webhook refuses PYTHONPATH: the stack is Debian python3's own site folder, which
    # comes after the image's PYTHONPATH (its own packages first)
    assert "PYTHONPATH" not in {e["name"] for e in container["env"]}
    assert mount["mountPath"] == "/usr/local/lib/python3.11/dist-packages"


def test_the_stack_is_where_torch_is_or_none() -> None:
    found = importlib.util.find_spec("torch")
    stack = serving.torch_stack()
    if found is None:
        assert stack is None
    else:
        assert stack is not None
        assert (stack / "torch" / "__init__.py").is_file()
        assert (stack / "bitsandbytes").is_dir()
        assert (stack / "transformers").is_dir()


def test_the_cluster_network_changes_no_sysctl_and_listens_on_loopback_and_the_bridge(
    tmp_path: Path,
) -> None:
    config = services.kube_proxy_config(
        tmp_path / "kubeconfig", node.NODE_NAME, node.POD_SUBNET, node.NODE_IP, 4001, 4002
    )
    assert config["mode"] == "iptables"
    assert config["hostnameOverride"] == node.NODE_NAME
    assert config["clientConnection"] == {"kubeconfig": str(tmp_path / "kubeconfig")}
    # a reply on the same bridge would skip conntrack without br_netfilter: masquerade all
    assert config["iptables"] == {"masqueradeAll": True, "localhostNodePorts": False}
    assert set(config["conntrack"].values()) == {0, "0s"}  # the kernel's values stay
    assert config["healthzBindAddress"] == "127.0.0.1:4001"
    assert config["metricsBindAddress"] == "127.0.0.1:4002"
    assert config["nodePortAddresses"] == [f"{node.NODE_IP}/32"]
    core = services.corefile(tmp_path / "kubeconfig", node.NODE_IP, 4003)
    assert core.startswith("cluster.local:53 {")
    assert f"bind {node.NODE_IP}" in core
    assert "ready 127.0.0.1:4003" in core
    assert f"kubeconfig {tmp_path / 'kubeconfig'}" in core
    assert "forward" not in core  # nothing beyond the cluster is answered
    plain, dns = node.kubelet_config(tmp_path), node.kubelet_config(tmp_path, dns=True)
    assert "clusterDNS" not in plain
    assert dns == {**plain, "clusterDNS": [node.NODE_IP], "clusterDomain": "cluster.local"}


def test_kube_proxys_rules_and_chains_of_both_families_are_taken_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    saved = {
        ("iptables-save", "nat"): ":KUBE-SERVICES - [0:0]\n:OTHER - [0:0]\n"
        "-A OUTPUT -j KUBE-SERVICES\n",
        ("ip6tables-save", "filter"): ":KUBE-FORWARD - [0:0]\n-A FORWARD -j KUBE-FORWARD\n",
    }
    monkeypatch.setattr(host, "_run", lambda argv: saved.get((argv[0], argv[2]), ""))
    assert host._iptables() == {
        "nat :KUBE-SERVICES",
        "nat -A OUTPUT -j KUBE-SERVICES",
        "6/filter :KUBE-FORWARD",
        "6/filter -A FORWARD -j KUBE-FORWARD",
    }
    ran: list[list[str]] = []
    monkeypatch.setattr(host.subprocess, "run", lambda argv, **_: ran.append(argv))
    host._undo_iptables("6/filter -A FORWARD -j KUBE-FORWARD")
    host._undo_iptables("nat :KUBE-SERVICES")
    assert ran == [
        ["ip6tables", "-t", "filter", "-D", "FORWARD", "-j", "KUBE-FORWARD"],
        ["iptables", "-t", "nat", "-F", "KUBE-SERVICES"],
        ["iptables", "-t", "nat", "-X", "KUBE-SERVICES"],
    ]


def test_up_and_down_need_a_folder(capsys: pytest.CaptureFixture[str]) -> None:
    from harness import cli

    for action in ("up", "down"):
        with pytest.raises(SystemExit) as exited:
            cli.main([action])
        assert exited.value.code == 2
        assert f"{action} needs --dir" in capsys.readouterr().err


def test_up_passes_the_engine_and_refuses_one_it_does_not_know(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness import cli

    seen: list[dict[str, Any]] = []

    def up(folder: Path, crds: Any, **flags: Any) -> Any:
        seen.append(flags)
        raise KubeSetupError("stopped here")

    monkeypatch.setattr(cli, "up", up)
    monkeypatch.setattr(cli, "all_crds", list)
    argv = ["up", "--dir", str(tmp_path), "--kserve", "--node", "--engine", "vllm"]
    assert cli.main(argv) == 2
    assert seen == [{"kserve": True, "node": True, "engine": "vllm"}]
    with pytest.raises(SystemExit) as exited:
        cli.main(["up", "--dir", str(tmp_path), "--engine", "trt"])
    assert exited.value.code == 2
    assert "invalid choice: 'trt'" in capsys.readouterr().err


def test_the_vllm_runtime_runs_the_real_server_with_this_machines_flags_first(
    tmp_path: Path,
) -> None:
    upstream = _upstream()
    upstream["spec"]["containers"][0]["resources"]["limits"]["memory"] = "2Gi"
    runtime = serving.vllm_runtime(upstream, "localhost/engine:x", tmp_path)
    container = runtime["spec"]["containers"][0]
    assert container["command"] == ["python3", "-m", "controlplane.local.vllm_engine"]
    # KServe appends the predictor's args: the machine's defaults first, so a spec's flag wins
    assert container["args"] == [
        "--model_name={{.Name}}",
        "--model_dir=/mnt/models",
        "--http_port=8080",
        "--dtype=float32",
        "--enforce-eager",
    ]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert env["HOME"] == "/tmp"
    # the image has no compiler: vLLM's torch.compile'd functions run as written
    assert env["TORCH_COMPILE_DISABLE"] == "1"
    # unpinned: vLLM's default pins every pod's worker to the node's core 0
    assert (env["VLLM_CPU_OMP_THREADS_BIND"], env["OMP_NUM_THREADS"]) == ("nobind", "1")
    assert "g++" not in images.DEBIAN_PACKAGES
    assert container["resources"]["limits"]["memory"] == serving.VLLM_MEMORY
    (mount,) = container["volumeMounts"]
    assert mount["mountPath"] == serving.STACK_MOUNT
    assert runtime["spec"]["volumes"][0]["hostPath"]["path"] == str(tmp_path)
    assert upstream["spec"]["containers"][0]["resources"]["limits"]["memory"] == "2Gi"


def test_an_unknown_engine_is_refused_before_anything_starts() -> None:
    with pytest.raises(KubeSetupError, match="engine 'trt'"):
        serving.start_serving(None, None, "NVIDIA-L40S", engine="trt")  # type: ignore[arg-type]


def test_a_port_a_stopped_node_left_in_time_wait_is_free_for_the_next_kubelet() -> None:
    """kubelet (Go) binds with ``SO_REUSEADDR``: a connection the node before closed first,
    left in ``TIME_WAIT`` for a minute, does not stop the next node; the check does as kubelet
    does."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    served, _ = listener.accept()
    served.close()  # the server closes first: its side of the port goes to TIME_WAIT
    client.close()
    listener.close()

    def plain_bind_refused() -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as plain:
            try:
                plain.bind(("0.0.0.0", port))
            except OSError:
                return True
        return False

    deadline = time.monotonic() + 5
    while not plain_bind_refused() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert plain_bind_refused()  # the TIME_WAIT is there: a bind without SO_REUSEADDR fails
    assert node._port_free(port)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as kubelet listens
        holder.bind(("0.0.0.0", port))
        holder.listen()
        assert not node._port_free(port)  # a listener does hold it


def _recorded(run: Path, folder: Path) -> None:
    run.mkdir()
    before = _footprint(links=frozenset({"lo", "eth0"}))
    (run / node.RECORD).write_text(json.dumps({"folder": str(folder), "before": before.to_json()}))


def test_a_node_held_by_a_live_process_is_not_taken_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(node, "LOCK_FILE", tmp_path / "node.lock")
    run = tmp_path / "run"
    assert node.take_back_stale(run) is None  # no node
    _recorded(run, tmp_path / "logs")
    held = node._lock(0)  # another open file: flock refuses it even in this process
    try:
        with pytest.raises(node.NodeHeld, match="held by a live process"):
            node.take_back_stale(run)
    finally:
        os.close(held)
    assert (run / node.RECORD).exists()  # nothing was touched


def test_a_record_that_says_nothing_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(node, "LOCK_FILE", tmp_path / "node.lock")
    run = tmp_path / "run"
    run.mkdir()
    (run / node.RECORD).write_text("{}")
    with pytest.raises(KubeSetupError, match=f"{node.RECORD} does not say what to take back"):
        node.take_back_stale(run)
    assert (run / node.RECORD).exists()
    os.close(node._lock(0))  # and the lock was let go


def test_kube_down_leaves_a_node_kube_up_runs_to_its_own_folder(tmp_path: Path) -> None:
    up = tmp_path / "kube-up"
    up.mkdir()
    (up / "state.json").write_text("{}")
    run = tmp_path / "run"
    _recorded(run, up / "node")
    with pytest.raises(node.NodeHeld, match=f"make kube-down KUBE_DIR={up}"):
        cli.take_back_stale_node(run)
    assert (run / node.RECORD).exists()
