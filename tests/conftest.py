"""Session-wide real components: one Kafka broker, one SparkSession, fresh topics per test.

Tests are split by what they need: ``tests/unit`` (nothing), ``tests/broker`` (Kafka),
``tests/spark`` (Kafka and Spark). The broker is chosen by ``runstream.devtools.brokers``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    from runstream.devtools.brokers import any_broker

    with any_broker() as (bootstrap, how):
        print(f"\nKafka for this session: {bootstrap} ({how})")
        yield bootstrap


@pytest.fixture()
def new_topic(kafka_bootstrap: str) -> Callable[..., str]:
    """Create a fresh, uniquely named topic and return its name."""
    from runstream.consumer.topics import fresh_topic

    def make(prefix: str = "t", partitions: int = 1) -> str:
        return fresh_topic(kafka_bootstrap, prefix, partitions)

    return make


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


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``condition`` until true; fail naming ``what`` at the deadline. No bare sleeps."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    from runstream.consumer.session import spark_session

    session = spark_session("runstream-tests", shuffle_partitions=1)
    yield session
    session.stop()
