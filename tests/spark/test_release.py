"""A micro-batch frees the blocks of its checkpoints when it ends.

Fault: none. Load: two batches through ``process_batch`` on one lake, the second updating the
first's run, so every checkpoint a batch makes is made (the decoded records, the runs' stored
states, the merged states). Invariant: after each batch, Spark's storage holds no RDD it did
not hold before the batch other than Delta's own table state (``DataFrame.unpersist`` does
not free a ``localCheckpoint``: its blocks stayed until the JVM's garbage collector ran).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from runstream.consumer import job
from runstream.consumer.tables import TableNames, create_tables
from tests.spark.support import T0, encoded, key_of, new_id, recorded, rows_by_id


def _stored(spark: Any) -> set[int]:
    """Ids of the RDDs with blocks in storage, Delta's cached table states left out."""
    infos = spark.sparkContext._jsc.sc().getRDDStorageInfo()
    return {i.id() for i in infos if not i.name().startswith("Delta Table State")}


def test_a_batch_leaves_no_checkpoint_in_storage(spark: Any, tmp_path: Path) -> None:
    tables = TableNames.at_path(tmp_path / "lake")
    create_tables(spark, tables)
    run = new_id()
    batches = [[recorded(run, T0)], [recorded(run, T0 + timedelta(minutes=1)), recorded(run, T0)]]
    for batch_id, events in enumerate(batches):
        records = [(key_of(e), encoded(e), "t", 0, 10 * batch_id + offset, datetime(2025, 1, 6))
                   for offset, e in enumerate(events)]  # fmt: skip
        raw = spark.createDataFrame(
            records, "key binary, value binary, topic string, partition int, offset long, "
            "timestamp timestamp",
        )  # fmt: skip
        before = _stored(spark)
        report = job.process_batch(spark, tables, raw, batch_id=batch_id, resumed=False)
        assert report.runs_written == 1
        assert _stored(spark) <= before, "a checkpoint's blocks outlived its batch"
    assert set(rows_by_id(spark, tables.runs)) == {run}
