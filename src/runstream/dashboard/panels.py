"""What the dashboard shows, read from the views of ``schemas/views.sql`` on either engine.

Each panel is one view read with an order (views carry none), so the page restates no logic:
the same views back Databricks SQL dashboards. The panels are then split by commodity: Coffee
and Sugar trade on price scales ten times apart, so no chart or average mixes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runstream.engines import Engine

Rows = list[dict[str, Any]]

# Panel -> the SQL that reads it (``model_runs`` and the views are named as the engines expect).
QUERIES = {
    "summary": "SELECT * FROM model_runs_summary",
    "leaderboard": "SELECT * FROM model_leaderboard ORDER BY commodity, avg_mae_14day, model_name",
    "best": "SELECT * FROM best_models ORDER BY commodity, mae_14day",
    "mae_per_week": "SELECT * FROM mae_per_week ORDER BY commodity, model_name, week",
    "runs_per_week": "SELECT * FROM runs_per_week ORDER BY commodity, week",
    "by_type": "SELECT * FROM experiment_history ORDER BY commodity, total_hours DESC, model_type",
    "prune": "SELECT * FROM pruning_candidates ORDER BY commodity, num_runs DESC, model_name",
    "production": "SELECT * FROM production_since ORDER BY commodity, in_production_since",
    "rejects": "SELECT * FROM rejects_per_day ORDER BY rejected_date, reason, kafka_topic",
}
# The panels drawn once per commodity; the rest (summary, rejects) cover the whole table.
PER_COMMODITY = ("leaderboard", "best", "mae_per_week", "runs_per_week", "by_type", "prune",
                 "production")  # fmt: skip


@dataclass
class Commodity:
    """One commodity's panels, each a list of rows in the order of ``QUERIES``."""

    name: str
    panels: dict[str, Rows] = field(default_factory=lambda: {p: [] for p in PER_COMMODITY})


@dataclass
class Dashboard:
    """Everything the page shows: totals, one ``Commodity`` each, quarantine counts."""

    summary: dict[str, Any]
    commodities: list[Commodity]
    rejects: Rows
    model_types: list[str]  # every model type, so a type keeps its colour in every chart


def collect(engine: Engine) -> Dashboard:
    """Read every panel from its view and split the per-commodity ones by commodity."""
    read = {panel: engine.sql(sql) for panel, sql in QUERIES.items()}
    found: dict[str, Commodity] = {}
    for panel in PER_COMMODITY:
        for row in read[panel]:
            name = row["commodity"]
            found.setdefault(name, Commodity(name)).panels[panel].append(row)
    types = sorted({row["model_type"] for row in read["leaderboard"]})
    return Dashboard(read["summary"][0], [found[n] for n in sorted(found)], read["rejects"], types)
