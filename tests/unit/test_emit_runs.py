"""``emit_runs``: a batch validated whole before anything is written, made durable with one data
sync in one segment file, its receipts in order; the bound applied to the batch; the sender
deletes a segment only once every event in it is acknowledged; the spool verbs and
``runstream emit`` count events, not files. No broker: a fake producer stands in for Kafka."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, ClassVar

import pytest

import runstream
from runstream import Emitter, SpoolFullError, ValidationError, contract
from runstream.cli import build_parser
from runstream.demo import seed_experiment
from runstream.devtools.kafka_broker import free_port
from runstream.devtools.testkit import spooled_events
from runstream.producer import emitter as emitter_module
from runstream.producer.emitter import MAX_EVENT_BYTES
from runstream.producer.sender import FlushResult, Sender
from runstream.producer.spool import Spool
from tests.unit.conftest import RecordingProducer


def _runs(count: int, **changes: Any) -> list[dict[str, Any]]:
    """``count`` seed runs, each its own experiment and model name (so order is visible)."""
    return [{**seed_experiment(), "model_name": f"model_{n}", **changes} for n in range(count)]


def _cli(*argv: str) -> int:
    args = build_parser().parse_args(list(argv))
    code: int = args.func(args)
    return code


# -- the API ---------------------------------------------------------------------------------
def test_receipts_come_back_in_order_and_the_batch_is_one_file(emitter: Emitter) -> None:
    """Load: a batch of 25 runs. Invariant: 25 receipts in the runs' order, each with its run's
    experiment_id and a distinct event id; the spool holds the 25 events, in that order, in
    one segment file that every receipt names."""
    runs = _runs(25)
    receipts = emitter.emit_runs(runs)
    assert [r.experiment_id for r in receipts] == [run["experiment_id"] for run in runs]
    assert len({r.event_id for r in receipts}) == 25
    assert {r.event_type for r in receipts} == {contract.RUN_RECORDED}
    (segment,) = {r.spool_path for r in receipts}
    assert segment.name.endswith(".25.seg") and segment.parent == emitter.spool.pending_dir
    assert list(emitter.spool.pending_dir.iterdir()) == [segment]
    events = spooled_events(emitter.spool)
    assert [e["event_id"] for e in events] == [r.event_id for r in receipts]
    assert [e["run"]["model_name"] for e in events] == [f"model_{n}" for n in range(25)]
    assert {e["source"] for e in events} == {"emit"}
    assert emitter._left() == 25


def test_one_invalid_run_writes_nothing_and_each_bad_run_is_named(emitter: Emitter) -> None:
    """Fault: 3 bad runs among 7 (two problems in one, a non-dict, one too large to send).
    Invariant: one ValidationError lists each problem prefixed with its run's index, in order;
    nothing is in the spool, not even the 4 good runs, and no temp file is left."""
    runs: list[Any] = _runs(7)
    runs[1] = {**runs[1], "commodity": "coffee", "mae_14day": -1}
    runs[4] = 42
    runs[6] = {**runs[6], "hyperparameters": {f"h{n}": "x" * 60_000 for n in range(20)}}
    with pytest.raises(ValidationError) as caught:
        emitter.emit_runs(runs)
    problems = caught.value.problems
    assert [p.split(":", 1)[0] for p in problems] == ["runs[1]", "runs[1]", "runs[4]", "runs[6]"]
    assert "commodity 'coffee'" in problems[0] and "did you mean 'Coffee'" in problems[0]
    assert "mae_14day must not be negative" in problems[1]
    assert "a run must be a dict of columns, got int" in problems[2]
    assert f"over {MAX_EVENT_BYTES}" in problems[3]
    assert "nothing was written" in str(caught.value)
    assert emitter.spool.status().pending == 0
    assert not any((emitter.spool.root / "tmp").iterdir())
    assert emitter._left() == 0


@pytest.mark.parametrize("not_a_list", [seed_experiment(), "runs.json"], ids=["dict", "str"])
def test_one_run_instead_of_a_list_is_refused(emitter: Emitter, not_a_list: Any) -> None:
    with pytest.raises(ValidationError, match=r"emit_runs takes a list of runs"):
        emitter.emit_runs(not_a_list)
    assert emitter.spool.status().pending == 0


def test_an_empty_batch_writes_nothing(emitter: Emitter) -> None:
    assert emitter.emit_runs([]) == []
    assert emitter.emit_runs(iter(())) == []
    assert list(emitter.spool.pending_dir.iterdir()) == []


def test_a_batch_of_one_is_a_plain_event_file(emitter: Emitter) -> None:
    """One run needs no segment: it is stored as emit_run stores it (readable by any version)."""
    (receipt,) = emitter.emit_runs(_runs(1))
    assert receipt.spool_path.name.endswith(f"-{receipt.event_id}.evt")
    assert [e["event_id"] for e in spooled_events(emitter.spool)] == [receipt.event_id]


def test_any_iterable_of_runs_is_taken(emitter: Emitter) -> None:
    receipts = emitter.emit_runs(run for run in _runs(3))
    assert len(receipts) == 3 and emitter.spool.status().pending == 3


def test_emit_runs_is_exported_like_emit_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``runstream.emit_runs`` is the default emitter's ``emit_runs``."""
    assert "emit_runs" in runstream.__all__ and "emit_runs" in emitter_module.__all__
    default = Emitter(spool_dir=tmp_path / "spool", send=False)
    monkeypatch.setattr(emitter_module, "_default", default)
    receipts = runstream.emit_runs(_runs(4))
    assert [e["event_id"] for e in spooled_events(default.spool)] == [r.event_id for r in receipts]


# -- one data sync per batch ------------------------------------------------------------------
class SyncCounter:
    """Counts os.fsync calls, split into regular files (data) and folders."""

    def __init__(self) -> None:
        self.files = self.folders = 0
        self._fsync = os.fsync

    def __call__(self, fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            self.folders += 1
        else:
            self.files += 1
        self._fsync(fd)


@pytest.mark.parametrize("size", [2, 100, 1000])
def test_a_batch_costs_one_data_sync_like_a_single_run(
    emitter: Emitter, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    """Invariant: emit_run syncs its file and its folder once each; emit_runs of ``size`` runs
    costs exactly the same: one data sync and one folder sync for the whole batch."""
    emitter.emit_run(seed_experiment())  # the spool's folders exist before counting
    counter = SyncCounter()
    monkeypatch.setattr(os, "fsync", counter)
    emitter.emit_run(seed_experiment())
    assert (counter.files, counter.folders) == (1, 1)
    counter.files = counter.folders = 0
    emitter.emit_runs(_runs(size))
    assert (counter.files, counter.folders) == (1, 1)
    monkeypatch.undo()
    assert emitter.spool.status().pending == size + 2


# -- the bound -------------------------------------------------------------------------------
def test_a_batch_that_does_not_fit_is_refused_whole(tmp_path: Path) -> None:
    """Fault: the spool (bound 10) holds 4 events and a batch of 7 arrives. Invariant: the
    whole batch is refused with SpoolFullError before anything is written (the 4 intact, no
    temp file); a batch of 6 fits exactly; a batch larger than the bound says to split it."""
    emitter = Emitter(spool_dir=tmp_path, send=False, max_spool_events=10)
    accepted = [emitter.emit_run(seed_experiment()).event_id for _ in range(4)]
    with pytest.raises(SpoolFullError) as caught:
        emitter.emit_runs(_runs(7))
    message = str(caught.value)
    for fragment in ("a batch of 7 events", "holds 4 events", "max_events=10",
                     "none of the batch was written", "nothing was dropped",
                     "runstream spool flush", "RUNSTREAM_SPOOL_MAX_EVENTS"):  # fmt: skip
        assert fragment in message
    assert sorted(e["event_id"] for e in spooled_events(emitter.spool)) == sorted(accepted)
    assert not any((tmp_path / "tmp").iterdir())
    assert emitter._left() == 4

    emitter.emit_runs(_runs(6))
    assert emitter.spool.status().pending == 10
    with pytest.raises(SpoolFullError, match="holds 10 events, its limit"):
        emitter.emit_run(seed_experiment())

    empty = Emitter(spool_dir=tmp_path / "other", send=False, max_spool_events=10)
    with pytest.raises(SpoolFullError, match="Emit it in smaller batches"):
        empty.emit_runs(_runs(11))
    assert empty.spool.status().pending == 0


def test_the_bound_counts_the_events_of_segments_written_by_another_process(
    tmp_path: Path,
) -> None:
    """The bound counts events, not files: segments written by another emitter (another
    process) count with all their events when this one recounts."""
    other = Emitter(spool_dir=tmp_path, send=False)
    other.emit_runs(_runs(8))
    emitter = Emitter(spool_dir=tmp_path, send=False, max_spool_events=10)
    emitter.emit_runs(_runs(2))
    with pytest.raises(SpoolFullError, match="holds 10 events"):
        emitter.emit_run(seed_experiment())


# -- sending: a segment leaves the spool only when all of it is acknowledged ------------------
def test_the_sender_delivers_segments_whole_and_in_order(
    emitter: Emitter, fake_kafka: type[RecordingProducer]
) -> None:
    """Load: a single run, a batch of 700 (more than one send round holds), another single.
    Invariant: flush reports 702 sent, nothing left; the producer got every event once, in
    emit order."""
    order = [emitter.emit_run(seed_experiment()).event_id]
    order += [r.event_id for r in emitter.emit_runs(_runs(700))]
    order.append(emitter.emit_run(seed_experiment()).event_id)
    result = Sender(emitter.spool, topic="t", bootstrap_servers="h:1").flush(timeout_s=5)
    assert result == FlushResult(sent=702, quarantined=0, left=0, unreachable=False)
    assert [contract.decode(v)["event_id"] for v in fake_kafka.sent] == order
    assert emitter.spool.status().files == 0


class FailingSome(RecordingProducer):
    """Acks every record but those whose value is in ``refused`` (each refused once)."""

    refused: ClassVar[set[bytes]] = set()

    def send(self, topic: str, key: bytes, value: bytes) -> Any:
        RecordingProducer.sent.append(value)
        failing = value in FailingSome.refused
        FailingSome.refused.discard(value)

        class Future:
            is_done = True
            exception = RuntimeError("refused by the test") if failing else None

            def succeeded(self) -> bool:
                return not failing

            def failed(self) -> bool:
                return failing

        return Future()


def _values_of_oldest_file(spool: Spool) -> list[bytes]:
    records = spool.read_file(spool.pending_files()[0])
    assert isinstance(records, list)
    return [record.value for record in records]


def test_a_partly_acknowledged_segment_stays_until_all_of_it_is_acked(
    emitter: Emitter, fake_kafka: type[RecordingProducer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault: Kafka refuses 3 of a segment's 10 events once. Invariant: after that round the
    segment is still pending whole (10 events, none reported sent); the same sender's next
    round sends only the 3 refused ones and deletes the segment (10 sent). A new sender
    (a process started after a crash, which knows nothing of the first) sends the whole
    segment again: duplicates, which the consumer's dedup on event_id absorbs."""
    import kafka

    monkeypatch.setattr(kafka, "KafkaProducer", FailingSome)
    receipts = emitter.emit_runs(_runs(10))
    values = _values_of_oldest_file(emitter.spool)
    FailingSome.refused = {values[2], values[5], values[9]}
    sender = Sender(emitter.spool, topic="t", bootstrap_servers="h:1")
    assert sender.drain_once()  # progress: 7 acknowledged
    assert len(fake_kafka.sent) == 10
    assert emitter.spool.status().pending == 10 and receipts[0].spool_path.exists()

    after_crash = Sender(emitter.spool, topic="t", bootstrap_servers="h:1")
    assert after_crash.flush(timeout_s=0) == FlushResult(10, 0, 0, unreachable=False)
    assert fake_kafka.sent[10:] == values  # the whole segment again

    emitter.emit_runs(_runs(10))
    values = _values_of_oldest_file(emitter.spool)
    FailingSome.refused = {values[2], values[5], values[9]}
    fake_kafka.sent.clear()
    assert sender.flush(timeout_s=5) == FlushResult(10, 0, 0, unreachable=False)
    assert fake_kafka.sent == [*values, values[2], values[5], values[9]]


def test_a_damaged_segment_is_quarantined_and_the_rest_is_sent(
    emitter: Emitter, fake_kafka: type[RecordingProducer]
) -> None:
    """Fault: one bit flipped inside a batch's segment on disk. Invariant: flush sends the
    other batch and the single run (sent counts their 31 events), quarantines the damaged
    file whole (1 file, kept byte for byte in corrupt/), never sends any of its events."""
    good = [r.event_id for r in emitter.emit_runs(_runs(30))]
    damaged = emitter.emit_runs(_runs(20))[0].spool_path
    good.append(emitter.emit_run(seed_experiment()).event_id)
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0x10
    damaged.write_bytes(bytes(data))
    result = Sender(emitter.spool, topic="t", bootstrap_servers="h:1").flush(timeout_s=5)
    assert result == FlushResult(sent=31, quarantined=1, left=0, unreachable=False)
    assert sorted(contract.decode(v)["event_id"] for v in fake_kafka.sent) == sorted(good)
    assert (emitter.spool.root / "corrupt" / damaged.name).read_bytes() == bytes(data)
    assert emitter.spool.status().corrupt == 1


# -- the spool verbs and `runstream emit` count events ----------------------------------------
def test_spool_status_list_and_flush_count_events_not_files(
    tmp_path: Path, fake_kafka: type[RecordingProducer], capsys: pytest.CaptureFixture[str]
) -> None:
    """Load: one single run and batches of 30 and 12 (3 files, 43 events). Invariant: `spool
    status` says 43 pending; `spool list` lists 43 events with their ids in emit order
    (`--limit 5` the first 5); `spool flush` says it sent 43 and left 0."""
    spool_dir = tmp_path / "spool"
    emitter = Emitter(spool_dir=spool_dir, send=False)
    ids = [emitter.emit_run(seed_experiment()).event_id]
    ids += [r.event_id for r in emitter.emit_runs(_runs(30))]
    ids += [r.event_id for r in emitter.emit_runs(_runs(12))]
    where = ("--spool-dir", str(spool_dir), "--json")

    assert _cli("spool", "status", *where) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["pending"], status["corrupt"], status["stray"]) == (43, 0, 0)
    assert emitter.spool.status().files == 3

    assert _cli("spool", "list", *where) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [item["event_id"] for item in listed] == ids
    assert _cli("spool", "list", *where, "--limit", "5") == 0
    assert [json.loads(x)["event_id"] for x in capsys.readouterr().out.splitlines()] == ids[:5]

    assert _cli("spool", "flush", *where, "--bootstrap-servers", "h:1") == 0
    flushed = json.loads(capsys.readouterr().out)
    assert (flushed["sent"], flushed["quarantined"], flushed["left"]) == (43, 0, 0)
    assert [contract.decode(v)["event_id"] for v in fake_kafka.sent] == ids


def _write_runs(path: Path, runs: list[dict[str, Any]]) -> None:
    path.write_text(json.dumps(runs, default=str))


def test_runstream_emit_writes_a_big_file_in_batches_of_1000(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Load: a file of 2,500 runs, no broker. Invariant: three spool files of 1000, 1000 and
    500 events; every run's receipt printed in the file's order; exit 0, the runs kept."""
    runs = _runs(2500)
    _write_runs(tmp_path / "runs.json", runs)
    spool_dir = tmp_path / "spool"
    code = _cli("emit", str(tmp_path / "runs.json"), "--spool-dir", str(spool_dir), "--json",
                "--bootstrap-servers", f"127.0.0.1:{free_port()}", "--timeout", "0")  # fmt: skip
    assert code == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [p["experiment_id"] for p in printed] == [run["experiment_id"] for run in runs]
    spool = Spool(spool_dir)
    assert sorted(entry.count for entry in spool.pending_files()) == [500, 1000, 1000]
    assert [e["event_id"] for e in spooled_events(spool)] == [p["event_id"] for p in printed]


def test_runstream_emit_writes_nothing_when_one_run_of_a_big_file_is_invalid(
    tmp_path: Path,
) -> None:
    """Fault: run 2,400 of 2,500 is invalid (in the third batch of 1000). Invariant: the
    command fails naming `run 2400`, and nothing at all is in the spool."""
    runs = _runs(2500)
    runs[2399]["forecast_horizon_days"] = 0
    _write_runs(tmp_path / "runs.json", runs)
    with pytest.raises(ValidationError) as caught:
        _cli("emit", str(tmp_path / "runs.json"), "--spool-dir", str(tmp_path / "spool"))
    (problem,) = caught.value.problems
    assert problem.startswith("run 2400: forecast_horizon_days")
    assert Spool(tmp_path / "spool").status().pending == 0


def test_runstream_emit_checks_the_bound_for_the_whole_file_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault: a file of 2,500 runs and a spool bound of 2,000. Invariant: SpoolFullError
    before anything is written (not after the first two batches of 1000)."""
    monkeypatch.setenv("RUNSTREAM_SPOOL_MAX_EVENTS", "2000")
    _write_runs(tmp_path / "runs.json", _runs(2500))
    with pytest.raises(SpoolFullError, match="a batch of 2500 events"):
        _cli("emit", str(tmp_path / "runs.json"), "--spool-dir", str(tmp_path / "spool"))
    assert Spool(tmp_path / "spool").status().pending == 0
