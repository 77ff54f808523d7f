"""kill -9 of an emitting process at random moments loses no run that emit_run() returned.

Fault: SIGKILL of a child that emits in a loop (``send=False``) into a spool shared by every
round, after it has printed a random number of event ids plus a random fraction of one more
emit, so kills land anywhere inside ``emit_run`` (encoding, writing, fsync, rename, printing).
Invariant after every round: the spool opens, every printed id is in it, every pending file
reads back intact, nothing is corrupt. At the end a Sender delivers the whole spool to the real
broker and every printed id is on the topic.

``RUNSTREAM_KILL9_ROUNDS`` raises the number of rounds for a longer soak (default 30).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path

from runstream import contract
from runstream.devtools.testkit import EmittingChild, read_topic
from runstream.producer.sender import Sender
from runstream.producer.spool import Spool

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = int(os.environ.get("RUNSTREAM_KILL9_ROUNDS", "30"))


def _check_spool(spool_dir: Path, printed: set[str]) -> set[str]:
    spool = Spool(spool_dir)  # must always open
    on_disk = set()
    for entry in spool.pending():
        record = spool.read(entry)
        assert record is not None, f"{entry.path.name} is torn or corrupt"
        assert contract.decode(record[1])["event_id"] == entry.event_id
        on_disk.add(entry.event_id)
    assert spool.status().corrupt == 0
    missing = printed - on_disk
    assert not missing, f"{len(missing)} printed ids are not in the spool: {sorted(missing)[:3]}"
    return on_disk


def test_kill_9_at_random_moments_loses_no_returned_run(
    kafka_bootstrap: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    rng = random.Random()
    seed = rng.randrange(2**32)
    rng.seed(seed)
    printed: set[str] = set()
    on_disk: set[str] = set()
    started = time.monotonic()
    for _ in range(ROUNDS):
        child = EmittingChild(spool_dir, env={"PYTHONPATH": str(ROOT)})
        try:
            child.read_until(rng.randint(1, 40), timeout_s=60)
            time.sleep(rng.uniform(0, 0.004))  # a random point inside the next emit
        finally:
            child.kill()
        printed.update(child.lines())
        on_disk = _check_spool(spool_dir, printed)
    torn = len(list((spool_dir / "tmp").iterdir()))
    extra = len(on_disk - printed)
    print(f"\nkill -9: {ROUNDS} rounds in {time.monotonic() - started:.1f} s (seed {seed}); "
          f"{len(printed)} events acked by emit_run, {len(on_disk)} found in the spool "
          f"({extra} written but killed before printing), "
          f"{torn} torn temp files never accepted")  # fmt: skip

    topic = new_topic("kill9")
    sender = Sender(Spool(spool_dir), topic=topic, bootstrap_servers=kafka_bootstrap)
    assert sender.flush(timeout_s=60).left == 0
    sender.stop()
    arrived = {contract.decode(r.value)["event_id"]
               for r in read_topic(kafka_bootstrap, topic, expected=len(on_disk))}  # fmt: skip
    print(f"delivered to Kafka: {len(arrived)} distinct events; "
          f"{len(printed & arrived)} of {len(printed)} acked ones")  # fmt: skip
    assert printed <= arrived
    assert Spool(spool_dir).status().pending == 0
