"""emit_run(seed example) -> Kafka -> streaming job (availableNow) -> Delta -> query."""

from __future__ import annotations

from datetime import date, timezone
from pathlib import Path
from typing import Any

from runstream import Emitter
from runstream.consumer.job import JobConfig, start
from runstream.demo import seed_experiment


def test_seed_run_reaches_model_runs_with_its_values(
    spark: Any, kafka_bootstrap: str, new_topic: Any, tmp_path: Path
) -> None:
    topic, replay = new_topic("live"), new_topic("replay")
    experiment = seed_experiment()
    emitter = Emitter(bootstrap_servers=kafka_bootstrap, topic=topic, spool_dir=tmp_path / "spool")
    receipt = emitter.emit_run(experiment)
    assert emitter.close(timeout_s=60) == 0, "the event was not acknowledged by the broker"

    config = JobConfig.from_env(
        bootstrap_servers=kafka_bootstrap, topic=topic, replay_topic=replay,
        lake=tmp_path / "lake", table="",
    )  # fmt: skip
    start(spark, config, once=True).awaitTermination()

    rows = spark.sql(f"SELECT * FROM {config.tables.runs}").collect()
    assert len(rows) == 1
    row = rows[0].asDict()
    assert row["experiment_id"] == receipt.experiment_id == experiment["experiment_id"]
    for column in ("model_name", "model_version", "model_type", "hyperparameters",
                   "feature_config", "forecast_horizon_days", "commodity", "mae_14day",
                   "directional_accuracy", "beats_baseline", "execution_time_seconds",
                   "hardware_config", "run_by"):  # fmt: skip
        assert row[column] == experiment[column], column
    assert row["training_start_date"] == date(2022, 1, 1)
    assert row["training_end_date"] == date(2024, 12, 31)
    # Spark returns session-zone (UTC) naive datetimes; the seed's naive value is local time.
    sent = experiment["run_timestamp"].astimezone(timezone.utc).replace(tzinfo=None)
    assert row["run_timestamp"] == sent
    assert row["is_production"] is False
    assert row["run_date"] == sent.date()
