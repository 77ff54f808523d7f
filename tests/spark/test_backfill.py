"""Backfill: historical runs through the replay topic, idempotent when run again: a second
run skips what was acknowledged, and runs sent twice anyway land once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runstream.backfill import backfill, backfill_file
from runstream.consumer.job import JobConfig, start


def _history(n_windows: int, models: list[str]) -> list[dict[str, Any]]:
    runs = []
    for window in range(n_windows):
        for model in models:
            runs.append({
                "model_name": model, "model_version": "v1", "model_type": "SARIMAX",
                "run_timestamp": f"2024-{1 + window:02d}-15T09:00:00+00:00",
                "training_start_date": "2022-01-01",
                "training_end_date": f"2024-{1 + window:02d}-14",
                "forecast_horizon_days": 14, "commodity": "Sugar",
                "mae_14day": 2.0 + window / 10, "beats_baseline": window % 2 == 0,
            })  # fmt: skip
    return runs


def test_backfill_lands_once_even_when_run_twice(
    spark: Any, kafka_bootstrap: str, new_topic: Any, tmp_path: Path
) -> None:
    live, replay = new_topic("live"), new_topic("replay")
    history = _history(4, ["naive", "arima", "xgboost_v3"])
    bad = {"model_name": "broken", "run_timestamp": "2024-01-01T00:00:00"}
    path = tmp_path / "history.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [*history, bad]) + "\n")

    first = backfill_file(str(path), bootstrap_servers=kafka_bootstrap, topic=replay)
    assert (first.sent, first.skipped, first.invalid) == (len(history), 0, 1)
    assert [p.where for p in first.invalid_rows] == [f"line {len(history) + 1}"]
    assert "model_version is required" in first.invalid_rows[0].reason
    # a second run skips every run the ledger saw acknowledged ...
    second = backfill_file(str(path), bootstrap_servers=kafka_bootstrap, topic=replay)
    assert (second.sent, second.skipped) == (0, len(history))
    # ... and sending them all again anyway (from Python, no ledger) only duplicates events,
    # which the content-derived ids make harmless
    third = backfill(
        (json.loads(line) for line in path.read_text().splitlines()),
        bootstrap_servers=kafka_bootstrap, topic=replay,
    )  # fmt: skip
    assert (third.sent, third.invalid) == (len(history), 1)
    assert third.invalid_rows[0].where == f"record {len(history) + 1}"

    config = JobConfig.from_env(
        bootstrap_servers=kafka_bootstrap, topic=live, replay_topic=replay,
        lake=tmp_path / "lake", table="",
    )  # fmt: skip
    start(spark, config, once=True).awaitTermination()

    runs = spark.sql(f"SELECT * FROM {config.tables.runs}").collect()
    events = spark.sql(f"SELECT source, count(*) AS n FROM {config.tables.events} GROUP BY 1")
    assert len(runs) == len(history)
    assert {r["source"]: r["n"] for r in events.collect()} == {"backfill": len(history)}
    assert {(r["model_name"], str(r["training_end_date"])) for r in runs} == {
        (h["model_name"], h["training_end_date"]) for h in history
    }
