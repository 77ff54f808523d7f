"""Kafka records -> decoded events and rejects, all on the JVM (``from_avro``), no Python UDF.

Each record's single-object header names its writer schema; every known version is decoded
with its own writer schema and mapped onto the newest shape (fields a version lacks take their
schema default), so old and new producers can share a topic and a micro-batch.
Records that fail (no header, unknown fingerprint, undecodable body, oversized, invalid) become
rows for the quarantine table with a reason; they never stop the stream.

``classify`` does all of this in one projection (no union of per-version branches), so a
micro-batch is read from Kafka once and can be cached once; ``events`` and ``rejects`` are two
filters over that cached frame.
"""

from __future__ import annotations

import functools
import weakref
from typing import TYPE_CHECKING, Any

from runstream import contract
from runstream.contract import fields

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

# Larger records are quarantined without decoding: a run is a few kilobytes, and the producer
# refuses events over 1 MiB, so anything this big is corrupt or not ours.
MAX_RECORD_BYTES = 2 * 1024 * 1024

EVENT_COLUMNS = ("event_id", "event_type", "event_time", "experiment_id", "source",
                 "schema_version", "producer", "run", "promotion", "annotation")  # fmt: skip
KAFKA_COLUMNS = ("kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp")
REASON = "_reason"


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
    # The run's own checks come from the field table: required fields present, then each
    # rule's SQL (null optional values pass).
    recorded = (F.col("event_type") == contract.RUN_RECORDED) & run.isNotNull()
    for f in fields.run_fields():
        if f.required:
            checks.append((recorded & run[f.name].isNull(), f"run.{f.name} is missing"))
    for _, sql, message in fields.sql_checks(prefix="run."):
        checks.append((recorded & ~F.expr(sql), message))
    return [F.when(cond, F.lit(msg) if isinstance(msg, str) else msg) for cond, msg in checks]


def _header_reason() -> Column:
    """Why a record cannot even be handed to the Avro decoder (null when it can)."""
    from pyspark.sql import functions as F

    fps = [F.lit(v.fingerprint) for v in contract.versions()]
    return (
        F.when(F.col("value").isNull(), "empty value")
        .when(F.length("value") > MAX_RECORD_BYTES,
              F.format_string(f"oversized record: %d bytes (limit {MAX_RECORD_BYTES})",
                              F.length("value")))
        .when(F.substring("value", 1, 2) != F.lit(contract.MAGIC),
              "no Avro single-object header (expected C3 01)")
        .when(~F.substring("value", 3, 8).isin(*fps),
              F.concat(F.lit("unknown writer schema fingerprint "),
                       F.hex(F.substring("value", 3, 8))))
    )  # fmt: skip


def _run_field_names(version: contract.SchemaVersion) -> set[str]:
    (run,) = [f for f in version.parsed["fields"] if f["name"] == "run"]
    return {f["name"] for f in next(t for t in run["type"] if isinstance(t, dict))["fields"]}


def _in_newest_shape(run: Column, version: contract.SchemaVersion) -> Column:
    """A ``run`` struct decoded with ``version``'s schema, with the fields later versions
    added (all optional) as nulls, so every version's runs coalesce into one type."""
    from pyspark.sql import functions as F

    own = _run_field_names(version)
    if own == set(fields.field_names()):
        return run
    return F.when(run.isNotNull(), F.struct(*[
        (run[f.name] if f.name in own else F.lit(None).cast(f.sql_type)).alias(f.name)
        for f in fields.run_fields()
    ]))  # fmt: skip


def classify(raw: DataFrame) -> DataFrame:
    """Kafka records -> one row each: Kafka coordinates, raw bytes, the event columns in the
    newest shape (null when undecodable) and ``_reason`` (null for a valid event)."""
    out = raw
    for columns in _stages(raw.sparkSession.sparkContext):
        out = out.select(*columns)
    return out


_STAGE_CACHE: weakref.WeakKeyDictionary[Any, tuple[list[Column], ...]] = weakref.WeakKeyDictionary()


def _stages(context: Any) -> tuple[list[Column], ...]:
    """``classify``'s projections, built once per SparkContext: they are thousands of py4j
    calls (a decoder per schema version, a check per field), about 0.8 s per micro-batch if
    built each time, and, being unresolved expressions, they apply to any batch."""
    if context not in _STAGE_CACHE:
        _STAGE_CACHE[context] = _build_stages()
    return _STAGE_CACHE[context]


def _build_stages() -> tuple[list[Column], ...]:
    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import from_avro

    versions = contract.versions()
    newest_fields = {f["name"] for f in versions[-1].parsed["fields"]}
    missing = set(EVENT_COLUMNS) - {"schema_version"} - newest_fields
    if missing:
        raise AssertionError(f"the newest event schema lacks {sorted(missing)}")

    base = [
        F.col("key"), F.col("value"),
        F.col("topic").alias("kafka_topic"), F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"), F.col("timestamp").alias("kafka_timestamp"),
        F.length("value").alias("value_bytes"),
    ]  # fmt: skip
    kept = ["key", "value", "value_bytes", *KAFKA_COLUMNS]
    with_header = [F.col(c) for c in kept] + [_header_reason().alias("_header")]

    # One decoder per writer version; CASE WHEN evaluates a branch only for its own rows, so
    # each record is decoded once, and never when its header is already bad.
    body = F.expr(f"substring(value, {contract.HEADER_SIZE + 1})")
    fp = F.substring("value", 3, 8)
    # The decoders run inside a generator (``inline`` of a one-element array) on purpose: it
    # is an optimizer barrier. Without it, a filter on ``_reason`` (which reads many decoded
    # fields) is pushed below the projection and each field reference inlines its own
    # from_avro call: hundreds of decodes per record and generated code too large to compile.
    decoders = [
        F.when(F.col("_header").isNull() & (fp == F.lit(v.fingerprint)),
               from_avro(body, v.json, {"mode": "PERMISSIVE"})).alias(f"_v{v.version}")
        for v in versions
    ]  # fmt: skip
    decoded = [F.col(c) for c in [*kept, "_header"]] + [F.inline(F.array(F.struct(*decoders)))]
    # PERMISSIVE from_avro turns a body that fails to decode into a struct of nulls, not a
    # null; event_id is a required string in every version, so a real decode never leaves
    # it null, and such structs are turned into null here.
    names = [f"_v{v.version}" for v in versions]
    nulled = [F.col(c) for c in [*kept, "_header"]] + [
        F.when(F.col(name)["event_id"].isNotNull(), F.col(name)).alias(name) for name in names
    ]

    any_decoded = functools.reduce(
        lambda a, b: a | b, [F.col(f"_v{v.version}").isNotNull() for v in versions]
    )

    def field(name: str) -> Column:
        if name == "schema_version":
            return F.coalesce(*[
                F.when(F.col(f"_v{v.version}").isNotNull(), F.lit(v.version)) for v in versions
            ])  # fmt: skip
        present = [
            _in_newest_shape(F.col(f"_v{v.version}")["run"], v) if name == "run"
            else F.col(f"_v{v.version}")[name]
            for v in versions
            if name in {f["name"] for f in v.parsed["fields"]}
        ]  # fmt: skip
        if name == "source":  # the schema default for writers older than the field
            present.append(F.when(any_decoded, F.lit("emit")))
        return present[0] if len(present) == 1 else F.coalesce(*present)

    undecodable = F.col("_header").isNull() & ~any_decoded
    # A second barrier: the checks below read the newest-shape columns dozens of times; as
    # plain attributes they stay small, inlined coalesces would overflow a 64 KB JVM method.
    shaped = [F.col(c) for c in [*kept, "_header"]] + [
        F.inline(F.array(F.struct(
            F.when(undecodable, F.lit("Avro body does not decode")).alias("_decode"),
            *[field(name).alias(name) for name in EVENT_COLUMNS],
        ))),
    ]  # fmt: skip
    checks = F.concat_ws("; ", *_reasons())
    final = [F.col(c) for c in ["key", "value", "value_bytes", *KAFKA_COLUMNS, *EVENT_COLUMNS]]
    final.append(F.coalesce("_header", "_decode", F.when(checks != "", checks)).alias(REASON))
    return base, with_header, decoded, nulled, shaped, final


def events(classified: DataFrame) -> DataFrame:
    """The valid events of a ``classify`` result, in the event log's column order."""
    from pyspark.sql import functions as F

    return classified.where(F.col(REASON).isNull()).select(*EVENT_COLUMNS, *KAFKA_COLUMNS)


def rejects(classified: DataFrame) -> DataFrame:
    """The rejected records of a ``classify`` result, in the quarantine's column order."""
    from pyspark.sql import functions as F

    return classified.where(F.col(REASON).isNotNull()).select(
        *KAFKA_COLUMNS, "key", "value", "value_bytes",
        F.col(REASON).alias("reason"), F.current_timestamp().alias("rejected_at"),
    )  # fmt: skip
