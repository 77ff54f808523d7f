"""Backfill historical runs through the replay topic.

Historical results (the seed's "40 windows x 25 models") already sit in a file, which is their
durable copy, so the backfill sends straight to Kafka (acks=all, idempotent) instead of through
the spool, and can simply be run again after any failure: ids are derived from the content, so
a second run of the same file adds nothing.

- ``experiment_id``: the record's own, else a UUIDv5 of the run's identity (model name and
  version, commodity, training window, run time);
- ``event_id``: a UUIDv5 of the experiment id and the validated payload, so a corrected record
  is a new event (and wins, being newer) while an unchanged one is a duplicate the log drops.

Input: JSON Lines (one run per line) or a JSON array (``runstream.run_files``), with the same
fields ``emit_run`` takes.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from runstream import contract, kafka_client
from runstream import environment_variables as env
from runstream.errors import ValidationError

log = logging.getLogger(__name__)

NAMESPACE = uuid.UUID("6f1c1a52-2f0e-4c55-9d0a-5f2b8f0b7a11")
_IDENTITY = ("model_name", "model_version", "commodity", "training_start_date",
             "training_end_date", "run_timestamp")  # fmt: skip


@dataclass(frozen=True)
class BackfillResult:
    sent: int
    rejected: list[tuple[int, str]]


def stable_experiment_id(run: Mapping[str, Any]) -> str:
    identity = "|".join(str(run.get(k)) for k in _IDENTITY)
    return str(uuid.uuid5(NAMESPACE, identity))


def prepare_event(record: Any) -> dict[str, Any]:
    """Validate one historical run and build its replay event with content-derived ids."""
    if not isinstance(record, Mapping):
        raise ValidationError(
            [f"a run must be a JSON object of columns, got {type(record).__name__} {record!r:.60}"]
        )
    if record.get("experiment_id") is None and record.get("run_timestamp") is None:
        raise ValidationError(
            ["run_timestamp is required for a backfill (it dates the historical run)"]
        )
    experiment_id, payload = contract.prepare_run(record, commodities=env.commodities())
    if record.get("experiment_id") is None:
        experiment_id = stable_experiment_id(payload)
    event = contract.build_event(
        contract.RUN_RECORDED, experiment_id, run=payload, source="backfill"
    )
    canonical = json.dumps(payload, sort_keys=True, default=str)
    event["event_id"] = str(uuid.uuid5(NAMESPACE, f"{experiment_id}|{canonical}"))
    return event


def backfill(
    records: Iterable[Any],
    *,
    bootstrap_servers: str | None = None,
    topic: str | None = None,
    kafka_config: Mapping[str, Any] | None = None,
    kafka_properties: str | os.PathLike[str] | None = None,
) -> BackfillResult:
    """Send every valid record to the replay topic; return counts and the rejected records.

    Connection and security settings come from ``runstream.kafka_client`` (the properties file
    ``kafka_properties``, default ``RUNSTREAM_KAFKA_PROPERTIES``). Raises, before sending
    anything, BrokerUnreachableError when no broker answers and KafkaAuthError when one answers
    but refuses the credentials or the TLS handshake, each within about 15 seconds.
    """
    client = kafka_client.load(
        bootstrap_servers, properties_file=kafka_properties, kafka_config=kafka_config
    )
    events: list[dict[str, Any]] = []
    rejected: list[tuple[int, str]] = []
    for number, record in enumerate(records, 1):
        try:
            events.append(prepare_event(record))
        except ValidationError as exc:
            rejected.append((number, "; ".join(exc.problems)))
    if not events:
        return BackfillResult(0, rejected)
    nothing_sent = "nothing was sent; run the backfill again once it answers"
    kafka_client.check_connection(client, what=nothing_sent)
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    try:
        producer = KafkaProducer(
            **{
                "linger_ms": 20,
                "max_block_ms": 10_000,
                **client.producer_settings(),
                "acks": "all",
                "enable_idempotence": True,
            }
        )
    except KafkaError as exc:
        reason = client.scrub(f"{type(exc).__name__}: {exc}")
        raise kafka_client.auth_error(client, [reason], nothing_sent) from None
    target = env.RUNSTREAM_REPLAY_TOPIC.get(topic)
    try:
        futures = [
            producer.send(target, key=e["experiment_id"].encode(), value=contract.encode(e))
            for e in events
        ]
        producer.flush(timeout=120)
        sent = sum(1 for f in futures if f.succeeded())
    except KafkaError as exc:
        reason = client.scrub(f"{type(exc).__name__}: {exc}")
        raise kafka_client.auth_error(
            client,
            [reason],
            "some events may have been sent; the backfill is idempotent, run it again",
        ) from None
    finally:
        producer.close(timeout=10)
    if sent < len(events):
        log.error("%d of %d backfill events were not acknowledged; run the backfill again "
                  "(it is idempotent)", len(events) - sent, len(events))  # fmt: skip
    return BackfillResult(sent, rejected)
