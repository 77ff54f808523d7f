"""Folding batch by batch gives what folding every event at once gives.

The job never re-reads the log: each micro-batch folds its own events into the fold state kept
in the rows it touches (``projection``), and runs still waiting for their ``run_recorded`` keep
their state in ``model_run_pending``. This drives ``process_batch`` directly with Kafka-shaped
records (no broker: the batches, their splits and their re-runs are what is under test).

Load: 40 runs, each recorded 0-3 times, promoted 0-2 times and annotated 0-2 times at random
times (so promotions and annotations often come before the run's record, sometimes in earlier
batches), shuffled into 6 batches; a batch run twice with the same id (Spark re-running it
after a failure, as a resumed batch); a batch re-sending 15 events already folded; and at the
end a batch of 8 new runs with one event each (a backfill's shape), then every event once more
(the topics read again from a new checkpoint). All of it three times: with small batches (which
ask the tables' files which runs they hold, ``held``), with small batches whose runs Spark
looks up (as for a catalog table), and with every batch planned as a large one
(``job.LARGE_BATCH``: no broadcast, and the batch of new runs skips grouping by run).
Invariants after every batch: model_runs equals the plain-Python fold of the events sent so far
(``testkit.reference_fold``); ``model_run_pending`` holds exactly the runs with events but no
record; the log holds each event once. At the end ``rebuild`` gives the same tables, row for
row.
"""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from runstream import contract
from runstream.consumer import job
from runstream.consumer.job import process_batch
from runstream.consumer.rebuild import rebuild
from runstream.consumer.tables import TableNames, create_tables
from runstream.devtools.testkit import (
    T0,
    annotated,
    encoded,
    key_of,
    new_id,
    project_columns,
    promoted,
    recorded,
    reference_fold,
    rows_by_id,
)
from tests.spark.support import assert_same_rows

RAW_SCHEMA = (
    "key binary, value binary, topic string, partition int, offset long, timestamp timestamp"
)


def _events(rng: random.Random, runs: int) -> list[dict[str, Any]]:
    events = []
    for n in range(runs):
        experiment_id = new_id()

        def at() -> Any:
            return T0 + timedelta(minutes=rng.randrange(10_000))

        for k in range(rng.choice((0, 1, 1, 2, 3))):
            events.append(recorded(experiment_id, at(), mae_14day=float(n + k), model_name=f"m{n}"))
        for _ in range(rng.randrange(3)):
            events.append(promoted(experiment_id, at(), is_production=rng.random() < 0.6))
        for k in range(rng.randrange(3)):
            events.append(annotated(experiment_id, at(), f"note {n}.{k}"))
    return events


class Feeder:
    """Kafka-shaped records for ``process_batch``, each with its own offset."""

    def __init__(self, spark: Any, tables: TableNames) -> None:
        self.spark, self.tables = spark, tables
        self.offset = 0

    def batch(self, events: list[dict[str, Any]], batch_id: int, *, resumed: bool = False) -> Any:
        rows = []
        for event in events:
            rows.append((key_of(event), encoded(event), "live", 0, self.offset, T0))
            self.offset += 1
        raw = self.spark.createDataFrame(rows, RAW_SCHEMA)
        return process_batch(self.spark, self.tables, raw, batch_id, resumed=resumed)


def _check(spark: Any, tables: TableNames, sent: list[dict[str, Any]]) -> None:
    expected = reference_fold(sent)
    rows = rows_by_id(spark, tables.runs)
    assert {k: project_columns(v) for k, v in rows.items()} == expected
    waiting = {e["experiment_id"] for e in sent} - set(expected)
    pending = {r["experiment_id"] for r in spark.table(tables.pending).collect()}
    assert pending == waiting, "pending must hold exactly the runs with no record yet"
    log = spark.table(tables.events)
    assert log.count() == len({e["event_id"] for e in sent}), "the log holds each event once"
    assert log.select("event_id").distinct().count() == log.count()


@pytest.mark.parametrize("plan", ["small-batches", "spark-lookup", "as-backfills"])
def test_batch_by_batch_equals_all_at_once(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plan: str
) -> None:
    if plan == "spark-lookup":  # as for a catalog or remote table: Spark finds the runs
        monkeypatch.setattr(job, "held", lambda *args: None)
    if plan == "as-backfills":  # every batch planned as a large one (job.LARGE_BATCH)
        monkeypatch.setattr(job, "LARGE_BATCH", 0)
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    print(f"\nseed {seed}")
    tables = TableNames.at_path(tmp_path / "lake")
    create_tables(spark, tables)
    events = _events(rng, 40)
    rng.shuffle(events)
    cuts = sorted(rng.sample(range(1, len(events)), 5))
    batches = [events[a:b] for a, b in zip([0, *cuts], [*cuts, len(events)], strict=True)]
    feeder = Feeder(spark, tables)
    sent: list[dict[str, Any]] = []
    for n, batch in enumerate(batches):
        if n == 3:  # re-sent events, already folded, beside new ones
            batch = batch + rng.sample(sent, min(15, len(sent)))
        report = feeder.batch(batch, n)
        assert report.valid == len(batch)
        sent += batch
        _check(spark, tables, sent)
        if n == 2:  # Spark runs the same batch again after a failure: nothing changes
            versions = _versions(spark, tables)
            feeder.batch(batch, n, resumed=True)
            assert _versions(spark, tables)[1] == versions[1], "the log append ran twice"
            _check(spark, tables, sent)

    recorded_runs = {e["experiment_id"] for e in events if e["event_type"] == contract.RUN_RECORDED}
    assert len(recorded_runs) < len({e["experiment_id"] for e in events}), "no pending run made"

    # New runs, one event each (a backfill's shape): as a large batch, no grouping by run.
    backfill = [recorded(new_id(), T0 + timedelta(days=1 + n), mae_14day=0.5) for n in range(8)]
    assert feeder.batch(backfill, len(batches)).runs_written == len(backfill)
    sent += backfill
    events += backfill
    _check(spark, tables, sent)

    feeder.batch(events, 0, resumed=True)  # the topics read again from a new checkpoint
    _check(spark, tables, sent)

    streamed_runs = spark.table(tables.runs).localCheckpoint()
    streamed_pending = spark.table(tables.pending).localCheckpoint()
    rebuild(spark, tables)
    assert_same_rows(spark, spark.table(tables.runs), streamed_runs)
    assert_same_rows(spark, spark.table(tables.pending), streamed_pending)


def _versions(spark: Any, tables: TableNames) -> list[int]:
    from runstream.consumer.rebuild import table_version

    return [table_version(spark, t) for t in (tables.runs, tables.events, tables.pending)]
