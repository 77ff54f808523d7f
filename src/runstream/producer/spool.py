"""A crash-safe, multi-process, bounded on-disk queue of encoded events.

One event is one file. ``put`` writes it under ``tmp/``, fsyncs it, renames it into
``pending/`` and fsyncs the folder, so once ``put`` returns the event survives ``kill -9`` and
power loss, and a reader never sees half a file: rename is atomic. Unique names (a nanosecond
clock plus the event id) let any number of processes write at once without a lock. Files sort
oldest first, which is the order the sender sends them in.

A file is ``RSP1`` + key length + value length + CRC-32 of key and value, then key and value.
A file that fails its check (disk damage) is moved to ``corrupt/``, logged, never deleted.

The bound (``max_events``) is a guard against a spool that grows without end during a long
outage, not an exact quota: each process recounts at least every 256 puts and on every put near
the limit, so processes racing at the limit may overshoot it by a few events. A refused event
raises ``SpoolFullError``; nothing already accepted is ever dropped to make room.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
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
_STALE_TMP_S = 3600.0
_RECOUNT_EVERY = 256


@dataclass(frozen=True)
class SpoolEntry:
    """A pending event's file; its name carries its creation order and event id."""

    path: Path

    @property
    def event_id(self) -> str:
        return self.path.stem.split("-", 1)[1]

    @property
    def created_ns(self) -> int:
        return int(self.path.stem.split("-", 1)[0])


@dataclass(frozen=True)
class SpoolStatus:
    pending: int
    bytes: int
    oldest_age_s: float | None
    corrupt: int
    path: Path


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
            for d in (self._pending, self._tmp, self._corrupt):
                d.mkdir(parents=True, exist_ok=True)
            if created:  # make the new folders' own names durable, not just their contents
                _fsync_dir(self.root)
                _fsync_dir(self.root.parent)
        except OSError as exc:
            raise SpoolError(
                f"cannot create the spool at {self.root}: {exc.strerror}; "
                "set RUNSTREAM_SPOOL_DIR (or spool_dir=) to a writable, durable folder"
            ) from exc
        self._count: int | None = None
        self._puts_since_count = 0

    # -- writing -------------------------------------------------------------------------
    def put(self, key: bytes, value: bytes, event_id: str) -> SpoolEntry:
        """Store one event durably; when this returns it survives a crash."""
        self._check_room()
        name = f"{time.time_ns():020d}-{event_id}{_SUFFIX}"
        tmp = self._tmp / f"{name}.{os.getpid()}.tmp"
        final = self._pending / name
        head = _HEAD.pack(_MAGIC, len(key), len(value), zlib.crc32(value, zlib.crc32(key)))
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
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

    # -- reading -------------------------------------------------------------------------
    def _scan(self) -> Iterator[os.DirEntry[str]]:
        with os.scandir(self._pending) as it:
            for e in it:
                if e.name.endswith(_SUFFIX):
                    yield e

    def pending(self, limit: int | None = None) -> list[SpoolEntry]:
        """Pending events, oldest first."""
        names = sorted(e.name for e in self._scan())
        if limit is not None:
            names = names[:limit]
        return [SpoolEntry(self._pending / n) for n in names]

    def read(self, entry: SpoolEntry) -> tuple[bytes, bytes] | None:
        """Key and value of ``entry``; None if it is gone (sent by another process)."""
        try:
            data = entry.path.read_bytes()
        except FileNotFoundError:
            return None
        if len(data) >= _HEAD.size:
            magic, klen, vlen, crc = _HEAD.unpack_from(data)
            body = data[_HEAD.size :]
            if magic == _MAGIC and len(body) == klen + vlen:
                key, value = body[:klen], body[klen:]
                if zlib.crc32(value, zlib.crc32(key)) == crc:
                    return key, value
        log.error("spool file %s fails its check; moved to %s", entry.path, self._corrupt)
        with contextlib.suppress(FileNotFoundError):
            os.rename(entry.path, self._corrupt / entry.path.name)
        return None

    def remove(self, entry: SpoolEntry) -> None:
        """Forget an event the broker acknowledged."""
        try:
            entry.path.unlink()
        except FileNotFoundError:
            return  # another process's sender already removed it
        if self._count is not None and self._count > 0:
            self._count -= 1

    def contains(self, entry: SpoolEntry) -> bool:
        return entry.path.exists()

    def status(self) -> SpoolStatus:
        count = size = 0
        oldest: int | None = None
        for e in self._scan():
            count += 1
            with contextlib.suppress(FileNotFoundError):
                size += e.stat().st_size
            created = int(e.name.split("-", 1)[0])
            oldest = created if oldest is None else min(oldest, created)
        corrupt = sum(1 for _ in self._corrupt.iterdir())
        age = None if oldest is None else max(0.0, (time.time_ns() - oldest) / 1e9)
        return SpoolStatus(count, size, age, corrupt, self.root)

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
        fd = os.open(self.root / ".sender.lock", os.O_RDWR | os.O_CREAT, 0o644)
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
