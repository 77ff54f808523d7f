"""Poison records are quarantined with a reason; good records beside them land; the query lives.

Fault: one micro-batch mixes good runs with random bytes, an empty (tombstone) value, a
truncated Avro body, a valid header followed by garbage, an event written with a schema the
consumer does not know (it lacks a required field), a run_recorded without its run, runs that
bypass producer validation (forecast_horizon_days=0, directional_accuracy=1.5, empty
model_name), an unknown event type and an oversized record. Load: 5 good + 12 bad records, then
3 more good ones. Invariants: every bad record is in model_run_rejects once, with its Kafka
coordinates, raw bytes and a reason naming the problem; every good run is in model_runs; the
continuous query is still active after both batches and has no exception.
"""

from __future__ import annotations

import copy
import io
import json
import os
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from runstream import contract
from runstream.consumer import decode
from runstream.consumer.job import start
from runstream.devtools.testkit import produce
from tests.spark.support import (
    T0,
    build_fastavro_event,
    encoded,
    job_config,
    key_of,
    new_id,
    recorded,
    rows_by_id,
)


def _schema_without(field_name: str) -> dict[str, Any]:
    """The newest event schema minus one required envelope field: a writer we do not know."""
    schema = copy.deepcopy(json.loads(contract.latest().json))
    schema["fields"] = [f for f in schema["fields"] if f["name"] != field_name]
    return schema


def _encode_with(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    parsed = fastavro.parse_schema(schema)
    fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))
    buf = io.BytesIO()
    buf.write(contract.MAGIC + fp)
    fastavro.schemaless_writer(buf, parsed, record)
    return buf.getvalue()


def _avro_long(n: int) -> bytes:
    """Avro's zig-zag varint encoding of ``n`` (how a string's length is written)."""
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, "long", n)
    return buf.getvalue()


def _poison(topic: str) -> list[tuple[str, bytes | None, bytes | None, str]]:
    """(topic, key, value, expected reason fragment) for each bad record."""
    good = recorded(new_id("victim"), T0)
    good_bytes = encoded(good)
    no_experiment = {k: v for k, v in recorded(new_id(), T0).items() if k != "experiment_id"}
    oversized = build_fastavro_event(notes="x" * (decode.MAX_RECORD_BYTES + 1024))
    bad_run = build_fastavro_event(forecast_horizon_days=0)
    bad_fraction = build_fastavro_event(directional_accuracy=1.5)
    empty_name = build_fastavro_event(model_name="  ")
    no_run = {**recorded(new_id(), T0), "run": None}
    odd_type = {**recorded(new_id(), T0), "event_type": "run_exploded"}
    return [
        (topic, b"k1", b"\x00" + os.urandom(63), "no Avro single-object header"),
        (topic, b"k2", None, "empty value"),
        (topic, b"k3", good_bytes[: contract.HEADER_SIZE + 20], "does not decode"),
        (topic, b"k4", good_bytes[: contract.HEADER_SIZE] + b"\xff" * 64, "does not decode"),
        (topic, b"k5", _encode_with(_schema_without("experiment_id"), no_experiment),
         "unknown writer schema fingerprint"),
        (topic, key_of(no_run), encoded(no_run), "run_recorded without run"),
        (topic, key_of(bad_run), encoded(bad_run), "forecast_horizon_days must be positive"),
        (topic, key_of(bad_fraction), encoded(bad_fraction),
         "directional_accuracy is outside [0, 1]"),
        (topic, key_of(empty_name), encoded(empty_name), "model_name is empty"),
        (topic, key_of(odd_type), encoded(odd_type), "unknown event_type run_exploded"),
        (topic, key_of(oversized), encoded(oversized), "oversized record"),
        (topic, b"k12", b"\xc3\x01", "unknown writer schema fingerprint"),
        # a valid header, then a body whose first string claims 1 GiB: without Avro's length
        # limits the decoder's allocation kills the JVM (OutOfMemoryError)
        (topic, b"k13", good_bytes[: contract.HEADER_SIZE] + _avro_long(2**30) + b"x" * 16,
         "does not decode"),
    ]  # fmt: skip


def test_poison_is_quarantined_and_the_stream_keeps_running(
    spark: Any, kafka_bootstrap: str, new_topic: Any, tmp_path: Path
) -> None:
    live, replay = new_topic("poison-live"), new_topic("poison-replay")
    config = job_config(kafka_bootstrap, live, replay, tmp_path)
    tables = config.tables
    good = [recorded(new_id("good"), T0, mae_14day=1.0 + i) for i in range(5)]
    poison = _poison(live)
    mixed: list[tuple[str, bytes | None, bytes | None]] = [
        (live if i % 2 else replay, key_of(e), encoded(e)) for i, e in enumerate(good)
    ]
    for i, (topic, key, value, _) in enumerate(poison):  # interleave: one batch, both kinds
        mixed.insert(min(len(mixed), 2 * i + 1), (topic, key, value))
    produce(kafka_bootstrap, mixed)

    query = start(spark, config, once=False, trigger_seconds=0.5)
    try:
        query.processAllAvailable()
        assert query.isActive and query.exception() is None

        rejects = [r.asDict() for r in spark.table(tables.rejects).collect()]
        assert len(rejects) == len(poison)
        assert len({(r["kafka_topic"], r["kafka_partition"], r["kafka_offset"]) for r in rejects}) \
            == len(poison)  # fmt: skip
        by_value = {bytes(r["value"]) if r["value"] is not None else None: r for r in rejects}
        for _, key, value, fragment in poison:
            row = by_value[value]
            assert fragment in row["reason"], (fragment, row["reason"])
            assert (bytes(row["key"]) if row["key"] is not None else None) == key
            assert row["value_bytes"] == (len(value) if value is not None else None)
            assert row["kafka_topic"] == live and row["kafka_offset"] >= 0
        runs = rows_by_id(spark, tables.runs)
        assert set(runs) == {e["experiment_id"] for e in good}
        assert spark.table(tables.events).count() == len(good)

        more = [recorded(new_id("later"), T0) for _ in range(3)]
        produce(kafka_bootstrap, [(replay, key_of(e), encoded(e)) for e in more])
        query.processAllAvailable()
        assert query.isActive and query.exception() is None
        runs = rows_by_id(spark, tables.runs)
        assert set(runs) == {e["experiment_id"] for e in good + more}
        assert spark.table(tables.rejects).count() == len(poison)
        reasons = sorted({r["reason"] for r in rejects})
        print("\nquarantined:\n  " + "\n  ".join(reasons))
    finally:
        query.stop()
