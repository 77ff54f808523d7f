"""``runstream dashboard``: one self-contained HTML page answering the seed's questions.

Which models are best, how they improve against the naive baseline, how experimentation grew,
what it costs, which models to prune, what runs in production and since when, and what the
job quarantined, per commodity. Panels come from the views of ``schemas/views.sql``
(``panels``), charts are Vega-Lite rendered to inline SVG (``charts``), and the page
(``page``) has no script and no external asset, so it opens from disk, a bucket or a ticket.
It reads the table on either engine: the light one needs no JVM.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from runstream.dashboard.page import render
from runstream.dashboard.panels import collect

if TYPE_CHECKING:
    from runstream.engines import Engine

__all__ = ["collect", "render", "write_dashboard"]


def write_dashboard(engine: Engine, table_name: str, path: str | Path) -> Path:
    """Read every panel through ``engine`` and write the page to ``path``."""
    html = render(collect(engine), table_name, engine.as_of)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, "utf-8")
    return out
