"""The backfill's sending side without a broker: a stand-in for kafka-python's producer shows
what is sent, what is skipped by the ledger, what a dry run does (nothing), and what happens
when the broker stops acknowledging midway. The real broker's side is in
``tests/broker/test_backfill_cli.py``."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import kafka
import pytest
from kafka.errors import KafkaTimeoutError, MessageSizeTooLargeError

from runstream import backfill_ledger, contract, kafka_client
from runstream.backfill import NAMESPACE, BackfillResult, backfill, backfill_file, prepare_event
from runstream.backfill_ledger import Ledger
from runstream.errors import BrokerUnreachableError

from .test_backfill_sources import history, write_jsonl


class FakeFuture:
    def __init__(self, error: Exception | None = None) -> None:
        self.is_done = True
        self.exception = error

    def succeeded(self) -> bool:
        return self.exception is None

    def get(self, timeout: float | None = None) -> None:
        if self.exception is not None:
            raise self.exception


class FakeProducer:
    """Acknowledges every record, except: the ``fail_at``-th send fails as a broker that
    stopped answering would, and values over ``max_bytes`` are refused as too large."""

    made: ClassVar[list[FakeProducer]] = []
    fail_at: ClassVar[int | None] = None
    max_bytes: ClassVar[int] = 1_000_000

    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.closed = False
        FakeProducer.made.append(self)

    def send(self, topic: str, key: bytes, value: bytes) -> FakeFuture:
        if len(value) > self.max_bytes:
            raise MessageSizeTooLargeError(f"The message is {len(value)} bytes")
        if self.fail_at is not None and len(self.sent) + 1 >= self.fail_at:
            return FakeFuture(KafkaTimeoutError("Expiring 1 record(s): 60000 ms has passed"))
        self.sent.append((topic, key, value))
        return FakeFuture()

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


@pytest.fixture()
def producer(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeProducer]]:
    FakeProducer.made, FakeProducer.fail_at, FakeProducer.max_bytes = [], None, 1_000_000
    monkeypatch.setattr(kafka, "KafkaProducer", FakeProducer)
    monkeypatch.setattr(kafka_client, "check_connection", lambda *a, **k: None)
    yield FakeProducer


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RUNSTREAM_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def sent_ids(producer: type[FakeProducer]) -> list[str]:
    return [contract.decode(v)["event_id"] for p in producer.made for _, _, v in p.sent]


def test_python_api_an_iterable_of_dicts_invalid_ones_listed_valid_ones_sent(
    producer: type[FakeProducer], home: Path
) -> None:
    runs = history(4)
    runs[1] = {**runs[1], "mae_14day": -1}
    runs.insert(2, "not a run")
    result = backfill(iter(runs), topic="replay", bootstrap_servers="x:1")
    assert isinstance(result, BackfillResult)
    assert (result.read, result.sent, result.invalid, result.skipped) == (5, 3, 2, 0)
    assert [p.where for p in result.invalid_rows] == ["record 2", "record 3"]
    assert "mae_14day must not be negative" in result.invalid_rows[0].reason
    assert "a run must be a JSON object" in result.invalid_rows[1].reason
    (made,) = producer.made
    assert made.settings["acks"] == "all" and made.settings["enable_idempotence"] is True
    assert made.closed and {t for t, _, _ in made.sent} == {"replay"}
    assert sent_ids(producer) == [prepare_event(r)["event_id"] for r in (runs[0], runs[3], runs[4])]
    assert not result.ok and result.ledger is None  # an iterable has no ledger unless named


def test_ids_stay_derived_from_the_content(producer: type[FakeProducer], home: Path) -> None:
    """DESIGN.md: experiment_id is a UUIDv5 of the run's identity when absent, event_id a
    UUIDv5 of the experiment id and the validated payload."""
    run = history(1)[0]
    first, again = prepare_event(run), prepare_event(dict(run))
    assert first["event_id"] == again["event_id"]
    assert first["experiment_id"] == again["experiment_id"]
    assert uuid.UUID(first["experiment_id"]).version == 5
    assert prepare_event({**run, "mae_14day": 9.0})["event_id"] != first["event_id"]
    given = str(uuid.uuid4())
    assert prepare_event({**run, "experiment_id": given})["experiment_id"] == given
    assert uuid.UUID(first["event_id"]) != uuid.uuid5(NAMESPACE, "")


def test_a_dry_run_validates_and_sends_nothing(
    producer: type[FakeProducer], home: Path, tmp_path: Path
) -> None:
    runs = history(3)
    runs[2] = {**runs[2], "commodity": "coffee"}
    path = write_jsonl(tmp_path / "old.jsonl", runs)
    result = backfill_file(str(path), dry_run=True, bootstrap_servers="127.0.0.1:1")
    assert (result.to_send, result.invalid, result.sent) == (2, 1, 0)
    assert result.invalid_rows[0].where == "line 3" and "did you mean 'Coffee'" in (
        result.invalid_rows[0].reason
    )
    assert producer.made == []  # no producer, no connection
    assert not (home / "backfill").exists()  # and no ledger written


def test_a_second_run_skips_what_the_ledger_holds_and_a_changed_run_is_sent(
    producer: type[FakeProducer], home: Path, tmp_path: Path
) -> None:
    runs = history(5)
    path = write_jsonl(tmp_path / "old.jsonl", runs)
    first = backfill_file(str(path), topic="replay")
    assert (first.sent, first.skipped) == (5, 0)
    assert first.ledger is not None and first.ledger.parent == home / "backfill"

    again = backfill_file(str(path), topic="replay")
    assert (again.sent, again.skipped) == (0, 5)
    dry = backfill_file(str(path), topic="replay", dry_run=True)
    assert (dry.to_send, dry.skipped) == (0, 5)

    runs[3] = {**runs[3], "mae_14day": 1.23}  # a corrected run: a new event
    write_jsonl(path, runs)
    fixed = backfill_file(str(path), topic="replay")
    assert (fixed.sent, fixed.skipped) == (1, 4)
    assert sent_ids(producer)[-1] == prepare_event(runs[3])["event_id"]

    other_topic = backfill_file(str(path), topic="elsewhere")
    assert (other_topic.sent, other_topic.skipped) == (5, 0)
    resent = backfill_file(str(path), topic="replay", resend=True)
    assert (resent.sent, resent.skipped) == (5, 0)


def test_a_broker_that_stops_acknowledging_ends_the_run_and_keeps_the_acknowledged(
    producer: type[FakeProducer], home: Path, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "old.jsonl", history(10))
    producer.fail_at = 7
    with pytest.raises(BrokerUnreachableError, match=r"stopped acknowledging.*6 run\(s\)"):
        backfill_file(str(path), topic="replay", bootstrap_servers="x:1")
    assert producer.made[0].closed
    producer.fail_at = None
    after = backfill_file(str(path), topic="replay", bootstrap_servers="x:1")
    assert (after.sent, after.skipped) == (4, 6)


def test_an_event_kafka_refuses_as_too_large_is_listed_and_the_rest_go(
    producer: type[FakeProducer], home: Path
) -> None:
    runs = history(3)
    runs[1] = {**runs[1], "hyperparameters": {"blob": "x" * 5000}}
    producer.max_bytes = 2000
    result = backfill(runs, topic="replay")
    assert (result.sent, result.failed, result.invalid) == (2, 1, 0)
    assert result.failed_rows[0].where == "record 2"
    assert "too large" in result.failed_rows[0].reason and not result.ok


def test_listing_stops_at_max_listed_and_the_count_goes_on(
    producer: type[FakeProducer], home: Path
) -> None:
    result = backfill([{"model_name": "x"}] * 30, dry_run=True, max_listed=5)
    assert result.invalid == 30 and len(result.invalid_rows) == 5


def test_an_unusable_ledger_is_a_warning_and_the_backfill_goes_on(
    producer: type[FakeProducer], home: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_jsonl(tmp_path / "old.jsonl", history(2))
    ledger = backfill_ledger.ledger_path(str(path.resolve()), "replay", "x:1")
    ledger.parent.mkdir(parents=True)
    ledger.write_bytes(b"this is not a database" * 100)
    result = backfill_file(str(path), topic="replay", bootstrap_servers="x:1")
    assert result.sent == 2 and result.ledger is None
    assert "cannot be used" in caplog.text and "going on without it" in caplog.text


_WRITER = """
import os, sys, uuid
from runstream.backfill_ledger import Ledger
ledger = Ledger.open("file", "topic", "servers")
for n in range(int(sys.argv[1])):
    ledger.add(str(uuid.UUID(int=n + 1)))
ledger.commit()
for n in range(1000):  # acknowledged but not committed when the process dies
    ledger.add(str(uuid.UUID(int=10**6 + n)))
    if n == 249:
        os.kill(os.getpid(), 9)
"""


def test_a_process_killed_mid_file_leaves_a_sound_ledger(home: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _WRITER, "1200"],
        env={**os.environ, "RUNSTREAM_HOME": str(home)}, capture_output=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == -9, done.stderr
    path = backfill_ledger.ledger_path("file", "topic", "servers")
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    ledger = Ledger.open("file", "topic", "servers")
    try:
        assert all(str(uuid.UUID(int=n + 1)) in ledger for n in range(1200))
        assert str(uuid.UUID(int=10**6 + 999)) not in ledger  # never acknowledged
    finally:
        ledger.close()


def _on_a_terminal(argv: list[str], cwd: Path, home: Path) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pseudo-terminal (100 columns); (exit, stdout, stderr)."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "runstream", *argv], cwd=cwd, stderr=slave,
        stdout=subprocess.PIPE, env={**os.environ, "RUNSTREAM_HOME": str(home)},
    )  # fmt: skip
    os.close(slave)
    seen = b""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not data:
            break
        seen += data
    os.close(master)
    assert process.stdout is not None
    out = process.stdout.read().decode()
    process.stdout.close()
    return process.wait(timeout=60), out, seen.decode(errors="replace")


def test_a_progress_bar_on_a_terminal_only_and_not_with_quiet(home: Path, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "old.jsonl", history(3000))
    code, out, err = _on_a_terminal(["backfill", str(path), "--dry-run"], tmp_path, home)
    assert code == 0 and "3000 run(s) to send" in out
    assert "old.jsonl:" in err and "B/s" in err and "%|" in err, err[-500:]
    code, out, err = _on_a_terminal(["backfill", str(path), "--dry-run", "-q"], tmp_path, home)
    assert code == 0 and err.strip() == ""
    piped = subprocess.run(
        [sys.executable, "-m", "runstream", "backfill", str(path), "--dry-run"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**os.environ, "RUNSTREAM_HOME": str(home)},
    )  # fmt: skip
    assert piped.returncode == 0 and piped.stderr == ""
