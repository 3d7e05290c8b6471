"""KServe's serving pods on the real node: GPUs the node advertises, model storage, the runtime.

Owns what lets the real KServe (:mod:`harness.cluster.kserve`) turn the InferenceServices the
product renders (:mod:`controlplane.serving.render`) into running pods on the real node
(:mod:`harness.node.node`), with nothing pulled and nothing downloaded:

- **GPUs** (:func:`advertise_gpus`): the node is labelled as NVIDIA's GPU Feature Discovery
  labels a GPU node (``nvidia.com/gpu.product`` is what the rendered predictors select on) and
  ``nvidia.com/gpu`` is patched into its status capacity, Kubernetes' documented way to advertise
  an extended resource without a device plugin. Kubernetes v1.34.10 keeps it: kubelet builds
  each status from the node it reads back and copies every capacity into allocatable
  (``pkg/kubelet/nodestatus/setters.go``, ``MachineInfo``), and its device manager skips a
  resource no device plugin registered when it admits a pod (``pkg/kubelet/cm/devicemanager/
  manager.go``, ``allocateContainerResources``: ``if !m.isDevicePluginResource(resource)
  continue``). The scheduler counts the GPUs; no container sees one.
- **Model storage** (:func:`write_model`, :func:`model_volume`): a tiny model is a folder with a
  Hugging Face ``config.json`` under :data:`MODELS_DIR` on the node; a ``hostPath``
  PersistentVolume bound to the claim :data:`MODEL_CLAIM` in the canary's namespace holds them
  all, and a variant's ``storageUri`` is ``pvc://models/<name>``. KServe v0.20.0 mounts a
  ``pvc://`` URI straight into the model container at ``/mnt/models``, the URI's path as
  ``subPath``, with no storage-initializer container (``pkg/webhook/admission/pod/
  storage_initializer_injector.go``, the ``PvcURIPrefix`` branch), whose image could not be
  pulled here. The engine reads ``config.json`` as vLLM does
  (:func:`controlplane.local.serve.local_model`).
- **The runtime** (:func:`engine_runtime`): KServe's own ``kserve-huggingfaceserver``
  ClusterServingRuntime (``config/runtimes/kserve-huggingfaceserver.yaml`` of the module, the
  name the product renders), its image replaced by the engine image and its command by the
  engine's (``python3 -m controlplane.local.serve``, the image's entrypoint); its ``args`` keep
  upstream's ``--model_name={{.Name}}`` and add what ``huggingfaceserver`` takes by default
  (``--model_dir=/mnt/models``, ``--http_port=8080``); KServe appends the predictor's ``args``
  (the ``vllm serve`` flags the product renders), which the engine parses with vLLM's rules, so a
  flag vLLM would refuse fails the pod. The CPU request is lowered from 1 to 100m (this machine
  has two cores for every replica); the labels of the metrics come from the downward API.
  KServe runs ``<image>-gpu`` for a ``huggingfaceserver`` container that requests GPUs (its GPU
  build's tag: ``pkg/controller/v1beta1/inferenceservice/utils/utils.go``, ``UpdateImageTag``),
  so the engine image is also tagged so on the node (:data:`GPU_TAG_SUFFIX`). No
  readiness probe is added: KServe gives the container its default TCP probe on 8080
  (``pkg/controller/v1beta1/inferenceservice/reconcilers/deployment/deployment_reconciler.go``),
  as it does the real runtime's.
- **The transformers engine's stack** (:func:`torch_stack`): the engine image carries no torch.
  PyPI's torch for x86-64 Linux is the CUDA build, whose ``nvidia-*`` wheels make this checkout's
  ``local-cpu`` extra 5.9 GB of site-packages; packing that as a layer (umoci gzips it) and
  importing it into containerd would cost every cold CI run minutes for one test. So where the
  running interpreter has torch, transformers and bitsandbytes, the runtime mounts their
  site-packages folder read-only (a ``hostPath``, as the model volume is; KServe v0.20.0 adds a
  runtime's ``volumes`` to every predictor pod: ``MergePodSpec``, ``pkg/controller/v1beta1/
  inferenceservice/utils/utils.go``) at :data:`STACK_MOUNT`, the site folder Debian's Python
  3.11 in the image searches after ``PYTHONPATH``, so the image's own packages come first and a
  variant's ``args: ["--engine=transformers"]`` serves the tiny model with real CPU inference,
  quantized by bitsandbytes as ``--quantization`` says. Not through ``PYTHONPATH``: KServe
  v0.20.0's webhook refuses a runtime that sets it, "setting PYTHONPATH in container
  "kserve-container" is not allowed for security reasons" (``DefaultBlockedEnvVars``,
  ``pkg/validation/env_policy.go``; the first run here met it). The folder's ``.pth`` files
  run as they do in its virtualenv.
  Where it has not, nothing is mounted and such a pod fails to load, as vLLM does without its
  stack.
- **The real vLLM** (``engine="vllm"``, :func:`vllm_runtime`): the same runtime, its container
  running vLLM 0.32's OpenAI server from the CPU build ``make vllm`` installs
  (:mod:`harness.vllm_cpu`), whose site-packages are mounted read-only at :data:`STACK_MOUNT`
  as the transformers stack is. The command is :mod:`controlplane.local.vllm_engine`, which maps
  ``huggingfaceserver``'s own flags as it does and becomes ``python -E -m
  vllm.entrypoints.openai.api_server`` with every other flag the predictor renders, so vLLM's own
  parser judges them. What this machine needs comes first in the runtime's ``args`` (a
  predictor's flag given later wins): ``--dtype=float32`` (the CPU build's bf16 kernels die with
  SIGILL here) and ``--enforce-eager``; and in its environment a 1 GiB KV cache
  (``VLLM_CPU_KVCACHE_SPACE``), no hub access, ``HOME=/tmp`` for the engine's caches (the
  image's user has no home), and ``TORCH_COMPILE_DISABLE=1``: vLLM compiles a few functions
  with ``torch.compile`` whatever ``--enforce-eager`` says (vLLM 0.32.0's
  ``batched_count_greater_than``, ``vllm/v1/sample/ops/logprobs.py``, at the first request
  for ``logprobs``), which needs a C++ compiler in the image and held both engines of the
  quality judge's first paired request for minutes on a loaded host; torch 2.13.0 reads the
  variable into ``torch._dynamo.config.disable`` (``torch/_dynamo/config.py``), so every
  such function runs as written; and vLLM unpinned on one thread
  (:func:`controlplane.local.engines.vllm_engine.cpu_threads`: pinned by default, every vLLM pod
  on this node would share core 0). Its memory limit is :data:`VLLM_MEMORY`: upstream's 2Gi (the
  runtime file above) is less than vLLM's API server and engine core hold (about 4 GB here with
  the KV cache). The model is
  the tiny Llama of :mod:`harness.tiny_model` with its weights and tokenizer
  (:func:`write_model` with ``engine="vllm"``); the engine image adds ``libnuma1``, which vLLM's
  CPU kernels link.

Called by ``make kube-up NODE=1 KSERVE=1`` (:mod:`harness.cli`) and the test fixtures.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

from controlplane.local.engines.vllm_engine import cpu_threads
from harness import vllm_cpu
from harness.cluster.kserve import huggingface_runtime
from harness.cluster.kubeapi import KubeSetupError, LoopbackCluster, applier
from harness.cluster.upstream_crds import KSERVE, module_dir
from harness.node.node import NODE_NAME, RUN_DIR, RealNode

MODELS_DIR = RUN_DIR / "models"
MODEL_CLAIM = "models"
MODEL_MOUNT = "/mnt/models"
HTTP_PORT = 8080
"""KServe's model server port (``huggingfaceserver``'s ``--http_port`` default): the predictor
Service's target and the ``prometheus.io/port`` the product annotates."""
STACK_MOUNT = "/usr/local/lib/python3.11/dist-packages"
"""On ``sys.path`` of Debian's ``python3`` (``site``), after the image's ``PYTHONPATH``."""
STACK_MODULES = ("torch", "transformers", "bitsandbytes")
CPU_REQUEST = "100m"
GPU_TAG_SUFFIX = "-gpu"
ENGINE_COMMAND = ["python3", "-m", "controlplane.local.serve"]
VLLM_COMMAND = ["python3", "-m", "controlplane.local.vllm_engine"]
VLLM_ARGS = ("--dtype=float32", "--enforce-eager")
VLLM_CPU_LIMIT = "2"
VLLM_ENV = (
    ("VLLM_CPU_KVCACHE_SPACE", "1"),
    ("HF_HUB_OFFLINE", "1"),
    ("HOME", "/tmp"),
    ("VLLM_NO_USAGE_STATS", "1"),
    ("TORCH_COMPILE_DISABLE", "1"),
    *cpu_threads(int(VLLM_CPU_LIMIT)).items(),  # beside the other variant's pod
)
VLLM_MEMORY = "6Gi"
ENGINES = ("simulated", "vllm")
IDENTITY_ENV = (
    ("CONTROLPLANE_NAMESPACE", "metadata.namespace"),
    ("CONTROLPLANE_CANARY", "metadata.labels['canary.controlplane.dev/canary']"),
    ("CONTROLPLANE_VARIANT", "metadata.labels['canary.controlplane.dev/variant']"),
)
"""The metrics' identity labels from the pod's own fields (the labels the product puts on every
predictor)."""


def gpu_labels(product: str, count: int) -> dict[str, str]:
    """GPU Feature Discovery's labels of a node with ``count`` GPUs ``product`` (pure)."""
    return {
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": product,
        "nvidia.com/gpu.count": str(count),
    }


def advertise_gpus(cluster: LoopbackCluster, product: str, count: int = 4) -> None:
    """Label the real node as a node with ``count`` GPUs ``product`` and put ``nvidia.com/gpu``
    in its capacity (see the module docstring for why kubelet keeps it)."""
    path = f"/api/v1/nodes/{NODE_NAME}"
    merge = "application/merge-patch+json"
    cluster.request(
        "PATCH", path, {"metadata": {"labels": gpu_labels(product, count)}}, content_type=merge
    )
    cluster.request(
        "PATCH",
        f"{path}/status",
        {"status": {"capacity": {"nvidia.com/gpu": str(count)}}},
        content_type=merge,
    )


def model_config(max_position_embeddings: int) -> dict[str, Any]:
    """A tiny Llama's ``config.json`` (pure): what vLLM reads the architecture and the context
    length from."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 4,
        "vocab_size": 32000,
        "max_position_embeddings": max_position_embeddings,
        "torch_dtype": "bfloat16",
    }


def write_model(
    name: str,
    *,
    max_position_embeddings: int = 131072,
    root: Path = MODELS_DIR,
    engine: str = "simulated",
    quantized: str | None = None,
    trained: bool = False,
) -> str:
    """Write the tiny model ``name`` under ``root`` (readable by the engine's user); its
    ``storageUri``. For the simulated engine a ``config.json``; for ``engine="vllm"`` the real
    tiny Llama (``trained`` on its sentences or not) or its twin ``quantized``
    (:func:`harness.vllm_cpu.cached_tiny_model`), its
    context length set to ``max_position_embeddings`` so that vLLM takes the
    ``--max-model-len`` a spec renders."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    folder.chmod(0o755)
    config = folder / "config.json"
    if engine == "vllm":
        built = vllm_cpu.cached_tiny_model(quantized, trained)
        for source in built.iterdir():
            shutil.copyfile(source, folder / source.name)
            (folder / source.name).chmod(0o644)
        real = json.loads(config.read_text())
        real["max_position_embeddings"] = max_position_embeddings
        config.write_text(json.dumps(real, indent=1))
    else:
        config.write_text(json.dumps(model_config(max_position_embeddings), indent=1))
    config.chmod(0o644)
    return f"pvc://{MODEL_CLAIM}/{name}"


def model_volume(namespace: str, root: Path = MODELS_DIR) -> list[dict[str, Any]]:
    """The hostPath PersistentVolume of ``root`` and the claim :data:`MODEL_CLAIM` of
    ``namespace`` bound to it (pure): one volume per namespace, read-only to the pods."""
    volume = f"{MODEL_CLAIM}-{namespace}"
    access = ["ReadOnlyMany"]
    size = {"storage": "1Gi"}
    return [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": volume},
            "spec": {
                "capacity": size,
                "accessModes": access,
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "hostPath": {"path": str(root), "type": "Directory"},
                "claimRef": {"namespace": namespace, "name": MODEL_CLAIM},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": MODEL_CLAIM, "namespace": namespace},
            "spec": {
                "accessModes": access,
                "resources": {"requests": size},
                "storageClassName": "",
                "volumeName": volume,
            },
        },
    ]


def torch_stack() -> Path | None:
    """The site-packages folder holding :data:`STACK_MODULES` for this interpreter, found
    without importing them; None when one is missing or they lie in different folders."""
    folders = set()
    for name in STACK_MODULES:
        found = importlib.util.find_spec(name)
        if found is None or not found.submodule_search_locations:
            return None
        folders.add(Path(next(iter(found.submodule_search_locations))).parent)
    return folders.pop() if len(folders) == 1 else None


def engine_runtime(
    upstream: dict[str, Any], image: str, stack: Path | None = None
) -> dict[str, Any]:
    """KServe's ``kserve-huggingfaceserver`` runtime ``upstream`` running the engine ``image``,
    with the transformers engine's ``stack`` mounted when given (pure; see the module
    docstring for each change)."""
    runtime = copy.deepcopy(upstream)
    container = runtime["spec"]["containers"][0]
    container["image"] = image
    container["imagePullPolicy"] = "Never"
    container["command"] = list(ENGINE_COMMAND)
    container["args"] = [
        *container.get("args", []),
        f"--model_dir={MODEL_MOUNT}",
        f"--http_port={HTTP_PORT}",
    ]
    container["env"] = [
        *container.get("env", []),
        *(
            {"name": name, "valueFrom": {"fieldRef": {"fieldPath": field}}}
            for name, field in IDENTITY_ENV
        ),
    ]
    for side in ("requests", "limits"):
        container["resources"][side]["cpu"] = CPU_REQUEST if side == "requests" else "1"
    if stack is not None:
        runtime["spec"]["volumes"] = [
            *runtime["spec"].get("volumes", []),
            {"name": "engine-stack", "hostPath": {"path": str(stack), "type": "Directory"}},
        ]
        container["volumeMounts"] = [
            *container.get("volumeMounts", []),
            {"name": "engine-stack", "mountPath": STACK_MOUNT, "readOnly": True},
        ]
    return runtime


def vllm_runtime(upstream: dict[str, Any], image: str, site: Path) -> dict[str, Any]:
    """:func:`engine_runtime` running the real vLLM whose ``site``-packages are mounted (pure;
    the module docstring says why each change)."""
    runtime = engine_runtime(upstream, image, site)
    container = runtime["spec"]["containers"][0]
    container["command"] = list(VLLM_COMMAND)
    container["args"] = [*container["args"], *VLLM_ARGS]
    container["env"] = [*container["env"], *({"name": k, "value": v} for k, v in VLLM_ENV)]
    container["resources"]["limits"].update(cpu=VLLM_CPU_LIMIT, memory=VLLM_MEMORY)
    container["resources"]["requests"]["memory"] = VLLM_MEMORY
    return runtime


def vllm_site() -> Path:
    """The site-packages folder of the installed real vLLM (``make vllm``)."""
    engine = vllm_cpu.python()
    if engine is None:
        raise KubeSetupError("the real vLLM engine is not installed: make vllm")
    (site,) = (vllm_cpu.venv() / "lib").glob("python3*/site-packages")
    return site


def start_serving(
    cluster: LoopbackCluster,
    node: RealNode,
    product: str,
    *,
    gpus: int = 4,
    engine: str = "simulated",
) -> None:
    """Make the real ``node`` a GPU node of ``product`` and KServe's Hugging Face runtime run its
    engine image (also tagged with :data:`GPU_TAG_SUFFIX`): the simulated engine, or with
    ``engine="vllm"`` the real vLLM; KServe (:func:`harness.cluster.kserve.start_kserve`) must
    run. Namespaces that serve models also need :func:`model_volume` and :func:`write_model`
    (with the same ``engine``)."""
    if engine not in ENGINES:
        raise KubeSetupError(f"engine {engine!r}: one of {', '.join(ENGINES)}")
    image = node.images["engine"]
    node.ctr("images", "tag", "--force", image, image + GPU_TAG_SUFFIX)
    advertise_gpus(cluster, product, gpus)
    upstream = huggingface_runtime(module_dir(KSERVE))
    if engine == "vllm":
        runtime = vllm_runtime(upstream, image, vllm_site())
    else:
        runtime = engine_runtime(upstream, image, torch_stack())
    applier(cluster)(runtime)
