"""``emit_runs`` against a real broker: batches arrive whole, each event once, in order; the
spool verbs count a segment's events; processes sharing a spool deliver every batch once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runstream import Emitter, contract
from runstream.cli import build_parser
from runstream.demo import seed_experiment
from runstream.devtools.testkit import EmittingChild, read_topic
from runstream.producer.spool import Spool
from tests.broker.test_flush import _event_ids_before_sentinel


def _runs(count: int) -> list[dict[str, Any]]:
    return [{**seed_experiment(), "model_name": f"model_{n}"} for n in range(count)]


def test_batches_of_emit_runs_are_delivered_exactly_once_in_order(
    kafka_bootstrap: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    """Load: 5 batches of 100 runs with a single emit_run between each, the sender running.
    Invariant: close() leaves nothing unsent; the topic (one partition) holds each of the 504
    events exactly once, in emit order, each keyed by its experiment_id and equal to its run."""
    topic = new_topic("batches")
    emitter = Emitter(bootstrap_servers=kafka_bootstrap, topic=topic, spool_dir=tmp_path)
    receipts = []
    runs: dict[str, dict[str, Any]] = {}
    for _ in range(5):
        batch = _runs(100)
        runs.update((run["experiment_id"], run) for run in batch)
        receipts += emitter.emit_runs(batch)
        receipts.append(emitter.emit_run(seed_experiment()))
    assert emitter.close(timeout_s=60) == 0, "not every event was acknowledged"
    assert emitter.spool.status().pending == 0

    records = read_topic(kafka_bootstrap, topic, expected=len(receipts))
    events = [contract.decode(r.value) for r in records]
    print(f"\n{len(receipts)} events emitted (5 batches of 100, 5 single runs); "
          f"{len(records)} records on the topic")  # fmt: skip
    assert [e["event_id"] for e in events] == [r.event_id for r in receipts]
    assert max(Counter(e["event_id"] for e in events).values()) == 1
    for record, event in zip(records, events, strict=True):
        assert record.key == event["experiment_id"].encode()
        if event["experiment_id"] in runs:
            assert event["run"]["model_name"] == runs[event["experiment_id"]]["model_name"]


def test_spool_flush_counts_the_events_of_segments(
    kafka_bootstrap: str,
    new_topic: Callable[..., str],
    producer_factory: Callable[..., Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Load: batches of 30 and 20 and one single run in the spool, the batch of 20 damaged on
    disk. Invariant: `runstream spool flush` prints "sent 31 event(s), quarantined 1 corrupt
    file(s); 0 left" and exits 0; the topic holds exactly the 31 good events, once each."""
    topic = new_topic("segment-counts")
    emitter = Emitter(spool_dir=tmp_path / "spool", send=False)
    good = [r.event_id for r in emitter.emit_runs(_runs(30))]
    damaged = emitter.emit_runs(_runs(20))[0].spool_path
    good.append(emitter.emit_run(seed_experiment()).event_id)
    damaged.write_bytes(damaged.read_bytes()[:-1])
    args = build_parser().parse_args(
        ["spool", "flush", "--spool-dir", str(emitter.spool.root),
         "--bootstrap-servers", kafka_bootstrap, "--topic", topic]
    )  # fmt: skip
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert out == (
        f"sent 31 event(s), quarantined 1 corrupt file(s); 0 left in {emitter.spool.root}\n"
    )
    on_topic = _event_ids_before_sentinel(kafka_bootstrap, topic, producer_factory())
    assert sorted(on_topic) == sorted(good)


PROCESSES = 4
BATCHES = 8


def test_processes_emitting_batches_into_one_spool_deliver_each_run_once(
    kafka_bootstrap: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    """Fault: contention, not a crash: 4 processes started together share one spool and its
    sender lock, each emitting 8 batches of 1 to 50 runs with its sender on, then flushing at
    exit. Invariant: each exits 0 having printed its 8 batches; the spool ends empty; the
    topic holds each returned event exactly once and nothing else."""
    topic = new_topic("shared-spool-batches")
    spool_dir = tmp_path / "spool"
    children = [
        EmittingChild(spool_dir, count=BATCHES, batch_max=50, seed=n, bootstrap=kafka_bootstrap,
                      topic=topic, env={"RUNSTREAM_FLUSH_TIMEOUT": "60"})
        for n in range(PROCESSES)
    ]  # fmt: skip
    try:
        for child in children:
            child.wait(timeout_s=120)
    finally:
        for child in children:
            if child.proc.poll() is None:
                child.kill()
    batches = [batch for child in children for batch in child.batches()]
    returned = [event_id for batch in batches for event_id in batch]
    assert len(batches) == PROCESSES * BATCHES
    assert len(returned) == len(set(returned))
    assert Spool(spool_dir).status().pending == 0, "a process exited with its runs unsent"

    records = read_topic(kafka_bootstrap, topic, expected=len(returned), timeout_s=60)
    copies = Counter(contract.decode(r.value)["event_id"] for r in records)
    print(f"\n{PROCESSES} processes, one spool: {len(batches)} batches, {len(returned)} runs "
          f"returned, {len(records)} records on the topic")  # fmt: skip
    assert set(copies) == set(returned)
    assert max(copies.values()) == 1, [k for k, n in copies.items() if n > 1][:3]
