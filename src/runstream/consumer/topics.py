"""Create Kafka topics: the job's two topics, and fresh uniquely named ones for tests and
benchmarks. Spark fixes a checkpoint's subscription at its first start, so the topics must exist
before the query does. Needs kafka-python only, not Spark."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Mapping


def create_topics(
    bootstrap_servers: str,
    names: Iterable[str],
    partitions: int = 1,
    config: Mapping[str, str] | None = None,
) -> None:
    """Create each topic in ``names`` that does not exist yet (replication factor 1), with
    the topic-level ``config`` (e.g. ``{"max.message.bytes": "200"}``)."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        existing = set(admin.list_topics())
        missing = [n for n in dict.fromkeys(names) if n not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(
                    [NewTopic(n, partitions, 1, topic_configs=dict(config or {})) for n in missing]
                )
    finally:
        admin.close()


def fresh_topic(
    bootstrap_servers: str,
    prefix: str = "t",
    partitions: int = 1,
    config: Mapping[str, str] | None = None,
) -> str:
    """Create a topic with a new unique name and return the name."""
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    create_topics(bootstrap_servers, [name], partitions, config)
    return name
