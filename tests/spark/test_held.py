"""Which runs the tables hold, asked of their files with delta-rs instead of Spark.

``held`` decides whether a small batch's events have a row or a pending state to be combined
with; a run it misses would get a second row. Load: one batch through ``process_batch`` that
records run A and promotes run B (no record yet, so B is pending). Invariants: of A, B and a
run never sent, A and B are held; A is not found when its bucket is not asked for (the files
are chosen by bucket); catalog tables, and a table whose readers need deletion vectors, get
None (Spark looks instead). ``logs_any`` tells a resumed batch whether the log has any file
of its events' days: true for the day logged, false for another, None for a catalog log.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

from runstream.consumer import job
from runstream.consumer.held import held, logs_any
from runstream.consumer.tables import BUCKET, TableNames, create_tables
from runstream.devtools.testkit import T0, encoded, key_of, new_id, promoted, recorded


def _bucket(spark: Any, experiment_id: str) -> int:
    query = f"SELECT {BUCKET} AS b FROM VALUES ('{experiment_id}') AS t(experiment_id)"
    return int(spark.sql(query).first()["b"])


def test_held_finds_rows_and_pending_runs_by_bucket(spark: Any, tmp_path: Path) -> None:
    tables = TableNames.at_path(tmp_path / "lake")
    create_tables(spark, tables)
    a, b, never = new_id(), new_id(), new_id()
    events = [recorded(a, T0), promoted(b, T0)]
    raw = spark.createDataFrame(
        [(key_of(e), encoded(e), "t", 0, n, datetime(2025, 1, 6)) for n, e in enumerate(events)],
        "key binary, value binary, topic string, partition int, offset long, timestamp timestamp",
    )
    job.process_batch(spark, tables, raw, batch_id=0, resumed=False)
    buckets = {run: _bucket(spark, run) for run in (a, b, never)}

    assert held(tables, [a, b, never], set(buckets.values())) == {a, b}
    others = {x for x in range(1024) if x != buckets[a]}
    assert held(tables, [a], others) == set(), "A's file was read though its bucket was not asked"
    assert held(tables, [never], [buckets[never]]) == set()

    logged_day = T0.date()
    assert logs_any(tables, [logged_day]) is True
    assert logs_any(tables, [date(2020, 1, 1), logged_day]) is True
    assert logs_any(tables, [date(2020, 1, 1)]) is False
    assert logs_any(TableNames.in_catalog("experiments.model_runs"), [logged_day]) is None


def test_held_leaves_catalog_and_deletion_vector_tables_to_spark(
    spark: Any, tmp_path: Path
) -> None:
    assert held(TableNames.in_catalog("experiments.model_runs"), ["x"], [1]) is None
    tables = TableNames.at_path(tmp_path / "lake")
    create_tables(spark, tables)
    assert held(tables, ["x"], [1]) == set()
    spark.sql(f"ALTER TABLE {tables.runs} SET TBLPROPERTIES ('delta.enableDeletionVectors' = true)")
    assert held(tables, ["x"], [1]) is None
