"""``canaryctl profile``: measure a variant's latency, throughput, memory and cost; write the entry.

Owns the verb's arguments, progress, output and ``--write FILE``; it measures through a served
endpoint (:mod:`controlplane.sweep.endpoint`) or in process (:mod:`controlplane.sweep.inprocess`),
or compares a canary's measured entries (``--canary``). See docs/profiles.md, "Measured profiles:
``canaryctl profile``".
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from controlplane.cli import output
from controlplane.cli.table import columns
from controlplane.errors import ProfileError, UsageError
from controlplane.profiles.catalog import Catalog, load_catalog
from controlplane.profiles.expected import pair_canary
from controlplane.profiles.fit import GIB
from controlplane.profiles.measured import (
    dump,
    measured_for,
    preferred_fit,
    requests_per_s_at,
    summarize,
)
from controlplane.profiles.measured_models import (
    EngineInfo,
    MeasuredProfile,
    MemoryFigures,
    SweepPoint,
)
from controlplane.spec.units import parse_duration


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "profile",
        help="measure latency, tokens/s, memory and $/1M tokens of a variant",
        description="Measure a served variant (--endpoint) or a random-weight model of a real "
        "architecture on this machine (--in-process) over a sweep of concurrencies at fixed "
        "prompt and output lengths; print the table and optionally write a measured profile "
        "entry that validate's fit check prefers over cited figures.",
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--endpoint", metavar="URL", help="OpenAI-compatible base URL")
    where.add_argument("--in-process", action="store_true", help="build and measure it here")
    where.add_argument(
        "--canary", metavar="FILE", help="compare the measured entries of FILE's variants"
    )
    p.add_argument("--model", metavar="NAME", help="model name (served name with --endpoint)")
    p.add_argument("--arch", metavar="NAME", help="architecture shape (--in-process)")
    p.add_argument("--quantization", default="none", help="quantization of what is measured")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="--in-process")
    p.add_argument("--layers", type=int, metavar="N", help="--in-process: build N layers only")
    p.add_argument("--gpu", metavar="NAME", help="catalogue GPU it runs on (prices the run)")
    p.add_argument("--input-len", type=int, default=512, metavar="TOKENS")
    p.add_argument("--output-len", type=int, default=128, metavar="TOKENS")
    p.add_argument("--concurrency", default="1,8,32", metavar="N,N,...", help="sweep points")
    p.add_argument(
        "--requests", type=int, metavar="N", help="requests per point (default 2 x concurrency)"
    )
    p.add_argument("--ttft-target", metavar="DURATION", help="p90 TTFT target, e.g. 500ms")
    p.add_argument("--write", metavar="FILE", help="write the measured profile entry here")
    p.add_argument("--plot", action="store_true", help="also draw the sweep as text bars")
    p.add_argument("--profiles", metavar="PATH", help="GPU catalogue (gpus.yaml or directory)")
    output.add_output_arg(p)


def _concurrencies(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"--concurrency: {text!r} is not a list of integers like 1,8,32") from None
    if not values or any(v < 1 for v in values):
        raise UsageError(f"--concurrency: {text!r} must list integers of 1 or more")
    return values


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()


def _price(catalog: Catalog, gpu: str | None) -> float | None:
    return None if gpu is None else catalog.require_gpu(gpu).price_per_hour_usd


def run(args: argparse.Namespace) -> int:
    catalog = load_catalog(args.profiles)
    if args.canary:
        return _compare(args, catalog)
    for name in ("input_len", "output_len"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be 1 or more")
    if args.requests is not None and args.requests < 1:
        raise UsageError("--requests must be 1 or more")
    if args.gpu is not None:
        catalog.require_gpu(args.gpu)
        catalog.quant(args.quantization)
    target_ms = None
    if args.ttft_target:
        try:
            target_ms = parse_duration(args.ttft_target).seconds * 1000
        except ValueError as exc:
            raise UsageError(f"--ttft-target: {exc}") from None
    concurrency = _concurrencies(args.concurrency)
    if args.endpoint:
        entry = _endpoint(args, catalog, concurrency)
    else:
        entry = _in_process(args, catalog, concurrency)
    if target_ms is not None:
        entry = entry.model_copy(
            update={
                "ttft_target_ms": target_ms,
                "requests_per_s_at_target": requests_per_s_at(entry.points, target_ms),
            }
        )
    if args.write:
        path = Path(args.write)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump(entry), encoding="utf-8")
        _progress(f"wrote {path}")
    if args.output != "text":
        data = entry.model_dump(by_alias=True, exclude_none=True, mode="json")
        output.emit(data, args.output, sys.stdout)
        return 0
    sys.stdout.write(render(entry))
    if args.plot:
        sys.stdout.write(plot(entry.points))
    return 0


def _command() -> str:
    return "canaryctl " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["profile"] else "canaryctl"


# --------------------------------------------------------------------------- endpoint


def _endpoint(args: argparse.Namespace, catalog: Catalog, sweep: list[int]) -> MeasuredProfile:
    from controlplane.sweep import endpoint

    if not args.model:
        raise UsageError("--endpoint needs --model (the name the server serves)")
    engine, version = asyncio.run(endpoint.check(args.endpoint, args.model))
    _progress(f"profiling {args.model} at {args.endpoint} ({engine} {version or ''})".rstrip())
    price = _price(catalog, args.gpu)
    points: list[SweepPoint] = []
    lengths: set[int] = set()
    gpu_name = None
    for c in sweep:
        total = args.requests or 2 * c
        _progress(f"  concurrency {c}: {total} requests of {args.input_len}+{args.output_len}")
        result = asyncio.run(
            endpoint.run_point(
                args.endpoint,
                args.model,
                concurrency=c,
                requests=total,
                input_len=args.input_len,
                output_len=args.output_len,
            )
        )
        memory, util, gpu_name = endpoint.nvml_figures()
        point = summarize(
            result.samples,
            concurrency=c,
            input_len=args.input_len,
            output_len=args.output_len,
            duration_s=result.duration_s,
            price_per_hour_usd=price,
            peak_memory_gib=memory,
            kv_cache_usage_max=result.kv_cache_usage_max,
            gpu_utilization_max=util,
        )
        lengths.update(s.output_tokens for s in result.samples if s.error is None)
        if point.requests == 0:
            errors = sorted({s.error or "" for s in result.samples})
            raise ProfileError(f"every request failed at concurrency {c}: {'; '.join(errors)}")
        _progress(f"    {_summary(point)}")
        points.append(point)
    fixed = (
        f"ignore_eos + max_tokens={args.output_len}: honoured (every answer had "
        f"{args.output_len} tokens)"
        if lengths == {args.output_len}
        else f"ignore_eos + max_tokens={args.output_len} sent, not honoured: answers had "
        f"{min(lengths, default=0)} to {max(lengths, default=0)} tokens"
    )
    notes = []
    if gpu_name is None:
        notes.append("GPU memory and utilisation not measured (no NVML on this machine)")
    return MeasuredProfile(
        model=args.model,
        quantization=args.quantization,
        gpu=args.gpu,
        device=gpu_name or "endpoint",
        mode="endpoint",
        endpoint=args.endpoint,
        measured_at=_now(),
        engine=EngineInfo(name=engine, version=version),
        command=_command(),
        fixed_output=fixed,
        points=points,
        notes=notes,
    )


# --------------------------------------------------------------------------- in-process


def _in_process(args: argparse.Namespace, catalog: Catalog, sweep: list[int]) -> MeasuredProfile:
    from controlplane.sweep import inprocess

    if not args.arch:
        raise UsageError("--in-process needs --arch (one of profiles/architectures.yaml)")
    arch = inprocess.architecture(args.arch)
    _progress(f"building {args.arch} ({args.quantization}, random weights) on {args.device}")
    built = inprocess.build(arch, args.quantization, device=args.device, layers=args.layers)
    weights_gib = built.weights_bytes_full / GIB
    predicted = None
    if args.quantization in catalog.methods:
        predicted = inprocess.predicted_weights_gib(arch, catalog.quant(args.quantization))
    _progress(
        f"  weights {weights_gib:.4g} GiB measured ({built.layers_run} of {arch.layers} layers "
        f"built), fit.py predicts {predicted if predicted is None else f'{predicted:.4g}'} GiB"
    )
    price = _price(catalog, args.gpu)
    # warm-up, not measured: on a GPU every point's shape once (on the H200 an 8-token warm-up
    # left batch 1's first 512-token prefill five times slower than batch 8's), on a CPU one
    # short batch
    gpu = args.device == "cuda"
    for c in sweep if gpu else [1]:
        inprocess.run_batch(built, c, args.input_len if gpu else min(args.input_len, 8), 2)
    points = []
    peak_gib = None
    for c in sweep:
        _progress(f"  batch {c}: {args.input_len} prompt + {args.output_len} output tokens")
        batch = inprocess.run_batch(built, c, args.input_len, args.output_len)
        peak = batch.peak_bytes / GIB if batch.peak_bytes is not None else None
        if peak is None:  # CPU: the tensors held (weights run + KV cache filled)
            peak = (built.weights_bytes_run + batch.kv_bytes) / GIB
        peak_gib = peak if peak_gib is None else max(peak_gib, peak)
        point = summarize(
            batch.samples,
            concurrency=c,
            input_len=args.input_len,
            output_len=args.output_len,
            duration_s=batch.duration_s,
            price_per_hour_usd=price,
            peak_memory_gib=round(peak, 6),
        )
        _progress(f"    {_summary(point)}")
        points.append(point)
    notes = []
    if built.layers_run < arch.layers:
        notes.append(
            f"speed measured with {built.layers_run} of {arch.layers} decoder layers: latency "
            "and tokens/s are of that truncated model; weights are extrapolated to all layers"
        )
    if args.device == "cpu":
        notes.append("measured on a CPU: memory is real for the shape, speed is not a GPU's")
    else:
        notes.append(
            "transformers' eager forward, one static batch: no continuous batching, paged "
            "attention or CUDA graphs, so figures compare quantizations with each other, not "
            "with what vLLM serves on this GPU"
        )
    if args.quantization == "fp8":
        notes.append(f"fp8 here: {inprocess.fp8_scheme(args.device)}")
    how = (
        "bytes of every tensor (parameters, buffers, bitsandbytes quantization states), "
        "one decoder layer x the layers not built"
    )
    if built.allocated_bytes is not None:
        how += f"; torch.cuda.memory_allocated of the build: {built.allocated_bytes / GIB:.4g} GiB"
    return MeasuredProfile(
        model=args.model or args.arch,
        architecture=args.arch,
        quantization=args.quantization,
        gpu=args.gpu,
        device=built.device_name,
        mode="in-process",
        measured_at=_now(),
        engine=EngineInfo(
            name="transformers",
            version=built.libraries.get("transformers"),
            libraries=built.libraries,
        ),
        command=_command(),
        layers_run=built.layers_run,
        layers_total=arch.layers,
        fixed_output=f"greedy decoding of exactly {args.output_len} tokens, no EOS stop",
        memory=MemoryFigures(
            weights_gib=round(weights_gib, 6),
            predicted_weights_gib=None if predicted is None else round(predicted, 6),
            peak_gib=None if peak_gib is None else round(peak_gib, 6),
            how=how,
        ),
        points=points,
        notes=notes,
    )


# --------------------------------------------------------------------------- output


def _summary(p: SweepPoint) -> str:
    cost = p.cost_per_million_output_tokens_usd
    return (
        f"TTFT p50 {p.ttft_ms.p50:.1f} ms, e2e p50 {p.e2e_ms.p50:.1f} ms, "
        f"{p.output_tokens_per_s:.1f} tok/s, {p.requests_per_s:.2f} req/s"
        + ("" if cost is None else f", ${cost:.2f}/1M tok")
    )


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render(entry: MeasuredProfile) -> str:
    """The entry as people read it: a header, one row per sweep point, the notes."""
    head = [
        f"{entry.model} ({entry.quantization}) on {entry.device} [{entry.mode}, "
        f"{entry.engine.name}{' ' + entry.engine.version if entry.engine.version else ''}]",
        f"output length: {entry.fixed_output}",
    ]
    if entry.memory is not None:
        m = entry.memory
        predicted = (
            ""
            if m.predicted_weights_gib is None
            else (
                f"; fit.py predicts {m.predicted_weights_gib:.4g} GiB "
                f"({(m.weights_gib / m.predicted_weights_gib - 1) * 100:+.1f}%)"
            )
        )
        head.append(f"weights: {m.weights_gib:.4g} GiB measured{predicted}")
    if entry.ttft_target_ms is not None:
        at = entry.requests_per_s_at_target
        head.append(
            f"requests/s at p90 TTFT <= {entry.ttft_target_ms:g} ms: "
            + ("none of the points meets it" if at is None else f"{at:.2f}")
        )
    rows = [
        [
            str(p.concurrency),
            f"{p.input_len}/{p.output_len}",
            str(p.requests) + (f" ({p.errors} failed)" if p.errors else ""),
            f"{_fmt(p.ttft_ms.p50)}/{_fmt(p.ttft_ms.p90)}/{_fmt(p.ttft_ms.p99)}",
            "-" if p.itl_ms is None else f"{p.itl_ms.p50:.2f}/{p.itl_ms.p90:.2f}",
            f"{_fmt(p.e2e_ms.p50)}/{_fmt(p.e2e_ms.p90)}",
            _fmt(p.output_tokens_per_s),
            _fmt(p.requests_per_s, 2),
            _fmt(p.cost_per_million_output_tokens_usd, 2),
            _fmt(p.peak_memory_gib, 3),
            _fmt(None if p.kv_cache_usage_max is None else p.kv_cache_usage_max * 100, 0),
        ]
        for p in entry.points
    ]
    header = [
        "CONC", "IN/OUT", "REQUESTS", "TTFT MS p50/p90/p99", "ITL MS p50/p90",
        "E2E MS p50/p90", "OUT TOK/S", "REQ/S", "$/1M OUT TOK", "MEM GIB", "KV %",
    ]  # fmt: skip
    notes = [f"note: {n}" for n in entry.notes]
    return "\n".join(head) + "\n" + columns(header, rows) + "".join(f"{n}\n" for n in notes)


def plot(points: list[SweepPoint], width: int = 40) -> str:
    """Output tokens/s and TTFT p50 per concurrency as text bars."""
    lines = []
    for label, values, unit in (
        ("output tokens/s", [p.output_tokens_per_s for p in points], "tok/s"),
        ("TTFT p50", [p.ttft_ms.p50 for p in points], "ms"),
    ):
        top = max(values, default=0.0) or 1.0
        lines.append(f"{label}:")
        for p, v in zip(points, values, strict=True):
            bar = "#" * max(1 if v > 0 else 0, round(v / top * width))
            lines.append(f"  c={p.concurrency:<4} {bar:<{width}} {v:.1f} {unit}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- --canary


def _compare(args: argparse.Namespace, catalog: Catalog) -> int:
    from controlplane.validation import validated_file

    entries = measured_for(catalog)
    out: list[dict[str, Any]] = []
    for canary in validated_file(args.canary, catalog):
        spec = canary.spec
        pairing = pair_canary(canary, entries)
        found = {"stable": pairing.stable_entry, "candidate": pairing.candidate_entry}
        fits = {
            role: preferred_fit(spec.model, v, catalog).message
            for role, v in (("stable", spec.stable), ("candidate", spec.candidate))
        }
        out.append(
            {
                "name": canary.metadata.name,
                "fit": fits,
                "measured": {r: (f.source if f else None) for r, f in found.items()},
                "expected": [c.describe() for c in pairing.changes],
                "headline": pairing.line(),
            }
        )
    if args.output != "text":
        output.emit(out, args.output, sys.stdout)
        return 0
    for item in out:
        print(f"{item['name']}:")
        for role in ("stable", "candidate"):
            src = item["measured"][role] or "no measured profile (cited figures)"
            print(f"  {role}: fit: {item['fit'][role]}")
            print(f"  {role}: measured: {src}")
        if item["expected"]:
            for line in item["expected"]:
                print(f"  expected candidate vs stable {line}")
            if item["headline"]:
                print(f"  {item['headline']}")
        else:
            print("  expected change: needs measured profiles of both variants")
    return 0


def to_json(entry: MeasuredProfile) -> str:
    """``entry`` as JSON (for tests and scripts)."""
    return json.dumps(entry.model_dump(by_alias=True, exclude_none=True, mode="json"))
