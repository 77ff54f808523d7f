"""Pick the Kafka broker that tests and tools talk to, in a fixed order:

1. an explicit bootstrap address in ``RUNSTREAM_TEST_BOOTSTRAP`` (a broker you run yourself);
2. testcontainers' Kafka container, when a Docker engine answers;
3. the project's own broker from Maven Central jars (``LocalBroker``), which needs only Java.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

from runstream.environment_variables import RUNSTREAM_TEST_BOOTSTRAP

log = logging.getLogger(__name__)

EXPLICIT_ENV = RUNSTREAM_TEST_BOOTSTRAP.name
KAFKA_IMAGE = "apache/kafka:4.1.1"


def docker_available() -> tuple[bool, str]:
    """Whether a Docker engine answers, and if not, why not (for skip messages)."""
    try:
        import docker
    except ImportError:
        return False, "the docker package is not installed"
    try:
        client = docker.from_env(timeout=3)
        client.ping()
    except Exception as exc:
        return False, f"no Docker engine answers ({type(exc).__name__}: {exc})"
    return True, "Docker engine answers"


@contextlib.contextmanager
def testcontainers_broker() -> Iterator[str]:
    """A Kafka container (KRaft) through testcontainers; yields its bootstrap address."""
    from testcontainers.kafka import KafkaContainer

    with KafkaContainer(KAFKA_IMAGE).with_kraft() as container:
        yield container.get_bootstrap_server()


@contextlib.contextmanager
def local_broker(state_dir: Path | None = None) -> Iterator[str]:
    """The project's jar broker on free ports in a throwaway state folder."""
    from runstream.devtools.kafka_broker import LocalBroker, free_port

    with contextlib.ExitStack() as stack:
        if state_dir is None:
            state_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rs-kafka-")))
        broker = LocalBroker(state_dir, port=free_port(), controller_port=free_port())
        broker.up()
        stack.callback(broker.down)
        yield broker.bootstrap


@contextlib.contextmanager
def any_broker() -> Iterator[tuple[str, str]]:
    """Yields (bootstrap, how it was chosen) following the module's order."""
    explicit = RUNSTREAM_TEST_BOOTSTRAP.get()
    if explicit:
        yield explicit, f"{EXPLICIT_ENV}={explicit}"
        return
    ok, why = docker_available()
    if ok:
        with testcontainers_broker() as bootstrap:
            yield bootstrap, "testcontainers"
        return
    log.info("using the local jar broker: %s", why)
    with local_broker() as bootstrap:
        yield bootstrap, "local jar broker"
