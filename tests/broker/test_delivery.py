"""Runs reach Kafka intact; an event leaves the spool only once the broker acknowledged it;
a process flushes at exit, and what it leaves behind is sent later."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from runstream import Emitter, contract
from runstream.consumer.topics import fresh_topic
from runstream.demo import seed_experiment
from runstream.devtools.kafka_broker import free_port
from runstream.devtools.testkit import read_topic
from runstream.producer.sender import Sender
from runstream.producer.spool import Spool

ROOT = Path(__file__).resolve().parents[2]


def _decoded(records: list[Any]) -> dict[str, dict[str, Any]]:
    """event_id -> decoded event, checking each record's key is its experiment_id."""
    events = {}
    for record in records:
        event = contract.decode(record.value)
        assert record.key == event["experiment_id"].encode()
        events[event["event_id"]] = event
    return events


def test_the_seed_example_comes_out_of_kafka_with_every_value_equal(
    kafka_bootstrap: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = new_topic("seed")
    experiment = seed_experiment()
    emitter = Emitter(bootstrap_servers=kafka_bootstrap, topic=topic, spool_dir=tmp_path)
    receipt = emitter.emit_run(experiment)
    assert emitter.close(timeout_s=60) == 0, "the event was not acknowledged"
    assert emitter.spool.status().pending == 0

    (record,) = read_topic(kafka_bootstrap, topic, expected=1)
    event = contract.decode(record.value)
    assert record.key == experiment["experiment_id"].encode()
    assert event["event_id"] == receipt.event_id
    assert (event["event_type"], event["source"]) == (contract.RUN_RECORDED, "emit")
    assert event["experiment_id"] == experiment["experiment_id"]
    run = event["run"]
    expected = dict(experiment)
    del expected["experiment_id"]
    expected["run_timestamp"] = experiment["run_timestamp"].astimezone(timezone.utc)
    expected["training_start_date"] = date(2022, 1, 1)
    expected["training_end_date"] = date(2024, 12, 31)
    for column, value in expected.items():
        assert run[column] == value, column
        assert type(run[column]) is type(value), column  # bools stay bools, floats floats
    assert run["run_timestamp"].tzinfo is not None
    assert isinstance(run["run_timestamp"], datetime)
    left_out = set(run) - set(expected)
    assert all(run[c] is None for c in left_out), "columns the seed leaves out must be None"


def test_an_event_leaves_the_spool_only_after_the_broker_acked_it(
    kafka_bootstrap: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    """Fault: the broker answers but refuses every record (the topic's max.message.bytes is
    smaller than a run). Invariant: nothing leaves the spool; once a topic acks, all do."""
    refusing = fresh_topic(kafka_bootstrap, "refuse", config={"max.message.bytes": "200"})
    emitter = Emitter(spool_dir=tmp_path, send=False)
    ids = {emitter.emit_run(seed_experiment()).event_id for _ in range(5)}
    refused = Sender(emitter.spool, topic=refusing, bootstrap_servers=kafka_bootstrap)
    assert refused.flush(timeout_s=0).left == 5, "unacknowledged events must stay in the spool"
    refused.stop()
    assert {e.event_id for e in emitter.spool.pending()} == ids

    topic = new_topic("acks")
    sender = Sender(emitter.spool, topic=topic, bootstrap_servers=kafka_bootstrap)
    assert sender.flush(timeout_s=60).left == 0
    sender.stop()
    assert set(_decoded(read_topic(kafka_bootstrap, topic, expected=5))) == ids


def _child(code: str, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        timeout=120, check=False,
    )  # fmt: skip
    return done, time.monotonic() - started


EMIT_AND_EXIT = """
    import logging
    from runstream import emit_run
    from runstream.demo import seed_experiment
    logging.basicConfig(level=logging.WARNING)  # so a failed exit flush would show on stderr
    for _ in range(300):
        print(emit_run(seed_experiment()).event_id, flush=True)
"""


def test_a_process_flushes_at_exit(
    kafka_bootstrap: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    """A script calls emit_run() and simply ends; the exit hook must deliver its runs."""
    topic = new_topic("exit")
    done, elapsed = _child(EMIT_AND_EXIT, {
        "RUNSTREAM_BOOTSTRAP_SERVERS": kafka_bootstrap, "RUNSTREAM_TOPIC": topic,
        "RUNSTREAM_SPOOL_DIR": str(tmp_path), "RUNSTREAM_FLUSH_TIMEOUT": "60",
    })  # fmt: skip
    assert done.returncode == 0, done.stderr
    printed = done.stdout.split()
    print(f"\nchild emitted {len(printed)} runs and exited in {elapsed:.2f}s")
    assert len(printed) == 300
    assert Spool(tmp_path).status().pending == 0, "the exit flush left events behind"
    assert set(_decoded(read_topic(kafka_bootstrap, topic, expected=300))) == set(printed)
    # kafka-python closes its producers at exit too; ours must flush before that, not fail
    assert "runstream sender failed" not in done.stderr, done.stderr


def test_what_a_process_leaves_behind_is_sent_by_spool_flush(
    kafka_bootstrap: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    """Fault: no broker while the process runs. Invariant: it exits within its flush bound
    with every run kept; `runstream spool flush` later delivers them all."""
    topic = new_topic("later")
    done, elapsed = _child(EMIT_AND_EXIT, {
        "RUNSTREAM_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}", "RUNSTREAM_TOPIC": topic,
        "RUNSTREAM_SPOOL_DIR": str(tmp_path), "RUNSTREAM_FLUSH_TIMEOUT": "1",
    })  # fmt: skip
    assert done.returncode == 0, done.stderr
    printed = set(done.stdout.split())
    print(f"\nchild with no broker exited in {elapsed:.2f}s (flush bound 1 s)")
    assert {e.event_id for e in Spool(tmp_path).pending()} == printed

    flush = subprocess.run(
        [sys.executable, "-m", "runstream", "spool", "flush", "--spool-dir", str(tmp_path),
         "--bootstrap-servers", kafka_bootstrap, "--topic", topic, "--timeout", "60"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert flush.returncode == 0, flush.stderr
    assert "sent 300 event(s); 0 left" in flush.stdout
    assert set(_decoded(read_topic(kafka_bootstrap, topic, expected=300))) == printed
