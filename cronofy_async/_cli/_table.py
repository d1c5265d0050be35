"""Plain text tables for the command line: columns padded to their widest cell."""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO

__all__ = ["write_table"]


def write_table(out: IO[str], header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Write `header` and `rows` as aligned columns (the last one unpadded)."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        out.write("  ".join([*cells, row[-1]]).rstrip() + "\n")
