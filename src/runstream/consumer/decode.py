"""Kafka records -> decoded events and rejects, all on the JVM (``from_avro``), no Python UDF.

Each record's single-object header names its writer schema; every known version is decoded
with its own writer schema and mapped onto the newest shape (fields a version lacks take their
schema default), so old and new producers can share a topic and a micro-batch.
Records that fail (no header, unknown fingerprint, undecodable body, oversized, invalid) become
rows for the quarantine table with a reason; they never stop the stream.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runstream import contract

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

MAX_RECORD_BYTES = 2 * 1024 * 1024

_NON_NEGATIVE = ("mae_1day", "mae_7day", "mae_14day", "rmse_14day", "mape_14day",
                 "execution_time_seconds", "cost_estimate_usd")  # fmt: skip
_FRACTIONS = ("directional_accuracy", "dm_pvalue")
_REQUIRED = ("model_name", "model_version", "run_timestamp", "model_type", "training_start_date",
             "training_end_date", "forecast_horizon_days", "commodity")  # fmt: skip
_FINITE = (*_NON_NEGATIVE, *_FRACTIONS, "dm_test_vs_naive")

EVENT_COLUMNS = ("event_id", "event_type", "event_time", "experiment_id", "source",
                 "schema_version", "producer", "run", "promotion", "annotation")  # fmt: skip
KAFKA_COLUMNS = ("kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp")


def _reasons() -> list[Column]:
    """One ``when(problem, message)`` per check on a decoded event (null when it holds)."""
    from pyspark.sql import functions as F

    run = F.col("run")
    checks = [
        (F.col("event_id").isNull() | (F.trim("event_id") == ""), "event_id is empty"),
        (F.col("experiment_id").isNull() | (F.trim("experiment_id") == ""),
         "experiment_id is empty"),
        (F.col("event_time").isNull(), "event_time is missing"),
        (~F.col("event_type").isin(*contract.EVENT_TYPES),
         F.concat(F.lit("unknown event_type "), F.coalesce("event_type", F.lit("null")))),
        ((F.col("event_type") == contract.RUN_RECORDED) & run.isNull(),
         "run_recorded without run"),
        ((F.col("event_type") == contract.RUN_PROMOTED) & F.col("promotion").isNull(),
         "run_promoted without promotion"),
        ((F.col("event_type") == contract.RUN_ANNOTATED) & F.col("annotation").isNull(),
         "run_annotated without annotation"),
    ]  # fmt: skip
    recorded = (F.col("event_type") == contract.RUN_RECORDED) & run.isNotNull()
    for name in _REQUIRED:
        checks.append((recorded & run[name].isNull(), f"run.{name} is missing"))
    for name in ("model_name", "model_version", "model_type", "commodity"):
        checks.append((recorded & (F.trim(run[name]) == ""), f"run.{name} is empty"))
    checks.append((recorded & (run["forecast_horizon_days"] <= 0),
                   "run.forecast_horizon_days must be positive"))  # fmt: skip
    checks.append((recorded & (run["training_start_date"] > run["training_end_date"]),
                   "run.training_start_date is after training_end_date"))  # fmt: skip
    for name in _FINITE:
        checks.append((recorded & (F.isnan(run[name]) | F.abs(run[name]).eqNullSafe(
            F.lit(float("inf")))), f"run.{name} is not finite"))  # fmt: skip
    for name in _NON_NEGATIVE:
        checks.append((recorded & (run[name] < 0), f"run.{name} is negative"))
    for name in _FRACTIONS:
        checks.append((recorded & ((run[name] < 0) | (run[name] > 1)),
                       f"run.{name} is outside [0, 1]"))  # fmt: skip
    return [F.when(cond, F.lit(msg) if isinstance(msg, str) else msg) for cond, msg in checks]


def split(raw: DataFrame) -> tuple[DataFrame, DataFrame]:
    """Split a Kafka micro-batch into (valid events, rejects)."""
    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import from_avro

    base = raw.select(
        F.col("key"), F.col("value"),
        F.col("topic").alias("kafka_topic"), F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"), F.col("timestamp").alias("kafka_timestamp"),
        F.length("value").alias("value_bytes"),
        F.substring("value", 1, 2).alias("_magic"),
        F.substring("value", 3, 8).alias("_fp"),
        F.expr(f"substring(value, {contract.HEADER_SIZE + 1})").alias("_body"),
    )  # fmt: skip
    versions = contract.versions()
    fps = [F.lit(v.fingerprint) for v in versions]
    header_reason = (
        F.when(F.col("value").isNull(), "empty value")
        .when(F.col("value_bytes") > MAX_RECORD_BYTES,
              F.format_string(f"oversized record: %d bytes (limit {MAX_RECORD_BYTES})",
                              F.col("value_bytes")))
        .when(F.col("_magic") != F.lit(contract.MAGIC),
              "no Avro single-object header (expected C3 01)")
        .when(~F.col("_fp").isin(*fps),
              F.concat(F.lit("unknown writer schema fingerprint "), F.hex("_fp")))
    )  # fmt: skip
    base = base.withColumn("_reason", header_reason)

    newest = versions[-1]
    newest_fields = {f["name"] for f in newest.parsed["fields"]}
    decoded_parts = []
    for v in versions:
        rows = base.where(F.col("_reason").isNull() & (F.col("_fp") == F.lit(v.fingerprint)))
        ev = from_avro(F.col("_body"), v.json, {"mode": "PERMISSIVE"})
        have = {f["name"] for f in v.parsed["fields"]}
        cols = []
        for name in EVENT_COLUMNS:
            if name == "schema_version":
                cols.append(F.lit(v.version).alias(name))
            elif name in have:
                cols.append(F.col("_ev")[name].alias(name))
            elif name == "source":
                cols.append(F.lit("emit").alias(name))  # the schema default for older writers
            else:
                cols.append(F.lit(None).alias(name))
        assert newest_fields >= set(EVENT_COLUMNS) - {"schema_version"}
        part = rows.withColumn("_ev", ev).select(
            "key", "value", "value_bytes", *KAFKA_COLUMNS,
            F.when(F.col("_ev").isNull(), F.lit("Avro body does not decode")).alias("_reason"),
            *cols,
        )  # fmt: skip
        decoded_parts.append(part)
    decoded = decoded_parts[0]
    for part in decoded_parts[1:]:
        decoded = decoded.unionByName(part)

    reasons = _reasons()
    checked = decoded.withColumn(
        "_reason", F.coalesce(F.col("_reason"), F.concat_ws("; ", *reasons))
    ).withColumn("_reason", F.when(F.col("_reason") == "", None).otherwise(F.col("_reason")))

    good = checked.where(F.col("_reason").isNull()).select(*EVENT_COLUMNS, *KAFKA_COLUMNS)
    reject_cols = ["key", "value", "value_bytes", *KAFKA_COLUMNS, "_reason"]
    rejects = (
        base.where(F.col("_reason").isNotNull())
        .select(*reject_cols)
        .unionByName(checked.where(F.col("_reason").isNotNull()).select(*reject_cols))
    )
    rejects = rejects.select(
        *KAFKA_COLUMNS, "key", "value", "value_bytes",
        F.col("_reason").alias("reason"), F.current_timestamp().alias("rejected_at"),
    )  # fmt: skip
    return good, rejects
