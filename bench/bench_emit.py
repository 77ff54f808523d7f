"""How fast is emit_run(), next to the tools a team would otherwise use?

(a) Latency of one durable ``emit_run()`` (validated, encoded, fsynced, renamed; the sender
    running in the background against a live broker) next to MLflow logging the same run
    (params, metrics, tags) to a local SQLite tracking store.
(a') With ``--baseline-src`` (another checkout's ``src``, e.g. the commit before a change):
    the same emit_run() latency for this code and for that one, measured in fresh processes
    in alternating rounds against the same broker, so both see the same machine load.
(b) Sustained throughput: events/s into the spool and delivered to Kafka (acknowledged, acks=all),
    next to raw kafka-python sending the same pre-encoded bytes (acks=all, idempotent).
(c) The same with ``emit_runs()`` in batches of 100 (one disk sync per batch): events/s into the
    spool and delivered to Kafka (from the first batch until every event is acknowledged), next
    to the same raw kafka-python figure, which only buffers in memory.

Starts its own Kafka broker (``LocalBroker``) in a temporary folder and stops it at the end.
Needs the ``[bench]`` extra: ``pip install -e '.[bench]'``.

    python bench/bench_emit.py [--runs 500] [--events 5000] [--batch 100]
        [--baseline-src /tmp/before/src] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import runstream
from runstream import Emitter, contract
from runstream.contract import build_event, prepare_run
from runstream.demo import seed_experiment
from runstream.devtools.kafka_broker import LocalBroker, free_port
from runstream.devtools.testkit import kafka_producer, percentile

# the kafka-python batching settings of runstream's sender (runstream/producer/sender.py)
SENDER_BATCHING: dict[str, Any] = {"linger_ms": 100, "batch_size": 256 * 1024}

SEED: dict[str, Any] = seed_experiment()  # the seed document's example run
del SEED["experiment_id"], SEED["run_timestamp"]


def timed(action: Callable[[], object], runs: int, warm_up: int = 20) -> list[float]:
    for _ in range(warm_up):
        action()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return samples


def mlflow_logger(folder: Path) -> Callable[[], None]:
    """One MLflow run holding the same facts: config as params, scores as metrics, the rest
    as tags."""
    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    mlflow.set_experiment("bench")
    params = {
        **SEED["hyperparameters"],
        **{f"feature_{k}": v for k, v in SEED["feature_config"].items()},
        **{k: SEED[k] for k in ("model_name", "model_version", "model_type",
                                "training_start_date", "training_end_date",
                                "forecast_horizon_days", "commodity")},
    }  # fmt: skip
    metrics = {k: SEED[k] for k in ("mae_14day", "directional_accuracy", "execution_time_seconds")}
    tags = {k: str(SEED[k]) for k in ("hardware_config", "run_by", "beats_baseline")}

    def log_run() -> None:
        mlflow.start_run()
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        mlflow.set_tags(tags)
        mlflow.end_run()

    return log_run


def wait_empty(emitter: Emitter, timeout_s: float) -> float:
    """Seconds until the spool is empty (polled, with a deadline)."""
    started = time.perf_counter()
    deadline = time.monotonic() + timeout_s
    while emitter.spool.status().pending:
        if time.monotonic() > deadline:
            raise SystemExit(f"the spool did not drain within {timeout_s:.0f} s")
        time.sleep(0.01)
    return time.perf_counter() - started


# emit_run() latency in a fresh process: PYTHONPATH picks which code; prints the samples (s)
_LATENCY_CHILD = """
import json, sys, time
from runstream import Emitter
from runstream.demo import seed_experiment

spool_dir, bootstrap, topic, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
seed = seed_experiment()
del seed["experiment_id"], seed["run_timestamp"]
emitter = Emitter(bootstrap_servers=bootstrap, topic=topic, spool_dir=spool_dir)
for _ in range(20):
    emitter.emit_run(seed)
samples = []
for _ in range(runs):
    started = time.perf_counter()
    emitter.emit_run(seed)
    samples.append(time.perf_counter() - started)
emitter.close(timeout_s=60)
print(json.dumps(samples))
"""


def latency_in_child(src: Path, bootstrap: str, spool: Path, runs: int) -> list[float]:
    done = subprocess.run(
        [sys.executable, "-c", _LATENCY_CHILD, str(spool), bootstrap, "latency", str(runs)],
        env={**os.environ, "PYTHONPATH": str(src)}, capture_output=True, text=True,
        check=True, timeout=600,
    )  # fmt: skip
    samples: list[float] = json.loads(done.stdout.splitlines()[-1])
    return samples


def compare_latency(
    bootstrap: str, root: Path, baseline: Path, runs: int, rounds: int
) -> tuple[list[float], list[float]]:
    """emit_run() samples of this code and of ``baseline``, in alternating fresh processes."""
    this = Path(runstream.__file__).resolve().parents[1]
    ours: list[float] = []
    theirs: list[float] = []
    for n in range(rounds):
        order = [(this, ours), (baseline, theirs)]
        for src, samples in order if n % 2 == 0 else order[::-1]:
            spool = root / f"spool-a2-{n}-{'this' if src == this else 'baseline'}"
            samples += latency_in_child(src, bootstrap, spool, max(1, runs // rounds))
    return ours, theirs


def raw_kafka_rate(
    bootstrap: str, topic: str, values: list[tuple[bytes, bytes]], **settings: Any
) -> float:
    producer = kafka_producer(bootstrap, enable_idempotence=True, **settings)
    try:
        producer.send(topic, key=values[0][0], value=values[0][1]).get(timeout=30)  # connect
        started = time.perf_counter()
        futures = [producer.send(topic, key=k, value=v) for k, v in values]
        producer.flush(timeout=120)
        elapsed = time.perf_counter() - started
        assert all(f.succeeded() for f in futures), "raw kafka-python: not every record acked"
    finally:
        producer.close(timeout=10)
    return len(values) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500, help="runs timed for latency")
    parser.add_argument("--events", type=int, default=5000, help="events for throughput")
    parser.add_argument("--batch", type=int, default=100, help="runs per emit_runs() call")
    parser.add_argument(
        "--baseline-src", type=Path,
        help="another checkout's src folder whose emit_run() latency to measure beside this "
        "code's, e.g. /tmp/before/src after `git worktree add /tmp/before HEAD~1`",
    )  # fmt: skip
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds for (a')")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="rs-bench-") as tmp:
        root = Path(tmp)
        broker = LocalBroker(root / "kafka", port=free_port(), controller_port=free_port())
        broker.up()
        try:
            run_bench(broker.bootstrap, root, args)
        finally:
            broker.down()


def run_bench(bootstrap: str, root: Path, args: argparse.Namespace) -> None:
    runs, events, size = args.runs, args.events, args.batch
    print(f"machine: {os.cpu_count()} cores; spool and SQLite on {root}; Kafka {bootstrap}")

    # (a) latency of one run --------------------------------------------------------------
    emitter = Emitter(bootstrap_servers=bootstrap, topic="latency", spool_dir=root / "spool-a")
    ours = timed(lambda: emitter.emit_run(SEED), runs)
    emitter.close(timeout_s=60)
    theirs = timed(mlflow_logger(root), runs)
    ours_med, ours_p99 = statistics.median(ours) * 1e3, percentile(ours, 99) * 1e3
    mlf_med, mlf_p99 = statistics.median(theirs) * 1e3, percentile(theirs, 99) * 1e3
    print(f"\n(a) latency of logging one run, {runs} runs after 20 warm-up")
    print(f"    {'':42}{'median ms':>10}{'p99 ms':>10}")
    print(f"    {'runstream emit_run() (durable)':42}{ours_med:>10.2f}{ours_p99:>10.2f}")
    print(f"    {'MLflow to SQLite (params/metrics/tags)':42}{mlf_med:>10.2f}{mlf_p99:>10.2f}")
    print(f"    ratio MLflow / runstream: median {mlf_med / ours_med:.1f}x, "
          f"p99 {mlf_p99 / ours_p99:.1f}x")  # fmt: skip

    # (a') this code's emit_run() next to a baseline checkout's --------------------------------
    if args.baseline_src is not None:
        now, before = compare_latency(bootstrap, root, args.baseline_src, runs, args.rounds)
        now_med, now_p99 = statistics.median(now) * 1e3, percentile(now, 99) * 1e3
        old_med, old_p99 = statistics.median(before) * 1e3, percentile(before, 99) * 1e3
        print(f"\n(a') emit_run() latency, this code vs {args.baseline_src}: {args.rounds} "
              f"alternating rounds in fresh processes, {len(now)} runs each after 20 warm-up "
              "per process")  # fmt: skip
        print(f"    {'':42}{'median ms':>10}{'p99 ms':>10}")
        print(f"    {'emit_run(), this code':42}{now_med:>10.2f}{now_p99:>10.2f}")
        print(f"    {'emit_run(), baseline':42}{old_med:>10.2f}{old_p99:>10.2f}")
        print(f"    ratio this / baseline: median {now_med / old_med:.2f}x, "
              f"p99 {now_p99 / old_p99:.2f}x")  # fmt: skip

    # (b) sustained throughput -------------------------------------------------------------
    emitter = Emitter(bootstrap_servers=bootstrap, topic="throughput", spool_dir=root / "spool-b")
    emitter.emit_run(SEED)
    wait_empty(emitter, 60)  # connected before the clock starts
    started = time.perf_counter()
    for _ in range(events):
        emitter.emit_run(SEED)
    into_spool = time.perf_counter() - started
    wait_empty(emitter, 300)
    delivered = time.perf_counter() - started
    emitter.close(timeout_s=10)
    spool_rate, delivered_rate = events / into_spool, events / delivered

    encoded = []
    for _ in range(events):
        experiment_id, payload = prepare_run(SEED, {})
        event = build_event(contract.RUN_RECORDED, experiment_id, run=payload)
        encoded.append((experiment_id.encode(), contract.encode(event)))
    raw_rate = raw_kafka_rate(bootstrap, "raw", encoded)
    # the same with the batching runstream's sender uses (its rounds end in flush())
    tuned_rate = raw_kafka_rate(bootstrap, "raw-tuned", encoded, **SENDER_BATCHING)
    print(f"\n(b) sustained throughput, {events} events of {len(encoded[0][1])} bytes")
    print(f"    {'runstream into the spool (fsynced)':44}{spool_rate:>10.0f} events/s")
    print(f"    {'runstream delivered to Kafka (acked)':44}{delivered_rate:>10.0f} events/s")
    print(f"    {'raw kafka-python, pre-encoded (acks=all)':44}{raw_rate:>10.0f} events/s")
    print(f"    ratio runstream delivered / raw kafka-python: {delivered_rate / raw_rate:.2f}")

    # (c) emit_runs() in batches ---------------------------------------------------------------
    emitter = Emitter(bootstrap_servers=bootstrap, topic="batches", spool_dir=root / "spool-c")
    emitter.emit_runs([SEED] * 2)
    wait_empty(emitter, 60)  # connected before the clock starts
    batch = [SEED] * size
    calls = []
    started = time.perf_counter()
    for _ in range(events // size):
        call_started = time.perf_counter()
        emitter.emit_runs(batch)
        calls.append(time.perf_counter() - call_started)
    into_spool = time.perf_counter() - started
    wait_empty(emitter, 300)
    delivered = time.perf_counter() - started
    emitter.close(timeout_s=10)
    sent = size * len(calls)
    spool_rate, batch_rate = sent / into_spool, sent / delivered
    call_ms = statistics.median(calls) * 1e3
    print(f"\n(c) emit_runs() in batches of {size}, {sent} events ({len(calls)} calls)")
    print(f"    {'one emit_runs() call, median':44}{call_ms:>10.2f} ms "
          f"({call_ms / size:.3f} ms per run)")  # fmt: skip
    print(f"    {'runstream into the spool (one sync a batch)':44}{spool_rate:>10.0f} events/s")
    print(f"    {'runstream delivered to Kafka (acked)':44}{batch_rate:>10.0f} events/s")
    print(f"    {'raw kafka-python, pre-encoded (buffered)':44}{raw_rate:>10.0f} events/s")
    tuned = "  the same, batched as the sender batches"
    batching = ", ".join(f"{k}={v}" for k, v in SENDER_BATCHING.items())
    print(f"    {tuned:44}{tuned_rate:>10.0f} events/s ({batching})")
    print(
        f"    ratio runstream delivered / raw kafka-python: {batch_rate / raw_rate:.2f} "
        f"(target at least 0.50; emit_run() one by one: {delivered_rate / raw_rate:.2f}); "
        f"/ the same batched: {batch_rate / tuned_rate:.2f}"
    )


if __name__ == "__main__":
    main()
