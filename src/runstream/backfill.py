"""Backfill historical runs through the replay topic.

Historical results (the seed's "40 windows x 25 models") already sit in a file, which is their
durable copy, so the backfill sends straight to Kafka (acks=all, idempotent) instead of through
the spool, and can simply be run again after any failure: ids are derived from the content, so
a second run of the same file adds nothing.

- ``experiment_id``: the record's own, else a UUIDv5 of the run's identity (model name and
  version, commodity, training window, run time);
- ``event_id``: a UUIDv5 of the experiment id and the validated payload, so a corrected record
  is a new event (and wins, being newer) while an unchanged one is a duplicate the log drops.

Input: JSON Lines (one run per line) or a JSON array, with the same fields ``emit_run`` takes.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runstream import contract
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


def read_runs(path: Path) -> Iterator[dict[str, Any]]:
    """Runs from a JSON Lines file or a JSON array file."""
    text = path.read_text("utf-8")
    if text.lstrip().startswith("["):
        yield from json.loads(text)
        return
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValidationError([f"line {number} of {path} is not JSON: {exc.msg}"]) from exc


def stable_experiment_id(run: Mapping[str, Any]) -> str:
    identity = "|".join(str(run.get(k)) for k in _IDENTITY)
    return str(uuid.uuid5(NAMESPACE, identity))


def prepare_event(record: Mapping[str, Any]) -> dict[str, Any]:
    """Validate one historical run and build its replay event with content-derived ids."""
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
    records: Iterable[Mapping[str, Any]],
    *,
    bootstrap_servers: str | None = None,
    topic: str | None = None,
    kafka_config: Mapping[str, Any] | None = None,
) -> BackfillResult:
    """Send every valid record to the replay topic; return counts and the rejected records."""
    from kafka import KafkaProducer

    events: list[dict[str, Any]] = []
    rejected: list[tuple[int, str]] = []
    for number, record in enumerate(records, 1):
        try:
            events.append(prepare_event(record))
        except ValidationError as exc:
            rejected.append((number, str(exc)))
    producer = KafkaProducer(
        bootstrap_servers=env.RUNSTREAM_BOOTSTRAP_SERVERS.get(bootstrap_servers).split(","),
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        **dict(kafka_config or {}),
    )
    target = env.RUNSTREAM_REPLAY_TOPIC.get(topic)
    try:
        futures = [
            producer.send(target, key=e["experiment_id"].encode(), value=contract.encode(e))
            for e in events
        ]
        producer.flush(timeout=120)
        sent = sum(1 for f in futures if f.succeeded())
    finally:
        producer.close(timeout=10)
    if sent < len(events):
        log.error("%d of %d backfill events were not acknowledged; run the backfill again "
                  "(it is idempotent)", len(events) - sent, len(events))  # fmt: skip
    return BackfillResult(sent, rejected)
