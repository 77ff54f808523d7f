"""Fold a run's events into its row: the one rule shared by the stream and ``rebuild``.

The ordering rule. Events of one ``experiment_id`` are ordered by ``(event_time, event_id)``:
``event_time`` is set once by the producer when it creates the event (never on retry, flush or
replay), and ties on time are broken by the id. Arrival order (Kafka offsets, topics, batches,
the live topic versus the replay topic) plays no part, so every replica of the log folds to
the same row whatever order the events arrived in, and a late event that is older than what the
table shows changes nothing it should not. The price: producers' clocks decide "newer", so an
update made on a machine whose clock runs behind can lose to an older one. Per column group the
newest event that states a value wins:

- the run's columns come from the newest ``run_recorded`` event;
- ``is_production`` from the newest of ``run_promoted`` events and ``run_recorded`` events that
  state it (null there means "not stated"); false when no event states it;
- ``notes`` likewise from ``run_annotated`` events and ``run_recorded`` events.

A run with only promotions or annotations so far has no row yet; its state waits in
``model_run_pending`` and applies as soon as its ``run_recorded`` event arrives.

Fold state. The fold is kept as a *state* per run that combines without the events it came
from: per column group the value and the ordering key of the event that set it
(``_rs_run_from``, ``_rs_production_from``, ``_rs_notes_from``), the set of event ids folded
(``_rs_event_ids``), the first and last broker timestamps and the newest key. Combining two
states takes, per group, the value with the greater key, the union of the id sets, the min and
the max: each is a max or a union, so combining is associative, commutative and idempotent. A
micro-batch therefore folds only its own events and combines them with the rows of the runs it
touched (``merge_states``), never re-reading the log, and gets exactly what folding every event
from scratch gives (what ``rebuild`` does, with the same functions); a batch applied twice, a
duplicate delivery or a replayed topic changes nothing, because its events are already in the
id sets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runstream import contract
from runstream.contract import fields

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

KEY = "struct(event_time, event_id)"
"""An event's ordering key; structs compare field by field."""
KEY_TYPE = "STRUCT<event_time: TIMESTAMP, event_id: STRING>"
STATE_COLUMNS = ("_rs_run_from", "_rs_production_from", "_rs_notes_from", "_rs_event_ids")
"""The fold state a ``model_runs`` row keeps beside the bookkeeping columns."""


def event_states(events: DataFrame) -> DataFrame:
    """Rows of model_run_events -> one state each (what folding that event alone gives)."""
    from pyspark.sql import functions as F

    recorded = F.col("event_type") == contract.RUN_RECORDED
    prod = F.when(recorded, F.col("run.is_production")).when(
        F.col("event_type") == contract.RUN_PROMOTED, F.col("promotion.is_production")
    )
    notes = F.when(recorded, F.col("run.notes")).when(
        F.col("event_type") == contract.RUN_ANNOTATED, F.col("annotation.notes")
    )
    key = F.expr(KEY)
    return events.select(
        "experiment_id",
        F.when(recorded, F.col("run")).alias("run"),
        F.when(recorded, key).alias("_rs_run_from"),
        prod.alias("_prod"),
        F.when(prod.isNotNull(), key).alias("_rs_production_from"),
        notes.alias("_notes"),
        F.when(notes.isNotNull(), key).alias("_rs_notes_from"),
        F.array("event_id").alias("_rs_event_ids"),
        F.col("kafka_timestamp").alias("_rs_first_seen_at"),
        F.col("kafka_timestamp").alias("_rs_last_seen_at"),
        key.alias("_last"),
    )


def row_states(rows: DataFrame) -> DataFrame:
    """Rows of model_runs -> their states (the inverse of ``to_rows``)."""
    from pyspark.sql import functions as F

    run = F.struct(*[F.col(name) for name in fields.field_names()])
    return rows.select(
        "experiment_id",
        run.alias("run"),
        "_rs_run_from",
        F.when(F.col("_rs_production_from").isNotNull(), F.col("is_production")).alias("_prod"),
        "_rs_production_from",
        F.when(F.col("_rs_notes_from").isNotNull(), F.col("notes")).alias("_notes"),
        "_rs_notes_from",
        "_rs_event_ids",
        "_rs_first_seen_at",
        "_rs_last_seen_at",
        _last_key(),
    )


def pending_states(rows: DataFrame) -> DataFrame:
    """Rows of model_run_pending -> their states (no run yet)."""
    from pyspark.sql import functions as F

    return rows.select(
        "experiment_id",
        F.lit(None).cast(f"STRUCT<{fields.struct_type()}>").alias("run"),
        F.lit(None).cast(KEY_TYPE).alias("_rs_run_from"),
        F.col("is_production").alias("_prod"),
        "_rs_production_from",
        F.col("notes").alias("_notes"),
        "_rs_notes_from",
        "_rs_event_ids",
        "_rs_first_seen_at",
        "_rs_last_seen_at",
        _last_key(),
    )


def _last_key() -> Column:
    from pyspark.sql import functions as F

    return F.struct(
        F.col("_rs_last_event_time").alias("event_time"),
        F.col("_rs_last_event_id").alias("event_id"),
    ).alias("_last")


def merge_states(states: DataFrame, flags: tuple[str, ...] = ()) -> DataFrame:
    """States -> one state per experiment_id: per group the value with the greatest key, the
    union of the event ids, the first and last broker timestamps, the newest key; and each of
    the boolean ``flags`` columns true when it is for any state merged (the job marks where
    states came from)."""
    from pyspark.sql import functions as F

    def newest(value: str, key: str) -> Column:
        return F.expr(f"max_by({value}, {key}) FILTER (WHERE {key} IS NOT NULL)").alias(value)

    return states.groupBy("experiment_id").agg(
        newest("run", "_rs_run_from"),
        F.max("_rs_run_from").alias("_rs_run_from"),
        newest("_prod", "_rs_production_from"),
        F.max("_rs_production_from").alias("_rs_production_from"),
        newest("_notes", "_rs_notes_from"),
        F.max("_rs_notes_from").alias("_rs_notes_from"),
        F.array_sort(F.array_distinct(F.flatten(F.collect_list("_rs_event_ids")))).alias(
            "_rs_event_ids"
        ),
        F.min("_rs_first_seen_at").alias("_rs_first_seen_at"),
        F.max("_rs_last_seen_at").alias("_rs_last_seen_at"),
        F.max("_last").alias("_last"),
        *[F.max(flag).alias(flag) for flag in flags],
    )


def to_rows(states: DataFrame) -> DataFrame:
    """Merged states of runs that have a ``run_recorded`` -> rows of model_runs."""
    from pyspark.sql import functions as F

    columns = [F.col("experiment_id")]
    for name in fields.field_names():
        if name == "is_production":
            default = F.expr(fields.FOLD_DEFAULTS[name])
            columns.append(F.coalesce("_prod", default).alias(name))
        elif name == "notes":
            columns.append(F.col("_notes").alias(name))
        else:
            columns.append(F.col("run")[name].alias(name))
    columns += [
        F.size("_rs_event_ids").cast("long").alias("_rs_event_count"),
        F.col("_last.event_id").alias("_rs_last_event_id"),
        F.col("_last.event_time").alias("_rs_last_event_time"),
        F.col("_rs_first_seen_at"),
        F.col("_rs_last_seen_at"),
        *[F.col(c) for c in STATE_COLUMNS],
    ]
    return states.where(F.col("run").isNotNull()).select(*columns)


def to_pending(states: DataFrame) -> DataFrame:
    """Merged states of runs still without a ``run_recorded`` -> rows of model_run_pending."""
    from pyspark.sql import functions as F

    return states.where(F.col("run").isNull()).select(
        "experiment_id",
        F.col("_prod").alias("is_production"),
        "_rs_production_from",
        F.col("_notes").alias("notes"),
        "_rs_notes_from",
        "_rs_event_ids",
        "_rs_first_seen_at",
        "_rs_last_seen_at",
        F.col("_last.event_time").alias("_rs_last_event_time"),
        F.col("_last.event_id").alias("_rs_last_event_id"),
    )
