"""The dashboard page: a section per commodity with its charts, panels without rows say so in
words, everything users typed is escaped, and nothing is fetched from anywhere."""

from __future__ import annotations

import re
from datetime import datetime

from runstream.dashboard import render
from runstream.dashboard.panels import PER_COMMODITY, Commodity, Dashboard

WEEK = datetime(2025, 1, 6)


def _commodity(name: str, mae: float) -> Commodity:
    c = Commodity(name)
    c.panels["leaderboard"] = [
        {"commodity": name, "model_name": model, "model_type": kind, "runs": 4,
         "best_mae_14day": mae * share * 0.9, "avg_mae_14day": mae * share,
         "avg_directional_accuracy": 0.6, "share_beats_baseline": 0.5, "total_hours": 1.0,
         "total_cost_usd": 2.0, "last_run": WEEK, "in_production": False}
        for model, kind, share in (("xgb_<b>lags</b>", "XGBoost", 0.8), ("naive", "Naive", 1.0))
    ]  # fmt: skip
    c.panels["mae_per_week"] = [
        {"commodity": name, "model_name": model, "model_type": kind, "week": WEEK, "runs": 2,
         "avg_mae_14day": mae * share}
        for model, kind, share in (("xgb_<b>lags</b>", "XGBoost", 0.8), ("naive", "Naive", 1.0))
    ]  # fmt: skip
    c.panels["runs_per_week"] = [{"commodity": name, "week": WEEK, "runs": 8}]
    c.panels["by_type"] = [
        {"commodity": name, "model_type": "XGBoost", "total_experiments": 4, "unique_models": 1,
         "avg_mae": mae, "best_mae": mae, "total_hours": 1.0, "total_cost_usd": 2.0}
    ]  # fmt: skip
    c.panels["prune"] = [
        {"commodity": name, "model_name": "<script>alert(1)</script>", "num_runs": 3,
         "avg_mae": mae, "avg_time": 10.0, "last_run": WEEK}
    ]  # fmt: skip
    return c


def _data(**changes: object) -> Dashboard:
    data = Dashboard(
        summary={"runs": 16, "models": 2, "commodities": 2, "compute_hours": 1.5,
                 "cost_usd": 0.0, "beat_baseline": 4},
        commodities=[_commodity("Coffee", 9.0), _commodity("Sugar", 0.8)],
        rejects=[], model_types=["Naive", "XGBoost"],
    )  # fmt: skip
    for key, value in changes.items():
        setattr(data, key, value)
    return data


def test_each_commodity_gets_its_own_section_and_charts() -> None:
    page = render(_data(), "delta.`/lake/model_runs`")
    assert page.count('<section id="coffee">') == 1 and page.count('<section id="sugar">') == 1
    charts = re.findall(r'data-chart="([a-z-]+)"', page)
    assert charts == ["leaderboard", "mae-over-time", "runs-per-week", "accuracy-vs-mae",
                      "compute-and-cost"] * 2  # fmt: skip
    assert "<b>16</b>runs" in page
    assert "dashed black: the naive baseline" in page


def test_text_users_typed_is_escaped_in_tables_and_charts() -> None:
    page = render(_data(), "t")
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>lags</b>" not in page and "xgb_&lt;b&gt;lags&lt;/b&gt;" in page


def test_empty_panels_say_so_instead_of_drawing_blank_charts() -> None:
    empty = Commodity("Coffee")
    assert set(empty.panels) == set(PER_COMMODITY)
    page = render(_data(commodities=[empty]), "t")
    assert "data-chart=" not in page
    assert "No runs yet." in page and "No run is promoted to production." in page
    assert "No record quarantined" in page


def test_the_page_loads_nothing_from_elsewhere() -> None:
    reject = {"rejected_date": WEEK.date(), "kafka_topic": "live",
              "reason": "Avro body does not decode", "records": 2}  # fmt: skip
    page = render(_data(rejects=[reject]), "t")
    assert 'data-chart="quarantine"' in page and "Quarantine: 2 records" in page
    assert "<script" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert not re.search(r"url\(|@import", page)
