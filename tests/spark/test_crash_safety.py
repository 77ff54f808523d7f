"""Crash safety: SIGKILL the consumer's driver in the middle of a batch, restart, compare.

Fault: ``runstream consume --once`` runs as its own process (Python driver plus its JVM) with
small micro-batches; once its first batch is committed and the next batch has written its rows
to model_runs (the event log is written beside them) but not yet committed its checkpoint, the
whole process group gets SIGKILL. Load: 40
runs, 78 distinct events, each sent twice across both topics (156 records, 20 per batch).
Invariants after a restart on the same checkpoint: nothing lost (every run and event present),
nothing doubled (each event_id once in the log, one row per experiment_id), every row equal to
the fold of its events, nothing quarantined. A further restart with no new data changes no
table: no new Delta version, identical contents.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from runstream.consumer.rebuild import table_version
from runstream.devtools.testkit import consume_command, consume_env, produce, wait_for
from tests.spark.support import (
    HOUR,
    MINUTE,
    T0,
    annotated,
    assert_same_rows,
    encoded,
    job_config,
    key_of,
    new_id,
    project_columns,
    promoted,
    recorded,
    reference_fold,
    rows_by_id,
    run_once,
)

BATCH = 20


def _events() -> list[dict[str, Any]]:
    events = []
    for i in range(40):
        eid, at = new_id("crash"), T0 + i * MINUTE
        events.append(recorded(eid, at, mae_14day=1.0 + i))
        if i % 2 == 0:
            events.append(recorded(eid, at + HOUR, mae_14day=0.5 + i, notes="second"))
        if i % 4 == 0:
            events.append(promoted(eid, at + 2 * HOUR))
        if i % 5 == 0:
            events.append(annotated(eid, at + 3 * HOUR, f"note {i}"))
    return events


def _log_versions(table_dir: Path) -> int:
    return len(list((table_dir / "_delta_log").glob("*.json")))


def test_sigkill_mid_batch_then_restart_loses_and_doubles_nothing(
    spark: Any, kafka_bootstrap: str, new_topic: Any, tmp_path: Path
) -> None:
    live, replay = new_topic("crash-live"), new_topic("crash-replay")
    config = job_config(kafka_bootstrap, live, replay, tmp_path)
    events = _events()
    assert len(events) == 78
    rng = random.Random(7)
    records = [(rng.choice((live, replay)), key_of(e), encoded(e)) for e in events for _ in (1, 2)]
    rng.shuffle(records)
    produce(kafka_bootstrap, records)

    checkpoint = Path(config.checkpoint)
    runs_dir = tmp_path / "lake" / "model_runs"
    command = consume_command(
        kafka_bootstrap, tmp_path, "--once", "--max-offsets-per-trigger", str(BATCH)
    )
    env = consume_env(live, replay, tmp_path / "home")
    log_file = tmp_path / "consume.log"
    with log_file.open("wb") as out:
        proc = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:

        def first_batch_committed() -> bool:
            assert proc.poll() is None, f"consume exited early:\n{log_file.read_text()[-3000:]}"
            return (checkpoint / "commits" / "0").exists()

        wait_for(first_batch_committed, 180, "the first micro-batch to commit")
        after_first = _log_versions(runs_dir)
        # Batch 1 has written its rows, perhaps not yet its events to the log, and not
        # committed its checkpoint: kill now. The restart must log what the rows hold.
        wait_for(lambda: _log_versions(runs_dir) > after_first, 120,
                 "the second batch to write its rows")  # fmt: skip
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    committed = sorted(int(p.name) for p in (checkpoint / "commits").iterdir() if p.name.isdigit())
    planned = sorted(int(p.name) for p in (checkpoint / "offsets").iterdir() if p.name.isdigit())
    assert committed == [0] and planned[-1] >= 1, (committed, planned)
    landed = spark.table(config.tables.events).count()
    print(f"\nkilled: batches {committed} committed, {planned} planned; {landed} events logged")

    # Restart on the same checkpoint (here in-process, with no batch-size cap).
    run_once(spark, config.with_(max_offsets_per_trigger=None))
    tables = config.tables
    log = spark.table(tables.events)
    assert log.count() == len(events) == log.select("event_id").distinct().count()
    rows = rows_by_id(spark, tables.runs)
    assert {k: project_columns(v) for k, v in rows.items()} == reference_fold(events)
    assert spark.table(tables.rejects).count() == 0

    # A restart with nothing new changes nothing.
    names = (tables.runs, tables.events, tables.rejects)
    versions = {n: table_version(spark, n) for n in names}
    snapshots = {n: spark.table(n).localCheckpoint() for n in (tables.runs, tables.events)}
    started = time.monotonic()
    run_once(spark, config)
    assert {n: table_version(spark, n) for n in names} == versions
    for name, snapshot in snapshots.items():
        assert_same_rows(spark, name, snapshot)
    print(f"idle restart took {time.monotonic() - started:.1f}s and changed nothing")
