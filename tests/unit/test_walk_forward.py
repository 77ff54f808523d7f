"""The walk-forward example without a broker: its registry, its windows, its data, and the runs
it spools (an emitter that never sends), including a fit that fails and is skipped."""

from __future__ import annotations

import inspect
import itertools
from collections import Counter
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from runstream.demo import example_missing
from runstream.devtools.testkit import spooled_events
from runstream.examples import models, prices, walk_forward
from runstream.producer.emitter import Emitter


def test_the_registry_has_25_variants_in_the_seeds_shape() -> None:
    assert len(models.REGISTRY) == 25
    families = Counter(entry["type"] for entry in models.REGISTRY.values())
    assert families == {
        "Naive": 1, "RandomWalk": 1, "SeasonalNaive": 1, "MovingAverage": 2, "ARIMA": 4,
        "SARIMAX": 4, "ETS": 4, "Theta": 1, "GradientBoosting": 5, "Ridge": 2,
    }  # fmt: skip
    for name, entry in models.REGISTRY.items():
        assert set(entry) == {"type", "function", "params", "experiment_tags"}, name
        assert set(entry["experiment_tags"]) == {"feature_set", "complexity",
                                                 "production_candidate"}  # fmt: skip
        accepted = inspect.signature(entry["function"]).parameters
        assert set(entry["params"]) <= set(accepted), name
    assert models.REGISTRY[models.BASELINE]["type"] == "Naive"


def test_windows_walk_back_from_the_end_without_overlapping() -> None:
    windows = walk_forward.walk(2000, 3, lookback=750, step=14, horizon=14)
    assert [(w.number, w.of) for w in windows] == [(1, 3), (2, 3), (3, 3)]
    assert windows[-1].end + 14 == 2000  # the newest forecast ends on the last price
    assert [b.end - a.end for a, b in itertools.pairwise(windows)] == [14, 14]
    assert all(w.end - w.start == 750 for w in windows)
    with pytest.raises(ValueError, match="at most 89 windows"):
        walk_forward.walk(2000, 90, lookback=750, step=14, horizon=14)
    with pytest.raises(ValueError, match="at least 1"):
        walk_forward.walk(2000, 0)


def test_the_series_say_what_they_are() -> None:
    wti, coffee = prices.load("WTI"), prices.load("Coffee")
    assert not wti.synthetic and "DCOILWTICO" in wti.data_version
    assert wti.dates[0] == np.datetime64("1986-01-02") and len(wti) == 8321
    assert np.isfinite(wti.values).all() and (wti.values > 0).all()
    assert coffee.synthetic and coffee.data_version.startswith("synthetic-coffee")
    assert "SYNTHETIC" in coffee.description
    assert (coffee.dates == wti.dates).all()
    assert prices.load("Coffee").values is coffee.values  # loaded once per process
    with pytest.raises(ValueError, match="no price series"):
        prices.load("Sugar")


def test_feature_config_follows_the_params() -> None:
    config = {n: models.feature_config(e["params"]) for n, e in models.REGISTRY.items()}
    assert config["naive_last_value"] == {
        "price_history": True, "lagged_returns": False, "weekday": False,
        "weekly_seasonality": False,
    }  # fmt: skip
    assert config["hgb_lags10_weekday"]["lagged_returns"]
    assert config["hgb_lags10_weekday"]["weekday"]
    assert config["sarimax_111_weekday"]["weekday"]
    assert config["sarimax_111_s5"]["weekly_seasonality"]
    assert config["seasonal_naive_5d"]["weekly_seasonality"]


def test_every_model_forecasts_one_window_in_process() -> None:
    series = prices.load("WTI")
    (window,) = walk_forward.walk(len(series), 1)
    for name in models.REGISTRY:
        fitted = models.fit_forecast(name, "WTI", window.start, window.end, 14)
        assert fitted.error is None, (name, fitted.error)
        assert fitted.forecast is not None and len(fitted.forecast) == 14
        assert all(0 < v < 1000 for v in fitted.forecast), name
    naive = models.fit_forecast("naive_last_value", "WTI", window.start, window.end, 14)
    assert naive.forecast == (series.values[window.end - 1],) * 14


def test_a_failing_fit_is_returned_not_raised() -> None:
    # 21 prices give 20 returns: no training row for 20 lags
    fitted = models.fit_forecast("hgb_lags20", "WTI", 100, 121, 14)
    assert fitted.forecast is None and fitted.error and "ValueError" in fitted.error


def test_runs_are_spooled_with_the_seeds_columns_and_a_failure_is_skipped(
    tmp_path: Path,
) -> None:
    emitter = Emitter(spool_dir=tmp_path / "spool", send=False,
                      commodities=walk_forward.allow_commodities(prices.COMMODITIES))  # fmt: skip
    summary = walk_forward.run(
        windows=2, model_names=["naive_last_value", "arima_111", "hgb_lags20"], workers=1,
        lookback=21, emitter=emitter, run_by="tests", progress=False,
    )  # fmt: skip
    assert summary.planned == 12
    assert summary.emitted == 8  # hgb_lags20 cannot fit 21 prices, in each window
    assert len(summary.failed) == 4 and all("hgb_lags20" in f for f in summary.failed)
    assert any("4 fits failed" in line for line in summary.lines())
    runs = [e["run"] for e in spooled_events(emitter.spool)]
    assert sorted(e["experiment_id"] for e in spooled_events(emitter.spool)) == sorted(
        summary.experiment_ids
    )
    assert Counter((r["commodity"], r["model_name"]) for r in runs) == {
        (c, m): 2 for c in ("WTI", "Coffee") for m in ("naive_last_value", "arima_111")
    }
    for run in runs:
        assert run["forecast_horizon_days"] == 14
        assert run["run_by"] == "tests"
        assert run["mae_14day"] > 0 and 0 <= run["directional_accuracy"] <= 1
        assert run["training_start_date"] < run["training_end_date"] < date(2019, 1, 4)
        assert "2 worker" not in run["hardware_config"] and "1 worker" in run["hardware_config"]
        assert run["execution_time_seconds"] >= 0 and run["cost_estimate_usd"] is not None
        assert ("SYNTHETIC" in run["notes"]) == (run["commodity"] == "Coffee")
        if run["model_name"] == "naive_last_value":
            assert run["beats_baseline"] is False and run["dm_pvalue"] == 1.0
        else:
            assert run["hyperparameters"] == {"order": "(1, 1, 1)"}
        if walk_forward.tags_column():
            assert run["tags"]["complexity"] in ("low", "medium")


def test_the_demo_knows_whether_the_example_can_run(monkeypatch: pytest.MonkeyPatch) -> None:
    assert example_missing() is None  # the dev extra installs the examples extra
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name: None if name == "statsmodels" else real(name))  # fmt: skip
    assert example_missing() == "statsmodels"
