"""Create and list Kafka topics: the job's two topics, and fresh uniquely named ones for tests
and benchmarks. Spark fixes a checkpoint's subscription at its first start, so the topics must
exist before the query does. Needs kafka-python only, not Spark.

The topics are the source of the event log: ``runstream rebuild`` and a job started from a new
checkpoint replay them from the earliest offset. So they are created with ``retention.ms=-1``
(keep forever) unless told otherwise: a topic whose records expire before a new checkpoint has
read them would silently lose runs. Connection and security settings come from
``runstream.kafka_client``, like every other part's.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from runstream.kafka_client import KafkaClientConfig, admin_client

RETENTION_FOREVER = "-1"


@dataclass(frozen=True)
class TopicInfo:
    """A topic as the cluster reports it."""

    name: str
    partitions: int
    replication_factor: int


def _client(kafka: str | KafkaClientConfig) -> KafkaClientConfig:
    return KafkaClientConfig(kafka) if isinstance(kafka, str) else kafka


def broker_count(admin: Any) -> int:
    """How many brokers the cluster has (from a metadata answer)."""
    return len(admin.describe_cluster().get("brokers") or [])


def create_topics(
    kafka: str | KafkaClientConfig,
    names: Iterable[str],
    partitions: int = 1,
    config: Mapping[str, str] | None = None,
    replication_factor: int = 1,
) -> list[str]:
    """Create each topic in ``names`` that does not exist yet, with the topic-level ``config``
    (e.g. ``{"max.message.bytes": "200"}``); returns the names it created.

    ``kafka``: a bootstrap address (plaintext) or a ``KafkaClientConfig``. Raises
    BrokerUnreachableError or KafkaAuthError within a bounded time when the cluster cannot be
    reached with these settings.
    """
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = admin_client(_client(kafka))
    try:
        existing = set(admin.list_topics())
        missing = [n for n in dict.fromkeys(names) if n not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(
                    [
                        NewTopic(
                            n, partitions, replication_factor, topic_configs=dict(config or {})
                        )
                        for n in missing
                    ]
                )
        return missing
    finally:
        admin.close()


def describe_topics(
    kafka: str | KafkaClientConfig, names: Iterable[str] | None = None
) -> tuple[list[TopicInfo], int]:
    """The cluster's topics (all, or those of ``names`` that exist) and its broker count."""
    admin = admin_client(_client(kafka))
    try:
        wanted = list(names) if names is not None else None
        existing = [t for t in admin.list_topics() if wanted is None or t in wanted]
        infos = []
        if existing:
            for topic in admin.describe_topics(sorted(existing)):
                parts = topic.get("partitions") or []
                replicas = max((len(p.get("replica_nodes") or []) for p in parts), default=0)
                infos.append(TopicInfo(topic["name"], len(parts), replicas))
        return sorted(infos, key=lambda i: i.name), broker_count(admin)
    finally:
        admin.close()


def fresh_topic(
    kafka: str | KafkaClientConfig,
    prefix: str = "t",
    partitions: int = 1,
    config: Mapping[str, str] | None = None,
) -> str:
    """Create a topic with a new unique name and return the name."""
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    create_topics(kafka, [name], partitions, config)
    return name
