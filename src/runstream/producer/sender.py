"""Drain the spool into Kafka: acks=all, idempotent, an event leaves the spool only once acked.

The sender runs in a daemon thread (or in the foreground for ``runstream spool flush``). The
thread never raises into the caller: failures are logged and retried with capped exponential
backoff. kafka-python can block for tens of seconds while constructing a producer against an
unreachable address, so the sender first checks that a bootstrap address accepts TCP
connections and builds the producer only then, always off the caller's thread; ``flush`` stops
at the first such failed check instead of waiting out its timeout.

The spool is sent file by file, oldest first: a one-event file, or a segment holding a batch's
events. A file is deleted only once every event in it was acknowledged. The events of a segment
acknowledged so far are remembered (in memory) and not sent again by this sender, so a large
segment acknowledged over several rounds still converges; a sender that dies with a segment
partly acknowledged leaves it whole in the spool, and the next sends all of it again (the
consumer keeps one row per ``event_id``).

An event is sent at most once per sender while the spool cannot delete it: before each batch
the sender checks that ``pending/`` accepts changes, and a file Kafka acknowledged that cannot
then be deleted is remembered and never sent again by this sender; sending stops until
the file can be deleted. (A later process may send it once more, which the consumer's
deduplication by ``event_id`` absorbs.)

Connection and security settings come from ``runstream.kafka_client`` (``client=``), the one
configuration every part shares. A broker that answers TCP but refuses the client (wrong
credentials, a TLS certificate that cannot be verified) is treated like an unreachable one:
logged once (``connect_error`` holds the clear message), retried with backoff, never raised.

Secrets: ``kafka_config`` and ``client`` may hold passwords and tokens. Log lines show settings
through ``redact`` and exception text through ``scrub``, because kafka-python puts raw settings into
some of its own error messages (an unrecognised key is reported with its value).
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from runstream import kafka_client
from runstream.errors import SpoolError, ValidationError
from runstream.kafka_client import KafkaClientConfig
from runstream.network import reachable
from runstream.producer.spool import ReadOutcome, Spool, SpoolEntry, SpoolRecord

log = logging.getLogger(__name__)

_BATCH = 500
_BACKOFF_START_S = 0.2
_BACKOFF_MAX_S = 10.0
_SECRET_HINTS = ("password", "secret", "token", "key", "credential")
# Settings the delivery guarantee rests on: an event leaves the spool only after acks=all,
# and the spool holds bytes that must go out unchanged.
_FIXED = ("acks", "enable_idempotence", "key_serializer", "value_serializer", "bootstrap_servers")


def _is_secret(key: str) -> bool:
    return any(hint in key.lower() for hint in _SECRET_HINTS)


def redact(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of Kafka settings fit for a log line."""
    return {k: ("***" if _is_secret(k) else v) for k, v in config.items()}


def scrub(text: str, config: Mapping[str, Any]) -> str:
    """``text`` with every secret value of ``config`` replaced by ``***``."""
    for key, value in config.items():
        if _is_secret(key) and isinstance(value, (str, bytes)) and value:
            secret = value.decode(errors="replace") if isinstance(value, bytes) else value
            text = text.replace(secret, "***")
    return text


def check_kafka_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Refuse settings that would break delivery or that kafka-python does not know.

    Done at construction, so a typo fails at once, not as a log line in a background thread.
    Messages name keys only: a value may be a password.
    """
    problems: list[str] = []
    for key in config:
        if not isinstance(key, str):
            problems.append(f"kafka_config keys must be strings, got {type(key).__name__}")
        elif key in _FIXED:
            problems.append(
                f"kafka_config may not set {key!r}: runstream fixes it (acks=all, idempotent, "
                "raw bytes; bootstrap_servers= has its own setting); remove it"
            )
    if config and not problems:
        from kafka.producer.kafka import KafkaProducer  # local: only when needed

        known = (*KafkaProducer.DEFAULT_CONFIG, *KafkaProducer.DEPRECATED_CONFIGS)
        for key in config:
            if key not in known:
                guess = difflib.get_close_matches(key, known, n=1)
                hint = f"; did you mean {guess[0]!r}?" if guess else "; see kafka-python's docs"
                problems.append(f"kafka_config key {key!r} is not a kafka-python setting{hint}")
    if problems:
        raise ValidationError(problems)
    return dict(config)


@dataclass(frozen=True)
class FlushResult:
    """What one ``Sender.flush`` did, counted as it happened.

    ``sent``: events acknowledged by Kafka and deleted from the spool (a segment's every event
    once it is deleted). ``quarantined``: files that failed their check and were moved to
    ``corrupt/`` (a damaged segment is one file). ``left``: events still pending when flush
    returned (including any another process added meanwhile). ``unreachable``: flush stopped
    because no bootstrap address accepted a connection. ``spool_error``: flush stopped because
    the spool could not be changed (it names the folder and the fix).
    """

    sent: int
    quarantined: int
    left: int
    unreachable: bool
    spool_error: SpoolError | None = None


@dataclass
class _Tally:
    """Counts of one flush, updated as each file is settled so an exception loses none."""

    sent: int = 0
    quarantined: int = 0
    # events acknowledged in segments not yet wholly acknowledged (so not deleted yet)
    partly: int = 0

    def settled(self) -> int:
        """Progress so far: a round that moves this made progress."""
        return self.sent + self.quarantined + self.partly


class Sender:
    """Sends a spool's events to ``topic``; one per spool is active at a time (file lock).

    ``on_connect`` is called (in the sender's thread) each time a Kafka producer is built; the
    emitter uses it to keep its exit-time flush ahead of kafka-python's own exit hook.
    """

    def __init__(
        self,
        spool: Spool,
        *,
        topic: str,
        bootstrap_servers: str,
        kafka_config: Mapping[str, Any] | None = None,
        on_connect: Callable[[], None] | None = None,
        client: KafkaClientConfig | None = None,
    ) -> None:
        self.spool = spool
        self.topic = topic
        self.bootstrap_servers = bootstrap_servers
        self.kafka_config = check_kafka_config(kafka_config or {})
        self.client = client or KafkaClientConfig(bootstrap_servers)
        # why the last producer could not be built although the broker answered TCP (one line,
        # no secrets); None once connected
        self.connect_error: str | None = None
        self.on_connect = on_connect
        self._producer: Any = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._backoff = _BACKOFF_START_S
        # monotonic time of the last failed reachability check; None once connected
        self.unreachable_since: float | None = None
        # the spool problem that stopped the last round, and since when; None once it works
        self.spool_error: SpoolError | None = None
        self.spool_error_since: float | None = None
        # files Kafka acknowledged that could not be deleted: never to be sent again from here
        self._undeletable: set[Path] = set()
        # segments partly acknowledged: the indexes Kafka has, not to be sent again from here
        self._acked: dict[Path, set[int]] = {}

    # -- the background thread ------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="runstream-sender", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._close()

    def _loop(self) -> None:
        try:
            self.spool.clean_tmp()
        except OSError as exc:
            log.warning("cannot clean the spool's tmp/ folder: %s", exc)
        while not self._stop.is_set():
            progressed = self._round()
            if progressed:
                self._backoff = _BACKOFF_START_S
                continue
            self._wake.wait(self._backoff)
            self._wake.clear()
            self._backoff = min(self._backoff * 2, _BACKOFF_MAX_S)

    def _round(self) -> bool:
        """One drain round that never raises; True when it settled at least one event."""
        tally = _Tally()
        return self._attempt(tally) is None and tally.settled() > 0

    def _attempt(self, tally: _Tally) -> SpoolError | None:
        """One drain round: a failure is logged, scrubbed of secrets; a spool problem returned."""
        try:
            self._drain(tally)
        except SpoolError as exc:
            if self.spool_error is None or str(self.spool_error) != str(exc):
                log.warning("runstream sender stopped: %s", exc)
            else:
                log.debug("runstream sender still stopped: %s", exc)
            self.spool_error, self.spool_error_since = exc, time.monotonic()
            return exc
        except Exception as exc:
            text = "".join(traceback.format_exception(exc))
            log.warning("runstream sender failed; retrying from the spool:\n%s", self._scrub(text))
            self._close()
        return None

    def _scrub(self, text: str) -> str:
        return self.client.scrub(scrub(text, self.kafka_config))

    # -- one round --------------------------------------------------------------------------
    def drain_once(self) -> bool:
        """Send one batch if this process may send; True when at least one event was acked
        or quarantined. Raises SpoolError when the spool cannot be changed."""
        tally = _Tally()
        self._drain(tally)
        return tally.settled() > 0

    def _drain(self, tally: _Tally) -> None:
        entries = self.spool.pending_files(max_events=_BATCH)
        for path in [p for p in self._acked if not p.exists()]:
            del self._acked[path]  # sent and deleted by another process's sender meanwhile
        if not entries and not self._undeletable:
            self._backoff = _BACKOFF_START_S
            return
        with self.spool.sender_lock() as mine:
            if not mine:
                return
            self._retry_undeletable()
            if entries:
                self.spool.check_writable()
            self.spool_error = self.spool_error_since = None
            if not entries:
                return
            producer = self._ensure_producer()
            if producer is None:
                return
            self._send(producer, entries, tally)

    def _retry_undeletable(self) -> None:
        """Delete what Kafka already has; until that works, send nothing more (no loop)."""
        failed: OSError | None = None
        for path in sorted(self._undeletable):
            try:
                self.spool.remove(SpoolEntry(path))
            except OSError as exc:
                failed = exc
            else:
                self._undeletable.discard(path)
        if failed is not None:
            raise self._stuck(failed)

    def _stuck(self, exc: OSError) -> SpoolError:
        count = sum(SpoolEntry(path).count for path in self._undeletable)
        return self.spool.unwritable(
            exc,
            f"Kafka acknowledged {count} event(s) that could not then be deleted, so sending "
            "stopped rather than send them again (a later sender sends them once more, which "
            "is harmless: the consumer keeps one row per event_id)",
        )

    def _send(self, producer: Any, entries: list[SpoolEntry], tally: _Tally) -> None:
        # per file: its entry, its event count, and (index, record, future) of each event sent
        inflight: list[tuple[SpoolEntry, int, list[tuple[int, SpoolRecord, Any]]]] = []
        # A failure part-way (a damaged file that cannot be moved aside, a send that raises)
        # stops reading, but what is already in flight is settled first: acked files are
        # deleted, so the next round does not send them again.
        problem: Exception | None = None
        for entry in entries:
            try:
                records = self.spool.read_file(entry)
                if records is ReadOutcome.QUARANTINED:
                    tally.quarantined += 1
                    self._acked.pop(entry.path, None)
                    continue
                if isinstance(records, ReadOutcome):
                    continue
                done = self._acked.get(entry.path, set())
                futures: list[tuple[int, SpoolRecord, Any]] = []
                inflight.append((entry, len(records), futures))
                for index, record in enumerate(records):
                    if index not in done:
                        future = producer.send(self.topic, key=record.key, value=record.value)
                        futures.append((index, record, future))
            except Exception as exc:
                problem = exc
                break
        try:
            producer.flush(timeout=30)
        except Exception as exc:
            # Still account for what was acked: removing those avoids re-sending them.
            log.warning("Kafka flush did not complete: %s", self._scrub(repr(exc)))
        unacked = 0
        failed: OSError | None = None
        for entry, count, futures in inflight:
            before = self._acked.get(entry.path, set())
            acked = set(before)
            for index, record, future in futures:
                if future.is_done and future.succeeded():
                    acked.add(index)
                    continue
                unacked += 1
                if future.failed():
                    log.warning(
                        "send of %s failed: %s; it stays in the spool",
                        record.event_id,
                        self._scrub(str(future.exception)),
                    )
            if len(acked) < count:
                if acked:  # a segment partly acknowledged: the rest is sent next round
                    tally.partly += len(acked) - len(before)
                    self._acked[entry.path] = acked
                continue
            self._acked.pop(entry.path, None)
            try:
                self.spool.remove(entry)
            except OSError as exc:
                self._undeletable.add(entry.path)
                failed = exc
            else:
                tally.sent += count
        if unacked:
            self._close()  # rebuild the connection; unacked events are retried from disk
        if failed is not None:
            raise self._stuck(failed)
        if problem is not None:
            raise problem

    def _ensure_producer(self) -> Any:
        if self._producer is not None:
            return self._producer
        if not reachable(self.bootstrap_servers):
            log.debug("broker %s unreachable; events stay in the spool", self.bootstrap_servers)
            self.unreachable_since = time.monotonic()
            return None
        # unreachable_since stays as it is until a producer is built: a refusal takes seconds
        # to detect, and a waiting flush must not read "connected" meanwhile
        from kafka import KafkaProducer  # local: importing runstream never loads kafka

        settings: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "acks": "all",
            "enable_idempotence": True,
            "retries": 5,
            "max_in_flight_requests_per_connection": 5,
            # Every round ends in flush(), which sends at once whatever lingers, so a long linger
            # adds no latency; with large batches it lets a round's events leave in a few
            # requests instead of one batch per few records (about twice the events per second
            # per CPU). 256 KiB stays well under the brokers' default message.max.bytes (1 MiB),
            # and kafka-python splits and retries a batch a broker refuses as too large.
            "linger_ms": 100,
            "batch_size": 256 * 1024,
            "compression_type": None,
            "request_timeout_ms": 15_000,
            "delivery_timeout_ms": 30_000,
            "max_block_ms": 10_000,
            "bootstrap_timeout_ms": 10_000,
            "max_request_size": 8 * 1024 * 1024,
            "client_id": "runstream-sender",
        }
        try:
            security = self.client.python_settings()
        except Exception as exc:  # a setting kafka-python cannot use: say so, keep the events
            self._refused(str(exc))
            return None
        security.pop("bootstrap_servers", None)
        settings.update(security)
        settings.update(self.kafka_config)
        try:
            self._producer = KafkaProducer(**settings)
        except Exception as exc:
            log.debug("cannot connect to Kafka (%s): %s", redact(settings), self._scrub(repr(exc)))
            client = self.client
            if client.bootstrap_servers != self.bootstrap_servers:
                client = replace(client, bootstrap_servers=self.bootstrap_servers)
            reason = f"{type(exc).__name__}: {exc}"
            self._refused(str(kafka_client.auth_error(client, [self._scrub(reason)])))
            return None
        self.connect_error = None
        self.unreachable_since = None
        if self.on_connect is not None:
            self.on_connect()
        return self._producer

    def _refused(self, message: str) -> None:
        """The broker answers but this client cannot connect: log once, keep the events."""
        message, previous = self._scrub(message), self.connect_error
        self.connect_error = message
        self.unreachable_since = time.monotonic()
        if message != previous:
            log.warning("runstream sender cannot connect; events stay in the spool: %s", message)

    def _close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            producer.close(timeout=2)
        except Exception as exc:
            # kafka-python's close() flushes first and can raise there (e.g. "Future not done"
            # after the broker refused a batch), which skips stopping its network thread and
            # leaves __del__ to fail again later. Stop the thread and mark it closed ourselves.
            log.debug("closing the Kafka producer failed: %s", self._scrub(repr(exc)))
            with contextlib.suppress(Exception):
                producer._sender.force_close()
                producer._sender.join(2)
            with contextlib.suppress(Exception):
                producer._unregister_cleanup()
            producer._closed = True

    # -- foreground -----------------------------------------------------------------------
    def flush(self, timeout_s: float) -> FlushResult:
        """Send until the spool is empty, ``timeout_s`` passes, no broker answers, or the spool
        cannot be changed; returns what happened, counted event by event.

        Always makes at least one attempt, so ``flush(0)`` means "try once". It does not wait
        out the timeout when no broker answers: on an offline machine it returns at once.
        """
        deadline = time.monotonic() + timeout_s
        backoff = _BACKOFF_START_S
        tally = _Tally()
        unreachable = False
        while True:
            round_started = time.monotonic()
            settled = tally.settled()
            error = self._attempt(tally)
            if error is not None:
                break
            offline = self.unreachable_since
            if offline is not None and offline >= round_started:
                unreachable = True
                break
            if not self.spool.count() or time.monotonic() >= deadline:
                break
            if tally.settled() == settled:
                time.sleep(min(backoff, max(0.0, deadline - time.monotonic())))
                backoff = min(backoff * 2, 2.0)
        left = self.spool.count()
        return FlushResult(tally.sent, tally.quarantined, left, unreachable, error)
