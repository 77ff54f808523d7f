"""Which runs the tables hold already: asked of local Delta tables without a Spark job.

A micro-batch must combine its events with the rows (and pending states) of the runs it
touches, and finding them with Spark costs a second or more on two cores, most of it Delta
rebuilding ``model_runs``' snapshot after the previous batch's commit. Yet a batch usually
brings new runs, which the tables do not hold. delta-rs reads the table's log (its newest
checkpoint and the commits after it: tens of milliseconds), lists the files of the touched
buckets by their partition values, and the ids are read from those files' ``experiment_id`` column.
No file statistics are used: a skipped file would be a run folded twice.

Path tables on local disk only, whose readers need nothing beyond the first protocol
version (no deletion vectors, no column mapping, which would make the files' columns differ
from the table's): for anything else, or without ``deltalake`` and ``pyarrow``, the answer
is None and the job looks with Spark as before.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import date
from pathlib import Path

from runstream.consumer.tables import EVENTS, PENDING, RUNS, TableNames, local_path

log = logging.getLogger(__name__)


def held(tables: TableNames, ids: Collection[str], buckets: Collection[int]) -> set[str] | None:
    """The ``ids`` (of runs in ``buckets``) that have a row in ``model_runs`` or a state in
    ``model_run_pending``; None when that cannot be told without Spark (see the module)."""
    folder = local_path(tables.lake) if tables.lake is not None else None
    if folder is None:
        return None
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
    except ImportError:
        return None
    wanted = pa.array(list(ids), type=pa.string())
    found: set[str] = set()
    for name, partitions in ((RUNS, buckets), (PENDING, None)):
        files = _files(folder / name, "_rs_bucket", partitions)
        if files is None:
            return None
        try:
            for file in files:
                column = pq.read_table(file, columns=["experiment_id"]).column(0)
                found.update(column.filter(pc.is_in(column, value_set=wanted)).to_pylist())
        except (OSError, pa.ArrowException) as exc:  # e.g. a file vacuumed meanwhile
            log.debug("cannot read %s (%s); Spark looks instead", name, exc)
            return None
    return found


def logs_any(tables: TableNames, days: Collection[date]) -> bool | None:
    """Whether the event log has a file in the partitions of ``days`` (``event_date``); None
    when that cannot be told without Spark. A resumed batch whose days the log has no file
    of (a backfill into a new lake, the first batch of a day) logged none of its events."""
    folder = local_path(tables.lake) if tables.lake is not None else None
    if folder is None:
        return None
    files = _files(folder / EVENTS, "event_date", days)
    return None if files is None else bool(files)


def _files(path: Path, column: str, values: Collection[object] | None) -> list[str] | None:
    """The data files of the table at ``path`` as of its newest commit (those whose
    partition ``column`` is one of ``values`` when given), or None when delta-rs cannot
    answer exactly.

    The table is opened afresh each time (tens of milliseconds: the newest checkpoint and the
    commits after it): a table kept open could not tell a table made again at the same path
    from the one it knew.
    """
    try:
        from deltalake import DeltaTable
    except ImportError:
        return None
    if not (path / "_delta_log").is_dir():
        return None
    try:
        table = DeltaTable(str(path))
        if table.protocol().min_reader_version != 1:
            return None
        if values is None:
            return list(table.file_uris())
        if table.metadata().partition_columns != [column]:
            return None
        if not values:
            return []
        chosen = [(column, "in", sorted(_partition_value(v) for v in values))]
        return list(table.file_uris(file_pruning_predicate=chosen))
    except Exception as exc:  # a log delta-rs cannot follow: Spark answers instead
        log.debug("delta-rs cannot list %s (%s); Spark looks instead", path, exc)
        return None


def _partition_value(value: object) -> str:
    """A partition value as the Delta log writes it (a date as ``YYYY-MM-DD``)."""
    return value.isoformat() if isinstance(value, date) else str(value)
