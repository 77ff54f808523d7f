"""Recompute ``model_runs`` from the event log alone: the log is the truth, the table a view.

Uses the same fold as the streaming job (``projection.project``), over every event instead of
the events of the runs a batch touched, and replaces the table's rows in one Delta commit
(``INSERT OVERWRITE``). The table itself stays: its DDL, partitioning, generated ``run_date``,
NOT NULL and CHECK constraints and its history (time travel to before the rebuild works).

Because the fold is a pure function of the set of events, the result equals what the stream
wrote, row for row. Run it with the streaming job stopped: events the job adds to the log after
the rebuild read it, but before the rebuild commits, would be missing until the run's next event.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING

from runstream.consumer.projection import project
from runstream.consumer.tables import TableNames, create_tables

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


def table_version(spark: SparkSession, name: str) -> int:
    """The current Delta version of table ``name``."""
    row = spark.sql(f"DESCRIBE HISTORY {name} LIMIT 1").first()
    return int(row["version"]) if row is not None else -1


def rebuild(spark: SparkSession, tables: TableNames) -> int:
    """Overwrite ``tables.runs`` with the fold of ``tables.events``; returns the row count."""
    started = time.monotonic()
    create_tables(spark, tables)
    state = project(spark.table(tables.events))
    view = f"runstream_rebuild_{uuid.uuid4().hex}"
    state.createOrReplaceTempView(view)
    try:
        columns = ", ".join(f"`{c}`" for c in state.columns)
        # A column list: the generated run_date is computed by Delta, not supplied.
        spark.sql(f"INSERT OVERWRITE {tables.runs} ({columns}) SELECT {columns} FROM {view}")
    finally:
        spark.catalog.dropTempView(view)
    count = spark.table(tables.runs).count()
    log.info(
        "rebuilt %s from %s: %d run(s) in %.1fs (now version %d)",
        tables.runs, tables.events, count, time.monotonic() - started,
        table_version(spark, tables.runs),
    )  # fmt: skip
    return count
