"""The streaming job: both topics -> event log -> model_runs, exactly once in effect.

Per micro-batch (``foreachBatch``, which Spark may run again after a failure):

1. split records into valid events and rejects (``decode.classify``);
2. MERGE the rejects into the quarantine, keyed by Kafka coordinates (insert only);
3. read the rows (and pending states) of the runs the batch touches, from their buckets of
   ``model_runs`` only, and keep the events not folded into them yet (their ids are in the
   rows' ``_rs_event_ids``): re-sent, replayed and re-run events are dropped here. A batch
   on local tables first asks their files which of its runs they hold (``held``, no Spark
   job), and when none, as when a backtest records new runs, reads nothing;
4. fold those events and combine them with the rows' fold state (``projection``); write the
   runs' rows to ``model_runs``: appended when every one is new (the usual case: a backtest
   records new runs), else their buckets rewritten with a ``replaceWhere`` overwrite; runs
   still without a ``run_recorded`` keep their state in ``model_run_pending``;
5. append the new events to the log, a blind append that reads nothing of it, in a thread
   beside step 4's writes.

No step reads the log, and ``model_runs`` is read only in the buckets of the runs the batch
touches, so a batch costs what its own events and those runs cost, not what the history does.
The rows and the log are written side by side, so the batch takes the longer of the two,
not their sum. A batch run again finds the events already folded into the rows and writes
no rows for them; a batch that may have run before (the first after a start, or a retry:
``resumed``) appends to the log every event of the batch that the log's partitions of those
days lack, which covers a process that died after one of the two writes committed. So a
batch that runs twice, or a restart from the checkpoint after a ``kill -9``, changes nothing
the first run did not, and the log holds each event once. The checkpoint is the only
progress record: Spark does not commit offsets to Kafka. For the same reason a batch that
loses a Delta commit race (OPTIMIZE or a rebuild committed first) is simply run again, up
to ``CONFLICT_RETRIES``.

Each batch logs one line and returns its figures (records in, valid, quarantined, run rows
written, seconds) as a ``progress.BatchReport``. ``run_job`` waits for the query in the calling
thread, adds each batch's Kafka lag from Spark's progress, hands every report to its
``on_batch`` callback, stops between batches on Ctrl-C, and returns a ``progress.JobSummary``.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date
from types import FrameType
from typing import TYPE_CHECKING, Any

from runstream import contract
from runstream import environment_variables as env
from runstream.consumer import decode
from runstream.consumer.held import held, logs_any
from runstream.consumer.progress import BatchReport, BatchTracker, JobSummary, kafka_lag
from runstream.consumer.projection import (
    event_states,
    merge_states,
    pending_states,
    row_states,
    to_pending,
    to_rows,
)
from runstream.consumer.tables import (
    BUCKET,
    GENERATED,
    TableNames,
    child,
    create_tables,
    location,
    run_counts_metadata,
)
from runstream.consumer.topics import RETENTION_FOREVER, broker_count, create_topics
from runstream.errors import TopicMissingError
from runstream.kafka_client import KafkaClientConfig, admin_client
from runstream.kafka_client import load as load_kafka_client

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.streaming.query import StreamingQuery

log = logging.getLogger(__name__)

CONFLICT_RETRIES = 3
LARGE_BATCH = 10_000
"""Valid events beyond which a batch is planned as a backfill: no broadcast of its run ids,
and a check that lets a batch of new runs, one event each, skip grouping its rows."""
APPENDED_FILES = {"compression": "uncompressed"}
"""Write options of the files a batch appends to ``model_runs`` (its new runs' rows). They
are small (a batch's new rows of one bucket: a backfill of 100,000 runs writes 1,024 files of
about 100 rows), so a file's cost is mostly fixed, and Snappy's part of it, per column chunk,
was about a third of a backfill's rows write. A bucket rewritten for updated runs is
compressed, and so is the file ``runstream maintain`` (OPTIMIZE) compacts a bucket's files
into; a bucket of one file is left as it is."""
FRESH = "_fresh"  # a fold state that holds one of this batch's new events
WAS_PENDING = "_was_pending"  # a fold state read from model_run_pending
STORED = "_stored"  # a fold state read from model_runs


@dataclass(frozen=True)
class JobConfig:
    """Where the job reads, writes and keeps its checkpoint."""

    bootstrap_servers: str
    topics: tuple[str, ...]
    tables: TableNames
    checkpoint: str
    max_offsets_per_trigger: int | None = None
    # Spark Kafka-source options without the "kafka." prefix, from runstream.kafka_client
    # (secrets inside: kept out of repr). kafka_client: the same settings for kafka-python.
    kafka_options: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    kafka_client: KafkaClientConfig | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_env(
        cls,
        *,
        bootstrap_servers: str | None = None,
        topic: str | None = None,
        replay_topic: str | None = None,
        lake: str | os.PathLike[str] | None = None,
        table: str | None = None,
        checkpoint: str | None = None,
        max_offsets_per_trigger: int | None = None,
        kafka_properties: str | os.PathLike[str] | None = None,
    ) -> JobConfig:
        # A URI lake (file://, s3a://, abfss://, dbfs:) is kept as given; a local one made
        # absolute, so no executor or restart depends on this process's working directory.
        given = lake if lake is not None else env.RUNSTREAM_LAKE.get()
        lake_path = location(given or env.lake_dir())
        default_checkpoint = child(lake_path, "_checkpoints/consume")
        table_name = env.RUNSTREAM_TABLE.get(table)
        tables = TableNames.in_catalog(table_name) if table_name else TableNames.at_path(lake_path)
        kafka = load_kafka_client(bootstrap_servers, properties_file=kafka_properties)
        return cls(
            bootstrap_servers=kafka.bootstrap_servers,
            kafka_options=tuple(
                (k.removeprefix("kafka."), v)
                for k, v in sorted(kafka.spark_options().items())
                if k != "kafka.bootstrap.servers"
            ),
            kafka_client=kafka,
            topics=(env.RUNSTREAM_TOPIC.get(topic), env.RUNSTREAM_REPLAY_TOPIC.get(replay_topic)),
            tables=tables,
            checkpoint=location(checkpoint) if checkpoint else default_checkpoint,
            max_offsets_per_trigger=max_offsets_per_trigger,
        )

    def with_(self, **changes: Any) -> JobConfig:
        return replace(self, **changes)


def ensure_topics(config: JobConfig, partitions: int = 1) -> None:
    """Check that Kafka accepts the job's settings, and that its topics exist, before the query
    starts (the checkpoint fixes the subscription).

    Fails fast with one clear error: BrokerUnreachableError or KafkaAuthError (wrong
    credentials, TLS) within about 15 seconds, instead of a query that retries forever. A
    missing topic is created on a single-broker (development) cluster; on a multi-broker
    cluster it raises TopicMissingError naming ``runstream topics create``, because an
    automatically created topic would get replication factor 1 and finite retention.
    """
    kafka = config.kafka_client or KafkaClientConfig(config.bootstrap_servers)
    if kafka.bootstrap_servers != config.bootstrap_servers:
        kafka = replace(kafka, bootstrap_servers=config.bootstrap_servers)
    admin = admin_client(kafka)
    try:
        existing = set(admin.list_topics())
        missing = [t for t in config.topics if t not in existing]
        brokers = broker_count(admin) if missing else 0
    finally:
        admin.close()
    if not missing:
        return
    if brokers > 1:
        raise TopicMissingError(
            f"topic {', '.join(missing)} does not exist on {kafka.describe()}, a cluster of "
            f"{brokers} brokers; create it once with `runstream topics create` (replicated, "
            "retention.ms=-1), then start the job again"
        )
    create_topics(kafka, missing, partitions, {"retention.ms": RETENTION_FOREVER})


def _columns(df: DataFrame) -> dict[str, str | Column]:
    """Explicit source->target mapping; ``insertAll`` cannot skip generated columns."""
    return {c: f"s.`{c}`" for c in df.columns}


def _affected(metrics: DataFrame) -> int:
    """Rows a MERGE inserted or updated, from the metrics frame ``execute()`` returns."""
    row = metrics.first()
    return int(row["num_affected_rows"]) if row is not None else 0


def append(table: str, rows: DataFrame) -> None:
    """Append ``rows`` to ``table``: a blind append, which reads nothing of the table."""
    _write(rows, table, mode="append")


def _write(rows: DataFrame, table: str, *, mode: str, **options: str) -> None:
    writer = rows.write.format("delta").mode(mode).options(**options)
    if table.startswith("delta.`"):
        writer.save(table.removeprefix("delta.`").removesuffix("`"))
    else:
        writer.saveAsTable(table)


def in_buckets(buckets: list[int], alias: str = "") -> str:
    """A predicate on ``model_runs``' partition column that holds for its rows in ``buckets``
    (``_rs_bucket IN (...)``, literals, so Delta prunes every other partition)."""
    if not buckets:
        return "FALSE"
    return f"{alias}_rs_bucket IN ({', '.join(str(b) for b in sorted(buckets))})"


def merge_rejects(spark: SparkSession, tables: TableNames, rejects: DataFrame) -> int:
    """Insert-only on Kafka coordinates: a re-run batch, or the topics read again from a new
    checkpoint, quarantines nothing twice. The quarantine is small, so this search is cheap."""
    from delta.tables import DeltaTable

    return _affected(
        DeltaTable.forName(spark, tables.rejects).alias("t")
        .merge(rejects.alias("s"),
               "t.kafka_topic = s.kafka_topic AND t.kafka_partition = s.kafka_partition "
               "AND t.kafka_offset = s.kafka_offset")
        .whenNotMatchedInsert(values=_columns(rejects))
        .execute()
    )  # fmt: skip


def upsert_runs(
    spark: SparkSession,
    tables: TableNames,
    rows: DataFrame,
    *,
    buckets: list[int] | None = None,
    stored: DataFrame | None = None,
    metadata: str = "",
) -> None:
    """Insert ``rows`` (rows of model_runs, one per experiment_id) or replace the rows with
    their ids, by rewriting their buckets (``replace_buckets``). ``buckets`` (theirs) and
    ``stored`` (those buckets' rows now) are read when not given."""
    from pyspark.sql import functions as F

    if buckets is None:
        buckets = [r[0] for r in rows.select(F.expr(BUCKET)).distinct().collect()]
    if stored is None:
        stored = spark.table(tables.runs).where(in_buckets(buckets))
    kept = stored.drop(*GENERATED).join(rows.select("experiment_id"), "experiment_id", "left_anti")
    replace_buckets(spark, tables, kept.unionByName(rows), buckets, metadata)


def replace_buckets(
    spark: SparkSession, tables: TableNames, rows: DataFrame, buckets: list[int], metadata: str = ""
) -> None:
    """Make ``rows`` the whole content of ``buckets`` of ``model_runs``, in one commit.

    ``rows`` are the buckets' rows as they were, with the touched runs' rows replaced or
    added. A Delta ``replaceWhere`` overwrite on the partition column: one scan of those
    buckets (done already, to find the touched rows) and one write, where a MERGE would scan
    them twice more. It needs no idempotent-write key: a batch run again finds its events
    already folded into the rows and writes nothing.
    """
    from pyspark.sql import functions as F

    # One task per bucket, so one file per bucket. Generated columns are Delta's to compute.
    content = rows.drop(*GENERATED).repartition(F.expr(BUCKET))
    _write(content, tables.runs, mode="overwrite", replaceWhere=in_buckets(buckets),
           userMetadata=metadata)  # fmt: skip


def merge_pending(
    spark: SparkSession, tables: TableNames, waiting: DataFrame, recorded: DataFrame
) -> None:
    """Keep the state of runs still without a ``run_recorded`` (``waiting``, rows of
    model_run_pending), and drop the pending state of runs that have their row now
    (``recorded``: their experiment ids)."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    changes = waiting.withColumn("_drop", F.lit(False)).unionByName(
        recorded.withColumn("_drop", F.lit(True)), allowMissingColumns=True
    )
    grown = "NOT s._drop AND size(s._rs_event_ids) <> size(t._rs_event_ids)"
    (
        DeltaTable.forName(spark, tables.pending).alias("t")
        .merge(changes.alias("s"), "t.experiment_id = s.experiment_id")
        .whenMatchedDelete(condition="s._drop")
        .whenMatchedUpdate(condition=grown, set=_columns(waiting))
        .whenNotMatchedInsert(condition="NOT s._drop", values=_columns(waiting))
        .execute()
    )  # fmt: skip


def _commit_conflicts() -> tuple[type[BaseException], ...]:
    """Delta's commit-conflict exceptions (its Python classes share no common base)."""
    import delta.exceptions as dx

    return tuple(getattr(dx, name) for name in dx.__all__)


def process_batch(
    spark: SparkSession, tables: TableNames, raw: DataFrame, batch_id: int, *,
    resumed: bool = True,
) -> BatchReport:  # fmt: skip
    """Apply one micro-batch of Kafka records (see the module docstring) and say what it did.

    ``resumed``: the batch may have run before, in part: it is the first batch after a start
    (an earlier process may have died inside it), or a retry after a commit conflict. Its log
    append then checks the log for the batch's events instead of trusting the rows' fold
    state (``_apply``). ``start`` passes False for a batch that follows, in the same query, a
    batch that finished: Spark never runs such a batch twice.

    The batch is decoded once and cached; one aggregate gives every count the report needs
    and the buckets of the runs it touches, so the batch costs one Kafka read, that
    aggregate, one lookup and its writes. The report's ``lag`` is left unknown: only Spark's
    progress for the finished batch has it (see ``run_job``).
    """
    from pyspark.sql import functions as F

    started = time.monotonic()
    # Materialized once, and cut from its lineage: the decoding plan is large (a decoder per
    # schema version, a check per field), and every later query of the batch would otherwise
    # analyse and optimise it again, about a second each on two cores.
    reason = F.col(decode.REASON)
    classified = (
        decode.classify(raw)
        # the raw bytes are kept for the quarantine only: a valid event's are not stored
        .withColumn("key", F.when(reason.isNotNull(), F.col("key")))
        .withColumn("value", F.when(reason.isNotNull(), F.col("value")))
        .localCheckpoint()
    )
    try:
        found = _Found.of(classified)
        for why, count in sorted(found.rejected.items(), key=lambda kv: -kv[1])[:20]:
            log.warning("batch %d: %d record(s) quarantined: %s", batch_id, count, why)
        n_in, n_valid, n_rejects = found.records, found.valid, sum(found.rejected.values())
        decoded_s = time.monotonic() - started
        for attempt in range(1, CONFLICT_RETRIES + 1):
            try:
                n_runs = _apply(spark, tables, classified, found, resumed=resumed,
                                decoded_s=decoded_s)  # fmt: skip
                break
            except _commit_conflicts() as exc:
                # Another writer (OPTIMIZE, a rebuild) committed first. Every step is
                # idempotent, so running the whole batch again is safe; some of its writes
                # may have committed, so it runs again as a resumed batch.
                if attempt == CONFLICT_RETRIES:
                    raise
                resumed = True
                log.warning("batch %d: commit conflict (%s); retrying (%d/%d)",
                            batch_id, type(exc).__name__, attempt, CONFLICT_RETRIES)  # fmt: skip
        report = BatchReport(
            batch_id=batch_id, records_in=n_in, valid=n_valid, quarantined=n_rejects,
            runs_written=n_runs, seconds=time.monotonic() - started,
        )  # fmt: skip
        log.info(
            "batch %d: %d record(s) in, %d valid, %d quarantined, %d run row(s) written, %.1fs",
            batch_id, n_in, n_valid, n_rejects, n_runs, report.seconds,
        )  # fmt: skip
        return report
    finally:
        release(classified)


def release(checkpointed: DataFrame) -> None:
    """Free now the blocks a ``localCheckpoint()`` of this batch holds.

    ``DataFrame.unpersist()`` does not: a checkpointed frame is not in Spark's cache, so its
    blocks stayed in memory until the JVM's garbage collector and Spark's ContextCleaner got
    to its RDD (seen: every batch's decoded records still held after the batch, 18.6 MB for
    20,000 events, three batches' worth after three), crowding the next batches' memory.
    """
    plan = checkpointed._jdf.queryExecution().analyzed()
    if plan.getClass().getSimpleName() == "LogicalRDD":
        plan.rdd().unpersist(False)
    else:  # not a checkpoint after all: whatever cache it is in
        checkpointed.unpersist()


def unlogged(
    spark: SparkSession, tables: TableNames, events: DataFrame, days: list[date]
) -> DataFrame | None:
    """``events`` (rows of the log) that the log does not hold yet, by ``event_id``; None
    when it holds them all. ``days``: the events' days (``event_date``), from ``_Found``.

    Reads only the log's partitions of the events' days (literals, so Delta prunes the rest):
    a resumed batch's check costs what those days of the log cost, once per start, and
    nothing when a local log has no file of those days (``logs_any``): a backfill into a new
    lake, a start on a new day. Usually the log holds none of them, and ``events`` is the
    answer as it is.
    """
    if not days:
        return None
    if logs_any(tables, days) is False:
        return events
    listed = ", ".join(f"DATE'{day.isoformat()}'" for day in days)
    logged = spark.table(tables.events).where(f"event_date IN ({listed})").select("event_id")
    held = events.select("event_id").join(logged, "event_id", "left_semi")
    if held.isEmpty():
        return events
    rest = events.join(logged, "event_id", "left_anti")
    return None if rest.isEmpty() else rest


HELD_IDS = 200_000
"""The most run ids a batch brings to the driver (about 7 MB) to ask the tables' files which
runs they hold (``held``); a batch of more runs is looked up with Spark."""


@dataclass(frozen=True)
class _Found:
    """What one aggregate over a decoded batch tells: its counts, and its runs' buckets and
    ids, which the lookup and the writes depend on."""

    records: int
    valid: int
    rejected: dict[str, int]  # reason -> records
    buckets: list[int]  # of the valid events' runs
    runs: int  # distinct runs among the valid events
    run_ids: list[str] | None  # all of them, or None for a batch of over HELD_IDS runs
    recorded: int  # valid run_recorded events
    days: list[date]  # of the valid events (the log's event_date)

    @classmethod
    def of(cls, classified: DataFrame) -> _Found:
        from pyspark.sql import functions as F

        valid = F.col(decode.REASON).isNull()
        ids = F.collect_set(F.when(valid, F.col("experiment_id")))
        is_recorded = valid & (F.col("event_type") == contract.RUN_RECORDED)
        summary = (
            classified.groupBy(decode.REASON)
            .agg(F.count(F.lit(1)).alias("count"),
                 F.collect_set(F.when(valid, F.expr(BUCKET))).alias("buckets"),
                 F.size(ids).alias("runs"),
                 F.slice(ids, 1, HELD_IDS).alias("ids"),
                 F.count(F.when(is_recorded, 1)).alias("recorded"),
                 F.collect_set(F.when(valid, F.to_date("event_time"))).alias("days"))
            .collect()
        )  # fmt: skip
        by_reason = {row[decode.REASON]: int(row["count"]) for row in summary}
        good = [row for row in summary if row[decode.REASON] is None]
        runs = int(good[0]["runs"]) if good else 0
        run_ids = list(good[0]["ids"]) if good else []
        return cls(
            records=sum(by_reason.values()),
            valid=by_reason.pop(None, 0),
            rejected=by_reason,
            buckets=sorted(b for row in good for b in row["buckets"]),
            runs=runs,
            run_ids=run_ids if len(run_ids) == runs else None,
            recorded=int(good[0]["recorded"]) if good else 0,
            days=sorted(good[0]["days"]) if good else [],
        )


def _apply(
    spark: SparkSession, tables: TableNames, classified: DataFrame, found: _Found,
    *, resumed: bool, decoded_s: float,
) -> int:  # fmt: skip
    """The batch's writes (see the module docstring) for the runs of ``found``; returns how
    many model_runs rows were inserted or updated.

    The batch first asks the tables' files which of its runs they hold (``held``); when none,
    there is nothing to combine its events with: Spark reads nothing, and when no run comes
    twice either, every count the writes need is known from ``found``.

    The log append runs in a thread beside the rows' writes. Every event folded into a row
    still reaches the log: a batch that stopped after the rows' commit runs again as a
    resumed batch, when the rows hold its events already, so a resumed batch appends every
    event of the batch that the log lacks (``unlogged``), not only those the rows lack.
    """
    from pyspark.sql import functions as F

    clock = time.monotonic()
    steps = [f"decode {decoded_s:.1f}s"]

    def lap(step: str) -> None:
        nonlocal clock
        now = time.monotonic()
        steps.append(f"{step} {now - clock:.1f}s")
        clock = now

    if found.rejected:
        merge_rejects(spark, tables, decode.rejects(classified))
        lap("rejects")
    buckets = found.buckets
    if not buckets:
        return 0
    large = found.valid > LARGE_BATCH
    events = decode.events(classified)
    # An event's copies share its run, so a batch with no run twice has no event twice.
    once = found.runs == found.valid
    batch = events if once else events.dropDuplicates(["event_id"])
    holders = None if found.run_ids is None else held(tables, found.run_ids, buckets)
    stored: DataFrame | None = None
    known: DataFrame | None = None
    merged: DataFrame | None = None
    try:
        if holders is None or holders:
            ids = batch.select("experiment_id").distinct()
            touched = ids if large else F.broadcast(ids)  # a backfill's ids are no broadcast
            # Whole buckets, not cached: a large backfill touches every bucket, and only a
            # batch that updates runs reads them a second time (to rewrite them).
            stored = spark.table(tables.runs).where(in_buckets(buckets))
            rows = row_states(stored.join(touched, "experiment_id")).withColumn(STORED, F.lit(True))
            waiting = spark.table(tables.pending).join(touched, "experiment_id")
            # Read once, and cut from the tables: a frame that reads model_runs would
            # otherwise be planned again, Delta's file listing and all, after each write.
            known = rows.unionByName(
                pending_states(waiting).withColumn(WAS_PENDING, F.lit(True)),
                allowMissingColumns=True,
            ).localCheckpoint()
            folded = known.select(F.explode("_rs_event_ids").alias("event_id"))
            new = batch.join(folded, "event_id", "left_anti")
        else:
            new = batch  # the tables hold none of these runs, so none of these events
        unset = F.lit(None).cast("boolean")
        fresh = (
            event_states(new)
            .withColumn(FRESH, F.lit(True))
            .withColumn(WAS_PENDING, unset)
            .withColumn(STORED, unset)
        )
        if once and (known is None or known.isEmpty()):
            # New runs, one event each: each state is already its run's fold, and grouping
            # a large batch's wide rows by run is most of its cost.
            merged = fresh
        else:
            states = fresh if known is None else fresh.unionByName(known, allowMissingColumns=True)
            merged = merge_states(states, flags=(FRESH, WAS_PENDING, STORED)).localCheckpoint()
        flag = {name: F.coalesce(name, F.lit(False)) for name in (FRESH, WAS_PENDING, STORED)}
        recorded = F.col("run").isNotNull()
        if once and known is None:  # every event a new run's state: counted already
            counts = {"fresh": found.valid, "changed": found.recorded, "updated": 0, "moved": 0,
                      "waiting": found.valid - found.recorded}  # fmt: skip
        else:  # what each write below depends on, counted on the JVM in one pass
            counts = _counts(merged, flag, recorded)
        lap("lookup")
        n_runs = int(counts["changed"])
        said = run_counts_metadata(n_runs - counts["updated"], counts["updated"])

        def write_log() -> None:
            if resumed:
                to_log = unlogged(spark, tables, batch, found.days)
                if to_log is not None:
                    append(tables.events, to_log)
            elif counts["fresh"]:
                append(tables.events, new)

        # The log append runs beside the rows' writes (their order does not matter: see
        # the module docstring), and the batch ends when both have committed.
        with _beside(write_log):
            if counts["updated"]:
                upsert_runs(spark, tables, to_rows(merged), buckets=buckets, stored=stored,
                            metadata=said)  # fmt: skip
                lap("runs")
            elif n_runs:  # every row is new: no bucket needs rewriting
                rows_now = to_rows(merged.where(flag[FRESH]))
                if n_runs > len(buckets):  # several runs a bucket: one task, so one file, each
                    rows_now = rows_now.repartition(F.expr(BUCKET))
                _write(rows_now, tables.runs, mode="append", userMetadata=said, **APPENDED_FILES)
                lap("runs (append)")
            if counts["moved"] or counts["waiting"]:
                ids = merged.where(recorded & flag[WAS_PENDING]).select("experiment_id")
                merge_pending(spark, tables, to_pending(merged), ids)
                lap("pending")
        lap("events" + (" (resumed)" if resumed else ""))
    finally:
        for frame in (known, merged):
            if frame is not None:
                release(frame)
    log.debug("batch timings: %s", ", ".join(steps))
    return n_runs


def _counts(merged: DataFrame, flag: dict[str, Column], recorded: Column) -> dict[str, int]:
    """How many of the merged states are fresh, changed rows, updated rows, moved out of
    model_run_pending, and still waiting there."""
    from pyspark.sql import functions as F

    def count(condition: Column) -> Column:
        return F.sum(F.when(condition, 1).otherwise(0))

    row = merged.agg(
        count(flag[FRESH]).alias("fresh"),
        count(recorded & flag[FRESH]).alias("changed"),
        count(recorded & flag[FRESH] & flag[STORED]).alias("updated"),
        count(recorded & flag[WAS_PENDING]).alias("moved"),
        count(~recorded & flag[FRESH]).alias("waiting"),
    ).first()
    assert row is not None
    return {key: int(row[key] or 0) for key in ("fresh", "changed", "updated", "moved", "waiting")}


@contextmanager
def _beside(work: Callable[[], None]) -> Iterator[None]:
    """Run ``work`` in a thread while the block runs its own Spark jobs, and leave only when
    both are done; raise what either raised (the block's error first). Leaving with the
    thread still running would let a retry of the batch race its own log append.
    pyspark's ``InheritableThread`` gives the thread the caller's Spark local properties
    (the streaming batch's among them)."""
    from pyspark import InheritableThread

    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # raised again in the caller, below
            errors.append(exc)

    thread = InheritableThread(target=run, name="runstream-log-append", daemon=True)
    thread.start()
    try:
        yield
    except BaseException:  # the block's error is the one raised
        thread.join()
        if errors:
            log.warning("the log append failed too: %s", errors[0])
        raise
    thread.join()
    if errors:
        raise errors[0]


def start(
    spark: SparkSession,
    config: JobConfig,
    *,
    once: bool = False,
    trigger_seconds: float = 1.0,
    tracker: BatchTracker | None = None,
) -> StreamingQuery:
    """Create the tables and topics if needed and start the query.

    ``tracker`` learns when each batch begins and ends and keeps its report (``run_job``
    reads it); without one the batches only log.
    """
    if create_tables(spark, config.tables):
        from runstream.consumer.rebuild import rebuild

        log.info("refolding the event log once into the new fold state")
        rebuild(spark, config.tables)
    ensure_topics(config)
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", config.bootstrap_servers)
        .option("subscribe", ",".join(config.topics))
        .option("startingOffsets", "earliest")
    )
    for key, value in config.kafka_options:
        reader = reader.option(f"kafka.{key}", value)
    if config.max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", str(config.max_offsets_per_trigger))
    tables = config.tables
    finished: list[int] = []  # the last batch this query finished, once there is one

    def run_batch(raw: DataFrame, batch_id: int) -> None:
        # Spark runs a batch again only after a failure, which ends the query: a batch after
        # one this query finished is new; only the first batch of a start may be resumed.
        resumed = finished != [batch_id - 1]
        if tracker is not None:
            tracker.begin(batch_id)
        report = None
        try:
            report = process_batch(spark, tables, raw, batch_id, resumed=resumed)
        finally:
            if tracker is not None:
                tracker.finish(report)
        finished[:] = [batch_id]

    writer = (
        reader.load()
        .writeStream.queryName("runstream-consume")
        .option("checkpointLocation", config.checkpoint)
        .foreachBatch(run_batch)
    )
    if once:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{trigger_seconds} seconds")
    return writer.start()


POLL_SECONDS = 1
"""How often ``run_job`` looks at the query: the delay of a batch line and of a Ctrl-C."""
LAG_WAIT_SECONDS = 10.0
"""How long a finished batch's report waits for Spark's progress (its lag) before it is
handed over without one."""


class _Interrupts:
    """Counts SIGINTs (and SIGTERMs) for the job's loop to act on between its calls into the JVM.

    A ``KeyboardInterrupt`` raised in the middle of a py4j call makes py4j log a traceback, so
    only a third SIGINT (a job that does not react) raises one here. Spark's JVM never sees
    the signal: pyspark starts it with SIGINT ignored.
    """

    def __init__(self) -> None:
        self.count = 0

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count >= 3:
            raise KeyboardInterrupt

    @contextmanager
    def installed(self) -> Iterator[_Interrupts]:
        """Handle SIGINT for the block (only the main thread can; elsewhere this is a no-op)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        # SIGTERM (a container or a scheduler stopping the job) is a Ctrl-C too: same
        # graceful stop after the running batch, same summary.
        previous = {
            sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def run_job(
    config: JobConfig,
    *,
    once: bool,
    trigger_seconds: float = 1.0,
    on_batch: Callable[[BatchReport], None] | None = None,
    jvm_log: str | os.PathLike[str] | None = None,
) -> JobSummary:
    """``runstream consume``: run until done (``once``) or until interrupted; say what it did.

    ``on_batch`` gets each finished batch's report, lag included, in this (the calling)
    thread, in batch order. ``jvm_log`` is ``spark_session``'s: a file for the JVM's own
    output. A failed query raises ``StreamingQueryException``.

    Ctrl-C (SIGINT, when called from the main thread): the first stops the query once the
    running batch is done, stops Spark and returns the summary with ``interrupted`` set. A
    second raises ``KeyboardInterrupt`` within ``POLL_SECONDS`` and leaves the query and Spark
    alone: stopping them would cancel the batch's Spark jobs under its feet, and py4j would
    log the failed callback's traceback. The JVM exits with this process instead, and the cut
    batch runs again at the next start (every step is idempotent).
    """
    from runstream.consumer.session import spark_session

    spark = spark_session("runstream-consume", jvm_log=jvm_log)
    with _Interrupts().installed() as interrupts:
        try:
            summary = _run(spark, config, interrupts, once=once,
                           trigger_seconds=trigger_seconds, on_batch=on_batch)  # fmt: skip
        except KeyboardInterrupt:
            raise
        except BaseException:
            spark.stop()
            raise
        spark.stop()
        return summary


def _run(
    spark: SparkSession,
    config: JobConfig,
    interrupts: _Interrupts,
    *,
    once: bool,
    trigger_seconds: float,
    on_batch: Callable[[BatchReport], None] | None,
) -> JobSummary:
    """Start the query, poll it from this thread until it ends, report, summarize."""
    tracker = BatchTracker()
    query = start(spark, config, once=once, trigger_seconds=trigger_seconds, tracker=tracker)
    started = time.monotonic()
    delivered: list[BatchReport] = []
    waiting: list[tuple[BatchReport, float]] = []  # finished; Spark's progress not seen yet

    def deliver(final: bool) -> None:
        now = time.monotonic()
        waiting.extend((report, now) for report in tracker.take())
        if not waiting:
            return
        progress = {p.batchId: p for p in query.recentProgress}
        while waiting:
            report, since = waiting[0]
            seen = progress.get(report.batch_id)
            if seen is None and not final and now - since < LAG_WAIT_SECONDS:
                return  # the JVM is still finishing the batch (commit log, progress event)
            report = replace(report, lag=None if seen is None else kafka_lag(seen))
            waiting.pop(0)
            delivered.append(report)
            if on_batch is not None:
                on_batch(report)

    stopping = False
    stop_after: int | None = None  # the batch to finish before stopping, if any
    try:
        while not query.awaitTermination(POLL_SECONDS):
            deliver(final=False)
            if not interrupts.count:
                continue
            if interrupts.count >= 2:
                raise KeyboardInterrupt  # here, not in the signal handler: see _Interrupts
            if not stopping:
                # Finish the newest batch first, whether it is still inside foreachBatch or
                # the JVM is still writing its commit (its progress is not out yet), so the
                # stop cuts no MERGE or checkpoint write short.
                stopping = True
                latest = tracker.latest
                if latest is not None and latest not in {r.batch_id for r in delivered}:
                    stop_after = latest
                    log.warning("interrupted: stopping after batch %d (Ctrl-C again to stop "
                                "at once)", stop_after)  # fmt: skip
            if stop_after is None or any(r.batch_id == stop_after for r in delivered):
                query.stop()
    except KeyboardInterrupt:
        raise  # see run_job
    except BaseException:
        if query.isActive:
            query.stop()
        raise
    deliver(final=True)
    return JobSummary.of(
        delivered,
        seconds=time.monotonic() - started,
        runs_table=config.tables.runs,
        runs_in_table=_count_runs(spark, config.tables),
        interrupted=interrupts.count > 0,
    )


def _count_runs(spark: SparkSession, tables: TableNames) -> int | None:
    """Rows in model_runs. Cheap: Delta answers ``count()`` from its log's file statistics."""
    try:
        return spark.table(tables.runs).count()
    except Exception as exc:  # a summary without the count beats no summary
        log.warning("could not count %s: %s", tables.runs, exc)
        return None
