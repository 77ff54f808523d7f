"""The test suite's fixtures, loaded as a pytest plugin (``pytest_plugins`` in
``tests/conftest.py``): one real Kafka broker and one SparkSession per session, a fresh topic
per test, an emitter on a throwaway spool, a producer factory.

The session also points ``RUNSTREAM_HOME`` at a temporary folder, so no test (nor a
subprocess it starts) reads or writes the user's own spool, broker or lake. The jar cache
(``RUNSTREAM_CACHE_DIR``) is left alone: it is shared and read-only in effect.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runstream import environment_variables as env
from runstream.devtools.testkit import kafka_producer

_HOME: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    _HOME.append(tempfile.mkdtemp(prefix="runstream-test-home-"))
    os.environ[env.RUNSTREAM_HOME.name] = _HOME[0]
    for var in (env.RUNSTREAM_SPOOL_DIR, env.RUNSTREAM_LAKE, env.RUNSTREAM_TABLE):
        os.environ.pop(var.name, None)


def pytest_unconfigure(config: pytest.Config) -> None:
    for home in _HOME:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """One real broker for the session (see ``runstream.devtools.brokers`` for which)."""
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


@pytest.fixture()
def producer_factory(kafka_bootstrap: str) -> Iterator[Callable[..., Any]]:
    """Raw kafka-python producers on the session broker, closed at the end of the test."""
    made: list[Any] = []

    def make(**settings: Any) -> Any:
        producer = kafka_producer(kafka_bootstrap, **settings)
        made.append(producer)
        return producer

    yield make
    for producer in made:
        producer.close(timeout=5)


@pytest.fixture()
def emitter(tmp_path: Path) -> Any:
    """An emitter on a throwaway spool that never sends (unit tests read the spool)."""
    from runstream.producer.emitter import Emitter

    return Emitter(spool_dir=tmp_path / "spool", send=False)


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One SparkSession (local, Delta, Kafka and Avro connectors) for the session."""
    from runstream.consumer.session import spark_session

    session = spark_session("runstream-tests", shuffle_partitions=1)
    yield session
    session.stop()
