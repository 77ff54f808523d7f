"""The dashboard's charts: Vega-Lite specs, rendered to SVG by ``vl-convert``.

Vega-Lite is declarative: each chart below is data plus a description of its marks, axes and
scales, and ``vl-convert`` (the ``dashboard`` extra) runs Vega itself, bundled, to turn it into
static SVG. The page then needs no script, no browser-side library and no network, and opens
from disk or from a ticket attachment the same way.

Times go to Vega as epoch milliseconds on UTC scales (the table's times are UTC), so a chart
does not shift with the time zone of the machine that draws it. Every chart gets a fixed
colour per model type (``types``), so XGBoost has one colour on the whole page.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone
from typing import Any

from runstream.errors import SetupError

Spec = dict[str, Any]
Rows = list[dict[str, Any]]

WIDTH, HEIGHT = 440, 220
SHOWN_MODELS = 8  # lines and labels beyond this many models are unreadable
_UTC = {"type": "utc"}
_WEEK = timedelta(days=7)
_CONFIG = {
    "font": "DejaVu Sans, Verdana, sans-serif",
    "view": {"stroke": None},
    "axis": {"labelColor": "#444", "titleColor": "#444", "gridColor": "#eee"},
    "legend": {"labelLimit": 180},
}


def _epoch_ms(value: Any) -> Any:
    """A table time as Vega's temporal value (naive times are UTC); other values as they are."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return round(aware.timestamp() * 1000)
    if isinstance(value, date):
        return _epoch_ms(datetime(value.year, value.month, value.day))
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _values(rows: Rows, **extra: Any) -> list[dict[str, Any]]:
    return [{**{k: _epoch_ms(v) for k, v in row.items()}, **extra} for row in rows]


def _chart(title: str, subtitle: str | None = None, **spec: Any) -> Spec:
    heading: dict[str, Any] = {"text": title, "anchor": "start", "fontSize": 13}
    if subtitle:
        heading["subtitle"] = subtitle
        heading["subtitleColor"] = "#666"
    return {"title": heading, "config": _CONFIG, "width": WIDTH, "height": HEIGHT, **spec}


def _type_colour(types: list[str]) -> dict[str, Any]:
    return {"field": "model_type", "type": "nominal", "title": "model type",
            "scale": {"domain": types, "scheme": "tableau10"}}  # fmt: skip


def is_baseline(model_type: str | None) -> bool:
    """The naive baseline's runs: those whose model type is Naive (any case)."""
    return (model_type or "").strip().lower() == "naive"


def leaderboard(rows: Rows, types: list[str]) -> Spec:
    """Each model's average 14-day MAE (bar) and best run (tick), best first."""
    shown = rows[: 2 * SHOWN_MODELS]
    # minExtent: room for labels in a browser font wider than the one vl-convert measured
    y = {"field": "model_name", "type": "nominal", "title": None, "sort": None,
         "axis": {"labelLimit": 200, "minExtent": 130}}  # fmt: skip
    return _chart(
        "Leaderboard: 14-day MAE per model",
        f"bar: average over its runs, tick: its best run; lower is better"
        f"{'' if len(rows) <= len(shown) else f' ({len(shown)} best of {len(rows)} models)'}",
        data={"values": _values(shown)},
        height=max(60, 18 * len(shown)),
        layer=[
            {"mark": {"type": "bar"},
             "encoding": {"y": y, "color": _type_colour(types),
                          "x": {"field": "avg_mae_14day", "type": "quantitative",
                                "title": "14-day MAE"}}},
            {"mark": {"type": "tick", "color": "black", "thickness": 2},
             "encoding": {"y": y, "x": {"field": "best_mae_14day", "type": "quantitative"}}},
        ],
    )  # fmt: skip


def mae_over_time(rows: Rows, leaders: Rows) -> Spec:
    """The best models' weekly average 14-day MAE, with the naive baseline dashed."""
    best = [r["model_name"] for r in leaders if not is_baseline(r["model_type"])][:SHOWN_MODELS]
    values = [
        {**v, "baseline": is_baseline(v["model_type"])}
        for v in _values(rows)
        if v["model_name"] in best or is_baseline(v["model_type"])
    ]
    has_baseline = any(v["baseline"] for v in values)
    x = {"field": "week", "type": "temporal", "scale": _UTC, "title": "week"}
    y = {"field": "avg_mae_14day", "type": "quantitative", "title": "14-day MAE (weekly mean)",
         "scale": {"zero": False}}  # fmt: skip
    layers: list[Spec] = [
        {"transform": [{"filter": "!datum.baseline"}],
         "mark": {"type": "line", "point": True, "strokeWidth": 1.5},
         "encoding": {"x": x, "y": y,
                      "color": {"field": "model_name", "type": "nominal", "title": "model",
                                "sort": best}}},
    ]  # fmt: skip
    if has_baseline:
        layers.append(
            {"transform": [{"filter": "datum.baseline"}],
             "mark": {"type": "line", "color": "black", "strokeDash": [6, 4],
                      "point": {"color": "black"}},
             "encoding": {"x": x, "y": {**y, "aggregate": "mean"}}},
        )  # fmt: skip
    return _chart(
        "Tracking improvements: 14-day MAE over time",
        f"the {len(best)} best models by average MAE; "
        + ("dashed black: the naive baseline (runs of model type Naive)" if has_baseline
           else "no run of model type Naive, so no baseline line"),
        data={"values": values},
        layer=layers,
    )  # fmt: skip


def runs_per_week(rows: Rows) -> Spec:
    """Runs per week as bars a week wide on a true time axis: idle weeks show as gaps."""
    values = [{**v, "week_end": v["week"] + _WEEK / timedelta(milliseconds=1)}
              for v in _values(rows)]  # fmt: skip
    return _chart(
        "Experimentation over time: runs per week",
        "weeks start on Monday (UTC); gaps are weeks without runs",
        data={"values": values},
        mark={"type": "bar", "color": "#3b7dd8", "stroke": "white", "strokeWidth": 0.5},
        encoding={
            "x": {"field": "week", "type": "temporal", "scale": _UTC, "title": None},
            "x2": {"field": "week_end"},
            "y": {"field": "runs", "type": "quantitative", "title": "runs"},
            "y2": {"datum": 0},
        },
    )


def accuracy_against_mae(leaders: Rows, types: list[str]) -> Spec:
    """Each model's average directional accuracy against its average 14-day MAE."""
    labelled = {r["model_name"] for r in leaders[:SHOWN_MODELS]}
    values = [{**v, "label": v["model_name"] if v["model_name"] in labelled else ""}
              for v in _values(leaders)]  # fmt: skip
    x = {"field": "avg_mae_14day", "type": "quantitative", "title": "14-day MAE (average)",
         "scale": {"zero": False, "padding": 24}}  # fmt: skip
    y = {"field": "avg_directional_accuracy", "type": "quantitative",
         "title": "directional accuracy (average)", "axis": {"format": ".0%"},
         "scale": {"zero": False, "padding": 12}}  # fmt: skip
    return _chart(
        "Directional accuracy against MAE",
        "one point per model, sized by its runs; better is up and to the left",
        data={"values": values},
        layer=[
            {"mark": {"type": "circle", "opacity": 0.85},
             "encoding": {"x": x, "y": y, "color": _type_colour(types),
                          "size": {"field": "runs", "type": "quantitative", "title": "runs"}}},
            {"mark": {"type": "text", "align": "left", "dx": 7, "fontSize": 10,
                      "color": "#333"},
             "encoding": {"x": x, "y": y, "text": {"field": "label"}}},
        ],
    )  # fmt: skip


def compute_and_cost(by_type: Rows, types: list[str]) -> Spec:
    """Compute hours and cost per model type, side by side."""
    y = {"field": "model_type", "type": "nominal", "title": None, "sort": "-x"}

    def bars(measure: str, title: str) -> Spec:
        return {
            "width": WIDTH // 2 - 60,
            "height": max(60, 20 * len(by_type)),
            "mark": {"type": "bar"},
            "encoding": {"y": y, "color": {**_type_colour(types), "legend": None},
                         "x": {"field": measure, "type": "quantitative", "title": title}},
        }  # fmt: skip

    return _chart(
        "Cost optimization: compute per model type",
        "sum over all runs of each type",
        data={"values": _values(by_type)},
        hconcat=[bars("total_hours", "compute hours"), bars("total_cost_usd", "cost, USD")],
    ) | {"width": None, "height": None}


def rejects_per_day(rows: Rows) -> Spec:
    """Quarantined records per day, stacked by reason."""
    return _chart(
        "Quarantine: records rejected per day",
        "records the job could not decode or validate, kept in model_run_rejects",
        data={"values": _values(rows)},
        mark={"type": "bar"},
        encoding={
            "x": {"field": "rejected_date", "type": "ordinal", "timeUnit": "utcyearmonthdate",
                  "title": None},
            "y": {"field": "records", "type": "quantitative", "title": "records",
                  "aggregate": "sum"},
            "color": {"field": "reason", "type": "nominal", "title": "reason",
                      "legend": {"orient": "bottom", "direction": "vertical",
                                 "labelLimit": 420}},
        },
    )  # fmt: skip


def to_svg(spec: Spec) -> str:
    """The chart as one inline ``<svg>`` element (Vega run by vl-convert, in this process)."""
    try:
        import vl_convert
    except ImportError:
        raise SetupError(
            "the dashboard draws its charts with vl-convert: pip install 'runstream[dashboard]'"
        ) from None
    spec = {k: v for k, v in spec.items() if v is not None}
    return str(vl_convert.vegalite_to_svg(spec))
