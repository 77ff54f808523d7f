"""The broker restarts under a running streaming job; the table still equals what was sent.

Fault: the test's own broker is stopped and started again while the continuous job (trigger
0.5 s) runs; a job that dies of it is restarted from its checkpoint, as a scheduler would.
Load: 10 runs before the restart, 10 while the broker is down (sent once it is back), 10
after. Invariant: one row per run, each the run's only event, the log holds each event once,
nothing quarantined. (``bench/reliability.py`` scenario b runs the same at scale.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runstream.consumer.topics import create_topics
from runstream.devtools.kafka_broker import LocalBroker, free_port
from runstream.devtools.testkit import (
    T0,
    RestartingJob,
    encoded,
    job_config,
    key_of,
    new_id,
    produce,
    recorded,
    rows_by_id,
)

CHUNK = 10


@pytest.fixture()
def restartable_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    broker = LocalBroker(tmp_path / "kafka", port=free_port(), controller_port=free_port())
    broker.up()
    yield broker
    broker.down()


def test_a_broker_restart_under_the_running_job_loses_and_doubles_nothing(
    spark: Any, restartable_broker: LocalBroker, tmp_path: Path
) -> None:
    bootstrap = restartable_broker.bootstrap
    config = job_config(bootstrap, "restart-live", "restart-replay", tmp_path)
    create_topics(bootstrap, config.topics)
    live, replay = config.topics
    chunks = [[recorded(new_id("restart"), T0, mae_14day=1.0 + i) for i in range(CHUNK)]
              for _ in range(3)]  # fmt: skip

    def send(events: list[dict[str, Any]]) -> None:
        produce(bootstrap, [(live if i % 2 else replay, key_of(e), encoded(e))
                            for i, e in enumerate(events)])  # fmt: skip

    job = RestartingJob(spark, config, trigger_seconds=0.5)
    try:
        send(chunks[0])
        job.wait_rows(CHUNK, timeout_s=180)
        restartable_broker.down()
        job.alive()
        restartable_broker.up()
        send(chunks[1])
        send(chunks[2])
        job.wait_rows(3 * CHUNK, timeout_s=240)
    finally:
        job.stop()
    print(f"\nbroker restarted under the job: {job.restarts} job restart(s) {job.errors[:1]}")

    events = [e for chunk in chunks for e in chunk]
    rows = rows_by_id(spark, config.tables.runs)
    assert set(rows) == {e["experiment_id"] for e in events}
    assert {r["_rs_last_event_id"] for r in rows.values()} == {e["event_id"] for e in events}
    assert all(r["_rs_event_count"] == 1 for r in rows.values())
    log = spark.table(config.tables.events)
    assert log.count() == log.select("event_id").distinct().count() == len(events)
    assert spark.table(config.tables.rejects).count() == 0
