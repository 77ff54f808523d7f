"""The dashboard page shows each panel's rows and escapes what users typed."""

from __future__ import annotations

from datetime import datetime

from runstream.consumer.dashboard import render


def _data() -> dict[str, object]:
    week = datetime(2025, 1, 6)
    return {
        "summary": {"runs": 7, "models": 3, "commodities": 2, "compute_hours": 1.5,
                    "cost_usd": 0.0, "beat_baseline": 4},
        "growth": [{"week": week, "runs": 3}, {"week": datetime(2025, 1, 13), "runs": 4}],
        "best": [{"commodity": "Coffee", "model_name": "sarimax_auto_weather_v1",
                  "model_version": "v1", "mae_14day": 3.1}],
        "by_type": [],
        "prune": [{"model_name": "<script>alert(1)</script>", "num_runs": 3}],
        "production": [],
    }  # fmt: skip


def test_panels_show_their_rows_and_escape_text() -> None:
    page = render(_data(), "delta.`/lake/model_runs`")
    assert "sarimax_auto_weather_v1" in page
    assert "<b>7</b>runs" in page
    assert page.count("<rect ") == 2
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "No run is promoted to production." in page
    assert "No runs yet." in page  # the empty by_type panel says so
