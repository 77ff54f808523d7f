"""Old and new producers share a topic and a micro-batch.

Fault: none; load: one run_recorded written with schema v1 (no ``source`` field) and one with
v2, plus a v1 promotion of the v2 run, all in one availableNow batch. Invariants: both runs land
with their values; the event log records each event's writer version, and the v1 events read
``source`` as the v2 default, ``emit``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runstream import contract
from runstream.consumer.rebuild import table_version
from runstream.devtools.testkit import produce
from tests.spark.support import (
    HOUR,
    T0,
    encoded,
    job_config,
    key_of,
    new_id,
    promoted,
    recorded,
    rows_by_id,
    run_once,
)


def test_v1_and_v2_events_in_one_batch_both_land(
    spark: Any, kafka_bootstrap: str, new_topic: Any, tmp_path: Path
) -> None:
    v1, v2 = contract.versions()[0], contract.versions()[-1]
    assert (v1.version, v2.version) == (1, 2)
    live, replay = new_topic("mixed-live"), new_topic("mixed-replay")
    config = job_config(kafka_bootstrap, live, replay, tmp_path)
    old = recorded(new_id("v1"), T0, model_name="old_writer", mae_14day=2.5)
    new = {**recorded(new_id("v2"), T0, model_name="new_writer", mae_14day=3.5),
           "source": "backfill"}  # fmt: skip
    promotion = promoted(new["experiment_id"], T0 + HOUR)
    produce(kafka_bootstrap, [
        (live, key_of(old), encoded(old, v1)),
        (live, key_of(new), encoded(new, v2)),
        (live, key_of(promotion), encoded(promotion, v1)),
    ])  # fmt: skip

    run_once(spark, config)

    runs = rows_by_id(spark, config.tables.runs)
    assert set(runs) == {old["experiment_id"], new["experiment_id"]}
    assert runs[old["experiment_id"]]["model_name"] == "old_writer"
    assert runs[old["experiment_id"]]["mae_14day"] == 2.5
    assert runs[new["experiment_id"]]["model_name"] == "new_writer"
    assert runs[new["experiment_id"]]["is_production"] is True
    log = {r["event_id"]: r for r in spark.table(config.tables.events).collect()}
    assert (log[old["event_id"]]["schema_version"], log[old["event_id"]]["source"]) == (1, "emit")
    assert (log[new["event_id"]]["schema_version"], log[new["event_id"]]["source"]) == (
        2, "backfill")  # fmt: skip
    assert log[promotion["event_id"]]["schema_version"] == 1
    assert table_version(spark, config.tables.events) == 1, "one batch wrote all three"
    assert spark.table(config.tables.rejects).count() == 0
