"""Plain, aligned text tables as ``kubectl get`` prints them (for ``list`` and ``history``).

Owns :func:`columns`: left-aligned columns separated by three spaces, no colour, one line per row,
so the output stays greppable and ``awk``-able.
"""

from __future__ import annotations

from collections.abc import Sequence


def columns(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """``header`` and ``rows`` as aligned text; the last column is never padded."""
    table = [list(header), *(list(r) for r in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = []
    for row in table:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + [row[-1]]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines) + "\n"
