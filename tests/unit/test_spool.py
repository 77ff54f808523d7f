"""The durable spool: file format, damage, its bound, several processes at once, stray files,
owner-only permissions and a folder that refuses changes."""

from __future__ import annotations

import errno
import multiprocessing
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from runstream import Emitter, RunstreamError, SpoolError, SpoolFullError, contract
from runstream.demo import seed_experiment
from runstream.producer import spool as spool_module
from runstream.producer.spool import ReadOutcome, Spool


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


# -- strays: only well-formed names are events ----------------------------------------------
STRAYS = ("notes.evt", "foo", "12-short.evt", f"{'9' * 20}-id.evt.bak", f"{'1' * 20}-.evt")


def test_stray_files_in_pending_are_ignored_and_counted(tmp_path: Path) -> None:
    """Fault: files a person or a tool left in pending/ (a note, a backup, a folder named like
    an event). Invariant: they are never listed, read or counted as events, status reports
    them as stray instead of crashing, and they stay untouched."""
    spool = Spool(tmp_path)
    real = spool.put(b"k", b"v", "id-real")
    for name in STRAYS:
        (tmp_path / "pending" / name).write_text("not an event")
    (tmp_path / "pending" / f"{'2' * 20}-a-folder.evt").mkdir()
    assert spool.pending() == [real]
    status = spool.status()
    assert (status.pending, status.stray, status.corrupt) == (1, len(STRAYS) + 1, 0)
    assert status.bytes == real.path.stat().st_size
    assert all((tmp_path / "pending" / name).exists() for name in STRAYS)


def test_an_event_id_that_cannot_name_a_file_is_refused(tmp_path: Path) -> None:
    """A name readers would skip as stray would be an accepted event that is never sent."""
    with pytest.raises(ValueError, match="cannot name a spool file"):
        Spool(tmp_path).put(b"k", b"v", "../escape")
    assert Spool(tmp_path).status().pending == 0


# -- permissions: a run is its owner's alone -------------------------------------------------
def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_spool_is_private_to_its_owner(tmp_path: Path) -> None:
    """On a shared host other users must not read runs: folders 0700, files 0600."""
    root = tmp_path / "new" / "spool"
    spool = Spool(root)
    entry = spool.put(b"k", b"v", "id-1")
    with spool.sender_lock() as mine:
        assert mine
    for folder in (root, root / "pending", root / "tmp", root / "corrupt"):
        assert _mode(folder) == 0o700, folder
    assert _mode(entry.path) == 0o600
    assert _mode(root / ".sender.lock") == 0o600


def test_opening_an_old_spool_tightens_its_folders(tmp_path: Path) -> None:
    """A spool made by an older version (0755 folders, 0644 lock) becomes owner-only when its
    owner opens it; the events in it are kept."""
    root = tmp_path / "spool"
    entry = Spool(root).put(b"k", b"v", "id-1")
    for folder in (root, root / "pending", root / "tmp", root / "corrupt"):
        os.chmod(folder, 0o755)
    (root / ".sender.lock").touch()
    os.chmod(root / ".sender.lock", 0o644)
    spool = Spool(root)
    for folder in (root, root / "pending", root / "tmp", root / "corrupt"):
        assert _mode(folder) == 0o700, folder
    assert _mode(root / ".sender.lock") == 0o600
    assert spool.read(entry) == (b"k", b"v")


def test_a_folder_that_holds_more_than_a_spool_keeps_its_mode(tmp_path: Path) -> None:
    """RUNSTREAM_SPOOL_DIR pointed at a folder with other content (a home, /tmp) must not have
    that folder's mode changed; the spool's own folders are still made private."""
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "someone-elses-file").write_text("x")
    os.chmod(shared, 0o1777)
    Spool(shared)
    assert _mode(shared) == 0o1777
    assert _mode(shared / "pending") == 0o700


# -- a spool that refuses changes ------------------------------------------------------------
def test_an_unchangeable_pending_folder_is_named_with_its_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault: pending/ refuses new files (simulated in-process: these tests run as root, whom
    chmod does not stop). Invariant: check_writable raises a SpoolError naming the folder and
    both fixes, and leaves no probe file behind."""
    spool = Spool(tmp_path)
    pending = tmp_path / "pending"
    real_open = os.open

    def refusing_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if Path(path).parent == pending and flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing_open)
    with pytest.raises(SpoolError) as caught:
        spool.check_writable()
    message = str(caught.value)
    for fragment in (str(pending), f"chmod u+w {pending}", "RUNSTREAM_SPOOL_DIR"):
        assert fragment in message
    monkeypatch.undo()
    assert list(pending.iterdir()) == []
    spool.check_writable()  # and a writable one passes


def test_read_entry_says_why_there_is_no_record(tmp_path: Path) -> None:
    """The sender counts quarantined files from this answer, so it must tell them apart from
    files another sender already removed."""
    spool = Spool(tmp_path)
    good, bad, gone = (spool.put(b"k", b"v", f"id-{n}") for n in ("good", "bad", "gone"))
    bad.path.write_bytes(b"RSP1 torn")
    gone.path.unlink()
    assert spool.read_entry(good) == (b"k", b"v")
    assert spool.read_entry(bad) is ReadOutcome.QUARANTINED
    assert spool.read_entry(gone) is ReadOutcome.GONE
    assert (tmp_path / "corrupt" / bad.path.name).exists()
