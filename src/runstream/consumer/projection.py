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

A run with only promotions or annotations so far has no row yet; its events wait in the log and
apply as soon as its ``run_recorded`` event arrives. The fold is a pure function of the set of
events, so re-running a batch or replaying history converges on the same table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runstream import contract
from runstream.contract import fields

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

_ORDER = "struct(event_time, event_id)"


def project(events: DataFrame) -> DataFrame:
    """``events`` (rows of model_run_events) -> rows of model_runs, one per experiment_id."""
    from pyspark.sql import functions as F

    prod = (
        f"CASE event_type WHEN '{contract.RUN_RECORDED}' THEN run.is_production "
        f"WHEN '{contract.RUN_PROMOTED}' THEN promotion.is_production END"
    )
    notes = (
        f"CASE event_type WHEN '{contract.RUN_RECORDED}' THEN run.notes "
        f"WHEN '{contract.RUN_ANNOTATED}' THEN annotation.notes END"
    )
    folded = events.groupBy("experiment_id").agg(
        F.expr(
            f"max_by(run, {_ORDER}) FILTER (WHERE event_type = '{contract.RUN_RECORDED}')"
        ).alias("run"),
        F.expr(f"max_by({prod}, {_ORDER}) FILTER (WHERE ({prod}) IS NOT NULL)").alias("_prod"),
        F.expr(f"max_by({notes}, {_ORDER}) FILTER (WHERE ({notes}) IS NOT NULL)").alias("_notes"),
        F.count(F.lit(1)).alias("_rs_event_count"),
        F.expr(f"max({_ORDER})").alias("_last"),
        F.min("kafka_timestamp").alias("_rs_first_seen_at"),
        F.max("kafka_timestamp").alias("_rs_last_seen_at"),
    )
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
        F.col("_rs_event_count"),
        F.col("_last.event_id").alias("_rs_last_event_id"),
        F.col("_last.event_time").alias("_rs_last_event_time"),
        F.col("_rs_first_seen_at"),
        F.col("_rs_last_seen_at"),
    ]
    return folded.where(F.col("run").isNotNull()).select(*columns)
