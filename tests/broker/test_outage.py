"""Broker outage: emit_run() keeps working, and everything arrives once the broker is back.

This is the one test that owns a broker (it must stop and start it); the others share the
session broker.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runstream import Emitter, contract
from runstream.demo import seed_experiment
from runstream.devtools.kafka_broker import LocalBroker, free_port
from runstream.devtools.testkit import read_topic, wait_for

RUNS = 1000
RECOVERY_S = 120.0


@pytest.fixture()
def own_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    broker = LocalBroker(tmp_path / "kafka", port=free_port(), controller_port=free_port())
    try:
        yield broker
    finally:
        broker.down()


def test_a_broker_outage_loses_nothing(own_broker: LocalBroker, tmp_path: Path) -> None:
    """Fault: the broker stops while a connected emitter runs, for 1,000 emits.
    Load: 1,000 runs during the outage. Invariant: every emit returns without raising; within
    120 s of the broker's return all 1,000 are on the topic (distinct event ids) and the spool
    is empty."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    own_broker.up()
    admin = KafkaAdminClient(bootstrap_servers=own_broker.bootstrap)
    try:
        admin.create_topics([NewTopic("model_runs", 1, 1)])
    finally:
        admin.close()
    emitter = Emitter(
        bootstrap_servers=own_broker.bootstrap, topic="model_runs", spool_dir=tmp_path / "spool"
    )
    warm_up = emitter.emit_run(seed_experiment())  # the sender now holds a live connection
    wait_for(lambda: emitter.spool.status().pending == 0, 60, "the warm-up run to be sent")

    own_broker.down()
    latencies, ids = [], []
    started = time.perf_counter()
    for _ in range(RUNS):
        t0 = time.perf_counter()
        ids.append(emitter.emit_run(seed_experiment()).event_id)
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    pending = emitter.spool.status().pending
    print(f"\nbroker down: {RUNS} emits in {elapsed:.2f} s, median "
          f"{statistics.median(latencies) * 1000:.2f} ms, max {max(latencies) * 1000:.1f} ms; "
          f"{pending} in the spool")  # fmt: skip
    assert pending == RUNS

    own_broker.up()
    back = time.monotonic()
    wait_for(lambda: emitter.spool.status().pending == 0, RECOVERY_S, "the spool to drain")
    drained_s = time.monotonic() - back
    records = read_topic(own_broker.bootstrap, "model_runs", expected=RUNS + 1, timeout_s=60)
    on_topic = {contract.decode(r.value)["event_id"] for r in records}
    print(f"broker back: spool drained {drained_s:.1f} s after restart; {len(records)} records, "
          f"{len(on_topic & set(ids))} of the {RUNS} outage runs on the topic")  # fmt: skip
    assert len(set(ids)) == RUNS
    assert set(ids) <= on_topic
    assert warm_up.event_id in on_topic
    assert emitter.close(timeout_s=10) == 0
