"""How fast is emit_run(), next to the tools a team would otherwise use?

(a) Latency of one durable ``emit_run()`` (validated, encoded, fsynced, renamed; the sender
    running in the background against a live broker) next to MLflow logging the same run
    (params, metrics, tags) to a local SQLite tracking store.
(b) Sustained throughput: events/s into the spool and delivered to Kafka (acknowledged, acks=all),
    next to raw kafka-python sending the same pre-encoded bytes (acks=all, idempotent).

Starts its own Kafka broker (``LocalBroker``) in a temporary folder and stops it at the end.
Needs the ``[bench]`` extra: ``pip install -e '.[bench]'``.

    python bench/bench_emit.py [--runs 500] [--events 5000]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runstream import Emitter, contract
from runstream.contract import build_event, prepare_run
from runstream.demo import seed_experiment
from runstream.devtools.kafka_broker import LocalBroker, free_port
from runstream.devtools.testkit import kafka_producer, percentile

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


def raw_kafka_rate(bootstrap: str, topic: str, values: list[tuple[bytes, bytes]]) -> float:
    producer = kafka_producer(bootstrap, enable_idempotence=True)
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
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="rs-bench-") as tmp:
        root = Path(tmp)
        broker = LocalBroker(root / "kafka", port=free_port(), controller_port=free_port())
        broker.up()
        try:
            run_bench(broker.bootstrap, root, args.runs, args.events)
        finally:
            broker.down()


def run_bench(bootstrap: str, root: Path, runs: int, events: int) -> None:
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
    print(f"\n(b) sustained throughput, {events} events of {len(encoded[0][1])} bytes")
    print(f"    {'runstream into the spool (fsynced)':44}{spool_rate:>10.0f} events/s")
    print(f"    {'runstream delivered to Kafka (acked)':44}{delivered_rate:>10.0f} events/s")
    print(f"    {'raw kafka-python, pre-encoded (acks=all)':44}{raw_rate:>10.0f} events/s")
    print(f"    ratio runstream delivered / raw kafka-python: {delivered_rate / raw_rate:.2f}")


if __name__ == "__main__":
    main()
