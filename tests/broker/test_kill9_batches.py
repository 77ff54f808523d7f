"""kill -9 of a process emitting batches with ``emit_runs`` loses no batch it was told is durable
and never leaves part of a batch, or part of an event, visible.

Fault: SIGKILL of a child that emits batches of 1 to 50 runs in a loop into a spool shared by
every round, after it has printed a random number of batches plus a random fraction of the
next ``emit_runs`` (validation, encoding, writing, fsync, rename, printing).
Invariant after every round: the spool opens; every file in ``pending/`` reads back intact
(nothing torn, nothing quarantined); every printed batch is on disk as exactly one file holding
exactly its events, in order; every other file is a whole batch too (one the child wrote but
was killed before printing). At the end a Sender delivers the spool to the real broker: every
printed event is on the topic.

Two modes: the child's sender off (the spool only grows), and on: each child is killed only
after its sender has delivered at least one batch (waited for, with a deadline), so kills land
while it sends, between an acknowledgement and a delete, or in a segment partly acknowledged:
such a segment is sent again whole by the next sender, and duplicates are allowed (the
consumer keeps one row per event_id).

``RUNSTREAM_KILL9_ROUNDS`` raises the number of rounds for a longer soak (default 30 here,
split over the two modes).
"""

from __future__ import annotations

import functools
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runstream import contract
from runstream.devtools.testkit import EmittingChild, wait_for
from runstream.producer.sender import Sender
from runstream.producer.spool import ReadOutcome, Spool
from tests.broker.test_flush import _event_ids_before_sentinel

ROUNDS = max(2, int(os.environ.get("RUNSTREAM_KILL9_ROUNDS", "30")) // 2)


def _check_spool(spool_dir: Path, printed: list[list[str]], delivered: bool) -> set[str]:
    """Every file intact and a whole batch; every printed batch present as one file (unless
    ``delivered``: with the sender on, a printed batch may have been sent and deleted, but
    never partly). Returns the event ids on disk."""
    spool = Spool(spool_dir)  # must always open
    files: dict[str, list[str]] = {}
    for entry in spool.pending_files():
        records = spool.read_file(entry)
        assert not isinstance(records, ReadOutcome), f"{entry.path.name}: {records}"
        assert len(records) == entry.count
        for record in records:
            assert contract.decode(record.value)["event_id"] == record.event_id
        files[records[0].event_id] = [r.event_id for r in records]
    assert spool.status().corrupt == 0
    for batch in printed:
        if batch[0] in files:
            assert files[batch[0]] == batch, "a printed batch is not one whole file"
        else:
            assert delivered, f"a printed batch of {len(batch)} is not in the spool"
    on_disk = {event_id for ids in files.values() for event_id in ids}
    for batch in printed:
        assert not on_disk.intersection(batch) or set(batch) <= on_disk, "half a batch on disk"
    return on_disk


def _delivered_one(child: EmittingChild, pending: Path) -> bool:
    """Whether a batch this child printed has left ``pending/`` (its sender delivered it). A
    file's name holds its first event's id."""
    child.poll()
    names = " ".join(os.listdir(pending))
    return any(batch[0] not in names for batch in child.batches())


@pytest.mark.parametrize("sending", [False, True], ids=["spool-only", "sender-on"])
def test_kill_9_while_emitting_batches_loses_no_returned_batch(
    kafka_bootstrap: str,
    new_topic: Callable[..., str],
    producer_factory: Callable[..., Any],
    tmp_path: Path,
    sending: bool,
) -> None:
    topic = new_topic("kill9-batches")
    spool_dir = tmp_path / "spool"
    rng = random.Random()
    seed = rng.randrange(2**32)
    rng.seed(seed)
    printed: list[list[str]] = []
    on_disk: set[str] = set()
    started = time.monotonic()
    for _ in range(ROUNDS):
        child = EmittingChild(
            spool_dir, batch_max=50, seed=rng.randrange(2**32), pace_s=0.005 if sending else 0.0,
            bootstrap=kafka_bootstrap if sending else None, topic=topic if sending else None,
        )  # fmt: skip
        try:
            child.read_until(rng.randint(1, 8), timeout_s=60)
            if sending:
                delivered = functools.partial(_delivered_one, child, spool_dir / "pending")
                wait_for(delivered, 60, "the child's sender to deliver a batch")
            time.sleep(rng.uniform(0, 0.03))  # a random point inside the next emit_runs
        finally:
            child.kill()
        printed += child.batches()
        on_disk = _check_spool(spool_dir, printed, delivered=sending)
    events = [event_id for batch in printed for event_id in batch]
    torn = len(list((spool_dir / "tmp").iterdir()))
    print(f"\nkill -9 ({'sender on' if sending else 'spool only'}): {ROUNDS} rounds in "
          f"{time.monotonic() - started:.1f} s (seed {seed}); {len(printed)} batches "
          f"({len(events)} events) returned by emit_runs, {len(on_disk)} events in the spool, "
          f"{torn} torn temp files never accepted")  # fmt: skip

    sender = Sender(Spool(spool_dir), topic=topic, bootstrap_servers=kafka_bootstrap)
    assert sender.flush(timeout_s=60).left == 0
    sender.stop()
    copies = Counter(_event_ids_before_sentinel(kafka_bootstrap, topic, producer_factory()))
    duplicates = sum(n - 1 for n in copies.values())
    print(f"delivered: {len(copies)} distinct events, {duplicates} duplicates (re-sent after a "
          f"kill); {len(set(events) & set(copies))} of {len(events)} returned ones")  # fmt: skip
    assert set(events) <= set(copies)
    assert Spool(spool_dir).status().pending == 0
    if not sending:  # one sender, no crash while sending: each event exactly once
        assert duplicates == 0
