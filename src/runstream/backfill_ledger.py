"""The backfill's ledger: which events of a file a broker has acknowledged, so running the
backfill again skips them.

A backfill's event ids are derived from the content (``runstream.backfill``), so sending an
event twice is harmless: the consumer keeps one copy. The ledger only saves the work and makes
the summary honest ("already sent"). One SQLite database per file, topic and bootstrap address,
in ``$RUNSTREAM_HOME/backfill/``, holding the ids (16 bytes each) of acknowledged events.

An id is written only after the broker acknowledged its event, in transactions, so a crash or
``kill -9`` mid-file loses at most the last uncommitted acknowledgements (those events are sent
again next time, harmlessly) and never leaves a torn ledger: SQLite's commit is atomic. A
ledger that cannot be opened or written (a read-only home, a damaged file) is set aside with
one warning, and the backfill goes on without it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sqlite3
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from runstream import environment_variables as env

log = logging.getLogger(__name__)

COMMIT_EVERY = 500
COMMIT_SECONDS = 2.0


def ledger_folder() -> Path:
    return env.home() / "backfill"


def ledger_path(key: str, topic: str, bootstrap_servers: str) -> Path:
    """The ledger of the file ``key`` (its resolved path) sent to ``topic`` at an address."""
    digest = hashlib.sha256(f"{key}\n{topic}\n{bootstrap_servers}".encode()).hexdigest()
    return ledger_folder() / f"{digest[:32]}.sqlite3"


class Ledger:
    """Acknowledged event ids of one file, topic and cluster address."""

    def __init__(self, path: Path, connection: sqlite3.Connection | None) -> None:
        self.path = path
        self._db = connection
        self._uncommitted = 0
        self._last_commit = time.monotonic()

    @classmethod
    def open(
        cls, key: str, topic: str, bootstrap_servers: str, *, read_only: bool = False
    ) -> Ledger:
        """The ledger for ``key``; ``read_only`` (a dry run) never creates or changes one."""
        path = ledger_path(key, topic, bootstrap_servers)
        if read_only and not path.exists():
            return cls(path, None)
        try:
            if read_only:
                db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                db = sqlite3.connect(path, timeout=5.0)
                db.execute(
                    "CREATE TABLE IF NOT EXISTS acked (event_id BLOB PRIMARY KEY) WITHOUT ROWID"
                )
                db.execute("CREATE TABLE IF NOT EXISTS about (key TEXT PRIMARY KEY, value TEXT)")
                db.executemany(
                    "INSERT OR IGNORE INTO about VALUES (?, ?)",
                    [("file", key), ("topic", topic), ("bootstrap_servers", bootstrap_servers),
                     ("created", datetime.now(timezone.utc).isoformat())],
                )  # fmt: skip
                db.commit()
            db.execute("SELECT count(*) FROM acked").fetchone()
        except (sqlite3.Error, OSError) as exc:
            cls._warn(path, exc)
            return cls(path, None)
        return cls(path, db)

    @staticmethod
    def _warn(path: Path, exc: BaseException) -> None:
        log.warning(
            "the backfill ledger %s cannot be used (%s); going on without it: runs sent before "
            "are sent again, which is harmless (their ids are derived from the content)",
            path,
            exc,
        )

    @property
    def usable(self) -> bool:
        return self._db is not None

    def __contains__(self, event_id: str) -> bool:
        if self._db is None:
            return False
        try:
            found = self._db.execute(
                "SELECT 1 FROM acked WHERE event_id = ?", (uuid.UUID(event_id).bytes,)
            ).fetchone()
        except sqlite3.Error as exc:
            self._fail(exc)
            return False
        return found is not None

    def add(self, event_id: str) -> None:
        """Record an acknowledged event (committed in batches, and by ``close``)."""
        if self._db is None:
            return
        try:
            self._db.execute("INSERT OR IGNORE INTO acked VALUES (?)", (uuid.UUID(event_id).bytes,))
            self._uncommitted += 1
            if (
                self._uncommitted >= COMMIT_EVERY
                or time.monotonic() - self._last_commit > COMMIT_SECONDS
            ):
                self.commit()
        except sqlite3.Error as exc:
            self._fail(exc)

    def commit(self) -> None:
        if self._db is None:
            return
        try:
            self._db.commit()
        except sqlite3.Error as exc:
            self._fail(exc)
            return
        self._uncommitted = 0
        self._last_commit = time.monotonic()

    def close(self) -> None:
        if self._db is None:
            return
        self.commit()
        if self._db is not None:
            self._db.close()
            self._db = None

    def _fail(self, exc: BaseException) -> None:
        self._warn(self.path, exc)
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
        self._db = None
