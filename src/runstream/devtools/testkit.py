"""Helpers the tests and the benchmarks share: wait for a condition, read and write raw
Kafka records, read a spool, percentiles. Needs kafka-python and fastavro only (no pytest, no
Spark), so a benchmark script can import it as well as the test fixtures in
``runstream.devtools.pytest_plugin``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from runstream import contract

if TYPE_CHECKING:
    from runstream.producer.spool import Spool

# The brokers the tests and benchmarks start accept records up to 8 MiB (see LocalBroker), so
# oversized-record tests reach the consumer instead of being refused by the producer.
MAX_REQUEST_BYTES = 8 * 1024 * 1024


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``condition`` until true; fail naming ``what`` at the deadline. No bare sleeps."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def kafka_producer(bootstrap: str, **settings: Any) -> Any:
    """A raw kafka-python producer (acks=all, large records allowed); ``settings`` override."""
    from kafka import KafkaProducer

    defaults: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "acks": "all",
        "linger_ms": 5,
        "max_request_size": MAX_REQUEST_BYTES,
    }
    return KafkaProducer(**{**defaults, **settings})


def produce(
    bootstrap: str, records: Iterable[tuple[str, bytes | None, bytes | None]], **settings: Any
) -> int:
    """Send (topic, key, value) records as they are; returns how many were acknowledged."""
    producer = kafka_producer(bootstrap, **settings)
    try:
        futures = [producer.send(t, key=k, value=v) for t, k, v in records]
        producer.flush(timeout=300)
        for future in futures:
            future.get(timeout=60)
    finally:
        producer.close(timeout=10)
    return len(futures)


def read_topic(bootstrap: str, topic: str, expected: int, timeout_s: float = 60.0) -> list[Any]:
    """Read records from the start of ``topic`` until ``expected`` arrived or the deadline."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
    finally:
        consumer.close()
    return records


def spooled_events(spool: Spool) -> list[dict[str, Any]]:
    """The events waiting in ``spool``, decoded, oldest first."""
    events = []
    for entry in spool.pending():
        record = spool.read(entry)
        assert record is not None, f"{entry.path} vanished or failed its check"
        events.append(contract.decode(record[1]))
    return events


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile, ``q`` in [0, 100]."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]
