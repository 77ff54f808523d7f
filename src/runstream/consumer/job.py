"""The streaming job: both topics -> event log -> model_runs, exactly once in effect.

Per micro-batch (``foreachBatch``, which Spark may run again after a failure):

1. split records into valid events and rejects (``decode.split``);
2. MERGE rejects into the quarantine, keyed by Kafka coordinates (insert only);
3. MERGE events into the event log, keyed by ``event_id`` (insert only), so re-sent, replayed
   and re-run events are stored once;
4. fold the full log of every run this batch touched (``projection.project``) and MERGE the
   result into ``model_runs`` on ``experiment_id``, updating a row only when its fold changed.

Every step is idempotent, so a batch that runs twice, or a restart from the checkpoint after a
``kill -9``, changes nothing the first run did not. The checkpoint is the only progress record:
Spark does not commit offsets to Kafka. For the same reason a batch that loses a Delta commit
race (OPTIMIZE or a rebuild committed first) is simply run again, up to ``CONFLICT_RETRIES``.

Each batch logs one line (records in, valid, rejected, run rows written, seconds) and the
``progress`` listener logs Spark's view of it, including the Kafka lag in records.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runstream import environment_variables as env
from runstream.consumer import decode, progress
from runstream.consumer.projection import project
from runstream.consumer.tables import TableNames, create_tables
from runstream.consumer.topics import create_topics

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.streaming.query import StreamingQuery

log = logging.getLogger(__name__)

CONFLICT_RETRIES = 3


@dataclass(frozen=True)
class JobConfig:
    """Where the job reads, writes and keeps its checkpoint."""

    bootstrap_servers: str
    topics: tuple[str, ...]
    tables: TableNames
    checkpoint: str
    max_offsets_per_trigger: int | None = None
    kafka_options: tuple[tuple[str, str], ...] = ()

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
    ) -> JobConfig:
        lake_path = env.lake_dir(lake)
        table_name = env.RUNSTREAM_TABLE.get(table)
        tables = TableNames.in_catalog(table_name) if table_name else TableNames.at_path(lake_path)
        return cls(
            bootstrap_servers=env.RUNSTREAM_BOOTSTRAP_SERVERS.get(bootstrap_servers),
            topics=(env.RUNSTREAM_TOPIC.get(topic), env.RUNSTREAM_REPLAY_TOPIC.get(replay_topic)),
            tables=tables,
            checkpoint=checkpoint or str(Path(lake_path).absolute() / "_checkpoints" / "consume"),
            max_offsets_per_trigger=max_offsets_per_trigger,
        )

    def with_(self, **changes: Any) -> JobConfig:
        return replace(self, **changes)


def ensure_topics(config: JobConfig, partitions: int = 1) -> None:
    """Create the job's topics when missing (the checkpoint fixes the subscription)."""
    create_topics(config.bootstrap_servers, config.topics, partitions)


def _columns(df: DataFrame) -> dict[str, str | Column]:
    """Explicit source->target mapping; ``insertAll`` cannot skip generated columns."""
    return {c: f"s.`{c}`" for c in df.columns}


def _affected(metrics: DataFrame) -> int:
    """Rows a MERGE inserted or updated, from the metrics frame ``execute()`` returns."""
    row = metrics.first()
    return int(row["num_affected_rows"]) if row is not None else 0


def merge_rejects(spark: SparkSession, tables: TableNames, rejects: DataFrame) -> int:
    """Insert-only on Kafka coordinates: a re-run batch quarantines nothing twice."""
    from delta.tables import DeltaTable

    return _affected(
        DeltaTable.forName(spark, tables.rejects).alias("t")
        .merge(rejects.alias("s"),
               "t.kafka_topic = s.kafka_topic AND t.kafka_partition = s.kafka_partition "
               "AND t.kafka_offset = s.kafka_offset")
        .whenNotMatchedInsert(values=_columns(rejects))
        .execute()
    )  # fmt: skip


def merge_events(spark: SparkSession, tables: TableNames, events: DataFrame) -> int:
    """Insert-only on ``event_id``; ``events`` must hold each event_id once."""
    from delta.tables import DeltaTable

    return _affected(
        DeltaTable.forName(spark, tables.events).alias("t")
        .merge(events.alias("s"), "t.event_id = s.event_id")
        .whenNotMatchedInsert(values=_columns(events))
        .execute()
    )  # fmt: skip


def merge_runs(spark: SparkSession, tables: TableNames, state: DataFrame) -> int:
    """Upsert folded rows (one per experiment_id), rewriting a row only when its fold changed.

    The event log only grows, so a fold over more events has a larger ``_rs_event_count``; an
    unchanged count and last event means the same set of events and so the same row.
    """
    from delta.tables import DeltaTable

    changed = "s._rs_event_count <> t._rs_event_count OR s._rs_last_event_id <> t._rs_last_event_id"
    return _affected(
        DeltaTable.forName(spark, tables.runs).alias("t")
        .merge(state.alias("s"), "t.experiment_id = s.experiment_id")
        .whenMatchedUpdate(condition=changed, set=_columns(state))
        .whenNotMatchedInsert(values=_columns(state))
        .execute()
    )  # fmt: skip


def _commit_conflicts() -> tuple[type[BaseException], ...]:
    """Delta's commit-conflict exceptions (its Python classes share no common base)."""
    import delta.exceptions as dx

    return tuple(getattr(dx, name) for name in dx.__all__)


def process_batch(spark: SparkSession, tables: TableNames, raw: DataFrame, batch_id: int) -> None:
    """Apply one micro-batch of Kafka records (see the module docstring).

    The batch is decoded once and cached; one aggregate gives every count the log line needs,
    so the batch costs one Kafka read, that aggregate, and the MERGEs.
    """
    started = time.monotonic()
    classified = decode.classify(raw).persist()
    try:
        by_reason = {
            row[decode.REASON]: int(row["count"])
            for row in classified.groupBy(decode.REASON).count().collect()
        }
        n_in = sum(by_reason.values())
        n_valid = by_reason.pop(None, 0)
        n_rejects = sum(by_reason.values())
        for reason, count in sorted(by_reason.items(), key=lambda kv: -kv[1])[:20]:
            log.warning("batch %d: %d record(s) quarantined: %s", batch_id, count, reason)
        for attempt in range(1, CONFLICT_RETRIES + 1):
            try:
                n_runs = _apply(spark, tables, classified, n_valid=n_valid, n_rejects=n_rejects)
                break
            except _commit_conflicts() as exc:
                # Another writer (OPTIMIZE, a rebuild) committed first. Every step is
                # idempotent, so running the whole batch again is safe.
                if attempt == CONFLICT_RETRIES:
                    raise
                log.warning("batch %d: commit conflict (%s); retrying (%d/%d)",
                            batch_id, type(exc).__name__, attempt, CONFLICT_RETRIES)  # fmt: skip
        log.info(
            "batch %d: %d record(s) in, %d valid event(s), %d rejected, %d run row(s) written, "
            "%.1fs",
            batch_id, n_in, n_valid, n_rejects, n_runs, time.monotonic() - started,
        )  # fmt: skip
    finally:
        classified.unpersist()


def _apply(
    spark: SparkSession, tables: TableNames, classified: DataFrame, *, n_valid: int, n_rejects: int
) -> int:
    """The batch's three MERGEs; returns how many model_runs rows were inserted or updated."""
    from pyspark.sql import functions as F

    clock = time.monotonic()
    steps: list[str] = []

    def lap(step: str) -> None:
        nonlocal clock
        now = time.monotonic()
        steps.append(f"{step} {now - clock:.1f}s")
        clock = now

    if n_rejects:
        merge_rejects(spark, tables, decode.rejects(classified))
        lap("rejects")
    n_runs = 0
    if n_valid:
        events = decode.events(classified)
        merge_events(spark, tables, events.dropDuplicates(["event_id"]))
        lap("events")
        touched = events.select("experiment_id").distinct()
        log_rows = spark.table(tables.events).join(F.broadcast(touched), "experiment_id")
        n_runs = merge_runs(spark, tables, project(log_rows))
        lap("runs")
    log.debug("MERGE timings: %s", ", ".join(steps))
    return n_runs


def start(
    spark: SparkSession,
    config: JobConfig,
    *,
    once: bool = False,
    trigger_seconds: float = 5.0,
) -> StreamingQuery:
    """Create the tables and topics if needed and start the query."""
    create_tables(spark, config.tables)
    ensure_topics(config)
    progress.install(spark)
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
    writer = (
        reader.load()
        .writeStream.queryName("runstream-consume")
        .option("checkpointLocation", config.checkpoint)
        .foreachBatch(lambda df, batch_id: process_batch(spark, tables, df, batch_id))
    )
    if once:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{trigger_seconds} seconds")
    return writer.start()


def run_job(config: JobConfig, *, once: bool, trigger_seconds: float = 5.0) -> None:
    """``runstream consume``: run until done (``once``) or until interrupted."""
    from runstream.consumer.session import spark_session

    spark = spark_session("runstream-consume")
    query = start(spark, config, once=once, trigger_seconds=trigger_seconds)
    try:
        query.awaitTermination()
    except KeyboardInterrupt:
        query.stop()
