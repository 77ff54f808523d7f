"""Rows as the CLI and the demo print them: a text table that fits a terminal, JSON Lines or
CSV. JSON keeps the query's column names and order, one object per row, so programs can read
it; the table cuts long text, never numbers or times, so people can."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable
from datetime import datetime
from typing import Any

TABLE_WIDTH = 100
"""The text table fits a terminal this wide: the widest columns give way, cut with '…'."""


def print_rows(rows: Iterable[dict[str, Any]], fmt: str | bool) -> int:
    """Print ``rows`` as a text table (``table``, or False), JSON Lines (``json``, or True) or
    CSV; returns how many."""
    rows = list(rows)
    fmt = "json" if fmt is True else "table" if fmt is False else fmt
    if fmt == "json":
        for row in rows:
            print(json.dumps(row, default=str))
        return len(rows)
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        if rows:
            writer.writerow(list(rows[0]))
        writer.writerows([["" if v is None else v for v in row.values()] for row in rows])
        return len(rows)
    if not rows:
        print("(no rows)")
        return 0
    columns = list(rows[0])
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    if sum(widths) + 2 * (len(widths) - 1) > TABLE_WIDTH:  # first cut long headers
        data = [max((len(r[i]) for r in cells), default=0) for i in range(len(columns))]
        widths = [max(d, min(w, max(d, 10))) for d, w in zip(data, widths, strict=True)]
    # then the widest text column gives way (numbers and times stay whole while text can)
    text = [any(isinstance(row.get(c), str) for row in rows) for c in columns]
    while sum(widths) + 2 * (len(widths) - 1) > TABLE_WIDTH and max(widths) > 8:
        candidates = [w if t and w > 8 else 0 for w, t in zip(widths, text, strict=True)]
        pick = candidates if max(candidates) else widths
        widths[pick.index(max(pick))] -= 1
    for line in ([*columns], *cells):
        print("  ".join(_fit(v, w) for v, w in zip(line, widths, strict=True)).rstrip())
    return len(rows)


def _fit(text: str, width: int) -> str:
    return text.ljust(width) if len(text) <= width else text[: width - 1] + "…"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)
