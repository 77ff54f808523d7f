"""A batch that loses a Delta commit race runs again and still lands exactly once.

Fault: the event log append fails with ConcurrentAppendException (as when OPTIMIZE or a
rebuild commits first) beside the rows' write: the retry finds the events folded into the
rows already, and must still log them, once (a resumed batch appends what the log lacks). Load:
one batch of 3 records (two copies of one event and another event), fed to ``process_batch``
directly as a batch that follows a finished one. Invariants: the batch does not fail; the rows
are written once; the log holds each event once; both runs have a row.
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
        calls.append(table)
        if table == tables.events and calls.count(table) == 1:
            raise ConcurrentAppendException("a concurrent transaction added files")
        real(rows, table, *args, **kwargs)

    monkeypatch.setattr(job, "_write", flaky)
    job.process_batch(spark, tables, raw, batch_id=7, resumed=False)

    # the first rows write and log append run side by side, in either order
    assert sorted(calls) == sorted([tables.runs, tables.events, tables.events])
    log = spark.table(tables.events)
    assert sorted(r["event_id"] for r in log.collect()) == sorted(
        e["event_id"] for e in (first, second)
    )
    assert set(rows_by_id(spark, tables.runs)) == {first["experiment_id"], second["experiment_id"]}
