"""Reliability suite: the fault tests of the test suite, scaled up. Not part of ``make test``.

Run: ``.venv/bin/python bench/reliability.py`` (about half an hour on two cores), ``--quick``
for a small smoke run of every scenario, ``--only a,c`` for a subset. It starts one Kafka
broker (``LocalBroker`` on free ports, state in a temporary folder) and one local SparkSession,
and gives each scenario its own topics, tables and checkpoint. Each scenario prints its load,
the faults it injected and its invariant; a table at the end sums them up:

a. broker outage during emits: a process emits at a steady pace while the broker is stopped
   and started again, several times; every run it emitted lands once;
b. broker restart mid-stream: the streaming job runs (in this process) while the broker is
   restarted under it; a job that dies is restarted from its checkpoint; the table equals
   what was emitted;
c. producer SIGKILL: each round a process emits (and sends) and is killed at a random
   instant; every run whose emit_run() returned lands once; runs written but killed before
   emit_run returned may land too (they are complete events) and are counted apart;
d. consumer SIGKILL mid-batch: each round new events are produced and ``runstream consume``
   runs as a subprocess with small batches until a random moment after its first batch line,
   then its process group gets SIGKILL; after the last round the job runs once more on the
   same checkpoint: the table is the fold of every event sent, no row doubled or lost;
e. duplicate storm with replay: runs with later updates (restated, promoted, annotated),
   every event sent several times on the live topic and again on the replay topic, shuffled,
   in two passes of the job; after each pass the table is the fold of what was sent;
f. fuzzed poison: random bytes, truncated events, header bit flips, wrong fingerprints, empty,
   null and oversized records mixed with valid events in chunks to a running job: every valid
   run lands, every poison record is quarantined exactly once, the query stays active;
g. 8 emitting processes sharing one spool, and 8 with a spool each: every run lands once;
h. secured broker with rotating credentials: the broker's SASL listener, processes in turn
   emitting through a client properties file (``RUNSTREAM_KAFKA_PROPERTIES``) with a wrong or
   the right password; wrong ones keep their runs in the spool, a right one delivers them all,
   every run lands once.

"emitted" counts the runs a scenario created (returned by emit_run, or built and sent);
"rows" the rows of model_runs; "dup" rows or logged events beyond one per run or event;
"lost" expected runs missing or differing from the fold; "quar." quarantined records.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from runstream.consumer.job import start
from runstream.consumer.topics import fresh_topic
from runstream.devtools.kafka_broker import LocalBroker, free_port
from runstream.devtools.testkit import (
    HOUR,
    MINUTE,
    PROJECTED,
    T0,
    EmittingChild,
    RestartingJob,
    annotated,
    consume_command,
    consume_env,
    digests,
    encoded,
    fuzzed_poison,
    job_config,
    key_of,
    new_id,
    produce,
    promoted,
    quarantined_digests,
    recorded,
    reference_fold,
    run_once,
    wait_for,
)
from runstream.producer.emitter import Emitter
from runstream.producer.sender import Sender
from runstream.producer.spool import Spool

log = logging.getLogger("reliability")

BATCH_LINE = re.compile(rb"^batch \d+: ", re.MULTILINE)


@dataclass
class Result:
    scenario: str
    load: str
    faults: str
    emitted: int = 0
    rows: int = 0
    duplicates: int = 0
    lost: int = 0
    quarantined: int = 0
    ok: bool = False
    seconds: float = 0.0
    note: str = ""
    not_run: str = ""

    def invariant(self) -> str:
        if self.not_run:
            return f"not run: {self.not_run}"
        verdict = "PASS" if self.ok else "FAIL"
        return (f"{verdict}: {self.emitted} runs emitted, {self.rows} rows in model_runs, "
                f"{self.duplicates} duplicated, {self.lost} lost, {self.quarantined} "
                f"quarantined{'; ' + self.note if self.note else ''}")  # fmt: skip


class Suite:
    """The broker, the SparkSession and a work folder shared by the scenarios."""

    def __init__(self, work: Path, quick: bool) -> None:
        self.work = work
        self.quick = quick
        self.broker = LocalBroker(
            work / "kafka", port=free_port(), controller_port=free_port(),
            sasl_port=free_port(), users=((SASL_USER, SASL_PASSWORD),),
        )  # fmt: skip
        self._spark: Any = None
        self.rng = random.Random()
        self.seed = self.rng.randrange(2**32)
        self.rng.seed(self.seed)

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    @property
    def spark(self) -> Any:
        """The SparkSession; a new one if a scenario killed the JVM (an OutOfMemoryError in a
        batch stops the SparkContext), so one scenario's crash does not fail the next ones."""
        if self._spark is not None and not _jvm_alive(self._spark):
            from pyspark import SparkContext
            from pyspark.sql import SparkSession

            print("   (the SparkSession's JVM died; starting a new one)", flush=True)
            SparkContext._active_spark_context = None
            SparkContext._gateway = None
            SparkContext._jvm = None
            SparkSession._instantiatedSession = None
            SparkSession._activeSession = None
            self._spark = None
        if self._spark is None:
            from runstream.consumer.session import spark_session

            self._spark = spark_session(
                "runstream-reliability", shuffle_partitions=1, jvm_log=self.work / "spark.log"
            )
        return self._spark

    def job(self, name: str) -> Any:
        live = fresh_topic(self.bootstrap, f"{name}-live")
        replay = fresh_topic(self.bootstrap, f"{name}-replay")
        return job_config(self.bootstrap, live, replay, self.work / name)

    def producer_side(self, name: str) -> tuple[Any, str, Path]:
        """A scenario's job config, its live topic and a spool folder of its own."""
        config = self.job(name)
        return config, config.topics[0], self.work / f"{name}-spool"

    def broker_up(self) -> None:
        self.broker.up()

    def close(self) -> None:
        try:
            if self._spark is not None and _jvm_alive(self._spark):
                self._spark.stop()
        finally:
            self.broker.down()


def _jvm_alive(spark: Any) -> bool:
    try:
        return not spark.sparkContext._jsc.sc().isStopped()
    except Exception:
        return False


# -- checking a table against what was sent ---------------------------------------------------
def _log_duplicates(spark: Any, tables: Any) -> int:
    log_table = spark.table(tables.events)
    return int(log_table.count() - log_table.select("event_id").distinct().count())


def check_returned(
    spark: Any, config: Any, result: Result, returned: set[str], written: int = 0
) -> set[str]:
    """For runs of one event each (emit_run of a new run): every returned event id is some
    row's last event, once; nothing else lands but complete events written by a killed
    emitter (at most ``written`` of them). Returns the event ids that landed."""
    tables = config.tables
    rows = spark.table(tables.runs).select("experiment_id", "_rs_last_event_id",
                                           "_rs_event_count").collect()  # fmt: skip
    landed = [r["_rs_last_event_id"] for r in rows]
    extra = set(landed) - returned
    result.emitted = len(returned)
    result.rows = len(rows)
    result.duplicates = (
        len(rows) - len({r["experiment_id"] for r in rows})
        + sum(r["_rs_event_count"] - 1 for r in rows)
        + _log_duplicates(spark, tables)
    )  # fmt: skip
    result.lost = len(returned - set(landed))
    result.quarantined = spark.table(tables.rejects).count()
    if extra:
        result.note = f"{len(extra)} more written by killed emitters before returning, landed once"
    result.ok = (result.duplicates == 0 and result.lost == 0 and result.quarantined == 0
                 and len(extra) <= written)  # fmt: skip
    return set(landed)


def check_fold(spark: Any, config: Any, result: Result, events: Iterable[dict[str, Any]]) -> None:
    """Every row equals the plain-Python fold of the events sent; one row per run, each event
    logged once."""
    sent = list(events)
    expected = reference_fold(sent)
    tables = config.tables
    rows = [r.asDict() for r in
            spark.table(tables.runs).select("experiment_id", *PROJECTED).collect()]  # fmt: skip
    by_id = {r.pop("experiment_id"): r for r in rows}
    logged = spark.table(tables.events).count()
    result.emitted = len(expected)
    result.rows = len(rows)
    result.duplicates = len(rows) - len(by_id) + _log_duplicates(spark, tables)
    differ = [k for k, v in expected.items() if k in by_id and by_id[k] != v]
    result.lost = len(set(expected) - set(by_id)) + len(differ)
    unexpected = set(by_id) - set(expected)
    distinct_events = len({e["event_id"] for e in sent})
    if differ:
        k = differ[0]
        result.note = f"{len(differ)} rows differ from the fold, e.g. {by_id[k]} != {expected[k]}"
    result.quarantined = spark.table(tables.rejects).count()
    result.ok = (result.duplicates == 0 and result.lost == 0 and not unexpected
                 and logged == distinct_events)  # fmt: skip
    if unexpected or logged != distinct_events:
        result.note += (f" {len(unexpected)} unexpected rows; {logged} events logged of "
                        f"{distinct_events} sent")  # fmt: skip


def deliver_leftovers(spool_dir: Path, topic: str, bootstrap: str, client: Any = None) -> int:
    """Send what a spool still holds (a killed or timed-out emitter's runs); how many."""
    sender = Sender(Spool(spool_dir), topic=topic, bootstrap_servers=bootstrap, client=client)
    try:
        result = sender.flush(timeout_s=120)
    finally:
        sender.stop()
    if result.left:
        raise AssertionError(f"{result.left} events stayed in {spool_dir}")
    return result.sent


# -- a. broker outage during emits ------------------------------------------------------------
def scenario_a(suite: Suite, runs: int, outages: int) -> Result:
    pace = 0.01
    result = Result("a. broker outage during emits",
                    f"1 process emitting {runs} runs, one every ~{pace * 1000:.0f} ms",
                    f"{outages} broker stops and restarts while it emits")  # fmt: skip
    config, live, spool_dir = suite.producer_side("a")
    child = EmittingChild(spool_dir, count=runs, pace_s=pace, bootstrap=suite.bootstrap,
                          topic=live, env={"RUNSTREAM_FLUSH_TIMEOUT": "120"})  # fmt: skip
    during: list[int] = []
    per = runs // (outages + 1)
    try:
        for k in range(outages):
            child.read_until(per * k + per // 2, timeout_s=300)
            before = len(child.lines())
            suite.broker.down()
            child.read_until(per * (k + 1), timeout_s=300)  # emits while the broker is away
            suite.broker.up()
            during.append(len(child.lines()) - before)
        child.wait(timeout_s=600)
    finally:
        suite.broker_up()
        if child.proc.poll() is None:
            child.kill()
    left = deliver_leftovers(spool_dir, live, suite.bootstrap)
    run_once(suite.spark, config)
    check_returned(suite.spark, config, result, set(child.lines()))
    result.faults += f" ({'+'.join(map(str, during))} runs emitted while it was down or starting)"
    if left:
        result.note += f"{left} sent after the child's exit flush timed out"
    return result


# -- b. broker restart mid-stream --------------------------------------------------------------
def scenario_b(suite: Suite, restarts: int, chunk: int) -> Result:
    result = Result("b. broker restart mid-stream",
                    f"{chunk * (2 * restarts + 1)} runs emitted in {2 * restarts + 1} chunks "
                    "to a running job (trigger 1 s)",
                    f"{restarts} broker restarts while the job runs")  # fmt: skip
    config = suite.job("b")
    emitter = Emitter(bootstrap_servers=suite.bootstrap, topic=config.topics[0],
                      spool_dir=suite.work / "b-spool")  # fmt: skip
    returned: set[str] = set()

    def emit() -> None:
        returned.update(emitter.emit_run(seed_run()).event_id for _ in range(chunk))

    job = RestartingJob(suite.spark, config)
    try:
        for _ in range(restarts):
            emit()
            drained(emitter)
            suite.broker.down()
            emit()  # into the spool: no broker
            time.sleep(3)  # let the job's triggers meet the missing broker
            job.alive()
            suite.broker.up()
            drained(emitter)
        emit()
        drained(emitter)
        job.wait_rows(len(returned), timeout_s=600)
    finally:
        suite.broker_up()
        job.stop()
        emitter.close(10)
    check_returned(suite.spark, config, result, returned)
    result.note += (f"job restarted {job.restarts} time(s) from its checkpoint"
                    + (f" ({job.errors[0][:80]})" if job.errors else ""))  # fmt: skip
    return result


def drained(emitter: Emitter) -> None:
    emitter.flush(1)  # wakes the sender
    wait_for(lambda: emitter.spool.status().pending == 0, 180, "the spool to drain")


def seed_run() -> dict[str, Any]:
    from runstream.demo import seed_experiment

    return seed_experiment()


# -- c. producer SIGKILL -----------------------------------------------------------------------
def scenario_c(suite: Suite, rounds: int) -> Result:
    result = Result("c. producer SIGKILL at random points",
                    f"{rounds} emitting processes in turn, one shared spool, sender on",
                    f"SIGKILL {rounds} times, 1-20 emits + 0-10 ms or 50-1000 ms in")  # fmt: skip
    config, live, spool_dir = suite.producer_side("c")
    rng = suite.rng
    returned: set[str] = set()
    for _ in range(rounds):
        child = EmittingChild(spool_dir, pace_s=0.002, bootstrap=suite.bootstrap, topic=live)
        try:
            child.read_until(rng.randint(1, 20), timeout_s=60)
            # half the kills land inside an emit, half later, while its sender sends
            time.sleep(rng.uniform(0, 0.01) if rng.random() < 0.5 else rng.uniform(0.05, 1.0))
        finally:
            child.kill()
        returned.update(child.lines())
        Spool(spool_dir)  # opens after every kill
    spool = Spool(spool_dir)
    status = spool.status()
    assert status.corrupt == 0, f"{status.corrupt} corrupt files in the spool"
    waiting = status.pending
    deliver_leftovers(spool_dir, live, suite.bootstrap)
    run_once(suite.spark, config)
    check_returned(suite.spark, config, result, returned, written=rounds)
    result.note += f"; {waiting} left in the spool at the end, sent by a later flush"
    return result


# -- d. consumer SIGKILL mid-batch -------------------------------------------------------------
def _updates(rng: random.Random, experiment_id: str, at: datetime) -> list[dict[str, Any]]:
    """A run's later history, drawn at random: restated, promoted, demoted, annotated, some
    updates older than the run's newest event."""
    events = []
    if rng.random() < 0.4:
        events.append(recorded(experiment_id, at + HOUR, mae_14day=rng.uniform(0.1, 9),
                               notes=rng.choice((None, "restated"))))  # fmt: skip
    if rng.random() < 0.4:
        events.append(promoted(experiment_id, at + rng.randint(-90, 90) * MINUTE,
                               is_production=rng.random() < 0.7))  # fmt: skip
    if rng.random() < 0.3:
        events.append(annotated(experiment_id, at + rng.randint(-90, 90) * MINUTE,
                                f"note {rng.randrange(1000)}"))  # fmt: skip
    return events


def _runs_with_history(rng: random.Random, count: int, prefix: str) -> list[dict[str, Any]]:
    events = []
    for _ in range(count):
        eid, at = new_id(prefix), T0 + rng.randrange(60 * 24 * 30) * MINUTE
        events.append(recorded(eid, at, mae_14day=rng.uniform(0.1, 9)))
        events += _updates(rng, eid, at)
    return events


def _records(
    rng: random.Random, events: Iterable[dict[str, Any]], topics: dict[str, int]
) -> list[tuple[str, bytes, bytes]]:
    """Each event ``n`` times on each topic of ``topics``, shuffled."""
    out = [(topic, key_of(e), encoded(e)) for e in events
           for topic, n in topics.items() for _ in range(n)]  # fmt: skip
    rng.shuffle(out)
    return out


def _numbered(folder: Path) -> list[int]:
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.exists() \
        else []  # fmt: skip


def _consume_then_kill(
    suite: Suite, config: Any, log_file: Path, batch: int, after: float
) -> float:
    """``runstream consume`` in its own process group, SIGKILLed ``after`` seconds past its
    first batch line; how long that line took to appear."""
    live, replay = config.topics
    t0 = time.monotonic()
    with log_file.open("wb") as out:
        proc = subprocess.Popen(
            consume_command(suite.bootstrap, Path(config.checkpoint).parent, "--trigger-seconds",
                            "0.5", "--max-offsets-per-trigger", str(batch)),
            env={**consume_env(live, replay, suite.work / "d-home"), "PYTHONUNBUFFERED": "1"},
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:

        def first_batch() -> bool:
            assert proc.poll() is None, f"consume exited: {log_file.read_text()[-2000:]}"
            return BATCH_LINE.search(log_file.read_bytes()) is not None

        wait_for(first_batch, 300, "consume's first batch line")
        first = time.monotonic() - t0
        time.sleep(after)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    return first


def scenario_d(
    suite: Suite, rounds: int, runs_per_round: int, batch: int, budget_s: float | None = None
) -> Result:
    result = Result("d. consumer SIGKILL mid-batch",
                    f"{rounds} rounds; each {runs_per_round} new runs plus updates of them, "
                    f"every event twice over both topics; `runstream consume`, "
                    f"{batch} records per batch",
                    f"SIGKILL of the consume process group 0-6 s after its first batch line, "
                    f"{rounds} times; restart on the same checkpoint")  # fmt: skip
    config = suite.job("d")
    live, replay = config.topics
    checkpoint = Path(config.checkpoint)
    rng = suite.rng
    sent: list[dict[str, Any]] = []
    in_flight = 0
    started_s: list[float] = []
    began = time.monotonic()
    done = 0
    for r in range(rounds):
        if budget_s is not None and r and time.monotonic() - began > budget_s:
            print(f"  stopping after {r} of {rounds} rounds: the --d-budget-s of "
                  f"{budget_s:.0f}s is spent", flush=True)  # fmt: skip
            break
        done += 1
        events = _runs_with_history(rng, runs_per_round, f"d{r}")
        # and late updates of runs from earlier rounds
        for old in rng.sample(sent, min(len(sent), runs_per_round // 2)):
            events += _updates(rng, old["experiment_id"], T0)
        sent += events
        produce(suite.bootstrap, _records(rng, events, {live: 1, replay: 1}))
        t0 = time.monotonic()
        started_s.append(_consume_then_kill(suite, config, suite.work / f"d-consume-{r}.log",
                                            batch, rng.uniform(0, 6)))  # fmt: skip
        planned, committed = _numbered(checkpoint / "offsets"), _numbered(checkpoint / "commits")
        if planned and (not committed or planned[-1] > committed[-1]):
            in_flight += 1
        print(f"  round {r + 1}/{rounds}: killed {time.monotonic() - t0:.1f}s after start; "
              f"batches planned {planned[-1] if planned else '-'}, committed "
              f"{committed[-1] if committed else '-'}", flush=True)  # fmt: skip
    run_once(suite.spark, config)  # the restart that finishes the work
    check_fold(suite.spark, config, result, sent)
    if done < rounds:
        result.load = result.load.replace(f"{rounds} rounds", f"{done} rounds (of {rounds})")
        result.faults = result.faults.replace(f"{rounds} times", f"{done} times")
    result.faults += f" ({in_flight} of {done} kills with a batch planned but not committed)"
    result.note += (f"{len(sent)} events; first batch line {min(started_s):.0f}-"
                    f"{max(started_s):.0f}s after each start").strip()  # fmt: skip
    return result


# -- e. duplicate storm with replay ------------------------------------------------------------
def scenario_e(suite: Suite, runs: int, live_copies: int, replay_copies: int) -> Result:
    config = suite.job("e")
    live, replay = config.topics
    rng = suite.rng
    events = _runs_with_history(rng, runs, "storm")
    records = _records(rng, events, {live: live_copies, replay: replay_copies})
    result = Result("e. duplicate storm with replay",
                    f"{runs} runs, {len(events)} events, {len(records)} records",
                    f"each event {live_copies}x on the live topic and {replay_copies}x on the "
                    "replay topic, shuffled, over two passes of the job")  # fmt: skip
    half = len(records) // 2
    produce(suite.bootstrap, records[:half])
    run_once(suite.spark, config)
    first_ids = _event_ids(records[:half])
    first = Result("", "", "")
    check_fold(suite.spark, config, first, [e for e in events if e["event_id"] in first_ids])
    produce(suite.bootstrap, records[half:])
    run_once(suite.spark, config)
    check_fold(suite.spark, config, result, events)
    result.ok = result.ok and first.ok
    result.note = (
        f"after pass 1: {first.rows} rows = fold of the "
        f"{len(first_ids)} events seen: {'yes' if first.ok else 'NO ' + first.note}"
    )
    return result


def _event_ids(records: Iterable[tuple[str, bytes, bytes]]) -> set[str]:
    from runstream import contract

    return {contract.decode(value)["event_id"] for _, _, value in records}


# -- f. fuzzed poison --------------------------------------------------------------------------
def scenario_f(suite: Suite, poison_count: int, valid_runs: int, chunks: int) -> Result:
    config = suite.job("f")
    live, replay = config.topics
    rng = suite.rng
    valid_events = _runs_with_history(rng, valid_runs, "valid")
    valid_values = [encoded(e) for e in valid_events]
    poison = fuzzed_poison(rng, valid_values, poison_count)
    kinds = Counter(kind for kind, _ in poison)
    mixed: list[tuple[str, bytes | None, bytes | None]] = [
        (rng.choice((live, replay)), key_of(e), v)
        for e, v in zip(valid_events, valid_values, strict=True)
    ]
    # kafka-python refuses a record with neither key nor value: tombstones get a key
    mixed += [(rng.choice((live, replay)), b"fuzz" if v is None else rng.choice((None, b"fuzz")), v)
              for _, v in poison]  # fmt: skip
    rng.shuffle(mixed)
    result = Result("f. fuzzed poison",
                    f"{len(poison)} poison records + {len(valid_events)} valid events "
                    f"({valid_runs} runs), shuffled, in {chunks} chunks to a running job",
                    ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))  # fmt: skip
    query = start(suite.spark, config, once=False, trigger_seconds=0.5)
    stopped = ""
    try:
        size = -(-len(mixed) // chunks)
        for i in range(0, len(mixed), size):
            produce(suite.bootstrap, mixed[i : i + size])
            try:
                query.processAllAvailable()
            except Exception as exc:  # the query died: that is the finding, keep checking
                stopped = f"after chunk {i // size + 1}: {str(exc).splitlines()[0][:300]}"
                break
            if not query.isActive or query.exception() is not None:
                stopped = f"after chunk {i // size + 1}: {query.exception()}"
                break
    finally:
        with contextlib.suppress(Exception):
            query.stop()
    if stopped:
        oom = "OutOfMemoryError" in (suite.work / "spark.log").read_text(errors="replace")
        stopped += " (spark.log: java.lang.OutOfMemoryError)" if oom else ""
    check_fold(suite.spark, config, result, valid_events)
    quarantined = quarantined_digests(suite.spark, config.tables.rejects)
    expected = digests(v for _, v in poison)
    missing = sum((expected - quarantined).values())
    surplus = sum((quarantined - expected).values())
    result.ok = result.ok and not stopped and missing == 0 and surplus == 0
    result.note = (f"{missing} poison records not quarantined, {surplus} quarantined records "
                   f"that were not poison, query "
                   f"{'STOPPED ' + stopped if stopped else 'active throughout'}"
                   + (f"; {result.note}" if result.note else ""))  # fmt: skip
    return result


# -- g. concurrent producers -------------------------------------------------------------------
def scenario_g(suite: Suite, processes: int, each: int) -> Result:
    result = Result("g. concurrent producers",
                    f"{processes} processes x {each} runs on one spool, then {processes} x "
                    f"{each} on a spool each, all started together, senders on",
                    "contention: one sender lock, shared pending/ folder")  # fmt: skip
    config = suite.job("g")
    live = config.topics[0]
    spools = [suite.work / "g-shared"] * processes + [
        suite.work / f"g-own-{i}" for i in range(processes)
    ]
    returned: set[str] = set()
    left = 0
    for group in (spools[:processes], spools[processes:]):
        children = [
            EmittingChild(s, count=each, bootstrap=suite.bootstrap, topic=live,
                          env={"RUNSTREAM_FLUSH_TIMEOUT": "120"})
            for s in group
        ]  # fmt: skip
        try:
            for child in children:
                child.wait(timeout_s=600)
                returned.update(child.lines())
        finally:
            for child in children:
                if child.proc.poll() is None:
                    child.kill()
        left += sum(deliver_leftovers(s, live, suite.bootstrap) for s in set(group))
    run_once(suite.spark, config)
    check_returned(suite.spark, config, result, returned)
    if left:
        result.note += f"{left} sent by a later flush"
    return result


# -- h. secured broker -------------------------------------------------------------------------
SASL_USER = "reliability"
SASL_PASSWORD = f"right-{os.urandom(8).hex()}"
SECRET_VAR = "RS_RELIABILITY_KAFKA_SECRET"


def sasl_properties(path: Path, bootstrap: str, mechanism: str) -> Path:
    """A user's client properties file for the SASL listener; the secret comes from the
    environment (``${env:...}``), so a rotation changes the variable, not the file."""
    path.write_text(
        f"bootstrap.servers={bootstrap}\nsecurity.protocol=SASL_PLAINTEXT\n"
        f"sasl.mechanism={mechanism}\nsasl.username={SASL_USER}\n"
        f"sasl.password=${{env:{SECRET_VAR}}}\n"
    )
    return path


def scenario_h(suite: Suite, rounds: int, each: int) -> Result:
    from runstream import kafka_client

    rng = suite.rng
    # Wrong and right credentials in turn, at random, with at least one of each; the last
    # rotation is right, and it must also deliver what the wrong ones left in the spool.
    plan = [rng.random() < 0.5 for _ in range(rounds - 1)] + [True]
    if all(plan) and rounds > 1:
        plan[0] = False
    result = Result("h. secured broker, rotating credentials",
                    f"{rounds} processes in turn x {each} runs, one spool, sender on, SASL "
                    "listener (PLAIN and SCRAM-SHA-512 alternating)",
                    f"{plan.count(False)} rotations to a wrong password, {plan.count(True)} to "
                    "the right one")  # fmt: skip
    config, live, spool_dir = suite.producer_side("h")
    sasl = suite.broker.sasl_bootstrap
    returned: set[str] = set()
    pending = []
    for i, right in enumerate(plan):
        mechanism = "PLAIN" if i % 2 else "SCRAM-SHA-512"
        props = sasl_properties(suite.work / f"h-{i}.properties", sasl, mechanism)
        secret = SASL_PASSWORD if right else f"wrong-{os.urandom(8).hex()}"
        child = EmittingChild(spool_dir, count=each, bootstrap=sasl, topic=live,
                              env={"RUNSTREAM_KAFKA_PROPERTIES": str(props), SECRET_VAR: secret,
                                   "RUNSTREAM_FLUSH_TIMEOUT": "30"})  # fmt: skip
        try:
            child.wait(timeout_s=180)
        finally:
            if child.proc.poll() is None:
                child.kill()
        returned.update(child.lines())
        pending.append(f"{'right' if right else 'wrong'}:{Spool(spool_dir).status().pending}")
    os.environ[SECRET_VAR] = SASL_PASSWORD
    client = kafka_client.load(sasl, properties_file=props)
    left = deliver_leftovers(spool_dir, live, sasl, client=client)
    run_once(suite.spark, config)
    check_returned(suite.spark, config, result, returned)
    result.note += (f"spool after each rotation {' '.join(pending)}; "
                    f"{left} sent by a final flush with the right password")  # fmt: skip
    return result


# -- the run -----------------------------------------------------------------------------------
SCENARIOS = "abcdefgh"
RUN_ORDER = "abcefghd"  # d (Spark start-up per round) last: the longest, and it runs alone


def arguments(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default=SCENARIOS, help="scenarios to run, e.g. a,c (default: all)")
    p.add_argument("--quick", action="store_true", help="every scenario small (a smoke run)")
    p.add_argument("--a-runs", type=int, help="a: runs emitted (default 3000; quick 300)")
    p.add_argument("--a-outages", type=int, help="a: broker outages (default 3; quick 1)")
    p.add_argument("--b-restarts", type=int, help="b: broker restarts (default 3; quick 1)")
    p.add_argument("--b-chunk", type=int, help="b: runs per chunk (default 200; quick 20)")
    p.add_argument("--c-rounds", type=int, help="c: producer kills (default 200; quick 10)")
    p.add_argument("--d-rounds", type=int, help="d: consumer kills (default 20; quick 2)")
    p.add_argument("--d-budget-s", type=float, help="d: start no new round after this many "
                   "seconds (default: no limit)")  # fmt: skip
    p.add_argument("--d-runs", type=int, help="d: new runs per round (default 20; quick 10)")
    p.add_argument("--e-runs", type=int, help="e: runs in the storm (default 1000; quick 100)")
    p.add_argument("--e-copies", type=int, help="e: copies on the live topic (default 3); "
                   "the replay topic gets one less (at least 1)")  # fmt: skip
    p.add_argument("--f-poison", type=int, help="f: poison records (default 10000; quick 300)")
    p.add_argument("--f-valid", type=int, help="f: valid runs (default 1000; quick 30)")
    p.add_argument("--g-processes", type=int, help="g: processes per group (default 8)")
    p.add_argument("--g-runs", type=int, help="g: runs per process (default 250; quick 20)")
    p.add_argument("--h-rounds", type=int, help="h: credential rotations (default 6; quick 3)")
    p.add_argument("--h-runs", type=int, help="h: runs per rotation (default 50; quick 10)")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    return p.parse_args(argv)


def scale(args: argparse.Namespace, name: str, full: int, quick: int) -> int:
    given = getattr(args, name)
    return int(given) if given is not None else (quick if args.quick else full)


def plan(args: argparse.Namespace) -> dict[str, Callable[[Suite], Result]]:
    copies = scale(args, "e_copies", 3, 3)
    return {
        "a": lambda s: scenario_a(s, scale(args, "a_runs", 3000, 300),
                                  scale(args, "a_outages", 3, 1)),
        "b": lambda s: scenario_b(s, scale(args, "b_restarts", 3, 1),
                                  scale(args, "b_chunk", 200, 20)),
        "c": lambda s: scenario_c(s, scale(args, "c_rounds", 200, 10)),
        "d": lambda s: scenario_d(s, scale(args, "d_rounds", 20, 2), scale(args, "d_runs", 20, 10),
                                  batch=12, budget_s=args.d_budget_s),
        "e": lambda s: scenario_e(s, scale(args, "e_runs", 1000, 100), copies, max(1, copies - 1)),
        "f": lambda s: scenario_f(s, scale(args, "f_poison", 10000, 300),
                                  scale(args, "f_valid", 1000, 30), chunks=5),
        "g": lambda s: scenario_g(s, scale(args, "g_processes", 8, 8),
                                  scale(args, "g_runs", 250, 20)),
        "h": lambda s: scenario_h(s, scale(args, "h_rounds", 6, 3), scale(args, "h_runs", 50, 10)),
    }  # fmt: skip


def table(results: list[Result]) -> str:
    head = ("scenario", "emitted", "rows", "dup", "lost", "quar.", "result", "seconds")
    body = [(r.scenario, str(r.emitted), str(r.rows), str(r.duplicates), str(r.lost),
             str(r.quarantined), "not run" if r.not_run else ("PASS" if r.ok else "FAIL"),
             "-" if r.not_run else f"{r.seconds:.0f}") for r in results]  # fmt: skip
    widths = [max(len(row[i]) for row in (head, *body)) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 or i == 6 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in (head, *body)]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # retries while the broker is away
    chosen = [c.strip() for c in args.only.split(",") if c.strip()] if "," in args.only \
        else list(args.only)  # fmt: skip
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        print(f"unknown scenario(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    scenarios = plan(args)
    work = Path(tempfile.mkdtemp(prefix="runstream-reliability-"))
    os.environ["RUNSTREAM_HOME"] = str(work / "home")  # nothing touches the user's own state
    suite = Suite(work, args.quick)
    began = time.monotonic()
    print(f"reliability suite: scenarios {','.join(chosen)}{' (quick)' if args.quick else ''}; "
          f"seed {suite.seed}; work folder {work}", flush=True)  # fmt: skip
    results: list[Result] = []
    try:
        suite.broker_up()
        print(f"broker: LocalBroker at {suite.bootstrap}, SASL listener at "
              f"{suite.broker.sasl_bootstrap}", flush=True)  # fmt: skip
        for name in RUN_ORDER:
            if name not in chosen:
                continue
            t0 = time.monotonic()
            try:
                result = scenarios[name](suite)
            except Exception as exc:
                traceback.print_exc()
                result = Result(f"{name}. (failed)", "-", "-", note=f"error: {exc}"[:300])
                with contextlib.suppress(Exception):
                    suite.broker_up()
            result.seconds = time.monotonic() - t0
            results.append(result)
            print(f"\n== {result.scenario} ({result.seconds:.0f}s)\n   load:      {result.load}"
                  f"\n   faults:    {result.faults}\n   invariant: {result.invariant()}",
                  flush=True)  # fmt: skip
    finally:
        suite.close()
        if not args.keep:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"\nreliability suite, {when}, {time.monotonic() - began:.0f}s in all, seed {suite.seed}")
    print(table(sorted(results, key=lambda r: r.scenario)))
    ran = [r for r in results if not r.not_run]
    return 0 if all(r.ok for r in ran) else 1


if __name__ == "__main__":
    sys.exit(main())
