"""The durable spool: file format, damage, its bound, and several processes at once."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import pytest

from runstream import Emitter, RunstreamError, SpoolError, SpoolFullError, contract
from runstream.producer import spool as spool_module
from runstream.producer.spool import Spool
from tests.seed import seed_experiment


def _ids_on_disk(spool: Spool) -> list[str]:
    """Event ids of every pending file, each read back and checked against its name."""
    ids = []
    for entry in spool.pending():
        record = spool.read(entry)
        assert record is not None, f"{entry.path.name} does not read back"
        event = contract.decode(record[1])
        assert event["event_id"] == entry.event_id
        assert record[0] == event["experiment_id"].encode()
        ids.append(entry.event_id)
    return ids


def test_put_read_remove_round_trip_oldest_first(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    entries = [spool.put(f"k{i}".encode(), f"v{i}".encode(), f"id-{i}") for i in range(5)]
    assert spool.pending() == entries
    assert [spool.read(e) for e in entries] == [(f"k{i}".encode(), f"v{i}".encode()) for i in
                                                range(5)]  # fmt: skip
    spool.remove(entries[0])
    spool.remove(entries[0])  # removing twice (two senders) is harmless
    status = spool.status()
    assert (status.pending, status.corrupt) == (4, 0)
    assert not any((tmp_path / "tmp").iterdir())


def test_a_short_write_is_completed_not_truncated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # os.write may write less than asked; the spool must loop rather than keep a torn file.
    real_write = os.write
    monkeypatch.setattr(spool_module.os, "write", lambda fd, data: real_write(fd, data[:7]))
    spool = Spool(tmp_path)
    entry = spool.put(b"key", b"value" * 100, "id-1")
    monkeypatch.undo()
    assert spool.read(entry) == (b"key", b"value" * 100)


def test_a_damaged_file_is_moved_aside_and_kept(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    good = spool.put(b"k", b"good", "id-good")
    bad = spool.put(b"k", b"will be damaged", "id-bad")
    data = bytearray(bad.path.read_bytes())
    data[-1] ^= 0xFF
    bad.path.write_bytes(bytes(data))
    assert spool.read(bad) is None
    assert spool.read(good) == (b"k", b"good")
    assert (tmp_path / "corrupt" / bad.path.name).read_bytes() == bytes(data)
    assert spool.status().pending == 1 and spool.status().corrupt == 1


def test_stale_temp_files_are_cleaned_fresh_ones_kept(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    stale, fresh = tmp_path / "tmp" / "a.evt.1.tmp", tmp_path / "tmp" / "b.evt.2.tmp"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"y")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    assert spool.clean_tmp() == 1
    assert not stale.exists() and fresh.exists()


def test_an_unwritable_spool_names_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SpoolError, match="set RUNSTREAM_SPOOL_DIR"):
        Spool(blocker / "spool")


def test_a_full_spool_refuses_the_new_event_and_keeps_every_accepted_one(tmp_path: Path) -> None:
    """Fault: the spool reaches its bound. Invariant: the refused run raises SpoolFullError
    (an OSError and a RunstreamError), and all accepted runs are still there, intact."""
    emitter = Emitter(spool_dir=tmp_path, send=False, max_spool_events=5)
    accepted = [emitter.emit_run(seed_experiment()).event_id for _ in range(5)]
    refused = seed_experiment()
    with pytest.raises(SpoolFullError) as caught:
        emitter.emit_run(refused)
    assert isinstance(caught.value, OSError) and isinstance(caught.value, RunstreamError)
    message = str(caught.value)
    for fragment in ("max_events=5", "nothing was dropped", "runstream spool flush",
                     "RUNSTREAM_SPOOL_MAX_EVENTS"):  # fmt: skip
        assert fragment in message
    assert sorted(_ids_on_disk(emitter.spool)) == sorted(accepted)
    assert not any((tmp_path / "tmp").iterdir())
    # once the sender has delivered one, there is room again
    emitter.spool.remove(emitter.spool.pending(limit=1)[0])
    emitter.emit_run(refused)
    assert emitter.spool.status().pending == 5


# -- several processes at once -----------------------------------------------------------
PROCESSES = 4
EACH = 150


def _emit_many(spool_dir: str, count: int, start: Any) -> list[str]:
    emitter = Emitter(spool_dir=spool_dir, send=False)
    start.wait(60)  # all workers begin together, to overlap as much as possible
    return [emitter.emit_run(seed_experiment()).event_id for _ in range(count)]


def test_four_processes_emitting_at_once_lose_nothing_and_double_nothing(tmp_path: Path) -> None:
    """Load: 4 spawned processes x 150 emits into one spool, started together.
    Invariant: one file per accepted event, every returned id on disk once, no stray files."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(PROCESSES) as pool:
        start = manager.Event()
        results = [pool.apply_async(_emit_many, (str(tmp_path), EACH, start))
                   for _ in range(PROCESSES)]  # fmt: skip
        start.set()
        returned = [event_id for r in results for event_id in r.get(timeout=120)]
    on_disk = _ids_on_disk(Spool(tmp_path))
    files = list((tmp_path / "pending").iterdir())
    print(f"\n{PROCESSES} processes returned {len(returned)} ids; {len(files)} files on disk")
    assert len(returned) == len(set(returned)) == PROCESSES * EACH
    assert len(files) == len(on_disk) == len(set(on_disk)) == PROCESSES * EACH
    assert set(on_disk) == set(returned)
    assert not any((tmp_path / "tmp").iterdir())
    assert Spool(tmp_path).status().corrupt == 0
