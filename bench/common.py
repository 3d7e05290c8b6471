"""Helpers shared by the benchmark scripts in ``bench/``.

Owns what every benchmark needs: a one-line description of the machine and software a result
was measured on, the idempotent rewrite of *one* ``## Section`` of
``docs/benchmarks-derivation.md`` (each benchmark owns its section and leaves the others alone;
``docs/benchmarks.md`` quotes the headline rows), and the options of a benchmark that keeps its
figures and can render them again without running (:func:`add_record_args`, :func:`publish`).
Called by every benchmark script in ``bench/``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import re
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# the derivation page holds every script's section; docs/benchmarks.md quotes their headlines
BENCHMARKS_MD = REPO_ROOT / "docs" / "benchmarks-derivation.md"
_TITLE = (
    "# Benchmarks\n\nEach section is written by its script in `bench/`; re-run it to refresh.\n"
)


def machine_summary(packages: tuple[str, ...] = ("numpy", "scipy")) -> str:
    """``Linux x86_64, 2 CPUs, Python 3.11.9, numpy 2.1.0, scipy 1.14.1`` (no host names)."""
    versions = []
    for name in packages:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    cpu = platform.processor() or platform.machine()
    return ", ".join(
        [
            f"{platform.system()} {cpu}",
            f"{os.cpu_count()} CPUs",
            f"Python {platform.python_version()}",
            *versions,
        ]
    )


def today() -> str:
    """The UTC date, ISO format."""
    return _dt.datetime.now(_dt.UTC).date().isoformat()


def replace_section(path: Path, header: str, body: str) -> None:
    """Write ``header`` + ``body`` into the markdown file at ``path``, replacing only that section.

    A section runs from its ``## `` header line to the next ``## `` header (or the end). If the
    section is missing it is appended; if the file is missing it is created with a title.
    Running twice with the same body leaves the file unchanged.
    """
    if not header.startswith("## "):
        raise ValueError(f"a section header starts with '## ': {header!r}")
    section = f"{header}\n\n{body.strip()}\n"
    text = path.read_text(encoding="utf-8") if path.exists() else _TITLE
    pattern = re.compile(rf"^{re.escape(header)}[ \t]*\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        new = pattern.sub(lambda _m: section + "\n", text, count=1)
    else:
        new = text.rstrip("\n") + "\n\n" + section
    new = new.rstrip("\n") + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new, encoding="utf-8")


def add_record_args(parser: argparse.ArgumentParser) -> None:
    """``--json FILE`` (keep the figures), ``--report FILE`` (render kept figures, no run) and
    ``--no-write`` (print, do not edit the page)."""
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="keep the figures")
    parser.add_argument(
        "--report", type=Path, default=None, metavar="FILE", help="render FILE, no run"
    )
    parser.add_argument("--no-write", action="store_true", help="print, do not edit the docs")


def publish(args: argparse.Namespace, header: str, body: str) -> None:
    """Print ``body`` and, unless ``--no-write``, write it as the ``header`` section of the
    derivation page."""
    print(body)
    if not args.no_write:
        replace_section(BENCHMARKS_MD, header, body)
