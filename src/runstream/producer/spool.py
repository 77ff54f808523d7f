"""A crash-safe, multi-process, bounded, owner-only on-disk queue of encoded events.

One event is one file. ``put`` writes it under ``tmp/``, fsyncs it, renames it into
``pending/`` and fsyncs the folder, so once ``put`` returns the event survives ``kill -9`` and
power loss, and a reader never sees half a file: rename is atomic. Unique names (a nanosecond
clock plus the event id) let any number of processes write at once without a lock. Files sort
oldest first, which is the order the sender sends them in.

Only names of that exact form (20 digits, ``-``, the event id, ``.evt``) are events. Anything
else in ``pending/`` (a note, an editor's backup) is a *stray*: counted by ``status``, never
read, sent or deleted, so a stray file can neither crash a reader nor be sent.

A file is ``RSP1`` + key length + value length + CRC-32 of key and value, then key and value.
A file that fails its check (disk damage) is moved to ``corrupt/``, logged, never deleted.

Runs are private: files are created 0600 and folders 0700, and opening a spool as its owner
tightens folders an older version (or a permissive umask) left readable by others.

The bound (``max_events``) is a guard against a spool that grows without end during a long
outage, not an exact quota: each process recounts at least every 256 puts and on every put near
the limit, so processes racing at the limit may overshoot it by a few events. A refused event
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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from runstream.errors import SpoolError, SpoolFullError

log = logging.getLogger(__name__)

_MAGIC = b"RSP1"
_HEAD = struct.Struct(">4sIII")
_SUFFIX = ".evt"
# An entry's name: creation time in ns (20 digits, so names sort by age), '-', the event id.
_ENTRY_NAME = re.compile(r"(\d{20})-([0-9A-Za-z][0-9A-Za-z_-]*)\.evt")
_PROBE_PREFIX = ".write-probe-"
_LOCK_NAME = ".sender.lock"
_SUBFOLDERS = ("pending", "tmp", "corrupt")
_STALE_TMP_S = 3600.0
_RECOUNT_EVERY = 256
_FILE_MODE = 0o600
_DIR_MODE = 0o700


class ReadOutcome(enum.Enum):
    """Why ``Spool.read_entry`` gave back no record."""

    GONE = "gone"  # removed meanwhile (another process's sender sent it)
    QUARANTINED = "quarantined"  # failed its check; moved to corrupt/
    UNREADABLE = "unreadable"  # the file is there but cannot be read (logged); left in place


@dataclass(frozen=True)
class SpoolEntry:
    """A pending event's file; its name carries its creation order and event id."""

    path: Path

    @property
    def event_id(self) -> str:
        return self.path.stem.split("-", 1)[1]


@dataclass(frozen=True)
class SpoolStatus:
    """A snapshot of the spool; ``stray`` counts files in pending/ that are not events."""

    pending: int
    bytes: int
    oldest_age_s: float | None
    corrupt: int
    path: Path
    stray: int = 0


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
        self._check_room()
        tmp = self._tmp / f"{name}.{os.getpid()}.tmp"
        final = self._pending / name
        head = _HEAD.pack(_MAGIC, len(key), len(value), zlib.crc32(value, zlib.crc32(key)))
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
            try:
                _write_all(fd, head + key + value)
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
            self._count += 1
        self._puts_since_count += 1
        return SpoolEntry(final)

    def _check_room(self) -> None:
        if (
            self._count is None
            or self._puts_since_count >= _RECOUNT_EVERY
            or (self._count >= self.max_events * 0.9)
        ):
            self._count = sum(1 for _ in self._scan())
            self._puts_since_count = 0
        if self._count >= self.max_events:
            raise SpoolFullError(
                f"the spool at {self.root} holds {self._count} events, its limit "
                f"(max_events={self.max_events}); nothing was dropped. Start the broker or run "
                "`runstream spool flush`, or raise RUNSTREAM_SPOOL_MAX_EVENTS"
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
    def _scan(self) -> Iterator[os.DirEntry[str]]:
        """Every well-formed entry in pending/ (strays are skipped)."""
        for e, entry in self._scan_all():
            if entry:
                yield e

    def _scan_all(self) -> Iterator[tuple[os.DirEntry[str], bool]]:
        try:
            with os.scandir(self._pending) as it:
                for e in it:
                    yield e, _is_entry(e)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise SpoolError(
                f"cannot read the spool folder {self._pending}: {exc.strerror}; "
                f"run `chmod u+rwx {self._pending}` as its owner, or set RUNSTREAM_SPOOL_DIR"
            ) from exc

    def pending(self, limit: int | None = None) -> list[SpoolEntry]:
        """Pending events, oldest first."""
        names = sorted(e.name for e in self._scan())
        if limit is not None:
            names = names[:limit]
        return [SpoolEntry(self._pending / n) for n in names]

    def read(self, entry: SpoolEntry) -> tuple[bytes, bytes] | None:
        """Key and value of ``entry``; None if it is gone, quarantined or unreadable."""
        record = self.read_entry(entry)
        return None if isinstance(record, ReadOutcome) else record

    def read_entry(self, entry: SpoolEntry) -> tuple[bytes, bytes] | ReadOutcome:
        """Key and value of ``entry``, or why there are none (so a caller can count truly)."""
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
        if len(data) >= _HEAD.size:
            magic, klen, vlen, crc = _HEAD.unpack_from(data)
            body = data[_HEAD.size :]
            if magic == _MAGIC and len(body) == klen + vlen:
                key, value = body[:klen], body[klen:]
                if zlib.crc32(value, zlib.crc32(key)) == crc:
                    return key, value
        try:
            os.rename(entry.path, self._corrupt / entry.path.name)
        except FileNotFoundError:
            return ReadOutcome.GONE
        except OSError as exc:
            raise SpoolError(
                f"spool file {entry.path} fails its check and cannot be moved to "
                f"{self._corrupt} ({exc.strerror}); sending stopped at it. Fix: run "
                f"`chmod u+w {self._pending} {self._corrupt}` as their owner, or set "
                "RUNSTREAM_SPOOL_DIR to a writable folder"
            ) from exc
        log.error("spool file %s fails its check; moved to %s", entry.path, self._corrupt)
        return ReadOutcome.QUARANTINED

    def remove(self, entry: SpoolEntry) -> None:
        """Forget an event the broker acknowledged.

        Raises the OSError when the file exists but cannot be deleted: the caller must not
        send it again as if it were new.
        """
        try:
            os.unlink(entry.path)
        except FileNotFoundError:
            return  # another process's sender already removed it
        if self._count is not None and self._count > 0:
            self._count -= 1

    def contains(self, entry: SpoolEntry) -> bool:
        return entry.path.exists()

    def status(self) -> SpoolStatus:
        count = size = stray = 0
        oldest: int | None = None
        for e, is_entry in self._scan_all():
            if not is_entry:
                stray += not e.name.startswith(_PROBE_PREFIX)
                continue
            count += 1
            with contextlib.suppress(FileNotFoundError):
                size += e.stat().st_size
            created = int(e.name[:20])
            oldest = created if oldest is None else min(oldest, created)
        corrupt = sum(1 for _ in self._corrupt.iterdir())
        age = None if oldest is None else max(0.0, (time.time_ns() - oldest) / 1e9)
        return SpoolStatus(count, size, age, corrupt, self.root, stray)

    def clean_tmp(self) -> int:
        """Delete temp files that outlived any writer (a writer killed before its rename;
        its emit_run() never returned, so the event was never accepted)."""
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


def _is_entry(e: os.DirEntry[str]) -> bool:
    """Whether a pending/ entry is an event: a regular file with a well-formed name."""
    if not _ENTRY_NAME.fullmatch(e.name):
        return False
    try:
        return e.is_file(follow_symlinks=False)
    except OSError:
        return False


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
