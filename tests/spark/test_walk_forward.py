"""The walk-forward example, reduced to 2 windows, through a real broker and the real streaming
job: 2 windows x 25 models x 2 commodities land as exactly 100 rows of ``model_runs``, one per
run ``emit_runs`` recorded, each with plausible metrics and the seed's columns filled."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from runstream.engines import LightEngine, named_query
from runstream.examples import models, prices, walk_forward
from runstream.producer.emitter import Emitter
from tests.spark.support import job_config, rows_by_id, run_once

WINDOWS = 2
EXPECTED = WINDOWS * len(models.REGISTRY) * len(prices.COMMODITIES)


def test_the_reduced_walk_forward_lands_exactly_its_runs(
    spark: Any, kafka_bootstrap: str, new_topic: Any, tmp_path: Path
) -> None:
    live, replay = new_topic("wf-live"), new_topic("wf-replay")
    emitter = Emitter(bootstrap_servers=kafka_bootstrap, topic=live, spool_dir=tmp_path / "spool",
                      commodities=walk_forward.allow_commodities(prices.COMMODITIES))  # fmt: skip
    summary = walk_forward.run(windows=WINDOWS, emitter=emitter, progress=False)
    assert (summary.planned, summary.emitted, summary.failed) == (EXPECTED, EXPECTED, [])
    assert emitter.close(timeout_s=120) == 0, "runs left unacknowledged in the spool"

    config = job_config(kafka_bootstrap, live, replay, tmp_path)
    run_once(spark, config)
    rows = rows_by_id(spark, config.tables.runs)
    assert len(rows) == EXPECTED == 100
    assert set(rows) == set(summary.experiment_ids)

    runs = list(rows.values())
    # one run per model, window (its training end) and commodity
    assert len({(r["commodity"], r["model_name"], r["training_end_date"]) for r in runs}) == 100
    assert Counter(r["commodity"] for r in runs) == {"WTI": 50, "Coffee": 50}
    for run in runs:
        name = run["model_name"]
        assert run["model_type"] == models.REGISTRY[name]["type"]
        assert run["forecast_horizon_days"] == 14 and run["model_version"] == "v1"
        assert run["mae_14day"] > 0 and run["mae_1day"] >= 0 and run["mae_7day"] > 0
        assert run["rmse_14day"] >= run["mae_14day"]
        assert 0 <= run["directional_accuracy"] <= 1 and 0 <= run["dm_pvalue"] <= 1
        assert run["beats_baseline"] is not None
        assert run["training_start_date"] < run["training_end_date"]
        assert run["execution_time_seconds"] >= 0 and run["cost_estimate_usd"] is not None
        assert set(run["feature_config"]) == {"price_history", "lagged_returns", "weekday",
                                              "weekly_seasonality"}  # fmt: skip
        assert all(isinstance(v, str) for v in run["hyperparameters"].values())
        assert "worker processes" in run["hardware_config"] and run["run_by"]
        synthetic = run["commodity"] == "Coffee"
        assert run["data_version"] == prices.load(run["commodity"]).data_version
        assert ("SYNTHETIC" in run["notes"]) == synthetic
        assert run["is_production"] is False
        if name == models.BASELINE:  # naive against itself: no difference to test
            assert run["beats_baseline"] is False and run["dm_pvalue"] == 1.0
    assert rows_by_id(spark, config.tables.runs).keys() == rows.keys()
    assert {r["hyperparameters"]["order"] for r in runs if r["model_name"] == "arima_212"} == {
        "(2, 1, 2)"
    }

    # the seed's queries read them: history counts every run of a commodity
    light = LightEngine(config.tables)
    for commodity in prices.COMMODITIES:
        history = named_query(light, "history", commodity=commodity)
        assert sum(row["total_experiments"] for row in history) == 50
        assert {row["model_type"] for row in history} == {
            e["type"] for e in models.REGISTRY.values()
        }
    pruned = {row["model_name"] for row in named_query(light, "prune")}
    assert models.BASELINE in pruned  # naive never beats itself: 4 runs, all FALSE
