"""Eight processes emitting at once into one shared spool, each with its sender on.

Fault: contention, not a crash: eight emitting processes started together share one
``pending/`` folder and one sender lock, so their senders take turns and each one's exit flush
waits on events another process may send. Load: 8 processes x 15 runs. Invariant: every
process exits 0 having printed its 15 event ids; the spool ends empty; the topic holds each
returned event exactly once and nothing else. (The reliability suite, ``bench/reliability.py``
scenario g, runs the same at 250 runs per process and adds separate spools and the table.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

from runstream import contract
from runstream.devtools.testkit import EmittingChild, read_topic
from runstream.producer.spool import Spool

PROCESSES = 8
EACH = 15


def test_eight_processes_sharing_a_spool_deliver_every_run_once(
    kafka_bootstrap: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = new_topic("shared-spool")
    spool_dir = tmp_path / "spool"
    children = [
        EmittingChild(spool_dir, count=EACH, bootstrap=kafka_bootstrap, topic=topic,
                      env={"RUNSTREAM_FLUSH_TIMEOUT": "60"})
        for _ in range(PROCESSES)
    ]  # fmt: skip
    try:
        for child in children:
            child.wait(timeout_s=120)
    finally:
        for child in children:
            if child.proc.poll() is None:
                child.kill()
    returned = [line for child in children for line in child.lines()]
    assert len(returned) == len(set(returned)) == PROCESSES * EACH
    assert Spool(spool_dir).status().pending == 0, "a process exited with its runs unsent"

    records = read_topic(kafka_bootstrap, topic, expected=len(returned), timeout_s=60)
    copies = Counter(contract.decode(r.value)["event_id"] for r in records)
    print(f"\n{PROCESSES} processes, one spool: {len(returned)} runs returned, "
          f"{len(records)} records on the topic")  # fmt: skip
    assert set(copies) == set(returned)
    assert max(copies.values()) == 1, [k for k, n in copies.items() if n > 1][:3]
