"""A crash-safe, multi-process, bounded, owner-only on-disk queue of encoded events.

A file holds one event (``emit_run``) or a *segment*, the events of one batch (``emit_runs``).
``put`` and ``put_many`` write the file under ``tmp/``, fsync it once, rename it into
``pending/`` and fsync the folder, so once they return every event in it survives ``kill -9``
and power loss, and a reader never sees half a file: rename is atomic, so a batch is visible
whole or not at all. Unique names (a nanosecond clock plus an event id) let any number of
processes write at once without a lock. Files sort oldest first, which is the order the sender
sends them in.

Only names of these exact forms are events: 20 digits, ``-``, the event id, ``.evt`` (one
event); 20 digits, ``-``, the first event's id, ``.``, the number of events, ``.seg`` (a
segment). Counting the spool therefore reads names only, never files. Anything else in
``pending/`` (a note, an editor's backup) is a *stray*: counted by ``status``, never read, sent
or deleted, so a stray file can neither crash a reader nor be sent. (A runstream older than
segments sees a ``.seg`` file as a stray: it leaves it alone, and a newer one sends it.)

A one-event file is ``RSP1`` + key length + value length + CRC-32 of key and value, then key
and value. A segment is ``RSS1`` + event count + body length + CRC-32 of the body, then the
body: per event, its id length, key length and value length, then id, key and value. A file
that fails its check (disk damage; a segment whose count disagrees with its name) is moved to
``corrupt/`` whole, logged, never deleted.

Events are listed one by one (``pending``: a segment gives one entry per event, ``index``
naming its place) and sent file by file (``pending_files``, ``read_file``): the sender deletes
a file only once every event in it was acknowledged. A segment partly acknowledged when its
sender dies is sent again whole; the consumer keeps one row per ``event_id``.

Runs are private: files are created 0600 and folders 0700, and opening a spool as its owner
tightens folders an older version (or a permissive umask) left readable by others.

The bound (``max_events``) counts events, not files, and is a guard against a spool that grows
without end during a long outage, not an exact quota: each process recounts at least every 256
events put and on every put near the limit, so processes racing at the limit may overshoot it
by a few events. A batch is checked as a whole before anything is written: it fits entirely or
raises ``SpoolFullError``; nothing already accepted is ever dropped to make room.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import fcntl
import logging
import os
import re
import stat
import struct
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from runstream.errors import SpoolError, SpoolFullError

log = logging.getLogger(__name__)

_MAGIC = b"RSP1"
_HEAD = struct.Struct(">4sIII")
_SUFFIX = ".evt"
# An entry's name: creation time in ns (20 digits, so names sort by age), '-', the event id.
_ENTRY_NAME = re.compile(r"(\d{20})-([0-9A-Za-z][0-9A-Za-z_-]*)\.evt")
_EVENT_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]*")
# A segment: magic, event count, body length, CRC-32 of the body; per event id/key/value lengths.
_SEG_MAGIC = b"RSS1"
_SEG_HEAD = struct.Struct(">4sIII")
_SEG_RECORD = struct.Struct(">HII")
_SEG_SUFFIX = ".seg"
# A segment's name: creation time in ns, '-', its first event's id, '.', its event count.
_SEGMENT_NAME = re.compile(r"(\d{20})-([0-9A-Za-z][0-9A-Za-z_-]*)\.([1-9]\d{0,8})\.seg")
_PROBE_PREFIX = ".write-probe-"
_LOCK_NAME = ".sender.lock"
_SUBFOLDERS = ("pending", "tmp", "corrupt")
_STALE_TMP_S = 3600.0
_RECOUNT_EVERY = 256
_FILE_MODE = 0o600
_DIR_MODE = 0o700


class ReadOutcome(enum.Enum):
    """Why ``Spool.read_entry`` (or ``read_file``) gave back no record."""

    GONE = "gone"  # removed meanwhile (another process's sender sent it)
    QUARANTINED = "quarantined"  # failed its check; moved to corrupt/
    UNREADABLE = "unreadable"  # the file is there but cannot be read (logged); left in place


class SpoolRecord(NamedTuple):
    """One event as stored: its id, the Kafka key and the encoded value."""

    event_id: str
    key: bytes
    value: bytes


@dataclass(frozen=True)
class SpoolEntry:
    """A pending file, or one event in it.

    ``index`` None: the whole file (a one-event file is both). ``index`` i: the i-th event of a
    segment, as ``Spool.pending`` lists them. The name carries the creation order, the event
    id of a one-event file and the event count of a segment.
    """

    path: Path
    index: int | None = None

    @property
    def is_segment(self) -> bool:
        return self.path.name.endswith(_SEG_SUFFIX)

    @property
    def count(self) -> int:
        """Events in this entry's file (from its name; 1 for a one-event file)."""
        match = _SEGMENT_NAME.fullmatch(self.path.name)
        return int(match.group(3)) if match else 1

    @property
    def event_id(self) -> str | None:
        """The event id of a one-event file; None for a segment (its ids are inside it)."""
        if self.is_segment:
            return None
        return self.path.stem.split("-", 1)[1]


@dataclass(frozen=True)
class SpoolStatus:
    """A snapshot of the spool: ``pending`` counts events (a segment counts each of its
    events), ``files`` the files holding them; ``stray`` counts files in pending/ that are
    not events, ``corrupt`` the files in corrupt/."""

    pending: int
    bytes: int
    oldest_age_s: float | None
    corrupt: int
    path: Path
    stray: int = 0
    files: int = 0


class Spool:
    """The folder ``root`` as a durable queue holding at most ``max_events`` events."""

    def __init__(self, root: str | os.PathLike[str], max_events: int = 100_000) -> None:
        if max_events < 1:
            raise ValueError(f"max_events must be at least 1, got {max_events}")
        self.root = Path(root)
        self.max_events = max_events
        self._pending = self.root / "pending"
        self._tmp = self.root / "tmp"
        self._corrupt = self.root / "corrupt"
        try:
            created = not self._pending.is_dir()
            root_is_new = not self.root.exists()
            self.root.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
            for d in (self._pending, self._tmp, self._corrupt):
                d.mkdir(mode=_DIR_MODE, exist_ok=True)
            if created:  # make the new folders' own names durable, not just their contents
                _fsync_dir(self.root)
                _fsync_dir(self.root.parent)
        except OSError as exc:
            raise SpoolError(
                f"cannot create the spool at {self.root}: {exc.strerror}; "
                "set RUNSTREAM_SPOOL_DIR (or spool_dir=) to a writable, durable folder"
            ) from exc
        self._tighten(root_is_new)
        self._count: int | None = None
        self._puts_since_count = 0
        # the last segment read_entry parsed: listing a segment's events reads it once
        self._segment_cache: tuple[Path, list[SpoolRecord]] | None = None

    @property
    def pending_dir(self) -> Path:
        return self._pending

    def _tighten(self, root_is_new: bool) -> None:
        """Take group and other permissions off the spool's folders and lock file.

        Only the owner can, and only does: the root itself is tightened only when it holds
        nothing but the spool (a spool pointed at ``$HOME`` or ``/tmp`` must not change it).
        Files inside are unreachable to others once their folder is 0700.
        """
        targets = [self._pending, self._tmp, self._corrupt, self.root / _LOCK_NAME]
        try:
            own = set(_SUBFOLDERS) | {_LOCK_NAME}
            if root_is_new or all(name in own for name in os.listdir(self.root)):
                targets.insert(0, self.root)
        except OSError:
            pass
        for path in targets:
            with contextlib.suppress(FileNotFoundError):
                st = path.lstat()
                loose = stat.S_IMODE(st.st_mode) & 0o077
                if not loose or st.st_uid != os.geteuid() or stat.S_ISLNK(st.st_mode):
                    continue
                try:
                    os.chmod(path, stat.S_IMODE(st.st_mode) & ~0o077)
                except OSError as exc:
                    log.warning(
                        "cannot make %s private to its owner (%s); other users may read runs. "
                        "Fix: chmod go-rwx %s",
                        path,
                        exc.strerror,
                        path,
                    )
                else:
                    log.info(
                        "made %s private to its owner (was %o)", path, stat.S_IMODE(st.st_mode)
                    )

    # -- writing -------------------------------------------------------------------------
    def put(self, key: bytes, value: bytes, event_id: str) -> SpoolEntry:
        """Store one event durably; when this returns it survives a crash."""
        name = f"{time.time_ns():020d}-{event_id}{_SUFFIX}"
        if not _ENTRY_NAME.fullmatch(name):
            # A name the readers would skip as stray would be an event accepted and never sent.
            raise ValueError(
                f"event id {event_id!r} cannot name a spool file; use letters, digits, '-', '_'"
            )
        self.check_room()
        head = _HEAD.pack(_MAGIC, len(key), len(value), zlib.crc32(value, zlib.crc32(key)))
        return self._write(name, head + key + value, 1)

    def put_many(self, records: Sequence[SpoolRecord | tuple[str, bytes, bytes]]) -> SpoolEntry:
        """Store a batch of (event_id, key, value) durably in one file, with one data sync.

        The batch is checked against the bound as a whole first: it fits entirely or raises
        ``SpoolFullError`` having written nothing. When this returns every event survives a
        crash; before, none is visible (the file appears by one atomic rename). One event is
        stored as ``put`` stores it. Returns the file's entry (``index`` None).
        """
        if not records:
            raise ValueError("put_many needs at least one event")
        for event_id, _, _ in records:
            if not _EVENT_ID.fullmatch(event_id) or len(event_id) > 0xFFFF:
                raise ValueError(
                    f"event id {event_id!r} cannot name a spool file; use letters, digits, '-', '_'"
                )
        if len(records) == 1:
            event_id, key, value = records[0]
            return self.put(key, value, event_id)
        count = len(records)
        self.check_room(count)
        parts = []
        for event_id, key, value in records:
            ident = event_id.encode()
            parts += [_SEG_RECORD.pack(len(ident), len(key), len(value)), ident, key, value]
        body = b"".join(parts)
        head = _SEG_HEAD.pack(_SEG_MAGIC, count, len(body), zlib.crc32(body))
        name = f"{time.time_ns():020d}-{records[0][0]}.{count}{_SEG_SUFFIX}"
        return self._write(name, head + body, count)

    def _write(self, name: str, data: bytes, count: int) -> SpoolEntry:
        """Write ``data`` as ``pending/name``: tmp file, one fsync, rename, folder fsync."""
        tmp = self._tmp / f"{name}.{os.getpid()}.tmp"
        final = self._pending / name
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
            try:
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, final)
            _fsync_dir(self._pending)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise SpoolError(f"cannot write to the spool at {self.root}: {exc}") from exc
        if self._count is not None:
            self._count += count
        self._puts_since_count += count
        return SpoolEntry(final)

    def check_room(self, adding: int = 1) -> None:
        """Raise ``SpoolFullError`` unless ``adding`` more events fit under the bound."""
        if (
            self._count is None
            or self._puts_since_count >= _RECOUNT_EVERY
            or (self._count + adding > self.max_events * 0.9)
        ):
            self._count = self.count()
            self._puts_since_count = 0
        if self._count + adding <= self.max_events:
            return
        fix = "Start the broker or run `runstream spool flush`, or raise RUNSTREAM_SPOOL_MAX_EVENTS"
        if adding == 1:
            raise SpoolFullError(
                f"the spool at {self.root} holds {self._count} events, its limit "
                f"(max_events={self.max_events}); nothing was dropped. {fix}"
            )
        if adding > self.max_events:
            fix = "Emit it in smaller batches, or raise RUNSTREAM_SPOOL_MAX_EVENTS"
        raise SpoolFullError(
            f"a batch of {adding} events does not fit in the spool at {self.root}, which holds "
            f"{self._count} events of its limit (max_events={self.max_events}); none of the "
            f"batch was written and nothing was dropped. {fix}"
        )

    def check_writable(self) -> None:
        """Raise SpoolError unless files can be created and deleted in ``pending/``.

        The sender calls this before sending: an event it cannot delete after Kafka's ack would
        otherwise be sent again on every round. A real create and delete is tried (not
        ``os.access``), so read-only mounts, ACLs and root's exemptions are all answered truly.
        """
        probe = self._pending / f"{_PROBE_PREFIX}{os.getpid()}-{threading.get_ident()}"
        created = False
        try:
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _FILE_MODE))
            created = True
            os.unlink(probe)
        except OSError as exc:
            if created:
                with contextlib.suppress(OSError):
                    os.unlink(probe)
            raise self.unwritable(
                exc,
                "nothing was sent, since events Kafka acknowledged could not be deleted and "
                "would be sent again and again",
            ) from exc

    def unwritable(self, exc: OSError, what_happened: str) -> SpoolError:
        """The SpoolError for a ``pending/`` that refuses changes, naming the folder and fix."""
        if exc.errno == errno.EROFS:
            fix = f"remount {self._pending}'s file system read-write"
        else:
            fix = f"run `chmod u+w {self._pending}` as its owner"
        return SpoolError(
            f"the spool folder {self._pending} cannot be changed ({exc.strerror or exc}); "
            f"{what_happened}. Fix: {fix}, or set RUNSTREAM_SPOOL_DIR to a writable folder"
        )

    # -- reading -------------------------------------------------------------------------
    def _scan(self) -> Iterator[tuple[str, int]]:
        """(name, event count) of every well-formed file in pending/ (strays are skipped)."""
        for e, count in self._scan_all():
            if count:
                yield e.name, count

    def _scan_all(self) -> Iterator[tuple[os.DirEntry[str], int]]:
        """Every file in pending/ with the events it holds by its name (0: a stray)."""
        try:
            with os.scandir(self._pending) as it:
                for e in it:
                    yield e, _events_in(e)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise SpoolError(
                f"cannot read the spool folder {self._pending}: {exc.strerror}; "
                f"run `chmod u+rwx {self._pending}` as its owner, or set RUNSTREAM_SPOOL_DIR"
            ) from exc

    def count(self) -> int:
        """Events pending (a segment counts each of its events); reads names only."""
        return sum(count for _, count in self._scan())

    def pending(self, limit: int | None = None) -> list[SpoolEntry]:
        """Pending events, oldest first: one entry per event, a segment's in their order."""
        out: list[SpoolEntry] = []
        for name, count in sorted(self._scan()):
            if limit is not None and len(out) >= limit:
                break
            path = self._pending / name
            if name.endswith(_SEG_SUFFIX):
                out.extend(SpoolEntry(path, i) for i in range(count))
            else:
                out.append(SpoolEntry(path))
        return out if limit is None else out[:limit]

    def pending_files(self, max_events: int | None = None) -> list[SpoolEntry]:
        """Pending files, oldest first, whole; as many as hold at most ``max_events`` events
        together (always at least one, however many events it holds)."""
        out: list[SpoolEntry] = []
        total = 0
        for name, count in sorted(self._scan()):
            if max_events is not None and out and total + count > max_events:
                break
            out.append(SpoolEntry(self._pending / name))
            total += count
        return out

    def read(self, entry: SpoolEntry) -> tuple[bytes, bytes] | None:
        """Key and value of ``entry``; None if it is gone, quarantined or unreadable."""
        record = self.read_entry(entry)
        return None if isinstance(record, ReadOutcome) else record

    def read_entry(self, entry: SpoolEntry) -> tuple[bytes, bytes] | ReadOutcome:
        """Key and value of one event, or why there are none (so a caller can count truly).

        ``entry`` is a one-event file or an event of a segment (``index`` set), as ``pending``
        lists them; a segment is parsed once for all of its events in turn. A file that fails
        its check is quarantined whole.
        """
        if not entry.is_segment:
            records = self.read_file(entry)
            return records if isinstance(records, ReadOutcome) else records[0][1:]
        if entry.index is None:
            raise ValueError(f"{entry.path.name} is a segment; read it with read_file")
        cached = self._segment_cache
        if cached is not None and cached[0] == entry.path:
            if not entry.path.exists():  # sent meanwhile
                return ReadOutcome.GONE
            records = cached[1]
        else:
            records = self.read_file(SpoolEntry(entry.path))
            if isinstance(records, ReadOutcome):
                return records
            self._segment_cache = (entry.path, records)
        record = records[entry.index]
        return record.key, record.value

    def read_file(self, entry: SpoolEntry) -> list[SpoolRecord] | ReadOutcome:
        """Every event of ``entry``'s file, in order, or why there are none.

        A file that fails its check (torn, bit-flipped, a count that disagrees with its name)
        is moved to ``corrupt/`` whole and QUARANTINED is returned.
        """
        try:
            data = entry.path.read_bytes()
        except FileNotFoundError:
            return ReadOutcome.GONE
        except OSError as exc:
            log.warning(
                "cannot read spool file %s (%s); it stays in place. Fix: chmod u+r %s",
                entry.path,
                exc.strerror,
                entry.path,
            )
            return ReadOutcome.UNREADABLE
        if entry.is_segment:
            records = _parse_segment(data, entry.count)
        else:
            event_id = entry.event_id
            assert event_id is not None
            records = _parse_one(data, event_id)
        if records is not None:
            return records
        return self._quarantine(entry.path)

    def _quarantine(self, path: Path) -> ReadOutcome:
        try:
            os.rename(path, self._corrupt / path.name)
        except FileNotFoundError:
            return ReadOutcome.GONE
        except OSError as exc:
            raise SpoolError(
                f"spool file {path} fails its check and cannot be moved to "
                f"{self._corrupt} ({exc.strerror}); sending stopped at it. Fix: run "
                f"`chmod u+w {self._pending} {self._corrupt}` as their owner, or set "
                "RUNSTREAM_SPOOL_DIR to a writable folder"
            ) from exc
        log.error("spool file %s fails its check; moved to %s", path, self._corrupt)
        return ReadOutcome.QUARANTINED

    def remove(self, entry: SpoolEntry) -> None:
        """Forget a file every event of which the broker acknowledged.

        Raises the OSError when the file exists but cannot be deleted: the caller must not
        send it again as if it were new. An event inside a segment cannot be removed alone
        (``index`` set): the segment goes once all its events are acknowledged.
        """
        if entry.index is not None:
            raise ValueError(
                f"event {entry.index} of segment {entry.path.name} cannot be removed alone; "
                "remove the segment once every event in it is acknowledged"
            )
        try:
            os.unlink(entry.path)
        except FileNotFoundError:
            return  # another process's sender already removed it
        if self._count is not None:
            self._count = max(0, self._count - entry.count)

    def contains(self, entry: SpoolEntry) -> bool:
        return entry.path.exists()

    def status(self) -> SpoolStatus:
        count = size = stray = files = 0
        oldest: int | None = None
        for e, events in self._scan_all():
            if not events:
                stray += not e.name.startswith(_PROBE_PREFIX)
                continue
            count += events
            files += 1
            with contextlib.suppress(FileNotFoundError):
                size += e.stat().st_size
            created = int(e.name[:20])
            oldest = created if oldest is None else min(oldest, created)
        corrupt = sum(1 for _ in self._corrupt.iterdir())
        age = None if oldest is None else max(0.0, (time.time_ns() - oldest) / 1e9)
        return SpoolStatus(count, size, age, corrupt, self.root, stray, files)

    def clean_tmp(self) -> int:
        """Delete temp files that outlived any writer (a writer killed before its rename;
        its emit_run() or emit_runs() never returned, so its events were never accepted)."""
        removed = 0
        cutoff = time.time() - _STALE_TMP_S
        for p in self._tmp.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if p.stat().st_mtime < cutoff:
                    p.unlink()
                    removed += 1
        return removed

    @contextlib.contextmanager
    def sender_lock(self) -> Iterator[bool]:
        """Try to become this spool's one sender; yields whether it succeeded.

        Several processes may share a spool; one sending at a time keeps Kafka free of the
        duplicates that racing senders would make. The lock dies with its process.
        """
        path = self.root / _LOCK_NAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, _FILE_MODE)
        except OSError as exc:
            raise SpoolError(
                f"cannot open the sender lock {path}: {exc.strerror}; run "
                f"`chmod u+rw {self.root} {path}` as their owner, or set RUNSTREAM_SPOOL_DIR"
            ) from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _events_in(e: os.DirEntry[str]) -> int:
    """Events a pending/ entry holds by its name, if it is a regular file; 0 for a stray."""
    name = e.name
    if name.endswith(_SUFFIX):
        count = 1 if _ENTRY_NAME.fullmatch(name) else 0
    else:
        match = _SEGMENT_NAME.fullmatch(name)
        count = int(match.group(3)) if match else 0
    if not count:
        return 0
    try:
        return count if e.is_file(follow_symlinks=False) else 0
    except OSError:
        return 0


def _parse_one(data: bytes, event_id: str) -> list[SpoolRecord] | None:
    """A one-event file's record, or None if it fails its check."""
    if len(data) >= _HEAD.size:
        magic, klen, vlen, crc = _HEAD.unpack_from(data)
        body = data[_HEAD.size :]
        if magic == _MAGIC and len(body) == klen + vlen:
            key, value = body[:klen], body[klen:]
            if zlib.crc32(value, zlib.crc32(key)) == crc:
                return [SpoolRecord(event_id, key, value)]
    return None


def _parse_segment(data: bytes, named_count: int) -> list[SpoolRecord] | None:
    """A segment's records, or None if it fails its check: magic, length, CRC, every record
    exactly in bounds, and as many events as its name says."""
    if len(data) < _SEG_HEAD.size:
        return None
    magic, count, length, crc = _SEG_HEAD.unpack_from(data)
    body = memoryview(data)[_SEG_HEAD.size :]
    if magic != _SEG_MAGIC or count != named_count or len(body) != length:
        return None
    if zlib.crc32(body) != crc:
        return None
    records: list[SpoolRecord] = []
    at = 0
    for _ in range(count):
        if at + _SEG_RECORD.size > length:
            return None
        ilen, klen, vlen = _SEG_RECORD.unpack_from(body, at)
        at += _SEG_RECORD.size
        end = at + ilen + klen + vlen
        if end > length:
            return None
        try:
            event_id = bytes(body[at : at + ilen]).decode("ascii")
        except UnicodeDecodeError:
            return None
        key = bytes(body[at + ilen : at + ilen + klen])
        records.append(SpoolRecord(event_id, key, bytes(body[at + ilen + klen : end])))
        at = end
    return records if at == length else None


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` may write less than asked (a full disk, a signal); loop until all is out."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError("short write to the spool")
        view = view[written:]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
