"""`runstream spool flush` and the sender against a real broker: counts are what happened, and
a spool that cannot delete an acknowledged event never makes the sender send it in a loop.

"Each event once" is checked on the topic itself: after the flushes a sentinel record is
produced to the same single-partition topic, and everything before it is what the sender
sent, so no wait for a record that should not come is needed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runstream import Emitter, contract
from runstream.cli import build_parser
from runstream.consumer.topics import fresh_topic
from runstream.demo import seed_experiment
from runstream.devtools.testkit import wait_for
from runstream.producer.sender import FlushResult, Sender
from tests.unit.test_flush import DeleteFault, ReadOnlyFolder

SENTINEL = b"sentinel"


def _cli(*argv: str) -> int:
    args = build_parser().parse_args(list(argv))
    code: int = args.func(args)
    return code


def _event_ids_before_sentinel(bootstrap: str, topic: str, producer: Any) -> list[str]:
    """Event ids on ``topic`` in order, read up to a sentinel produced now (60 s deadline)."""
    from kafka import KafkaConsumer

    producer.send(topic, key=SENTINEL, value=SENTINEL).get(timeout=60)
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
        enable_auto_commit=False, group_id=None,
    )  # fmt: skip
    ids: list[str] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                for record in batch:
                    if record.key == SENTINEL:
                        return ids
                    ids.append(contract.decode(record.value)["event_id"])
    finally:
        consumer.close()
    raise AssertionError(f"the sentinel did not arrive within 60 s ({len(ids)} events read)")


def test_spool_flush_counts_sent_and_quarantined(
    kafka_bootstrap: str,
    new_topic: Callable[..., str],
    producer_factory: Callable[..., Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Load: 3 runs in the spool, one damaged on disk. Invariant: the command prints "sent 2,
    quarantined 1, 0 left" and exits 0, and the topic holds exactly the 2 good runs."""
    topic = new_topic("counts")
    emitter = Emitter(spool_dir=tmp_path / "spool", send=False)
    receipts = [emitter.emit_run(seed_experiment()) for _ in range(3)]
    receipts[1].spool_path.write_bytes(b"RSP1 damaged")
    code = _cli("spool", "flush", "--spool-dir", str(emitter.spool.root),
                "--bootstrap-servers", kafka_bootstrap, "--topic", topic)  # fmt: skip
    out = capsys.readouterr().out
    assert out == (
        f"sent 2 event(s), quarantined 1 corrupt file(s); 0 left in {emitter.spool.root}\n"
    )
    assert code == 0
    on_topic = _event_ids_before_sentinel(kafka_bootstrap, topic, producer_factory())
    assert sorted(on_topic) == sorted([receipts[0].event_id, receipts[2].event_id])
    assert emitter.spool.status().corrupt == 1


def test_unacknowledged_events_are_left_and_counted(
    kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fault: the broker answers but refuses every record (max.message.bytes below a run's
    size). Invariant: nothing counts as sent, all 4 are left, not "unreachable"; the command
    exits 1 and says they were not acknowledged."""
    refusing = fresh_topic(kafka_bootstrap, "refuse", config={"max.message.bytes": "200"})
    emitter = Emitter(spool_dir=tmp_path / "spool", send=False)
    for _ in range(4):
        emitter.emit_run(seed_experiment())
    sender = Sender(emitter.spool, topic=refusing, bootstrap_servers=kafka_bootstrap)
    try:
        assert sender.flush(timeout_s=0) == FlushResult(0, 0, 4, unreachable=False)
    finally:
        sender.stop()
    code = _cli("spool", "flush", "--spool-dir", str(emitter.spool.root), "--timeout", "0",
                "--bootstrap-servers", kafka_bootstrap, "--topic", refusing)  # fmt: skip
    out = capsys.readouterr().out
    assert out.startswith(f"sent 0 event(s); 4 left in {emitter.spool.root} (not all acknowl")
    assert code == 1


def test_a_read_only_pending_folder_sends_nothing(
    kafka_bootstrap: str,
    new_topic: Callable[..., str],
    producer_factory: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Fault: pending/ is read-only (no file can be created, deleted or renamed in it; made
    in-process since tests run as root). Load: 5 runs, `runstream spool flush` run 3 times
    (3 fresh senders, as 3 commands would be). Invariant: no run reaches the topic (the check
    before sending stops each command); each exits 3 naming the folder and the fix."""
    topic = new_topic("readonly")
    emitter = Emitter(spool_dir=tmp_path / "spool", send=False)
    for _ in range(5):
        emitter.emit_run(seed_experiment())
    ReadOnlyFolder(emitter.spool.pending_dir).install(monkeypatch)
    for _ in range(3):
        code = _cli("spool", "flush", "--spool-dir", str(emitter.spool.root),
                    "--bootstrap-servers", kafka_bootstrap, "--topic", topic)  # fmt: skip
        out, err = capsys.readouterr()
        assert code == 3, out + err
        assert out == f"sent 0 event(s); 5 left in {emitter.spool.root}\n"
        assert f"chmod u+w {emitter.spool.pending_dir}" in err and "RUNSTREAM_SPOOL_DIR" in err
    monkeypatch.undo()
    assert _event_ids_before_sentinel(kafka_bootstrap, topic, producer_factory()) == []
    assert emitter.spool.status().pending == 5


def test_deletes_failing_after_the_check_send_each_event_once(
    kafka_bootstrap: str,
    new_topic: Callable[..., str],
    producer_factory: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fault: deleting event files in pending/ fails with EACCES although the sender's check
    passed (the folder turned read-only in between; made in-process). Load: 5 runs, one
    sender flushing 3 times. Invariant: every run is on the topic exactly once; each flush
    stops at once with a SpoolError naming the folder and the fix; all 5 stay in the spool."""
    topic = new_topic("delete-fails")
    emitter = Emitter(spool_dir=tmp_path / "spool", send=False)
    ids = [emitter.emit_run(seed_experiment()).event_id for _ in range(5)]
    fault = DeleteFault(emitter.spool.pending_dir)
    monkeypatch.setattr(os, "unlink", fault)
    sender = Sender(emitter.spool, topic=topic, bootstrap_servers=kafka_bootstrap)
    try:
        for _ in range(3):
            result = sender.flush(timeout_s=60)
            assert (result.sent, result.left) == (0, 5)
            assert result.spool_error is not None
            assert f"chmod u+w {emitter.spool.pending_dir}" in str(result.spool_error)
    finally:
        sender.stop()
    monkeypatch.undo()
    on_topic = _event_ids_before_sentinel(kafka_bootstrap, topic, producer_factory())
    print(f"\n3 flushes whose deletes fail: {len(on_topic)} records, "
          f"{fault.attempts} refused deletes")  # fmt: skip
    assert sorted(on_topic) == sorted(ids), "an event was sent more than once, or not at all"
    assert emitter.spool.status().pending == 5


def test_the_background_sender_sends_each_event_at_most_once_when_deletes_fail(
    kafka_bootstrap: str,
    new_topic: Callable[..., str],
    producer_factory: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fault: as above, while an emitter's sender thread runs. Load: 3 runs, then at least 10
    more rounds of the thread. Invariant: no run is on the topic twice; the thread stops
    sending once it finds the fault; close() reports all 3 as left."""
    topic = new_topic("readonly-thread")
    spool_dir = tmp_path / "spool"
    fault = DeleteFault(spool_dir / "pending")
    monkeypatch.setattr(os, "unlink", fault)
    emitter = Emitter(bootstrap_servers=kafka_bootstrap, topic=topic, spool_dir=spool_dir)
    ids = [emitter.emit_run(seed_experiment()).event_id for _ in range(3)]
    wait_for(lambda: emitter._sender.spool_error is not None, 60, "the sender to stop")
    rounds = fault.attempts + 10

    def more_rounds() -> bool:
        emitter._sender.wake()
        return fault.attempts >= rounds

    wait_for(more_rounds, 60, "ten more rounds of the sender thread")
    assert emitter.close(timeout_s=30) == 3
    monkeypatch.undo()
    on_topic_ids = _event_ids_before_sentinel(kafka_bootstrap, topic, producer_factory())
    print(f"\nthread with failing deletes: {len(on_topic_ids)} of 3 runs sent, none twice")
    assert 1 <= len(on_topic_ids) == len(set(on_topic_ids))
    assert set(on_topic_ids) <= set(ids)
