"""Helpers the tests and the benchmarks share: wait for a condition, read and write raw
Kafka records, read a spool, percentiles; build and encode events and predict the table they
fold into (``reference_fold``); run the job once or keep it running across broker restarts;
a killable emitting process; fuzzed poison records. Needs kafka-python and fastavro only (no
pytest; Spark and the consumer package are imported inside the functions that use them), so a
benchmark script can import it as well as the test fixtures in
``runstream.devtools.pytest_plugin``.
"""

from __future__ import annotations

import hashlib
import os
import random
import selectors
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runstream import contract

if TYPE_CHECKING:
    from runstream.producer.spool import Spool

# The brokers the tests and benchmarks start accept records up to 8 MiB (see LocalBroker), so
# oversized-record tests reach the consumer instead of being refused by the producer.
MAX_REQUEST_BYTES = 8 * 1024 * 1024


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``condition`` until true; fail naming ``what`` at the deadline. No bare sleeps."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def kafka_producer(bootstrap: str, **settings: Any) -> Any:
    """A raw kafka-python producer (acks=all, large records allowed); ``settings`` override."""
    from kafka import KafkaProducer

    defaults: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "acks": "all",
        "linger_ms": 5,
        "max_request_size": MAX_REQUEST_BYTES,
    }
    return KafkaProducer(**{**defaults, **settings})


def produce(
    bootstrap: str, records: Iterable[tuple[str, bytes | None, bytes | None]], **settings: Any
) -> int:
    """Send (topic, key, value) records as they are; returns how many were acknowledged."""
    producer = kafka_producer(bootstrap, **settings)
    try:
        futures = [producer.send(t, key=k, value=v) for t, k, v in records]
        producer.flush(timeout=300)
        for future in futures:
            future.get(timeout=60)
    finally:
        producer.close(timeout=10)
    return len(futures)


def read_topic(bootstrap: str, topic: str, expected: int, timeout_s: float = 60.0) -> list[Any]:
    """Read records from the start of ``topic`` until ``expected`` arrived or the deadline."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
    finally:
        consumer.close()
    return records


def spooled_events(spool: Spool) -> list[dict[str, Any]]:
    """The events waiting in ``spool``, decoded, oldest first."""
    events = []
    for entry in spool.pending():
        record = spool.read(entry)
        assert record is not None, f"{entry.path} vanished or failed its check"
        events.append(contract.decode(record[1]))
    return events


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile, ``q`` in [0, 100]."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


# -- events: build them, encode them, predict the table they fold into --------------------------
# Events are built with ``runstream.contract`` and produced as raw Kafka records, so a test or a
# benchmark decides exactly which bytes go to which topic, how often and in what order.

T0 = datetime(2025, 1, 6, 9, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


def make_run(**overrides: Any) -> dict[str, Any]:
    """A valid run payload (validated like emit_run does): the seed's example run at ``T0``,
    with ``overrides``."""
    from runstream.demo import seed_experiment

    run = {**seed_experiment(), "run_timestamp": T0, "run_by": "tests", **overrides}
    del run["experiment_id"]
    _, payload = contract.prepare_run(run)
    return payload


def recorded(experiment_id: str, at: datetime, **run: Any) -> dict[str, Any]:
    return contract.build_event(
        contract.RUN_RECORDED, experiment_id, run=make_run(**run), event_time=at
    )


def promoted(experiment_id: str, at: datetime, is_production: bool = True) -> dict[str, Any]:
    return contract.build_event(
        contract.RUN_PROMOTED, experiment_id,
        promotion={"is_production": is_production}, event_time=at,
    )  # fmt: skip


def annotated(experiment_id: str, at: datetime, notes: str) -> dict[str, Any]:
    return contract.build_event(
        contract.RUN_ANNOTATED, experiment_id, annotation={"notes": notes}, event_time=at
    )


def new_id(prefix: str = "run") -> str:
    return f"{prefix}-{uuid.uuid4()}"


def encoded(event: dict[str, Any], writer: contract.SchemaVersion | None = None) -> bytes:
    return contract.encode(event, writer)


def key_of(event: dict[str, Any]) -> bytes:
    return str(event["experiment_id"]).encode()


def utc(value: datetime) -> datetime:
    """How Spark (session zone UTC) returns an aware datetime: naive UTC."""
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def newest(events: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return max(events, key=lambda e: (e["event_time"], e["event_id"]))


def reference_fold(events: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The projection rule in plain Python (see projection.py), to check the Spark fold.

    Per experiment_id: run columns from the newest run_recorded; is_production and notes from
    the newest event that states them; no row without a run_recorded.
    """
    by_run: dict[str, dict[str, dict[str, Any]]] = {}
    for event in events:
        by_run.setdefault(event["experiment_id"], {})[event["event_id"]] = event
    out: dict[str, dict[str, Any]] = {}
    for experiment_id, unique in by_run.items():
        evs = list(unique.values())
        runs = [e for e in evs if e["event_type"] == contract.RUN_RECORDED]
        if not runs:
            continue
        run = newest(runs)["run"]
        prod = [e for e in evs if _prod(e) is not None]
        notes = [e for e in evs if _notes(e) is not None]
        last = newest(evs)
        out[experiment_id] = {
            "model_name": run["model_name"],
            "mae_14day": run["mae_14day"],
            "run_timestamp": utc(run["run_timestamp"]),
            "is_production": _prod(newest(prod)) if prod else False,
            "notes": _notes(newest(notes)) if notes else None,
            "_rs_event_count": len(evs),
            "_rs_last_event_id": last["event_id"],
            "_rs_last_event_time": utc(last["event_time"]),
        }
    return out


def _prod(event: dict[str, Any]) -> bool | None:
    if event["event_type"] == contract.RUN_PROMOTED:
        return bool(event["promotion"]["is_production"])
    if event["event_type"] == contract.RUN_RECORDED:
        return event["run"]["is_production"]  # type: ignore[no-any-return]
    return None


def _notes(event: dict[str, Any]) -> str | None:
    if event["event_type"] == contract.RUN_ANNOTATED:
        return str(event["annotation"]["notes"])
    if event["event_type"] == contract.RUN_RECORDED:
        return event["run"]["notes"]  # type: ignore[no-any-return]
    return None


PROJECTED = ("model_name", "mae_14day", "run_timestamp", "is_production", "notes",
             "_rs_event_count", "_rs_last_event_id", "_rs_last_event_time")  # fmt: skip


def project_columns(row: dict[str, Any]) -> dict[str, Any]:
    """The columns ``reference_fold`` predicts, picked from a model_runs row."""
    return {k: row[k] for k in PROJECTED}


def build_fastavro_event(**run_overrides: Any) -> dict[str, Any]:
    """A run_recorded event whose run skips producer validation (fastavro accepts any value
    of the right Avro type), as a buggy or foreign producer might write it."""
    event = recorded(new_id("invalid"), T0)
    event["run"] = {**event["run"], **run_overrides}
    return event


# -- a team's history: what the dashboard's tests and screenshot draw --------------------------
# (model_name, model_type, typical 14-day MAE as a share of the naive one, compute seconds)
REGISTRY = (
    ("naive_last_value", "Naive", 1.00, 2),
    ("random_walk_drift", "RandomWalk", 0.99, 3),
    ("arima_111", "ARIMA", 0.93, 40),
    ("sarimax_weather", "SARIMAX", 0.84, 310),
    ("ets_damped", "ETS", 0.90, 25),
    ("xgboost_lags", "XGBoost", 0.80, 620),
    ("prophet_default", "Prophet", 0.97, 140),
    ("lstm_small", "LSTM", 0.86, 2400),
)
# Naive 14-day MAE per commodity (cents per pound): the two price scales differ tenfold.
NAIVE_MAE = {"Coffee": 9.0, "Sugar": 0.8}
ACTIVE_WEEKS = (*range(0, 6), *range(16, 26))  # a quiet quarter between two busy ones


def team_history(rng: random.Random, per_week: int = 3) -> list[dict[str, Any]]:
    """Events of a team's half year: every model of ``REGISTRY`` run up to ``per_week`` times a
    week on both commodities in ``ACTIVE_WEEKS`` (ten idle weeks between), getting slowly better;
    some runs re-recorded, annotated; the best SARIMAX promoted on each commodity, one model
    promoted then demoted. ``beats_baseline`` is true, false or unknown (null)."""
    events: list[dict[str, Any]] = []
    for commodity, naive in NAIVE_MAE.items():
        for week in ACTIVE_WEEKS:
            for slot in range(rng.randint(1, per_week)):
                at = T0 + timedelta(weeks=week, days=slot * 2, hours=slot)
                for name, kind, share, seconds in REGISTRY:
                    learning = 1 - 0.004 * week if kind != "Naive" else 1.0
                    mae = naive * share * learning * rng.uniform(0.93, 1.07)
                    beats = None if rng.random() < 0.1 else mae < 0.95 * naive
                    hours = seconds * rng.uniform(0.8, 1.2) / 3600
                    run = {
                        "commodity": commodity, "model_name": name, "model_type": kind,
                        "model_version": f"v{1 + week // 8}", "run_timestamp": at,
                        "mae_1day": round(mae * 0.3, 4), "mae_7day": round(mae * 0.7, 4),
                        "mae_14day": round(mae, 4), "rmse_14day": round(mae * 1.25, 4),
                        "directional_accuracy": round(min(0.99, 0.5 + (1 - share) * 1.5
                                                          + rng.uniform(-0.05, 0.05)), 4),
                        "beats_baseline": beats, "execution_time_seconds": round(hours * 3600, 1),
                        "cost_estimate_usd": round(hours * 0.9, 4), "is_production": False,
                    }  # fmt: skip
                    experiment_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                    events.append(recorded(experiment_id, at, **run))
                    if rng.random() < 0.05:
                        better = {**run, "mae_14day": round(mae * 0.97, 4)}
                        events.append(recorded(experiment_id, at + HOUR, **better))
                    if rng.random() < 0.05:
                        events.append(annotated(experiment_id, at + HOUR, "checked by hand"))
        winners = [e for e in events if e["event_type"] == contract.RUN_RECORDED
                   and e["run"]["commodity"] == commodity
                   and e["run"]["model_name"] == "sarimax_weather"]  # fmt: skip
        best = min(winners, key=lambda e: e["run"]["mae_14day"])
        events.append(promoted(best["experiment_id"], best["event_time"] + 24 * HOUR))
        tried = winners[0]
        events.append(promoted(tried["experiment_id"], tried["event_time"] + HOUR))
        events.append(promoted(tried["experiment_id"], tried["event_time"] + 48 * HOUR, False))
    return events


# -- the streaming job: configure it, run it once, read its tables -----------------------------
def job_config(bootstrap: str, live: str, replay: str, root: Path, **changes: Any) -> Any:
    """A ``JobConfig`` for ``live`` and ``replay`` with path tables and checkpoint under
    ``root`` (imports the consumer package lazily: this module needs no Spark)."""
    from runstream.consumer.job import JobConfig

    config = JobConfig.from_env(
        bootstrap_servers=bootstrap, topic=live, replay_topic=replay,
        lake=root / "lake", table="", checkpoint=str(root / "checkpoint"),
    )  # fmt: skip
    return config.with_(**changes) if changes else config


def run_once(spark: Any, config: Any) -> None:
    """One availableNow pass: everything in the topics now, then stop."""
    from runstream.consumer.job import start

    query = start(spark, config, once=True)
    query.awaitTermination()
    if query.exception() is not None:
        raise AssertionError(f"the streaming query failed: {query.exception()}")


def rows_by_id(spark: Any, table: str) -> dict[str, dict[str, Any]]:
    rows = [r.asDict(recursive=True) for r in spark.table(table).collect()]
    by_id = {r["experiment_id"]: r for r in rows}
    assert len(by_id) == len(rows), "model_runs holds more than one row for an experiment_id"
    return by_id


def consume_command(bootstrap: str, root: Path, *extra: str) -> list[str]:
    """``runstream -v consume`` as a subprocess runs it, lake and checkpoint under ``root``."""
    return [
        sys.executable, "-m", "runstream", "-v", "consume", "--bootstrap-servers", bootstrap,
        "--lake", str(root / "lake"), "--checkpoint", str(root / "checkpoint"), *extra,
    ]  # fmt: skip


def consume_env(live: str, replay: str, home: Path) -> dict[str, str]:
    """The environment of a ``runstream consume`` subprocess: its topics, its own home."""
    return {**os.environ, "RUNSTREAM_TOPIC": live, "RUNSTREAM_REPLAY_TOPIC": replay,
            "RUNSTREAM_HOME": str(home), "RUNSTREAM_TABLE": ""}  # fmt: skip


# -- a process that emits runs, to be killed or waited for -------------------------------------
_EMITTER_CHILD = """
import random, sys, time
from runstream import Emitter
from runstream.demo import seed_experiment

spool_dir, count, pace = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
batch_max, seed = int(sys.argv[4]), int(sys.argv[5])
if len(sys.argv) > 7:
    emitter = Emitter(spool_dir=spool_dir, bootstrap_servers=sys.argv[6], topic=sys.argv[7])
else:
    emitter = Emitter(spool_dir=spool_dir, send=False)
rng = random.Random(seed)
done = 0
while count <= 0 or done < count:
    if batch_max:
        runs = [seed_experiment() for _ in range(rng.randint(1, batch_max))]
        receipts = emitter.emit_runs(runs)
    else:
        receipts = [emitter.emit_run(seed_experiment())]
    sys.stdout.write(" ".join(r.event_id for r in receipts) + "\\n")
    sys.stdout.flush()
    done += 1
    if pace:
        time.sleep(pace)
"""


class EmittingChild:
    """A child process that emits the seed's run (a new experiment_id each time) into
    ``spool_dir`` and prints each event id once ``emit_run`` returned; with ``batch_max``, it
    emits batches of 1 to ``batch_max`` runs with ``emit_runs`` instead (sizes drawn from
    ``seed``) and prints each batch's event ids on one line once it returned. ``count`` (runs
    or batches) 0 emits until killed; with ``bootstrap`` and ``topic`` its sender delivers
    (else ``send=False``). Its printed lines are read as they come: a complete line is what
    the child was told is durable."""

    def __init__(
        self,
        spool_dir: Path,
        *,
        count: int = 0,
        pace_s: float = 0.0,
        batch_max: int = 0,
        seed: int = 0,
        bootstrap: str | None = None,
        topic: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        target = [bootstrap, topic] if bootstrap and topic else []
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _EMITTER_CHILD, str(spool_dir), str(count), str(pace_s),
             str(batch_max), str(seed), *target],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})},
        )  # fmt: skip
        assert self.proc.stdout is not None
        self.fd = self.proc.stdout.fileno()
        self.buffer = b""
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.fd, selectors.EVENT_READ)

    def lines(self) -> list[str]:
        """Complete lines so far (a line is printed whole, after emit_run returned)."""
        return [line.decode() for line in self.buffer.split(b"\n")[:-1]]

    def batches(self) -> list[list[str]]:
        """The event ids of each complete line: one batch (or one run) the child emitted."""
        return [line.split() for line in self.lines()]

    def poll(self) -> None:
        """Take in what it printed so far, without waiting."""
        self._read(0)

    def _read(self, timeout_s: float) -> bool:
        """Read what is there within ``timeout_s``; False at end of output."""
        if self.selector.select(timeout=timeout_s):
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return False
            self.buffer += chunk
        return True

    def read_until(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.lines()) < count:
            left = deadline - time.monotonic()
            assert left > 0, f"the child printed {len(self.lines())} of {count} lines in time"
            assert self._read(left), f"the child died: {self.proc.stderr.read()!r}"  # type: ignore[union-attr]

    def _finish(self) -> None:
        while chunk := os.read(self.fd, 65536):  # what it printed before it ended
            self.buffer += chunk
        self.selector.close()
        self.proc.stdout.close()  # type: ignore[union-attr]
        self.proc.stderr.close()  # type: ignore[union-attr]

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._finish()

    def wait(self, timeout_s: float) -> int:
        """Read its output until it exits on its own; its exit code."""
        deadline = time.monotonic() + timeout_s
        while self._read(max(0.0, deadline - time.monotonic())):
            assert time.monotonic() < deadline, f"the child did not exit within {timeout_s}s"
        code = self.proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        stderr = self.proc.stderr.read() if code else b""  # type: ignore[union-attr]
        self._finish()
        assert code == 0, f"the child exited with {code}: {stderr[-2000:]!r}"
        return code


# -- fuzzed poison -----------------------------------------------------------------------------
POISON_KINDS = ("random", "random-with-header", "truncated", "bitflip-header",
                "wrong-fingerprint", "empty", "tombstone", "oversized")  # fmt: skip


def fuzzed_poison(
    rng: random.Random, valid: Sequence[bytes], count: int, oversized: int = 2
) -> list[tuple[str, bytes | None]]:
    """``count`` records the consumer must quarantine, as (kind, value), built from ``valid``
    encoded events: random bytes (bare, or behind a valid header so the Avro decoder runs),
    events truncated at a random byte, bit flips in the header (magic or fingerprint), a
    random fingerprint, empty and null values, and ``oversized`` records past the decoder's
    limit. Single-object encoding has no checksum over the body, so a bit flip inside the body
    can make a different well-formed event that nobody could tell from a real one: flips are
    aimed at the header, where every one must be caught."""
    known = {v.fingerprint for v in contract.versions()}
    limit = 2 * 1024 * 1024  # runstream.consumer.decode.MAX_RECORD_BYTES (no Spark import)
    out: list[tuple[str, bytes | None]] = []
    for i in range(count):
        kind = "oversized" if i < oversized else rng.choice(POISON_KINDS[:-1])
        base = rng.choice(valid)
        value: bytes | None
        if kind == "random":
            value = rng.randbytes(rng.randint(1, 2048))
            if value[:2] == contract.MAGIC:
                value = b"\x00" + value
        elif kind == "random-with-header":
            value = base[: contract.HEADER_SIZE] + rng.randbytes(rng.randint(0, 2048))
        elif kind == "truncated":
            value = base[: rng.randint(1, len(base) - 1)]
        elif kind == "bitflip-header":
            flipped = bytearray(base)
            for _ in range(rng.randint(1, 4)):
                flipped[rng.randrange(contract.HEADER_SIZE)] ^= 1 << rng.randrange(8)
            value = bytes(flipped)
            if value == base:
                value = bytes([base[0] ^ 1]) + base[1:]
        elif kind == "wrong-fingerprint":
            fingerprint = rng.randbytes(8)
            while fingerprint in known:
                fingerprint = rng.randbytes(8)
            value = contract.MAGIC + fingerprint + base[contract.HEADER_SIZE :]
        elif kind == "empty":
            value = b""
        elif kind == "tombstone":
            value = None
        else:
            value = base + rng.randbytes(16) * ((limit - len(base)) // 16 + 64)
        out.append((kind, value))
    return out


# -- a streaming job that outlives its broker --------------------------------------------------
class RestartingJob:
    """The continuous job in this process; ``alive`` restarts it from its checkpoint when it
    has died (as a scheduler would), counting restarts and keeping the first line of each
    error. Imports the consumer package lazily."""

    def __init__(self, spark: Any, config: Any, trigger_seconds: float = 1.0) -> None:
        self.spark, self.config, self.trigger_seconds = spark, config, trigger_seconds
        self.restarts = 0
        self.errors: list[str] = []
        self.query = self._start()

    def _start(self) -> Any:
        from runstream.consumer.job import start

        return start(self.spark, self.config, once=False, trigger_seconds=self.trigger_seconds)

    def alive(self) -> None:
        if self.query.isActive:
            return
        error = self.query.exception()
        self.errors.append(str(error).splitlines()[0] if error else "stopped")
        self.restarts += 1
        self.query = self._start()

    def wait_rows(self, count: int, timeout_s: float, every_s: float = 2.0) -> None:
        """Until model_runs holds ``count`` rows, counting at most every ``every_s``."""
        table = self.config.tables.runs
        last = [0.0]

        def enough() -> bool:
            if time.monotonic() - last[0] < every_s:
                return False
            last[0] = time.monotonic()
            self.alive()
            return bool(self.spark.table(table).count() >= count)

        wait_for(enough, timeout_s, f"{count} rows in {table}")

    def stop(self) -> None:
        self.query.stop()


def digests(values: Iterable[bytes | None]) -> Counter[str | None]:
    """SHA-256 (hex) of each value, as a multiset; None stays None."""
    return Counter(None if v is None else hashlib.sha256(v).hexdigest() for v in values)


def quarantined_digests(spark: Any, rejects_table: str) -> Counter[str | None]:
    """The same multiset over the raw values in the quarantine table (computed in Spark)."""
    from pyspark.sql import functions as F

    column = F.sha2("value", 256).alias("h")
    return Counter(r["h"] for r in spark.table(rejects_table).select(column).collect())
