"""Flush, exit and the spool verbs tell the truth, without a broker.

A fake producer stands in for Kafka where acks are needed (it records every record it is
given, so a re-send is counted); an unused port stands in for an offline machine.
"""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runstream import Emitter
from runstream.cli import build_parser
from runstream.demo import seed_experiment
from runstream.devtools.kafka_broker import free_port
from runstream.devtools.testkit import wait_for
from runstream.producer.sender import FlushResult, Sender
from runstream.producer.spool import Spool
from tests.unit.conftest import RecordingProducer

ROOT = Path(__file__).resolve().parents[2]


def _spool_with(tmp_path: Path, count: int) -> Spool:
    spool = Spool(tmp_path / "spool")
    for n in range(count):
        spool.put(b"key", f"event-{n}".encode(), f"id-{n}")
    return spool


def _sender(spool: Spool, bootstrap: str = "h:1") -> Sender:
    return Sender(spool, topic="t", bootstrap_servers=bootstrap)


class DeleteFault:
    """Deleting event files in ``pending/`` fails with EACCES, as in a folder made read-only
    after the sender's check (tests run as root, whom chmod does not stop, so the fault is
    made in-process). Probe files still come and go. ``attempts`` counts refused deletes."""

    def __init__(self, pending: Path) -> None:
        self.pending = pending
        self.attempts = 0
        self._unlink = os.unlink

    def __call__(self, path: Any, *args: Any, **kwargs: Any) -> None:
        p = Path(path)
        if p.parent == self.pending and p.name.endswith(".evt"):
            self.attempts += 1
            raise PermissionError(errno.EACCES, "Permission denied", str(p))
        self._unlink(path, *args, **kwargs)


class ReadOnlyFolder:
    """``pending/`` refuses new files, deletes and renames with EACCES, as a read-only folder
    does for its non-root owner (made in-process: tests run as root, whom chmod does not
    stop). ``install`` patches os; monkeypatch's undo lifts it."""

    def __init__(self, pending: Path) -> None:
        self.pending = pending
        self._open, self._unlink, self._rename = os.open, os.unlink, os.rename

    def _refuse(self, path: Any) -> None:
        if Path(path).parent == self.pending:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            if flags & os.O_CREAT:
                self._refuse(path)
            return self._open(path, flags, *args, **kwargs)

        def unlink(path: Any, *args: Any, **kwargs: Any) -> None:
            self._refuse(path)
            self._unlink(path, *args, **kwargs)

        def rename(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            self._refuse(src)
            self._refuse(dst)
            self._rename(src, dst, *args, **kwargs)

        monkeypatch.setattr(os, "open", open_)
        monkeypatch.setattr(os, "unlink", unlink)
        monkeypatch.setattr(os, "rename", rename)


@pytest.fixture()
def delete_fault(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[DeleteFault]:
    fault = DeleteFault(tmp_path / "spool" / "pending")
    monkeypatch.setattr(os, "unlink", fault)
    yield fault


# -- exact counts ----------------------------------------------------------------------------
def test_flush_counts_sent_and_quarantined_as_they_happen(
    tmp_path: Path, fake_kafka: type[RecordingProducer]
) -> None:
    """Load: 3 events, one damaged on disk. Invariant: 2 sent, 1 quarantined, 0 left; the
    damaged one never reached the producer."""
    spool = _spool_with(tmp_path, 3)
    damaged = spool.pending()[1]
    damaged.path.write_bytes(b"RSP1 damaged")
    result = _sender(spool).flush(timeout_s=5)
    assert result == FlushResult(sent=2, quarantined=1, left=0, unreachable=False)
    assert sorted(fake_kafka.sent) == [b"event-0", b"event-2"]
    assert spool.status().corrupt == 1


def test_flush_offline_stops_at_once_and_says_so(tmp_path: Path) -> None:
    """Fault: nobody listens at the bootstrap address. Invariant: flush returns at the first
    failed check, not after its timeout, with everything left and ``unreachable`` set."""
    spool = _spool_with(tmp_path, 3)
    started = time.monotonic()
    result = _sender(spool, f"127.0.0.1:{free_port()}").flush(timeout_s=60)
    elapsed = time.monotonic() - started
    print(f"\noffline flush returned in {elapsed:.2f}s of a 60s bound")
    assert result == FlushResult(sent=0, quarantined=0, left=3, unreachable=True)
    assert elapsed < 5


# -- a spool that cannot delete what Kafka acknowledged ---------------------------------------
def test_an_event_that_cannot_be_deleted_is_sent_once_not_in_a_loop(
    tmp_path: Path, fake_kafka: type[RecordingProducer], delete_fault: DeleteFault
) -> None:
    """Fault: every acked event's delete fails. Load: 2 events, three flushes in a row.
    Invariant: each event reaches the producer exactly once; each flush stops at once with a
    SpoolError naming the folder and the fix; nothing is counted as sent; once deletes work
    again the next flush removes them without sending them again."""
    spool = _spool_with(tmp_path, 2)
    sender = _sender(spool)
    for _ in range(3):
        started = time.monotonic()
        result = sender.flush(timeout_s=30)
        assert time.monotonic() - started < 5, "flush must stop, not wait out its timeout"
        assert (result.sent, result.quarantined, result.left) == (0, 0, 2)
        assert result.spool_error is not None
        message = str(result.spool_error)
        assert f"chmod u+w {spool.pending_dir}" in message and "RUNSTREAM_SPOOL_DIR" in message
        assert "Kafka acknowledged 2 event(s)" in message and "stopped" in message
    assert sorted(fake_kafka.sent) == [b"event-0", b"event-1"]

    os.unlink = delete_fault._unlink  # the folder is writable again
    result = sender.flush(timeout_s=5)
    assert result == FlushResult(sent=0, quarantined=0, left=0, unreachable=False)
    assert sorted(fake_kafka.sent) == [b"event-0", b"event-1"], "sent again after the fix"


def test_the_background_sender_does_not_resend_what_it_cannot_delete(
    tmp_path: Path,
    fake_kafka: type[RecordingProducer],
    delete_fault: DeleteFault,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Fault: deletes in pending/ fail while an emitter's sender thread runs. Load: 3 runs,
    then at least 5 more rounds of the thread (woken on purpose). Invariant: no run reaches
    the producer twice, and none at all after the thread found the fault (it stops sending);
    the problem is logged as one warning, not once per round; close() returns at once with
    the 3 runs reported as left."""
    caplog.set_level(logging.DEBUG, logger="runstream")
    emitter = Emitter(spool_dir=tmp_path / "spool", flush_timeout_s=60)
    for _ in range(3):
        emitter.emit_run(seed_experiment())
    wait_for(lambda: emitter._sender.spool_error is not None, 30, "the sender to stop")
    sent_when_stopped = len(fake_kafka.sent)
    rounds = delete_fault.attempts + 5  # each round first retries the failed deletes

    def more_rounds() -> bool:
        emitter._sender.wake()
        return delete_fault.attempts >= rounds

    wait_for(more_rounds, 60, "five more rounds of the sender thread")
    started = time.monotonic()
    assert emitter.close() == 3
    assert time.monotonic() - started < 5
    print(f"\n{sent_when_stopped} run(s) sent before the thread stopped; "
          f"{delete_fault.attempts} refused deletes")  # fmt: skip
    assert 1 <= len(fake_kafka.sent) == sent_when_stopped
    assert len(set(fake_kafka.sent)) == len(fake_kafka.sent)
    stopped = [r for r in caplog.records if r.getMessage().startswith("runstream sender stopped")]
    assert len(stopped) == 1, [r.getMessage() for r in stopped]


def test_flush_sends_nothing_into_a_spool_that_refuses_changes(
    tmp_path: Path,
    fake_kafka: type[RecordingProducer],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Fault: pending/ refuses new files and deletes (simulated in-process; root ignores
    chmod). Invariant: `runstream spool flush` sends nothing, exits 3, prints the counts and a
    message naming the folder and the fix."""
    spool = _spool_with(tmp_path, 2)
    pending = spool.pending_dir
    ReadOnlyFolder(pending).install(monkeypatch)
    code = _cli("spool", "flush", "--spool-dir", str(spool.root), "--timeout", "30")
    out, err = capsys.readouterr()
    assert fake_kafka.sent == []
    assert code == 3
    assert out == f"sent 0 event(s); 2 left in {spool.root}\n"
    assert f"chmod u+w {pending}" in err and "RUNSTREAM_SPOOL_DIR" in err


# -- the spool verbs ---------------------------------------------------------------------------
def _cli(*argv: str) -> int:
    """Run one CLI verb in this process (so monkeypatched faults apply)."""
    args = build_parser().parse_args(list(argv))
    code: int = args.func(args)
    return code


def _runstream(*argv: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "runstream", *argv],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return done, time.monotonic() - started


def test_spool_flush_offline_names_the_address_and_setting_within_5_s(tmp_path: Path) -> None:
    """Fault: no broker at the address. Invariant: the command (a whole new process) returns
    within 5 s, exits 3, and says where it looked, which setting to fix and where the events
    wait."""
    spool = _spool_with(tmp_path, 3)
    address = f"127.0.0.1:{free_port()}"
    done, elapsed = _runstream(
        "spool", "flush", "--spool-dir", str(spool.root), "--bootstrap-servers", address
    )
    print(f"\n`runstream spool flush` offline took {elapsed:.2f}s (default timeout 60 s)")
    assert done.returncode == 3, done.stderr
    assert done.stdout == (
        f"Kafka at {address} is unreachable (RUNSTREAM_BOOTSTRAP_SERVERS or "
        f"--bootstrap-servers); 3 event(s) stay in {spool.root} and will be sent later\n"
    )
    assert "Traceback" not in done.stderr
    assert elapsed < 5
    assert spool.status().pending == 3


def test_spool_verbs_survive_stray_files(
    tmp_path: Path, fake_kafka: type[RecordingProducer], capsys: pytest.CaptureFixture[str]
) -> None:
    """Fault: `pending/notes.evt` and `pending/foo` sit beside 2 events. Invariant: status
    counts them as stray, list shows only the events, flush sends only the events and leaves
    the strays where they are."""
    emitter = Emitter(spool_dir=tmp_path / "spool", send=False)
    ids = {emitter.emit_run(seed_experiment()).event_id for _ in range(2)}
    pending = emitter.spool.pending_dir
    (pending / "notes.evt").write_text("remember to rerun")
    (pending / "foo").write_text("")
    where = ("--spool-dir", str(emitter.spool.root))

    assert _cli("spool", "status", "--json", *where) == 0
    status = __import__("json").loads(capsys.readouterr().out)
    assert (status["pending"], status["stray"]) == (2, 2)

    assert _cli("spool", "list", *where) == 0
    listed = [__import__("json").loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {item["event_id"] for item in listed} == ids

    assert _cli("spool", "flush", *where, "--timeout", "5") == 0
    assert capsys.readouterr().out == f"sent 2 event(s); 0 left in {emitter.spool.root}\n"
    assert len(fake_kafka.sent) == 2
    assert sorted(p.name for p in pending.iterdir()) == ["foo", "notes.evt"]


# -- exit ---------------------------------------------------------------------------------------
EMIT_OFFLINE_AND_EXIT = """
    from runstream import emit_run
    from runstream.demo import seed_experiment
    for _ in range(3):
        emit_run(seed_experiment())
"""


def test_an_offline_process_says_at_exit_that_runs_wait_in_the_spool(tmp_path: Path) -> None:
    """Fault: no broker while a script that configured no logging emits 3 runs and ends.
    Invariant: it exits 0 with exactly one line on stderr (count, spool path, how they will be
    sent) and no traceback, well within its flush bound."""
    spool_dir = tmp_path / "spool"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(EMIT_OFFLINE_AND_EXIT)],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "RUNSTREAM_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
             "RUNSTREAM_SPOOL_DIR": str(spool_dir), "RUNSTREAM_FLUSH_TIMEOUT": "20"},
    )  # fmt: skip
    elapsed = time.monotonic() - started
    print(f"\noffline child exited in {elapsed:.2f}s; stderr: {done.stderr!r}")
    assert done.returncode == 0
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("runstream: 3 run event(s) not sent yet (Kafka at 127.0.0.1:")
    assert str(spool_dir) in line
    assert "next runstream process that emits" in line and "runstream spool flush" in line
    assert Spool(spool_dir).status().pending == 3
    assert elapsed < 15, "the exit flush waited although no broker was reachable"


def test_close_logs_a_warning_and_prints_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """An explicit close() is the program's own call: it reports through logging, which the
    program controls, and leaves stderr alone."""
    emitter = Emitter(bootstrap_servers=f"127.0.0.1:{free_port()}", spool_dir=tmp_path)
    emitter.emit_run(seed_experiment())
    with caplog.at_level(logging.WARNING, logger="runstream"):
        assert emitter.close(timeout_s=30) == 1
    assert capsys.readouterr().err == ""
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "1 run event(s) not sent yet" in record.getMessage()
    assert "is unreachable" in record.getMessage()
