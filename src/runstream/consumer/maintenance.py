"""Table maintenance: compact small files (OPTIMIZE) and delete unreferenced ones (VACUUM).

A streaming job writes a few small files per micro-batch and rewrites files on every MERGE,
so the three tables collect many small files and many files no version needs any more.
``maintain`` runs, for each table:

1. ``OPTIMIZE``: bin-packs small files into large ones (a new version; data unchanged);
2. ``VACUUM ... RETAIN n HOURS``: deletes files not referenced by any version newer than
   ``n`` hours, which also ends time travel to those versions.

Safe defaults: ``vacuum_hours=168`` (Delta's own 7-day floor). A shorter retention can break
readers and writers that still use an older snapshot (a long query, the streaming job in the
middle of a batch, a time-travel query), so it is refused unless ``force=True``; forcing turns
Delta's ``retentionDurationCheck`` off for that one call only. Run maintenance when the job is
idle or accept that a batch may retry after a commit conflict (the job retries those).
The streaming checkpoint is not touched.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from runstream.consumer.tables import TableNames
from runstream.errors import RetentionError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

DELTA_MIN_RETENTION_HOURS = 168
_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"
_IGNORE_RETAIN = "spark.databricks.delta.vacuum.retentionWindowIgnore.enabled"


def _num_files(spark: SparkSession, name: str) -> int:
    row = spark.sql(f"DESCRIBE DETAIL {name}").first()
    return int(row["numFiles"]) if row is not None else 0


def maintain(
    spark: SparkSession,
    tables: TableNames,
    *,
    vacuum_hours: float = DELTA_MIN_RETENTION_HOURS,
    force: bool = False,
    optimize: bool = True,
    vacuum: bool = True,
) -> dict[str, dict[str, Any]]:
    """OPTIMIZE then VACUUM each table; returns live file counts before and after per table.

    Raises RetentionError when ``vacuum_hours`` is below 168 and ``force`` is not set.
    """
    if vacuum_hours < 0:
        raise RetentionError(f"vacuum_hours must not be negative, got {vacuum_hours}")
    if vacuum and vacuum_hours < DELTA_MIN_RETENTION_HOURS and not force:
        raise RetentionError(
            f"vacuum_hours={vacuum_hours} is below Delta's {DELTA_MIN_RETENTION_HOURS}-hour "
            "floor: it can delete files that running readers or the streaming job still need. "
            "Pass force=True only when nothing reads older versions."
        )
    report: dict[str, dict[str, Any]] = {}
    for name in (tables.runs, tables.events, tables.rejects, tables.pending):
        started = time.monotonic()
        before = _num_files(spark, name)
        if optimize:
            spark.sql(f"OPTIMIZE {name}")
        if vacuum:
            _vacuum(spark, name, vacuum_hours, force=force)
        after = _num_files(spark, name)
        report[name] = {"files_before": before, "files_after": after,
                        "seconds": round(time.monotonic() - started, 2)}  # fmt: skip
        log.info("maintained %s: %d -> %d live file(s)", name, before, after)
    return report


@contextlib.contextmanager
def _session_conf(spark: SparkSession, settings: dict[str, str]) -> Iterator[None]:
    """Set session settings for one block, then restore what was there."""
    previous: dict[str, str | None] = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, old in previous.items():
            if old is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, old)


def _vacuum(spark: SparkSession, name: str, hours: float, *, force: bool) -> None:
    # Delta 4.x ignores RETAIN unless it is 0 (retentionWindowIgnore) and uses the table's
    # delta.deletedFileRetentionDuration instead; turn that off so vacuum_hours means what
    # the docstring says.
    settings = {_IGNORE_RETAIN: "false"}
    if force and hours < DELTA_MIN_RETENTION_HOURS:
        settings[_CHECK] = "false"
        log.warning("VACUUM %s with %g hour(s) retention (forced below the 7-day floor)",
                    name, hours)  # fmt: skip
    with _session_conf(spark, settings):
        spark.sql(f"VACUUM {name} RETAIN {hours:g} HOURS")
