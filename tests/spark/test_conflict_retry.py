"""A batch that loses a Delta commit race runs again and still lands exactly once.

Fault: the first write to model_runs fails with ConcurrentAppendException (as when OPTIMIZE
or a rebuild commits first); the event log append before it already committed, so the retry's
append must be skipped (Delta's idempotent write, keyed by the query and the batch). Load: one batch
of 3 records (two copies of one event and another event), fed to ``process_batch`` directly.
Invariants: the batch does not fail; the log holds each event once; both runs have a row.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from delta.exceptions import ConcurrentAppendException

from runstream.consumer import job
from runstream.consumer.tables import TableNames, create_tables
from tests.spark.support import T0, encoded, key_of, new_id, recorded, rows_by_id


def test_commit_conflict_is_retried_and_changes_nothing_twice(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tables = TableNames.at_path(tmp_path / "lake")
    create_tables(spark, tables)
    first, second = recorded(new_id(), T0), recorded(new_id(), T0)
    records = [(key_of(e), encoded(e), "t", 0, offset, datetime(2025, 1, 6))
               for offset, e in enumerate([first, first, second])]  # fmt: skip
    raw = spark.createDataFrame(
        records, "key binary, value binary, topic string, partition int, offset long, "
        "timestamp timestamp",
    )  # fmt: skip
    real = job._write
    calls = []

    def flaky(rows: Any, table: str, *args: Any, **kwargs: Any) -> None:
        if table == tables.runs:
            calls.append(1)
            if len(calls) == 1:
                raise ConcurrentAppendException("a concurrent transaction added files")
        real(rows, table, *args, **kwargs)

    monkeypatch.setattr(job, "_write", flaky)
    job.process_batch(spark, tables, raw, batch_id=0, app_id="test-conflict-retry")

    assert len(calls) == 2
    assert spark.table(tables.events).count() == 2
    assert set(rows_by_id(spark, tables.runs)) == {first["experiment_id"], second["experiment_id"]}
