"""The durable spool: file format (one-event files and segments), damage, its bound, several
processes at once, stray files, owner-only permissions and a folder that refuses changes."""

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
from runstream.producer.spool import ReadOutcome, Spool, SpoolEntry, SpoolRecord


def _ids_on_disk(spool: Spool) -> list[str]:
    """Event ids of every pending event, each read back and checked against the id its file
    names (a one-event file) or stores beside it (a segment)."""
    ids = []
    for entry in spool.pending_files():
        records = spool.read_file(entry)
        assert not isinstance(records, ReadOutcome), f"{entry.path.name} does not read back"
        assert len(records) == entry.count
        for record in records:
            event = contract.decode(record.value)
            assert event["event_id"] == record.event_id
            assert entry.is_segment or entry.event_id == record.event_id
            assert record.key == event["experiment_id"].encode()
            ids.append(record.event_id)
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


# -- segments: a batch's events in one file ---------------------------------------------------
def _records(count: int, prefix: str = "id") -> list[SpoolRecord]:
    return [SpoolRecord(f"{prefix}-{n}", f"k{n}".encode(), f"v{n}".encode() * (n + 1))
            for n in range(count)]  # fmt: skip


def test_a_segment_round_trips_and_lists_one_entry_per_event(tmp_path: Path) -> None:
    """A batch of 4 is one file; ``pending`` lists its 4 events in order between the older and
    the newer one-event files; each reads back; ``pending_files`` and ``read_file`` give the
    file whole; an event inside it cannot be removed alone; removing the file removes all 4."""
    spool = Spool(tmp_path)
    older = spool.put(b"k", b"older", "id-older")
    segment = spool.put_many(_records(4))
    newer = spool.put(b"k", b"newer", "id-newer")
    assert segment.path.name.endswith("-id-0.4.seg") and segment.count == 4
    assert segment.is_segment and segment.event_id is None
    listed = spool.pending()
    assert listed == [older, *(SpoolEntry(segment.path, n) for n in range(4)), newer]
    assert [spool.read(e) for e in listed[1:5]] == [(r.key, r.value) for r in _records(4)]
    assert spool.pending(limit=3) == listed[:3]
    assert spool.pending_files() == [older, segment, newer]
    assert spool.read_file(segment) == _records(4)
    assert spool.read_file(older) == [SpoolRecord("id-older", b"k", b"older")]
    assert spool.count() == 6
    status = spool.status()
    assert (status.pending, status.files, status.corrupt, status.stray) == (6, 3, 0, 0)
    assert status.bytes == sum(e.path.stat().st_size for e in (older, segment, newer))
    with pytest.raises(ValueError, match="cannot be removed alone"):
        spool.remove(listed[2])
    spool.remove(segment)
    assert spool.pending() == [older, newer]
    assert spool.read_entry(listed[1]) is ReadOutcome.GONE  # sent meanwhile
    assert not any((tmp_path / "tmp").iterdir())


def test_pending_files_takes_whole_files_up_to_a_number_of_events(tmp_path: Path) -> None:
    """The sender's round: whole files only, up to the asked number of events, but always at
    least one file however large (a segment is never split across rounds by listing)."""
    spool = Spool(tmp_path)
    big = spool.put_many(_records(700, "big"))
    small = [spool.put_many(_records(100, f"s{n}")) for n in range(3)]
    assert spool.pending_files(max_events=500) == [big]
    spool.remove(big)
    assert spool.pending_files(max_events=500) == small
    assert spool.pending_files(max_events=250) == small[:2]


def _flip_middle(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _claim_more_events(path: Path) -> None:
    """Rename a 3-event segment as if it held 4 (the name and the header disagree)."""
    path.rename(path.with_name(path.name.replace(".3.seg", ".4.seg")))


DAMAGE = {
    "bit flip in an event": _flip_middle,
    "torn at the end": lambda p: p.write_bytes(p.read_bytes()[:-5]),
    "header only": lambda p: p.write_bytes(p.read_bytes()[:16]),
    "empty": lambda p: p.write_bytes(b""),
    "one-event magic": lambda p: p.write_bytes(b"RSP1" + p.read_bytes()[4:]),
    "name and count disagree": _claim_more_events,
}


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
def test_a_damaged_segment_is_quarantined_whole_and_kept(tmp_path: Path, damage: str) -> None:
    """Fault: a segment damaged on disk. Invariant: reading it (as a file, or any of its
    events) moves it to corrupt/ unchanged, returns no event of it, and leaves the other
    files readable; status counts 1 corrupt file and only the healthy events."""
    spool = Spool(tmp_path)
    good = spool.put_many(_records(2, "good"))
    DAMAGE[damage](spool.put_many(_records(3, "bad")).path)
    (bad,) = [e for e in spool.pending_files() if e != good]
    kept = bad.path.read_bytes()
    entries = [e for e in spool.pending() if e.path == bad.path]
    assert spool.read_entry(entries[0]) is ReadOutcome.QUARANTINED
    assert all(spool.read_entry(e) is ReadOutcome.GONE for e in entries[1:])
    assert (tmp_path / "corrupt" / bad.path.name).read_bytes() == kept
    assert spool.read_file(good) == _records(2, "good")
    status = spool.status()
    assert (status.pending, status.files, status.corrupt) == (2, 1, 1)


def test_read_file_quarantines_a_damaged_segment(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    segment = spool.put_many(_records(5))
    _flip_middle(segment.path)
    assert spool.read_file(segment) is ReadOutcome.QUARANTINED
    assert spool.read_file(segment) is ReadOutcome.GONE
    assert spool.status().corrupt == 1


def test_a_short_write_of_a_segment_is_completed_not_truncated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write
    monkeypatch.setattr(spool_module.os, "write", lambda fd, data: real_write(fd, data[:7]))
    spool = Spool(tmp_path)
    segment = spool.put_many(_records(20))
    monkeypatch.undo()
    assert spool.read_file(segment) == _records(20)


def test_a_batch_with_an_id_that_cannot_be_stored_writes_nothing(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    with pytest.raises(ValueError, match="cannot name a spool file"):
        spool.put_many([*_records(3), SpoolRecord("../escape", b"k", b"v")])
    with pytest.raises(ValueError, match="at least one event"):
        spool.put_many([])
    assert spool.status().pending == 0 and not any((tmp_path / "tmp").iterdir())


SEGMENT_STRAYS = (f"{'3' * 20}-id.seg", f"{'3' * 20}-id.0.seg", f"{'3' * 20}-id.x.seg",
                  f"{'3' * 20}-id.05.seg", f"{'3' * 20}-id.2.seg.bak", "id.2.seg")  # fmt: skip


def test_names_that_only_look_like_segments_are_strays(tmp_path: Path) -> None:
    """Only ``<20 digits>-<id>.<count>.seg`` with a count from 1 is a segment; the rest are
    strays: never listed, read, sent or counted as events, and left untouched."""
    spool = Spool(tmp_path)
    real = spool.put_many(_records(2))
    for name in SEGMENT_STRAYS:
        (tmp_path / "pending" / name).write_text("not a segment")
    assert spool.pending_files() == [real]
    assert spool.count() == 2
    status = spool.status()
    assert (status.pending, status.files, status.stray) == (2, 1, len(SEGMENT_STRAYS))
    assert all((tmp_path / "pending" / name).exists() for name in SEGMENT_STRAYS)


def _emit_batches(spool_dir: str, batches: int, start: Any) -> list[list[str]]:
    emitter = Emitter(spool_dir=spool_dir, send=False)
    start.wait(60)
    out = []
    for n in range(batches):
        size = 1 + (n * 7) % 40  # 1 to 40 runs, a single one now and then
        out.append([r.event_id for r in emitter.emit_runs([seed_experiment()] * size)])
    return out


def test_four_processes_emitting_batches_at_once_lose_nothing_and_double_nothing(
    tmp_path: Path,
) -> None:
    """Load: 4 spawned processes x 25 batches of 1 to 40 runs into one spool, started
    together. Invariant: every returned id is on disk once, each batch whole in one file of
    its own, in its order; nothing corrupt, no temp file."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(PROCESSES) as pool:
        start = manager.Event()
        results = [pool.apply_async(_emit_batches, (str(tmp_path), 25, start))
                   for _ in range(PROCESSES)]  # fmt: skip
        start.set()
        batches = [batch for r in results for batch in r.get(timeout=120)]
    spool = Spool(tmp_path)
    files = {}
    for entry in spool.pending_files():
        records = spool.read_file(entry)
        assert not isinstance(records, ReadOutcome)
        files[records[0].event_id] = [r.event_id for r in records]
    returned = [event_id for batch in batches for event_id in batch]
    print(f"\n{PROCESSES} processes returned {len(batches)} batches, {len(returned)} ids; "
          f"{len(files)} files on disk")  # fmt: skip
    assert len(returned) == len(set(returned))
    assert sorted(files.values()) == sorted(batches)
    assert sorted(_ids_on_disk(spool)) == sorted(returned)
    assert not any((tmp_path / "tmp").iterdir())
    assert spool.status().corrupt == 0
