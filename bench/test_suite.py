"""Test-suite benchmark: the whole suite of an earlier commit and of HEAD, side by side.

Owns the "## Test suite" section of ``docs/benchmarks-derivation.md``. In one run, on this machine,
it times ``make test``'s two phases (lint: ruff, ruff format, mypy --strict, import-linter; then
pytest) for a *baseline* commit (``--baseline``, default the last commit before the suite was
tiered) and for ``--head`` (default ``HEAD``: commit first), and ``make test-fast`` for the head.
Both run in the same environment, installed from the head's ``uv.lock`` (the baseline's own unlocked
install no longer collects; that is why the lock exists), each in its own git worktree and
virtualenv, with a fresh mypy cache, so neither profits from the other's caches. Each runs pytest as
its Makefile says: the baseline serially, the head on every core.

Run ``python bench/test_suite.py`` (``--baseline REF``, ``--head REF``, ``--no-write`` prints
only). Needs git and the uv that ``make setup`` installs; takes about ten minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

try:
    from bench.common import BENCHMARKS_MD, machine_summary, replace_section, today
except ImportError:  # run as a script: bench/ is on sys.path
    from common import (  # type: ignore[no-redef]
        BENCHMARKS_MD,
        machine_summary,
        replace_section,
        today,
    )

SECTION = "## Test suite"
REPO = Path(__file__).resolve().parent.parent
BASELINE = "bc92713"  # main before the lock, the tiers and the parallel run
BASELINE_LABEL = "baseline (before the lock, the tiers and the parallel run)"
LINT = [
    ["ruff", "check", "controlplane", "tests", "bench"],
    ["ruff", "format", "--check", "controlplane", "tests", "bench"],
    ["mypy", "controlplane"],
    ["lint-imports"],
]


@dataclass
class Phase:
    name: str
    seconds: float
    summary: str


def uv() -> str:
    """The uv that ``make setup`` installed (its version pinned in scripts/uv-requirements.txt)."""
    text = (REPO / "scripts" / "uv-requirements.txt").read_text()
    match = re.search(r"^uv==(\S+)", text, flags=re.MULTILINE)
    assert match is not None
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = cache / "controlplane-tools" / f"uv-{match.group(1)}" / "bin" / "uv"
    if not path.exists():
        raise SystemExit(f"{path} is missing: run `make setup` first")
    return str(path)


def environment(tree: Path) -> Path:
    """A virtualenv in ``tree`` with this repository's locked dev + local-cpu environment and
    ``tree``'s package installed editable."""
    venv = tree / ".venv"
    requirements = tree / "locked.txt"
    export = [uv(), "export", "--frozen", "--no-emit-project", "--no-hashes", "-q"]
    export += ["--extra", "dev", "--extra", "local-cpu", "-o", str(requirements)]
    subprocess.run(export, cwd=REPO, check=True)
    subprocess.run([uv(), "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    install = [uv(), "pip", "install", "-q", "--python", str(venv / "bin" / "python")]
    subprocess.run([*install, "-r", str(requirements)], check=True)
    subprocess.run([*install, "--no-deps", "-e", str(tree)], check=True)
    return venv / "bin"


def timed(name: str, commands: list[list[str]], cwd: Path, bin_dir: Path) -> Phase:
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    env.pop("VIRTUAL_ENV", None)
    start = time.perf_counter()
    last = ""
    for command in commands:
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        last = lines[-1] if lines else ""
        if done.returncode != 0:
            print(done.stdout[-3000:], done.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"{name}: {' '.join(command)} exited {done.returncode}")
    seconds = time.perf_counter() - start
    print(f"{name}: {seconds:.0f} s  ({last})", flush=True)
    return Phase(name, seconds, last)


def pytest_args(tree: Path, fast: bool = False) -> list[str]:
    """The pytest command ``tree``'s Makefile runs, read from it (serial where it names no -n)."""
    makefile = (tree / "Makefile").read_text()
    xdist = re.search(r"^XDIST := (.*)$", makefile, flags=re.MULTILINE)
    args = ["pytest", "-q", "-p", "no:cacheprovider", *(xdist.group(1).split() if xdist else [])]
    if fast:
        args += ["-m", "not binary and not slow and not e2e"]
    return args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--head", default="HEAD", help="the commit to compare (default HEAD)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="suite-bench-"))
    rev = ["git", "rev-parse", "--short", args.head]
    head_sha = subprocess.run(rev, cwd=REPO, check=True, capture_output=True, text=True).stdout
    head_sha = head_sha.strip()
    base, head = work / "baseline", work / "head"
    try:
        for tree, ref in ((base, args.baseline), (head, args.head)):
            add = ["git", "worktree", "add", "-q", "--detach", str(tree), ref]
            subprocess.run(add, cwd=REPO, check=True)
        rows = []
        # the labels name no commit: the docs say what a tree is, not which hash it had
        base_label = BASELINE_LABEL if args.baseline == BASELINE else f"baseline {args.baseline}"
        for label, tree in ((base_label, base), ("head", head)):
            bin_dir = environment(tree)
            lint = timed(
                f"{label}: lint", [[str(bin_dir / c[0]), *c[1:]] for c in LINT], tree, bin_dir
            )
            tests = timed(f"{label}: pytest", [pytest_args(tree)], tree, bin_dir)
            rows.append((label, lint, tests))
        fast = timed(
            f"head {head_sha}: test-fast",
            [pytest_args(head, fast=True)],
            head,
            head / ".venv" / "bin",
        )
    finally:
        for tree in (base, head):
            remove = ["git", "worktree", "remove", "--force", str(tree)]
            subprocess.run(remove, cwd=REPO, check=False)
        shutil.rmtree(work, ignore_errors=True)
    table = [
        "| tree | lint s | pytest s | make test s | pytest's last line |",
        "|---|---:|---:|---:|---|",
    ]
    for label, lint, tests in rows:
        total = lint.seconds + tests.seconds
        cells = [
            label,
            f"{lint.seconds:.0f}",
            f"{tests.seconds:.0f}",
            f"{total:.0f}",
            tests.summary,
        ]
        table.append("| " + " | ".join(cells) + " |")
    table.append(f"| head, `make test-fast` | | {fast.seconds:.0f} | | {fast.summary} |")
    baseline_flag = "" if args.baseline == BASELINE else f" --baseline {args.baseline}"
    body = "\n".join(
        [
            f"`python bench/test_suite.py{baseline_flag}` on {today()}: "
            f"{machine_summary(('pytest', 'pytest-xdist'))}.",
            "",
            "Both trees in one run, each in its own worktree and virtualenv installed from the "
            "head's `uv.lock`, cold mypy cache. Each runs pytest as its Makefile says: the "
            "baseline serially, the head on every core (`-n auto --dist loadgroup`, a module's "
            "slow tests on one worker). Setup (`make setup`) is not included.",
            "",
            *table,
        ]
    )
    if not args.no_write:
        replace_section(BENCHMARKS_MD, SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
