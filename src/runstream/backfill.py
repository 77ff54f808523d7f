"""Backfill historical runs through the replay topic.

Historical results (the seed's "40 windows x 25 models") already sit in a file, which is their
durable copy, so the backfill sends straight to Kafka (acks=all, idempotent producer, retried
by kafka-python) instead of through the spool, and can simply be run again after any failure:
ids are derived from the content, so a second run of the same file adds nothing.

- ``experiment_id``: the record's own, else a UUIDv5 of the run's identity (model name and
  version, commodity, training window, run time);
- ``event_id``: a UUIDv5 of the experiment id and the validated payload, so a corrected record
  is a new event (and wins, being newer) while an unchanged one is a duplicate the log drops.

Input: any iterable of dicts (``backfill``), or a file (``backfill_file``: JSON Lines, JSON,
CSV or Parquet, read streaming by ``runstream.backfill_sources``). Records are validated,
built and sent one at a time, with at most ``WINDOW`` unacknowledged at once, so memory stays
flat whatever the size of the input. An invalid record is counted and listed (where it is and
why), never sent, and never stops the rest. For a file, a ledger of acknowledged event ids
(``runstream.backfill_ledger``) lets a second run skip what was sent ("already sent").
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runstream import contract, kafka_client
from runstream import environment_variables as env
from runstream.backfill_ledger import Ledger
from runstream.backfill_sources import Row, open_source, parse_mapping, remap
from runstream.errors import BrokerUnreachableError, ValidationError

log = logging.getLogger(__name__)

NAMESPACE = uuid.UUID("6f1c1a52-2f0e-4c55-9d0a-5f2b8f0b7a11")
_IDENTITY = ("model_name", "model_version", "commodity", "training_start_date",
             "training_end_date", "run_timestamp")  # fmt: skip
WINDOW = 1000
"""Most events sent but not yet acknowledged at once (kafka-python's buffer is unbounded)."""
DELIVERY_TIMEOUT_S = 60.0
"""How long kafka-python keeps retrying one event before it gives up on the broker."""
NOTHING_SENT = "nothing was sent; run the backfill again once it answers"


@dataclass(frozen=True)
class Problem:
    """A record that was not sent: where it is (``line 4``, ``row 9``, ``record 3``), why."""

    where: str
    reason: str


@dataclass
class BackfillResult:
    """What a backfill did. ``invalid_rows`` and ``failed_rows`` list the first
    ``max_listed`` of ``invalid`` and ``failed``; ``to_send`` counts, in a dry run, the
    valid records that would have been sent."""

    topic: str
    dry_run: bool = False
    read: int = 0
    sent: int = 0
    skipped: int = 0
    to_send: int = 0
    invalid: int = 0
    failed: int = 0
    invalid_rows: list[Problem] = field(default_factory=list)
    failed_rows: list[Problem] = field(default_factory=list)
    ledger: Path | None = None
    notes: list[str] = field(default_factory=list)
    max_listed: int = 100

    @property
    def ok(self) -> bool:
        """Every record valid and sent (or sent before)."""
        return not self.invalid and not self.failed

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic, "dry_run": self.dry_run, "read": self.read,
            "sent": self.sent, "skipped": self.skipped, "to_send": self.to_send,
            "invalid": self.invalid, "failed": self.failed,
            "invalid_rows": [vars(p) for p in self.invalid_rows],
            "failed_rows": [vars(p) for p in self.failed_rows],
            "ledger": None if self.ledger is None else str(self.ledger), "notes": self.notes,
        }  # fmt: skip

    def _invalid(self, where: str, reason: str) -> None:
        self.invalid += 1
        if len(self.invalid_rows) < self.max_listed:
            self.invalid_rows.append(Problem(where, reason))

    def _failed(self, where: str, reason: str) -> None:
        self.failed += 1
        if len(self.failed_rows) < self.max_listed:
            self.failed_rows.append(Problem(where, reason))


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


def _row_event(row: Row) -> dict[str, Any]:
    """The event of a row, or ValidationError with every problem: the reader's (a cell that is
    not a number) and validation's, less "required and missing" for a field whose cell was
    unreadable (the reader already said what is wrong with it)."""
    if row.record is None and row.problems:
        raise ValidationError(list(row.problems))
    try:
        event = prepare_event(row.record)
    except ValidationError as exc:
        missing = tuple(f"{name} is required and missing" for name in row.unread)
        rest = [p for p in exc.problems if not (missing and p.startswith(missing))]
        raise ValidationError([*row.problems, *rest]) from None
    if row.problems:
        raise ValidationError(list(row.problems))
    return event


class _Sender:
    """One idempotent producer (acks=all) with at most WINDOW events in flight; each
    acknowledged event goes into the ledger. A broker that stops answering, or refuses the
    client, raises; an event Kafka refuses for its size is counted as failed."""

    def __init__(self, client: kafka_client.KafkaClientConfig, topic: str) -> None:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        kafka_client.check_connection(client, what=NOTHING_SENT)
        self.client, self.topic = client, topic
        self.ledger: Ledger | None = None
        self.pending: deque[tuple[Any, str, str]] = deque()
        try:
            self.producer = KafkaProducer(
                **{
                    "linger_ms": 20,
                    "max_block_ms": 10_000,
                    "delivery_timeout_ms": int(DELIVERY_TIMEOUT_S * 1000),
                    **client.producer_settings(),
                    "acks": "all",
                    "enable_idempotence": True,
                }
            )
        except KafkaError as exc:
            reason = client.scrub(f"{type(exc).__name__}: {exc}")
            raise kafka_client.auth_error(client, [reason], NOTHING_SENT) from None

    def send(self, event: dict[str, Any], where: str, result: BackfillResult) -> None:
        from kafka.errors import KafkaError, MessageSizeTooLargeError

        value = contract.encode(event)
        try:
            future = self.producer.send(
                self.topic, key=event["experiment_id"].encode(), value=value
            )
        except MessageSizeTooLargeError as exc:
            result._failed(where, self._too_large(len(value), exc))
            return
        except KafkaError as exc:
            raise self._stopped(exc, result) from None
        self.pending.append((future, event["event_id"], where))
        self.settle(result, WINDOW)

    def settle(self, result: BackfillResult, keep: int) -> None:
        """Account for acknowledged events; wait while more than ``keep`` are in flight."""
        while self.pending:
            future, event_id, where = self.pending[0]
            if not future.is_done:
                if len(self.pending) <= keep:
                    return
                with contextlib.suppress(Exception):  # the outcome is read below
                    future.get(timeout=DELIVERY_TIMEOUT_S + 10)
                if not future.is_done:
                    raise self._stopped(TimeoutError("no acknowledgement"), result)
            self.pending.popleft()
            if future.succeeded():
                result.sent += 1
                if self.ledger is not None:
                    self.ledger.add(event_id)
                continue
            self._failure(future.exception, where, result)

    def _failure(self, exc: Any, where: str, result: BackfillResult) -> None:
        from kafka.errors import MessageSizeTooLargeError

        if isinstance(exc, MessageSizeTooLargeError):
            result._failed(where, self._too_large(None, exc))
            return
        raise self._stopped(exc, result)

    def _too_large(self, size: int | None, exc: Exception) -> str:
        bytes_ = f" of {size} bytes" if size is not None else ""
        return (
            f"not sent: Kafka refuses the event{bytes_} as too large ({type(exc).__name__}); "
            "shorten its longest texts (notes, hyperparameters)"
        )

    def _stopped(self, exc: BaseException, result: BackfillResult) -> Exception:
        """The error that ends the backfill when the broker stops acknowledging (or refuses
        the client), with what was acknowledged before."""
        reason = self.client.scrub(f"{type(exc).__name__}: {exc}")
        done = (
            f"{result.sent} run(s) were acknowledged before and are skipped when you run the "
            "backfill again"
        )
        if getattr(exc, "retriable", False) or isinstance(exc, TimeoutError):
            return BrokerUnreachableError(
                f"{self.client.describe()} stopped acknowledging the backfill ({reason}); "
                f"{done}. Check the broker and that topic {self.topic} exists"
            )
        return kafka_client.auth_error(self.client, [reason], f"{done}")

    def finish(self, result: BackfillResult) -> None:
        from kafka.errors import KafkaError

        with contextlib.suppress(KafkaError):  # each future says what happened to its event
            self.producer.flush(timeout=DELIVERY_TIMEOUT_S + 10)
        self.settle(result, 0)

    def close(self, result: BackfillResult) -> None:
        """After an error or an interruption: account for what was acknowledged, then close."""
        try:
            while self.pending and self.pending[0][0].is_done:
                future, event_id, _ = self.pending.popleft()
                if future.succeeded():
                    result.sent += 1
                    if self.ledger is not None:
                        self.ledger.add(event_id)
        finally:
            self.producer.close(timeout=5 if self.pending else 10)


def backfill(
    records: Iterable[Any],
    *,
    bootstrap_servers: str | None = None,
    topic: str | None = None,
    kafka_config: Mapping[str, Any] | None = None,
    kafka_properties: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    mapping: Mapping[str, str] | None = None,
    ledger: str | None = None,
    resend: bool = False,
    max_listed: int = 100,
    progress: Callable[[BackfillResult], None] | None = None,
) -> BackfillResult:
    """Send every valid record to the replay topic; return the counts and the invalid records.

    ``records``: dicts of the run's fields (numbered ``record 1``, ``record 2``, ... in the
    result), or ``Row`` objects from ``runstream.backfill_sources``. ``mapping``: {field: key}
    (``--map``), applied to dicts. ``dry_run``: validate only, send nothing, connect to nothing.
    ``ledger``: a name for the input (a file's resolved path): acknowledged event ids are kept
    under ``$RUNSTREAM_HOME/backfill`` and skipped on the next run, unless ``resend``.
    ``progress`` is called after each record with the result so far.

    Connection and security settings come from ``runstream.kafka_client`` (the properties file
    ``kafka_properties``, default ``RUNSTREAM_KAFKA_PROPERTIES``). Raises, before reading
    anything, BrokerUnreachableError when no broker answers and KafkaAuthError when one answers
    but refuses the credentials or the TLS handshake, each within about 15 seconds; and
    BrokerUnreachableError if the broker stops acknowledging midway (what was acknowledged is
    in the ledger by then).
    """
    client = kafka_client.load(
        bootstrap_servers, properties_file=kafka_properties, kafka_config=kafka_config
    )
    target = env.RUNSTREAM_REPLAY_TOPIC.get(topic)
    result = BackfillResult(topic=target, dry_run=dry_run, max_listed=max_listed)
    mapping = dict(mapping or {})
    book = sender = None
    try:
        if not dry_run:
            sender = _Sender(client, target)  # checks the connection first
        if ledger is not None:
            book = Ledger.open(ledger, target, client.bootstrap_servers, read_only=dry_run)
            result.ledger = book.path if book.usable else None
            if sender is not None:
                sender.ledger = book
        for number, item in enumerate(records, 1):
            if isinstance(item, Row):
                row = item
            else:
                record, problems = remap(item, mapping)
                row = Row(f"record {number}", record, problems)
            result.read += 1
            try:
                event = _row_event(row)
            except ValidationError as exc:
                result._invalid(row.where, "; ".join(exc.problems))
            else:
                if book is not None and not resend and event["event_id"] in book:
                    result.skipped += 1
                elif sender is None:
                    result.to_send += 1
                else:
                    sender.send(event, row.where, result)
            if progress is not None:
                progress(result)
        if sender is not None:
            sender.finish(result)
    except BaseException:
        if sender is not None:  # count (and record) what was acknowledged before it stopped
            sender.close(result)
        raise
    else:
        if sender is not None:
            sender.producer.close(timeout=10)
    finally:
        if book is not None:
            book.close()
    return result


def backfill_file(
    path: str,
    *,
    input_format: str = "auto",
    mapping: Mapping[str, str] | Iterable[str] | None = None,
    dry_run: bool = False,
    resend: bool = False,
    **settings: Any,
) -> BackfillResult:
    """``backfill`` of a file (``-``: stdin): JSON Lines, JSON, CSV or Parquet, streamed.

    ``mapping``: {field: column} or ``["field=column", ...]`` (``--map``). The file's resolved
    path names its ledger (stdin has none). ``settings`` go to ``backfill``."""
    if mapping is not None and not isinstance(mapping, Mapping):
        mapping = parse_mapping(mapping)
    source = open_source(path, input_format, mapping)
    result = backfill(
        source.rows(), dry_run=dry_run, resend=resend, ledger=source.ledger_key, **settings
    )
    result.notes.extend(source.notes)
    return result
