"""``runstream dashboard``: one self-contained HTML page answering the seed's questions.

Which models are best, how experimentation grew, which models to prune, what runs in
production. The page has no scripts and no external assets, so it can be attached to a ticket,
served from a bucket or opened from disk. Each panel reads one view of ``schemas/views.sql``
(``PANELS``), the same views Databricks SQL dashboards use, so the page restates no SQL.
"""

from __future__ import annotations

import html
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runstream.consumer.queries import create_views, view_keys

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from runstream.consumer.tables import TableNames


# Panel -> the view in ``schemas/views.sql`` that answers it.
PANELS = {
    "summary": "model_runs_summary",
    "growth": "runs_per_week",
    "best": "best_models",
    "by_type": "experiment_history",
    "prune": "pruning_candidates",
    "production": "production_models",
}
# How each panel's rows are shown (views carry no order).
_ORDER = {
    "growth": "week",
    "best": "commodity, mae_14day",
    "by_type": "commodity, total_experiments DESC",
    "prune": "commodity, avg_mae DESC",
    "production": "commodity, run_timestamp DESC",
}


def collect(spark: SparkSession, tables: TableNames) -> dict[str, Any]:
    """Create the views and read each panel from its view."""
    names = dict(zip(view_keys(tables), create_views(spark, tables), strict=True))
    data: dict[str, Any] = {}
    for panel, view in PANELS.items():
        order = f" ORDER BY {_ORDER[panel]}" if panel in _ORDER else ""
        rows = [r.asDict() for r in spark.sql(f"SELECT * FROM {names[view]}{order}").collect()]
        data[panel] = rows[0] if panel == "summary" else rows
    return data


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return html.escape("" if value is None else str(value))


def _table(title: str, rows: list[dict[str, Any]], empty: str) -> str:
    if not rows:
        return f"<h2>{html.escape(title)}</h2><p class=empty>{html.escape(empty)}</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row.values()) + "</tr>" for row in rows
    )
    return f"<h2>{html.escape(title)}</h2><table><tr>{head}</tr>{body}</table>"


def _bars(rows: list[dict[str, Any]]) -> str:
    """An inline SVG bar chart of runs per week."""
    if not rows:
        return "<p class=empty>No runs yet.</p>"
    width, height, pad = 720, 180, 24
    top = max(r["runs"] for r in rows)
    step = (width - 2 * pad) / len(rows)
    bars = []
    for i, r in enumerate(rows):
        h = (height - 2 * pad) * r["runs"] / top
        x, y = pad + i * step, height - pad - h
        label = f"{_cell(r['week'])[:10]}: {r['runs']} runs"
        bar_width = min(max(step - 2, 1), 48)
        bars.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_width:.1f}" height="{h:.1f}">'
            f"<title>{label}</title></rect>"
        )
    first, last = _cell(rows[0]["week"])[:10], _cell(rows[-1]["week"])[:10]
    return (
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="runs per week">'
        f"{''.join(bars)}"
        f'<text x="{pad}" y="{height - 6}">{first}</text>'
        f'<text x="{width - pad}" y="{height - 6}" text-anchor="end">{last}</text>'
        f'<text x="{pad}" y="14">max {top} runs/week</text></svg>'
    )


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{margin-bottom:0}.sub{color:#666;margin-top:.2em}
.cards{display:flex;gap:1em;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:6px;
padding:.6em 1em}.card b{display:block;font-size:1.6em}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #eee;padding:.3em .5em;
text-align:left}th{background:#f6f6f6}rect{fill:#3b7dd8}text{font-size:11px;fill:#555}
.empty{color:#888}
"""


def render(data: dict[str, Any], table_name: str) -> str:
    s = data["summary"]
    cards = "".join(
        f"<div class=card><b>{_cell(s[key])}</b>{label}</div>"
        for key, label in (("runs", "runs"), ("models", "models"),
                           ("commodities", "commodities"), ("beat_baseline", "beat naive"),
                           ("compute_hours", "compute hours"), ("cost_usd", "cost, USD"))
    )  # fmt: skip
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "".join([
        "<!doctype html><html><head><meta charset=utf-8><title>runstream: model runs</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Model runs</h1>",
        f"<p class=sub>{html.escape(table_name)} &middot; generated {made}</p>",
        f"<div class=cards>{cards}</div>",
        "<h2>Experimentation over time (runs per week)</h2>", _bars(data["growth"]),
        _table("Best models (top 5 by 14-day MAE, beating naive)", data["best"],
               "No run beats the naive baseline yet."),
        _table("Experiment history by model type", data["by_type"], "No runs yet."),
        _table("Pruning candidates (3+ runs not beating naive)", data["prune"],
               "Nothing to prune."),
        _table("In production", data["production"], "No run is promoted to production."),
        "</body></html>",
    ])  # fmt: skip


def write_dashboard(spark: SparkSession, tables: TableNames, path: str | Path) -> Path:
    """Query the table and write the page to ``path``."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(collect(spark, tables), tables.runs), "utf-8")
    return out
