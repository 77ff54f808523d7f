"""The dashboard as one self-contained HTML page: inline SVG charts, tables, no script.

One section per commodity (charts and averages never mix price scales), then the quarantine.
A panel with no rows says so in words instead of drawing an empty chart. Everything users
typed (model names, notes, reasons) is escaped: by Vega inside the charts, here in tables.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from runstream.dashboard import charts
from runstream.dashboard.panels import Commodity, Dashboard, Rows

PRUNE_RULE = (
    "Models with 3 or more runs whose <code>beats_baseline</code> is FALSE, that is runs not "
    "statistically better than the naive forecast (the seed's pruning query). Runs whose "
    "<code>beats_baseline</code> is unknown (null) are not counted."
)

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1120px;padding:0 1em;
color:#222}h1{margin-bottom:0}h2{margin-top:2em;border-bottom:2px solid #3b7dd8}
.sub{color:#666;margin-top:.2em}.cards{display:flex;gap:1em;flex-wrap:wrap}
.card{border:1px solid #ddd;border-radius:6px;padding:.6em 1em}.card b{display:block;
font-size:1.6em}.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));
gap:1.5em 2em}figure{margin:0}svg{max-width:100%;height:auto}
table{border-collapse:collapse;width:100%;margin-bottom:1em}td,th{border-bottom:1px solid
#eee;padding:.3em .5em;text-align:left}th{background:#f6f6f6}td.n{text-align:right;
font-variant-numeric:tabular-nums}.empty,.rule{color:#666}nav a{margin-right:1em}
"""


def _cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value).lower()
    if isinstance(value, float):
        return f"{value:,.4f}".rstrip("0").rstrip(".")
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return html.escape(str(value))


def _table(title: str, rows: Rows, columns: Sequence[str], empty: str, note: str = "") -> str:
    head = f"<h3>{html.escape(title)}</h3>" + (f"<p class=rule>{note}</p>" if note else "")
    if not rows:
        return f"{head}<p class=empty>{html.escape(empty)}</p>"
    header = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class=n>{_cell(row.get(c))}</td>"
            if isinstance(row.get(c), (int, float)) and not isinstance(row.get(c), bool)
            else f"<td>{_cell(row.get(c))}</td>"
            for c in columns
        )
        + "</tr>"
        for row in rows
    )
    return f"{head}<table><tr>{header}</tr>{body}</table>"


def _figure(name: str, rows: Rows, draw: Callable[[], charts.Spec], empty: str) -> str:
    """A chart of ``rows``, or ``empty`` in words when there are none (no blank charts)."""
    if not rows:
        return f"<figure><p class=empty>{html.escape(empty)}</p></figure>"
    return f'<figure class=chart data-chart="{name}">{charts.to_svg(draw())}</figure>'


def _commodity(c: Commodity, types: list[str]) -> str:
    p = c.panels
    figures = [
        _figure("leaderboard", p["leaderboard"],
                lambda: charts.leaderboard(p["leaderboard"], types), "No runs yet."),
        _figure("mae-over-time", p["mae_per_week"],
                lambda: charts.mae_over_time(p["mae_per_week"], p["leaderboard"]),
                "No run has a 14-day MAE yet."),
        _figure("runs-per-week", p["runs_per_week"],
                lambda: charts.runs_per_week(p["runs_per_week"]), "No runs yet."),
        _figure("accuracy-vs-mae", p["leaderboard"],
                lambda: charts.accuracy_against_mae(p["leaderboard"], types), "No runs yet."),
        _figure("compute-and-cost", p["by_type"],
                lambda: charts.compute_and_cost(p["by_type"], types), "No runs yet."),
    ]  # fmt: skip
    anchor = html.escape(c.name.lower(), quote=True)
    return "".join([
        f'<section id="{anchor}"><h2>{html.escape(c.name)}</h2>',
        f"<div class=grid>{''.join(figures)}</div>",
        _table("Best runs: top 5 by 14-day MAE among runs beating naive", p["best"],
               ("model_name", "model_version", "mae_14day", "directional_accuracy",
                "execution_time_seconds", "run_timestamp"),
               "No run beats the naive baseline yet."),
        _table("Pruning candidates", p["prune"],
               ("model_name", "num_runs", "avg_mae", "avg_time", "last_run"),
               "Nothing to prune.", PRUNE_RULE),
        _table("In production, and since when", p["production"],
               ("model_name", "model_version", "model_type", "mae_14day",
                "directional_accuracy", "in_production_since", "experiment_id"),
               "No run is promoted to production."),
        "</section>",
    ])  # fmt: skip


def _quarantine(rejects: Rows) -> str:
    total = sum(int(r["records"]) for r in rejects)
    figure = _figure("quarantine", rejects, lambda: charts.rejects_per_day(rejects), "")
    return "".join([
        f"<section id=quarantine><h2>Quarantine: {total:,} records</h2>",
        figure if rejects else "",
        _table("Records rejected per day and reason", rejects,
               ("rejected_date", "kafka_topic", "reason", "records"),
               "No record quarantined: every record decoded and validated."),
        "</section>",
    ])  # fmt: skip


def render(data: Dashboard, table_name: str, as_of: int | None = None) -> str:
    """The page for ``data`` (read from ``table_name``, at version ``as_of`` if pinned)."""
    s = data.summary
    cards = "".join(
        f"<div class=card><b>{_cell(s[key])}</b>{label}</div>"
        for key, label in (("runs", "runs"), ("models", "models"),
                           ("commodities", "commodities"), ("beat_baseline", "beat naive"),
                           ("compute_hours", "compute hours"), ("cost_usd", "cost, USD"))
    )  # fmt: skip
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    version = "" if as_of is None else f" &middot; as of version {as_of}"
    nav = "".join(
        f'<a href="#{html.escape(c.name.lower(), quote=True)}">{html.escape(c.name)}</a>'
        for c in data.commodities
    )
    sections = "".join(_commodity(c, data.model_types) for c in data.commodities)
    return "".join([
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        '<meta name=viewport content="width=device-width,initial-scale=1">',
        "<title>runstream: model runs</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Model runs</h1>",
        f"<p class=sub>{html.escape(table_name)}{version} &middot; generated {made}</p>",
        f"<div class=cards>{cards}</div>",
        f"<nav>{nav}<a href=#quarantine>Quarantine</a></nav>",
        sections or "<p class=empty>No runs yet.</p>",
        _quarantine(data.rejects),
        "</body></html>",
    ])  # fmt: skip
