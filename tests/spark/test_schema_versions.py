"""Old and new producers share a topic and a micro-batch; old tables take new columns.

1. Load: one run_recorded written with schema v1 (no ``source`` field) and one with v2, plus a
   v1 promotion of the v2 run, all in one availableNow batch. Invariants: both runs land with
   their values; the event log records each event's writer version, and the v1 events read
   ``source`` as the v2 default, ``emit``.
2. Tables the job wrote when v2 was newest (``tests/data/lake_v2``), then today's job with a
   v2 and a v3 producer on one topic. Invariants: the log gains ``tags`` in place;
   ``model_runs``, of the older layout (partitioned by commodity and day, no fold state), is
   renamed aside, still readable at its versions, and today's is refolded from the log; every
   old row keeps its values, both producers' runs land, a v3 re-recording adds tags to an old
   run, and a rebuild from the log gives the same table.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

from runstream import contract
from runstream.consumer.rebuild import rebuild, table_version
from runstream.devtools.testkit import produce
from runstream.engines import LightEngine
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
    v1, v2 = contract.versions()[:2]
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


V2_LAKE = Path(__file__).resolve().parents[1] / "data" / "lake_v2"
OLD = [f"0b6f3f5e-6d2c-4c53-9a53-3c1f0c2a000{i}" for i in (1, 2, 3)]
TAGS = {"feature_set": "weather", "complexity": "medium", "production_candidate": "true"}


def _without_tags(event: dict[str, Any]) -> dict[str, Any]:
    """The event as a v2 producer makes it: its run has no ``tags``."""
    run = {k: v for k, v in event["run"].items() if k != "tags"}
    return {**event, "run": run}


def test_tables_written_before_tags_gain_the_column_and_keep_every_row(
    spark: Any, kafka_bootstrap: str, new_topic: Any, tmp_path: Path
) -> None:
    v2, v3 = contract.versions()[1:3]
    assert (v2.version, v3.version) == (2, 3)
    shutil.copytree(V2_LAKE, tmp_path / "lake")
    live, replay = new_topic("tags-live"), new_topic("tags-replay")
    config = job_config(kafka_bootstrap, live, replay, tmp_path)
    runs_before = rows_by_id(spark, config.tables.runs)
    assert set(runs_before) == set(OLD) and "tags" not in runs_before[OLD[0]]
    version_before = table_version(spark, config.tables.runs)

    later = T0 + timedelta(days=10)
    old_writer = recorded(new_id("v2"), later, model_name="old_producer", mae_14day=2.0)
    new_writer = recorded(new_id("v3"), later, model_name="new_producer", mae_14day=1.5,
                          tags=TAGS)  # fmt: skip
    retagged = recorded(OLD[1], later, model_name="xgboost_tuned_v3", model_type="XGBoost",
                        commodity="Sugar", mae_14day=0.55,
                        tags={"feature_set": "lags"})  # fmt: skip
    assert new_writer["run"]["tags"] == TAGS
    produce(kafka_bootstrap, [
        (live, key_of(old_writer), encoded(_without_tags(old_writer), v2)),
        (live, key_of(new_writer), encoded(new_writer, v3)),
        (live, key_of(retagged), encoded(retagged, v3)),
    ])  # fmt: skip

    run_once(spark, config)

    columns = spark.table(config.tables.runs).columns
    assert columns[columns.index("is_production") + 1] == "tags"
    run_struct = spark.table(config.tables.events).schema["run"].dataType
    assert run_struct.fieldNames()[-1] == "tags"
    runs = rows_by_id(spark, config.tables.runs)
    assert len(runs) == 5
    for experiment_id in (OLD[0], OLD[2]):  # untouched rows: every value as before, no tags
        before = {**runs_before[experiment_id], "tags": None}
        assert before == {k: runs[experiment_id][k] for k in before}
    assert runs[OLD[0]]["is_production"] is True and runs[OLD[0]]["mae_14day"] == 2.9
    assert runs[OLD[1]]["tags"] == {"feature_set": "lags"}
    assert runs[OLD[1]]["notes"] == "written before tags existed"  # the annotation stays
    assert runs[old_writer["experiment_id"]]["tags"] is None
    assert runs[new_writer["experiment_id"]]["tags"] == TAGS
    # the table of the older layout is kept beside, and reads as it was
    (old_table,) = (tmp_path / "lake").glob("model_runs.commodity-run_date-*")
    as_then = spark.sql(f"SELECT * FROM delta.`{old_table}` VERSION AS OF {version_before}")
    assert as_then.count() == 3 and "tags" not in as_then.columns
    # other readers see the evolved table too, and the log alone gives the same table
    light = LightEngine(config.tables).sql("SELECT experiment_id, tags FROM model_runs")
    assert {r["experiment_id"]: r["tags"] for r in light} == {k: v["tags"] for k, v in runs.items()}
    rebuild(spark, config.tables)
    assert rows_by_id(spark, config.tables.runs) == runs
