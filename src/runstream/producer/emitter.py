"""``emit_run()``, ``emit_runs()`` and the ``Emitter`` behind them.

``emit_run(...)`` is a thin call into a lazily built default ``Emitter`` with the same keyword
arguments, as ``httpx.get`` is to ``Client.get``; ``emit_runs(runs)`` likewise. Construct an
``Emitter`` for other settings. Neither importing nor constructing touches the network: the
sender thread starts on first use.

``emit_run`` writes one event as one spool file (two syncs: the file and its folder).
``emit_runs`` validates every run of a batch first and writes nothing if one is invalid; then
all of its events go into one segment file with the same two syncs, however many runs the
batch holds, and appear in the spool together (one atomic rename).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runstream import contract, kafka_client
from runstream import environment_variables as env
from runstream.contract.validation import check_experiment_id
from runstream.errors import ValidationError
from runstream.producer.sender import Sender
from runstream.producer.spool import Spool, SpoolEntry, SpoolRecord

log = logging.getLogger(__name__)

# Kafka's default message limit is 1 MiB including the record's overhead; stay under it so a
# run that the spool accepts is never refused by a default-configured broker.
MAX_EVENT_BYTES = 1_000_000


@dataclass(frozen=True)
class Receipt:
    """What emit_run() gives back: the run's key and the event's id, both already on disk.

    ``spool_path`` is the file holding the event until it is sent; the runs of one
    ``emit_runs`` batch share their segment file.
    """

    experiment_id: str
    event_id: str
    event_type: str
    spool_path: Path


class Emitter:
    """Validates runs, spools them durably and sends them in the background.

    Settings are keyword-only; each falls back to its ``RUNSTREAM_*`` variable, then a default.
    Connection and security settings (TLS, SASL) come from ``runstream.kafka_client``: the
    properties file ``kafka_properties`` (default ``RUNSTREAM_KAFKA_PROPERTIES``), the one
    configuration the Spark job reads too. ``kafka_config`` (default ``RUNSTREAM_KAFKA_CONFIG``)
    passes raw kafka-python producer settings through over it; both are
    never logged in clear and never written into events. They are checked here, so a typo or
    a setting that would weaken delivery (``acks``, ``enable_idempotence``) fails at once
    rather than in the background thread; checking imports kafka-python but opens no
    connection.
    """

    def __init__(
        self,
        *,
        bootstrap_servers: str | None = None,
        topic: str | None = None,
        spool_dir: str | os.PathLike[str] | None = None,
        max_spool_events: int | None = None,
        flush_timeout_s: float | None = None,
        kafka_config: Mapping[str, Any] | None = None,
        commodities: Iterable[str] | None = None,
        send: bool = True,
        kafka_properties: str | os.PathLike[str] | None = None,
    ) -> None:
        self.kafka = kafka_client.load(
            bootstrap_servers, properties_file=kafka_properties, kafka_config=kafka_config
        )
        self.bootstrap_servers = self.kafka.bootstrap_servers
        self.topic = env.RUNSTREAM_TOPIC.get(topic)
        self.commodities = env.commodities(commodities)
        self.flush_timeout_s = _setting(
            env.RUNSTREAM_FLUSH_TIMEOUT, "flush_timeout_s", flush_timeout_s, float, minimum=0
        )
        limit = _setting(
            env.RUNSTREAM_SPOOL_MAX_EVENTS, "max_spool_events", max_spool_events, int, minimum=1
        )
        self.spool = Spool(env.spool_dir(spool_dir), max_events=limit)
        self._sender = Sender(
            self.spool,
            topic=self.topic,
            bootstrap_servers=self.bootstrap_servers,
            kafka_config=self.kafka.producer_extra,
            on_connect=self._register_at_exit,
            client=self.kafka,
        )
        self._send = send
        # this emitter's files not yet known to be sent, with the events each holds
        self._mine: list[tuple[SpoolEntry, int]] = []
        self._lock = threading.Lock()
        self._started = False

    # -- public API -----------------------------------------------------------------------
    def emit_run(self, experiment: Mapping[str, Any] | None = None, /, **fields: Any) -> Receipt:
        """Record one run. Returns once the event is synced to local disk.

        Accepts the seed's dict (``emit_run(experiment)``), keyword arguments, or both
        (keywords win). Raises ValidationError listing every problem; never raises because
        of the network.
        """
        experiment_id, payload = contract.prepare_run(
            experiment, fields, commodities=self.commodities
        )
        event = contract.build_event(contract.RUN_RECORDED, experiment_id, run=payload)
        return self._spool(event)

    def emit_runs(self, runs: Iterable[Mapping[str, Any]], /) -> list[Receipt]:
        """Record a batch of runs; returns their receipts, in order, once all are synced to
        local disk together (one data sync for the whole batch).

        Every run is validated first, each as ``emit_run`` validates it: if any is invalid, one
        ValidationError lists every problem of every bad run, each prefixed with the run's
        index (``runs[3]: mae_14day must not be negative``), and nothing is written. The
        spool's bound applies to the batch as a whole (``SpoolFullError``, nothing written).
        The batch becomes visible in the spool all at once; never raises because of the network.
        """
        batch = self._prepare_batch(runs, lambda index: f"runs[{index}]")
        return self._spool_batch(batch)

    def promote_run(self, experiment_id: str, is_production: bool = True) -> Receipt:
        """Set a run's ``is_production`` flag (a ``run_promoted`` event)."""
        run_id = _checked_id(experiment_id)
        if not isinstance(is_production, bool):
            raise ValidationError([f"is_production must be True or False, got {is_production!r}"])
        event = contract.build_event(
            contract.RUN_PROMOTED, run_id, promotion={"is_production": is_production}
        )
        return self._spool(event)

    def annotate_run(self, experiment_id: str, notes: str) -> Receipt:
        """Replace a run's ``notes`` (a ``run_annotated`` event)."""
        run_id = _checked_id(experiment_id)
        if not isinstance(notes, str):
            raise ValidationError([f"notes must be a string, got {type(notes).__name__}"])
        event = contract.build_event(contract.RUN_ANNOTATED, run_id, annotation={"notes": notes})
        return self._spool(event)

    def flush(self, timeout_s: float | None = None) -> int:
        """Wait up to ``timeout_s`` until this emitter's events are acknowledged.

        Returns how many of them are still only on local disk (they are sent later). Returns
        early when waiting cannot help: no broker answers, or the spool cannot be changed.
        """
        timeout = self.flush_timeout_s if timeout_s is None else timeout_s
        if not self._send:
            return self._left()
        self._ensure_started()
        started = time.monotonic()
        deadline = started + timeout
        while self._left() and time.monotonic() < deadline:
            if self._stuck_since(started):
                # No broker answers now, or the spool refuses changes: waiting out the timeout
                # would only delay the caller (an offline laptop at exit); the events are safe
                # in the spool.
                break
            self._sender.wake()
            time.sleep(0.02)
        return self._left()

    def close(self, timeout_s: float | None = None) -> int:
        """Flush for a bounded time, then stop the sender. Returns how many events remain.

        What remains is safe in the spool; the next runstream process (or ``runstream spool
        flush``) sends it, and a warning is logged saying so. Emitting after ``close`` starts
        the sender again.
        """
        left = self._shutdown(timeout_s)
        if left:
            log.warning("%s", self._unsent_message(left))
        return left

    # -- internals ------------------------------------------------------------------------
    def _spool(self, event: dict[str, Any]) -> Receipt:
        value = contract.encode(event)
        if len(value) > MAX_EVENT_BYTES:
            raise ValidationError([_too_large(len(value))])
        entry = self.spool.put(event["experiment_id"].encode(), value, event["event_id"])
        self._accepted(entry, 1)
        return Receipt(event["experiment_id"], event["event_id"], event["event_type"], entry.path)

    def _prepare_batch(
        self, runs: Iterable[Mapping[str, Any]], where: Callable[[int], str]
    ) -> list[tuple[dict[str, Any], bytes]]:
        """Validate, build and encode every run; (event, encoded value) of each, in order.

        Raises one ValidationError listing every problem of every run, each prefixed with
        ``where(index)``, before anything is written.
        """
        if isinstance(runs, (Mapping, str, bytes)):
            raise ValidationError(
                [
                    f"emit_runs takes a list of runs, got one {type(runs).__name__}; call "
                    "emit_runs([run, ...]) or emit_run(run)"
                ]
            )
        batch: list[tuple[dict[str, Any], bytes]] = []
        problems: list[str] = []
        for index, run in enumerate(runs):
            try:
                experiment_id, payload = contract.prepare_run(
                    run, None, commodities=self.commodities
                )
            except ValidationError as exc:
                problems += [f"{where(index)}: {problem}" for problem in exc.problems]
                continue
            event = contract.build_event(contract.RUN_RECORDED, experiment_id, run=payload)
            value = contract.encode(event)
            if len(value) > MAX_EVENT_BYTES:
                problems.append(f"{where(index)}: {_too_large(len(value))}")
            batch.append((event, value))
        if problems:
            raise ValidationError(problems)
        return batch

    def _spool_batch(self, batch: Sequence[tuple[dict[str, Any], bytes]]) -> list[Receipt]:
        """Write prepared events as one spool file (one data sync); their receipts."""
        if not batch:
            return []
        records = [
            SpoolRecord(event["event_id"], event["experiment_id"].encode(), value)
            for event, value in batch
        ]
        entry = self.spool.put_many(records)
        self._accepted(entry, len(records))
        return [
            Receipt(event["experiment_id"], event["event_id"], event["event_type"], entry.path)
            for event, _ in batch
        ]

    def _accepted(self, entry: SpoolEntry, count: int) -> None:
        """Remember a file this emitter wrote (for flush) and wake the sender."""
        with self._lock:
            self._mine.append((entry, count))
            if len(self._mine) > 4096:
                self._mine = [m for m in self._mine if self.spool.contains(m[0])]
        if self._send:
            self._ensure_started()
            self._sender.wake()

    def _ensure_started(self) -> None:
        if not self._started:
            self._started = True
            self._register_at_exit()
            self._sender.start()

    def _register_at_exit(self) -> None:
        """(Re-)register the exit flush so it runs before kafka-python's exit hook.

        atexit runs hooks last-registered first, and every KafkaProducer registers a hook that
        closes it. Registering again after each producer is built keeps ours ahead, so the
        exit flush still has an open producer to send with.
        """
        atexit.unregister(self._at_exit)
        atexit.register(self._at_exit)

    def _left(self) -> int:
        """This emitter's events not yet sent (a segment's count while its file remains)."""
        with self._lock:
            self._mine = [m for m in self._mine if self.spool.contains(m[0])]
            return sum(count for _, count in self._mine)

    def _stuck_since(self, started: float) -> bool:
        """Whether the sender found, after ``started``, that it cannot send now."""
        return any(
            since is not None and since >= started
            for since in (self._sender.unreachable_since, self._sender.spool_error_since)
        )

    def _shutdown(self, timeout_s: float | None) -> int:
        atexit.unregister(self._at_exit)
        left = self.flush(timeout_s)
        self._sender.stop()
        self._started = False
        return left

    def _unsent_message(self, left: int) -> str:
        """One line: how many, why, where they are, and how they will be sent."""
        if self._sender.spool_error is not None:
            why = str(self._sender.spool_error)
        elif self._sender.connect_error is not None:
            why = self._sender.connect_error
        elif self._sender.unreachable_since is not None:
            why = (
                f"Kafka at {self.bootstrap_servers} is unreachable; check "
                "RUNSTREAM_BOOTSTRAP_SERVERS or bootstrap_servers="
            )
        else:
            why = "Kafka did not acknowledge them in time"
        return (
            f"runstream: {left} run event(s) not sent yet ({why}); they are safe in "
            f"{self.spool.root} and will be sent by the next runstream process that emits, "
            "or now by `runstream spool flush`"
        )

    def _at_exit(self) -> None:
        """Flush at interpreter exit; if events remain, say so in one line on stderr.

        Printed, not logged: a script that configured no logging would otherwise exit in
        silence (the library's logger has only a NullHandler), and its user would never learn
        that runs are waiting in the spool.
        """
        try:
            left = self._shutdown(None)
        except Exception as exc:
            log.debug("runstream could not flush at exit", exc_info=True)
            _tell(
                f"runstream: could not flush at exit ({exc!r}); unsent runs stay in "
                f"{self.spool.root} and will be sent by `runstream spool flush`"
            )
            return
        if left:
            _tell(self._unsent_message(left))


def _tell(line: str) -> None:
    """Write one line to stderr, ignoring a closed or missing stream (we are exiting)."""
    with contextlib.suppress(Exception):
        print(line, file=sys.stderr, flush=True)


def _too_large(size: int) -> str:
    return (
        f"the encoded run is {size} bytes, over {MAX_EVENT_BYTES}; shorten notes or hyperparameters"
    )


def _checked_id(experiment_id: Any) -> str:
    run_id, problem = check_experiment_id(experiment_id)
    if problem:
        raise ValidationError([problem])
    assert run_id is not None
    return run_id


def _setting(
    var: env.EnvVar, kwarg: str, value: float | None, kind: type[Any], *, minimum: float
) -> Any:
    """A numeric setting by the usual precedence, refused with a clear message if malformed."""
    raw = var.get(None if value is None else str(value))
    where = f"{kwarg}=" if value is not None else var.name
    try:
        number = kind(raw)
    except ValueError:
        number = None
    if number is None or not math.isfinite(number) or number < minimum:
        raise ValidationError(
            [f"{where} must be a number ({kind.__name__}) of at least {minimum}, got {raw!r}"]
        )
    return number


_default: Emitter | None = None
_default_lock = threading.Lock()


def default_emitter() -> Emitter:
    global _default
    with _default_lock:
        if _default is None:
            _default = Emitter()
        return _default


def emit_run(experiment: Mapping[str, Any] | None = None, /, **fields: Any) -> Receipt:
    """Record one run with the default emitter; see ``Emitter.emit_run``."""
    return default_emitter().emit_run(experiment, **fields)


def emit_runs(runs: Iterable[Mapping[str, Any]], /) -> list[Receipt]:
    """Record a batch of runs with the default emitter; see ``Emitter.emit_runs``."""
    return default_emitter().emit_runs(runs)


def promote_run(experiment_id: str, is_production: bool = True) -> Receipt:
    return default_emitter().promote_run(experiment_id, is_production)


def annotate_run(experiment_id: str, notes: str) -> Receipt:
    return default_emitter().annotate_run(experiment_id, notes)


def flush(timeout_s: float | None = None) -> int:
    """Wait for the default emitter's events to be acknowledged; returns how many remain."""
    return default_emitter().flush(timeout_s) if _default is not None else 0


__all__ = [
    "Emitter",
    "Receipt",
    "annotate_run",
    "emit_run",
    "emit_runs",
    "flush",
    "promote_run",
]
