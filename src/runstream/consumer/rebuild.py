"""Recompute ``model_runs`` from the event log alone: the log is the truth, the table a view.

Uses the same fold as the streaming job (``projection``), over every event instead of a
batch's new events combined with the rows they touch, and replaces the table's rows in one
Delta commit (``INSERT OVERWRITE``), then ``model_run_pending``'s in another. The table itself
stays: its DDL, partitioning, generated ``run_date``, NOT NULL and CHECK constraints and its
history (time travel to before the rebuild works).

Because folding is associative, the result equals what the stream wrote, row for row. Run it
with the streaming job stopped: events the job adds to the log after the rebuild read it, but
before the rebuild commits, would be missing until the run's next event.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING

from runstream.consumer.projection import event_states, merge_states, to_pending, to_rows
from runstream.consumer.tables import BUCKET, TableNames, create_tables

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)


def table_version(spark: SparkSession, name: str) -> int:
    """The current Delta version of table ``name``."""
    row = spark.sql(f"DESCRIBE HISTORY {name} LIMIT 1").first()
    return int(row["version"]) if row is not None else -1


def rebuild(spark: SparkSession, tables: TableNames) -> int:
    """Overwrite ``tables.runs`` (and ``tables.pending``) with the fold of ``tables.events``;
    returns the number of runs."""
    from pyspark.sql import functions as F

    started = time.monotonic()
    create_tables(spark, tables)
    states = merge_states(event_states(spark.table(tables.events))).persist()
    try:
        # one task per bucket: one file per partition folder, not one per task and bucket
        _overwrite(spark, tables.runs, to_rows(states).repartition(F.expr(BUCKET)))
        _overwrite(spark, tables.pending, to_pending(states).coalesce(1))
    finally:
        states.unpersist()
    count = spark.table(tables.runs).count()
    log.info(
        "rebuilt %s from %s: %d run(s) in %.1fs (now version %d)",
        tables.runs, tables.events, count, time.monotonic() - started,
        table_version(spark, tables.runs),
    )  # fmt: skip
    return count


def _overwrite(spark: SparkSession, table: str, rows: DataFrame) -> None:
    view = f"runstream_rebuild_{uuid.uuid4().hex}"
    rows.createOrReplaceTempView(view)
    try:
        columns = ", ".join(f"`{c}`" for c in rows.columns)
        # A column list: a generated column (run_date) is computed by Delta, not supplied.
        spark.sql(f"INSERT OVERWRITE {table} ({columns}) SELECT {columns} FROM {view}")
    finally:
        spark.catalog.dropTempView(view)
