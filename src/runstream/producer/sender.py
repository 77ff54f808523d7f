"""Drain the spool into Kafka: acks=all, idempotent, an event leaves the spool only once acked.

The sender runs in a daemon thread (or in the foreground for ``runstream spool flush``). It
never raises into the caller: failures are logged and retried with capped exponential backoff.
kafka-python can block for tens of seconds while constructing a producer against an unreachable
address, so the sender first checks that a bootstrap address accepts TCP connections and
builds the producer only then, always off the caller's thread.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

from runstream.producer.spool import Spool, SpoolEntry

log = logging.getLogger(__name__)

_BATCH = 500
_BACKOFF_START_S = 0.2
_BACKOFF_MAX_S = 10.0
_SECRET_HINTS = ("password", "secret", "token", "key")


def redact(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of Kafka settings fit for a log line."""
    return {
        k: ("***" if any(h in k.lower() for h in _SECRET_HINTS) else v) for k, v in config.items()
    }


def _reachable(bootstrap: str, timeout_s: float = 1.0) -> bool:
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        with (
            contextlib.suppress(OSError, ValueError),
            socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout_s),
        ):
            return True
    return False


class Sender:
    """Sends a spool's events to ``topic``; one per spool is active at a time (file lock)."""

    def __init__(
        self,
        spool: Spool,
        *,
        topic: str,
        bootstrap_servers: str,
        kafka_config: Mapping[str, Any] | None = None,
    ) -> None:
        self.spool = spool
        self.topic = topic
        self.bootstrap_servers = bootstrap_servers
        self.kafka_config = dict(kafka_config or {})
        self._producer: Any = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._backoff = _BACKOFF_START_S
        self.sent = 0

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
        self.spool.clean_tmp()
        while not self._stop.is_set():
            try:
                progressed = self.drain_once()
            except Exception:
                log.exception("runstream sender failed; retrying")
                self._close()
                progressed = False
            if progressed:
                self._backoff = _BACKOFF_START_S
                continue
            self._wake.wait(self._backoff)
            self._wake.clear()
            self._backoff = min(self._backoff * 2, _BACKOFF_MAX_S)

    # -- one round --------------------------------------------------------------------------
    def drain_once(self) -> bool:
        """Send one batch if this process may send; True when at least one event was acked."""
        entries = self.spool.pending(limit=_BATCH)
        if not entries:
            self._backoff = _BACKOFF_START_S
            return False
        with self.spool.sender_lock() as mine:
            if not mine:
                return False
            producer = self._ensure_producer()
            if producer is None:
                return False
            return self._send(producer, entries) > 0

    def _send(self, producer: Any, entries: list[SpoolEntry]) -> int:
        inflight = []
        for entry in entries:
            record = self.spool.read(entry)
            if record is None:
                continue
            key, value = record
            inflight.append((entry, producer.send(self.topic, key=key, value=value)))
        producer.flush(timeout=30)
        acked = 0
        for entry, future in inflight:
            if future.succeeded():
                self.spool.remove(entry)
                acked += 1
            elif future.failed():
                log.warning(
                    "send of %s failed: %s; it stays in the spool", entry.event_id, future.exception
                )
        if acked < len(inflight):
            self._close()  # rebuild the connection; unacked events are retried from disk
        self.sent += acked
        return acked

    def _ensure_producer(self) -> Any:
        if self._producer is not None:
            return self._producer
        if not _reachable(self.bootstrap_servers):
            log.debug("broker %s unreachable; events stay in the spool", self.bootstrap_servers)
            return None
        from kafka import KafkaProducer  # local: importing runstream never loads kafka

        settings: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "acks": "all",
            "enable_idempotence": True,
            "retries": 5,
            "max_in_flight_requests_per_connection": 5,
            "linger_ms": 5,
            "compression_type": None,
            "request_timeout_ms": 15_000,
            "delivery_timeout_ms": 30_000,
            "max_block_ms": 10_000,
            "bootstrap_timeout_ms": 10_000,
            "max_request_size": 8 * 1024 * 1024,
            "client_id": "runstream-sender",
        }
        settings.update(self.kafka_config)
        try:
            self._producer = KafkaProducer(**settings)
        except Exception as exc:
            log.warning("cannot connect to Kafka (%s): %s", redact(settings), exc)
            return None
        return self._producer

    def _close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                producer.close(timeout=2)

    # -- foreground -----------------------------------------------------------------------
    def flush(self, timeout_s: float) -> int:
        """Send until the spool is empty or ``timeout_s`` passes; returns events left."""
        deadline = time.monotonic() + timeout_s
        backoff = _BACKOFF_START_S
        while time.monotonic() < deadline:
            try:
                progressed = self.drain_once()
            except Exception:
                log.exception("flush round failed")
                self._close()
                progressed = False
            if not self.spool.pending(limit=1):
                break
            if not progressed:
                time.sleep(min(backoff, max(0.0, deadline - time.monotonic())))
                backoff = min(backoff * 2, 2.0)
        return len(self.spool.pending())
