"""Duplicate storm, then rebuild and maintenance on the table it leaves.

Fault: every event is delivered three times, the copies shuffled across the live and replay
topics and across two availableNow passes; some runs change later (newer run_recorded,
promotion, demotion, annotation), some updates are older than the run's newest event, and some
arrive before the event they refer to. Load: 30 runs, 72 distinct events, 216 records.
Invariants: one row per experiment_id, each equal to the fold of its events (checked against a
plain-Python fold and against hand-written expectations); the event log holds each event once;
nothing is quarantined. Then: ``rebuild`` recreates the same table from the log alone, and
``maintain`` compacts and vacuums without changing a row.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from runstream.consumer.job import JobConfig
from runstream.consumer.maintenance import maintain
from runstream.consumer.rebuild import rebuild, table_version
from runstream.consumer.topics import fresh_topic
from runstream.contract.fields import check_constraints
from runstream.devtools.testkit import produce
from runstream.errors import RetentionError
from tests.spark.support import (
    HOUR,
    MINUTE,
    T0,
    annotated,
    assert_same_rows,
    encoded,
    job_config,
    key_of,
    new_id,
    project_columns,
    promoted,
    recorded,
    reference_fold,
    rows_by_id,
    run_once,
)

COPIES = 3


@dataclass
class Storm:
    config: JobConfig
    ids: list[str]
    events: list[dict[str, Any]]
    first_pass: list[dict[str, Any]]
    after_first: dict[str, dict[str, Any]]
    records_sent: int
    special: dict[str, str] = field(default_factory=dict)


def _events(ids: list[str]) -> tuple[list[dict[str, Any]], dict[str, int], dict[str, str]]:
    """All events, the pass each must arrive in (0 = any, 1 or 2 = all its copies then), and
    the ids of the hand-checked cases."""
    events: list[dict[str, Any]] = []
    forced: dict[str, int] = {}

    def add(event: dict[str, Any], in_pass: int = 0) -> dict[str, Any]:
        events.append(event)
        if in_pass:
            forced[event["event_id"]] = in_pass
        return event

    for i, eid in enumerate(ids):
        at = T0 + i * MINUTE
        model = f"model_{i % 5}"
        mae = 1.0 + i / 10
        if i < 10:  # recorded once
            add(recorded(eid, at, model_name=model, mae_14day=mae))
        elif i < 15:  # retrained: a newer run_recorded with new metrics and notes
            add(recorded(eid, at, model_name=model, mae_14day=mae))
            add(recorded(eid, at + HOUR, model_name=model, mae_14day=mae + 10, notes="retrained"))
        elif i < 18:  # promoted after it was recorded
            add(recorded(eid, at, model_name=model, mae_14day=mae))
            add(promoted(eid, at + 30 * MINUTE))
        elif i < 21:  # annotated after it was recorded
            add(recorded(eid, at, model_name=model, mae_14day=mae))
            add(annotated(eid, at + 30 * MINUTE, f"note-{i}"))
        elif i == 21:  # promotion older than the newest run_recorded, which does not state it
            add(recorded(eid, at, model_name=model, mae_14day=mae))
            add(recorded(eid, at + 2 * HOUR, model_name=model, mae_14day=mae + 20))
            add(promoted(eid, at + HOUR))
        elif i == 22:  # promotion older than a run_recorded that states is_production=False
            add(recorded(eid, at, model_name=model, mae_14day=mae))
            add(promoted(eid, at + HOUR))
            add(recorded(eid, at + 2 * HOUR, model_name=model, mae_14day=mae,
                         is_production=False))  # fmt: skip
        elif i == 23:  # the promotion arrives a whole pass before its run_recorded
            add(promoted(eid, at + HOUR), in_pass=1)
            add(recorded(eid, at, model_name=model, mae_14day=mae), in_pass=2)
        elif i == 24:  # a late annotation older than the run's own notes loses
            add(recorded(eid, at, model_name=model, mae_14day=mae, notes="from run"), in_pass=1)
            add(annotated(eid, at - HOUR, "older note"), in_pass=2)
        elif i == 25:  # promoted, then demoted; the demotion arrives first
            add(recorded(eid, at, model_name=model, mae_14day=mae))
            add(promoted(eid, at + 2 * HOUR, is_production=False), in_pass=1)
            add(promoted(eid, at + HOUR, is_production=True), in_pass=2)
        elif i == 26:  # the newer run_recorded arrives first, the older one a pass later
            add(recorded(eid, at + HOUR, model_name=model, mae_14day=mae + 30), in_pass=1)
            add(recorded(eid, at, model_name=model, mae_14day=mae), in_pass=2)
        else:  # runs that first appear in the second pass
            add(recorded(eid, at, model_name=model, mae_14day=mae), in_pass=2)
    names = ("stale_promotion", "restated_false", "promotion_first", "late_old_note", "demoted",
             "old_record_late")  # fmt: skip
    special = dict(zip(names, ids[21:27], strict=True))
    return events, forced, special


@pytest.fixture(scope="module")
def storm(spark: Any, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Storm:
    root = tmp_path_factory.mktemp("storm")
    live = fresh_topic(kafka_bootstrap, "storm-live", partitions=2)
    replay = fresh_topic(kafka_bootstrap, "storm-replay")
    config = job_config(kafka_bootstrap, live, replay, root)
    rng = random.Random(20251106)
    ids = [new_id() for _ in range(30)]
    events, forced, special = _events(ids)

    copies = [(e, forced.get(e["event_id"]) or rng.choice((1, 2))) for e in events
              for _ in range(COPIES)]  # fmt: skip
    rng.shuffle(copies)
    passes: dict[int, list[tuple[str, bytes, bytes]]] = {1: [], 2: []}
    for event, in_pass in copies:
        topic = rng.choice((live, replay))
        passes[in_pass].append((topic, key_of(event), encoded(event)))

    first_ids = {e["event_id"] for e, p in copies if p == 1}
    first_pass = [e for e in events if e["event_id"] in first_ids]
    sent = produce(kafka_bootstrap, passes[1])
    run_once(spark, config)
    after_first = rows_by_id(spark, config.tables.runs)
    sent += produce(kafka_bootstrap, passes[2])
    run_once(spark, config)
    return Storm(config, ids, events, first_pass, after_first, sent, special)


def test_duplicate_storm_converges_to_one_newest_row_per_run(spark: Any, storm: Storm) -> None:
    tables = storm.config.tables
    assert storm.records_sent == COPIES * len(storm.events)

    # After the first pass: exactly the fold of what had arrived (cross-pass copies included).
    expected_first = reference_fold(storm.first_pass)
    assert {k: project_columns(v) for k, v in storm.after_first.items()} == expected_first
    assert storm.special["promotion_first"] not in storm.after_first, "promotion without run"

    rows = rows_by_id(spark, tables.runs)
    expected = reference_fold(storm.events)
    assert set(rows) == set(storm.ids)
    assert {k: project_columns(v) for k, v in rows.items()} == expected

    # The rule, by hand, for the awkward cases.
    s, base = storm.special, {eid: 1.0 + i / 10 for i, eid in enumerate(storm.ids)}
    assert rows[s["stale_promotion"]]["is_production"] is True
    assert rows[s["stale_promotion"]]["mae_14day"] == pytest.approx(base[s["stale_promotion"]] + 20)
    assert rows[s["restated_false"]]["is_production"] is False
    assert rows[s["promotion_first"]]["is_production"] is True
    assert rows[s["late_old_note"]]["notes"] == "from run"
    assert rows[s["demoted"]]["is_production"] is False
    assert rows[s["old_record_late"]]["mae_14day"] == pytest.approx(base[s["old_record_late"]] + 30)
    for i in range(10, 15):
        assert rows[storm.ids[i]]["notes"] == "retrained"
        assert rows[storm.ids[i]]["mae_14day"] == pytest.approx(base[storm.ids[i]] + 10)
    for i in range(15, 18):
        assert rows[storm.ids[i]]["is_production"] is True
    for i in range(18, 21):
        assert rows[storm.ids[i]]["notes"] == f"note-{i}"

    log = spark.table(tables.events)
    assert log.count() == len({e["event_id"] for e in storm.events}) == len(storm.events)
    assert log.select("event_id").distinct().count() == log.count()
    assert spark.table(tables.rejects).count() == 0
    print(f"\nstorm: {storm.records_sent} records -> {log.count()} events -> {len(rows)} rows")


def test_rebuild_reproduces_the_table_from_the_log_alone(spark: Any, storm: Storm) -> None:
    tables = storm.config.tables
    streamed = table_version(spark, tables.runs)
    snapshot = spark.sql(f"SELECT * FROM {tables.runs} VERSION AS OF {streamed}")

    # Damage the table first, so only a real recomputation from the log can pass.
    spark.sql(f"DELETE FROM {tables.runs} WHERE experiment_id IN "
              f"('{storm.ids[0]}', '{storm.ids[21]}')")  # fmt: skip
    spark.sql(f"UPDATE {tables.runs} SET mae_14day = 99.0, notes = 'wrong' "
              f"WHERE experiment_id = '{storm.ids[12]}'")  # fmt: skip
    spark.sql(f"INSERT INTO {tables.runs} (experiment_id, model_name, model_version, "
              "run_timestamp, model_type, training_start_date, training_end_date, "
              "forecast_horizon_days, commodity, is_production, _rs_event_count, "
              "_rs_last_event_id, _rs_last_event_time, _rs_first_seen_at, _rs_last_seen_at, "
              "_rs_run_from, _rs_event_ids) "
              "VALUES ('ghost', 'm', 'v1', now(), 'X', DATE'2024-01-01', DATE'2024-02-01', 14, "
              "'Coffee', false, 1, 'e', now(), now(), now(), "
              "named_struct('event_time', now(), 'event_id', 'e'), array('e'))")  # fmt: skip

    count = rebuild(spark, tables)

    assert count == len(storm.ids)
    assert_same_rows(spark, tables.runs, snapshot)
    detail = spark.sql(f"DESCRIBE DETAIL {tables.runs}").first()
    assert list(detail["partitionColumns"]) == ["_rs_bucket"]
    props = {r["key"] for r in spark.sql(f"SHOW TBLPROPERTIES {tables.runs}").collect()}
    assert {f"delta.constraints.{c}" for c in check_constraints()} <= props


def test_maintenance_compacts_and_vacuums_without_changing_data(spark: Any, storm: Storm) -> None:
    tables = storm.config.tables
    before = {t: spark.table(t).localCheckpoint() for t in (tables.runs, tables.events)}
    runs_dir = Path(tables.runs.removeprefix("delta.`").removesuffix("`"))

    with pytest.raises(RetentionError, match="168"):
        maintain(spark, tables, vacuum_hours=1)

    report = maintain(spark, tables)  # the safe defaults: OPTIMIZE + VACUUM 168 hours
    assert set(report) == {tables.runs, tables.events, tables.rejects, tables.pending}
    runs = report[tables.runs]
    assert runs["files_after"] <= runs["files_before"]
    partitions = spark.table(tables.runs).select("_rs_bucket").distinct().count()
    assert runs["files_after"] <= 2 * partitions
    on_disk = len(list(runs_dir.glob("_rs_bucket=*/*.parquet")))
    assert on_disk > runs["files_after"], "the safe retention must keep recent old files"

    forced = maintain(spark, tables, vacuum_hours=0, force=True, optimize=False)
    assert len(list(runs_dir.glob("_rs_bucket=*/*.parquet"))) == forced[tables.runs]["files_after"]
    for table, frame in before.items():
        assert_same_rows(spark, table, frame)
    for key in ("spark.databricks.delta.retentionDurationCheck.enabled",
                "spark.databricks.delta.vacuum.retentionWindowIgnore.enabled"):  # fmt: skip
        assert spark.conf.get(key, None) in (None, "true"), f"{key} left changed"
