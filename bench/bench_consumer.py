"""Consumer benchmark: freshness, backfill throughput, how upsert cost grows with the table, and
how a micro-batch's cost grows with the history.

Run: ``RUNSTREAM_CACHE_DIR=.cache .venv/bin/python bench/bench_consumer.py`` (minutes).
It starts its own Kafka broker (``LocalBroker`` on free ports) and one local SparkSession, works
in a temporary folder, and prints four figures:

(a) freshness: from ``emit_run()`` returning to the run's row being readable in model_runs,
    median and p95 over ``--runs`` runs emitted at a steady pace while the job runs
    continuously with a ``--trigger`` second trigger. "Readable" is the commit time of the
    first Delta version of model_runs that holds the row (read from the table's history after
    the run, so no polling competes with the job for the cores);
(b) backfill throughput: ``--events`` run_recorded events (distinct runs, a year of run dates,
    two commodities) through the replay topic into the table with one availableNow run
    (decode, quarantine check, lookup, log append, fold, upsert into model_runs), next to
    a plain Delta append of the same decoded rows from the same topic into an empty event-log
    table: the ratio is what lookup, fold and upsert cost. ``--rounds`` rounds (5) on fresh
    tables, in alternating order (plain first, then job first): whichever runs first in the
    JVM compiles the decoding both use, so the first round charges that to the plain append
    and the job's own first large batch to the job; the headline is the later rounds' total
    job time over their total plain time (the job was still warming up in round 2, and one
    round's ratio moved by 0.3x between runs);
(c) upsert cost growth (what MERGE did before): time to write ``--batch`` new runs into a
    model_runs table (``job.upsert_runs``: their buckets rewritten) of
    ``--small`` rows and of ``--big`` rows (built directly with Spark with the job's DDL, over
    two commodities and ``--days`` days), median of ``--repeats``, and ratio;
    also (c') the same for ``--batch`` updates of existing runs spread over the table, which
    rewrite the buckets holding them;
(d) one micro-batch (``process_batch``, all of it: decode, lookup, log append, fold, upsert)
    of ``--per-run`` new events for each of ``--batch-runs`` runs spread over the history,
    against a log of ``--history-small`` events and of ``--history-big`` events (two per run;
    written without Kafka and folded with ``rebuild``), median of ``--repeats``, and the ratio.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from runstream import contract
from runstream.consumer import decode
from runstream.consumer.job import (
    JobConfig,
    ensure_topics,
    process_batch,
    start,
    upsert_runs,
)
from runstream.consumer.projection import KEY_TYPE
from runstream.consumer.rebuild import rebuild
from runstream.consumer.session import spark_session
from runstream.consumer.tables import TableNames, create_tables
from runstream.consumer.topics import fresh_topic
from runstream.contract import build_event, prepare_run
from runstream.contract.fields import run_fields
from runstream.demo import seed_experiment
from runstream.devtools.kafka_broker import LocalBroker, free_port
from runstream.devtools.testkit import kafka_producer, percentile
from runstream.producer.emitter import Emitter

log = logging.getLogger("bench_consumer")

SEED_RUN: dict[str, Any] = {**seed_experiment(), "run_by": "bench"}
del SEED_RUN["experiment_id"], SEED_RUN["run_timestamp"]


def config_for(bootstrap: str, live: str, replay: str, root: Path) -> JobConfig:
    return JobConfig.from_env(
        bootstrap_servers=bootstrap,
        topic=live,
        replay_topic=replay,
        lake=root / "lake",
        table="",
        checkpoint=str(root / "checkpoint"),
    )


# -- (a) freshness ----------------------------------------------------------------------------
def first_visible(spark: Any, table: str, ids: set[str]) -> dict[str, float]:
    """For each id, the commit time (epoch s) of the first table version that holds its row.

    A Delta commit is the moment a row becomes readable, so this is exact, and it is read after
    the fact: no polling competes with the stream for the machine's cores while it runs.
    """
    history = spark.sql(f"DESCRIBE HISTORY {table}").select("version", "timestamp").collect()
    found: dict[str, float] = {}
    for row in sorted(history, key=lambda r: r["version"]):
        pending = ids - set(found)
        if not pending:
            break
        quoted = ", ".join(f"'{i}'" for i in sorted(pending))
        sql = (
            f"SELECT experiment_id FROM {table} VERSION AS OF {row['version']} "
            f"WHERE experiment_id IN ({quoted})"
        )
        committed = row["timestamp"].replace(tzinfo=timezone.utc).timestamp()
        for hit in spark.sql(sql).collect():
            found[hit["experiment_id"]] = committed
    return found


def bench_freshness(
    spark: Any, bootstrap: str, work: Path, *, runs: int, trigger: float, pace: float
) -> dict[str, float]:
    live = fresh_topic(bootstrap, "fresh-live", 1)
    replay = fresh_topic(bootstrap, "fresh-replay", 1)
    config = config_for(bootstrap, live, replay, work / "fresh")
    emitter = Emitter(bootstrap_servers=bootstrap, topic=live, spool_dir=work / "fresh-spool")
    query = start(spark, config, once=False, trigger_seconds=trigger)
    runs_table = config.tables.runs
    emitted: dict[str, float] = {}

    def count_visible(ids: list[str]) -> int:
        quoted = ", ".join(f"'{i}'" for i in ids)
        sql = f"SELECT count(*) AS n FROM {runs_table} WHERE experiment_id IN ({quoted})"
        return int(spark.sql(sql).first()["n"])

    def wait_all(ids: list[str], deadline_s: float) -> None:
        deadline = time.monotonic() + deadline_s
        while count_visible(ids) < len(ids):
            if time.monotonic() > deadline or not query.isActive:
                raise RuntimeError(f"runs not visible within {deadline_s}s: {query.exception()}")
            time.sleep(1.0)  # a slow check for completion; the figures come from the log

    try:
        warm = emitter.emit_run({**SEED_RUN, "run_by": "warm-up"})
        wait_all([warm.experiment_id], 300)  # the first batch pays JIT and first-use costs
        for i in range(runs):
            receipt = emitter.emit_run({**SEED_RUN, "mae_14day": 3.0 + i / 100})
            emitted[receipt.experiment_id] = time.time()  # wall clock, like Delta commits
            time.sleep(pace)  # a steady pace, as backtest windows finish
        wait_all(list(emitted), 300 + runs * pace)
    finally:
        query.stop()
        emitter.close(timeout_s=10)
    visible = first_visible(spark, runs_table, set(emitted))
    lags = [visible[i] - emitted[i] for i in emitted]
    history = spark.sql(f"DESCRIBE HISTORY {runs_table}").where("operation = 'WRITE'").count()
    return {
        "runs": len(lags),
        "median_s": statistics.median(lags),
        "p95_s": percentile(lags, 95),
        "max_s": max(lags),
        "min_s": min(lags),
        "merges": history,
        "trigger_s": trigger,
        "pace_s": pace,
    }


# -- (b) backfill throughput ------------------------------------------------------------------
def produce_backfill(bootstrap: str, topic: str, n: int) -> float:
    when = datetime(2025, 1, 15, tzinfo=timezone.utc)  # after the seed's training window
    _, payload = prepare_run({**SEED_RUN, "run_timestamp": when}, {})
    producer = kafka_producer(bootstrap, linger_ms=20, batch_size=512 * 1024)
    started = time.monotonic()
    base = datetime(2023, 1, 1, tzinfo=timezone.utc)
    for i in range(n):
        run = dict(payload)
        run["run_timestamp"] = base + timedelta(hours=i % (24 * 365))
        run["commodity"] = "Coffee" if i % 2 else "Sugar"
        run["mae_14day"] = 2.0 + (i % 1000) / 1000
        experiment_id = str(uuid.uuid4())
        event = build_event(contract.RUN_RECORDED, experiment_id, run=run, source="backfill")
        producer.send(topic, key=experiment_id.encode(), value=contract.encode(event))
    producer.flush(timeout=300)
    producer.close()
    return time.monotonic() - started


def bench_backfill(
    spark: Any, bootstrap: str, work: Path, *, events: int, rounds: int = 5
) -> dict[str, Any]:
    """``rounds`` rounds of: the job's availableNow run over the replay topic into fresh
    tables, and a plain append of the same records, decoded the same way, to a fresh event-log
    table. The order alternates (plain first in the first round), because whichever runs first
    in this JVM compiles the decoding both share. The headline (``ratio``) is over the rounds
    after the first, as many of each order: their total job time over their total plain time."""
    live = fresh_topic(bootstrap, "bf-live", 1)
    replay = fresh_topic(bootstrap, "bf-replay", 2)
    produce_s = produce_backfill(bootstrap, replay, events)
    print(f"  produced {events} events to {replay} in {produce_s:.1f}s", flush=True)
    out: dict[str, Any] = {"events": events, "rounds": []}
    for n in range(rounds):
        steps = (_plain_append, _job_backfill) if n % 2 == 0 else (_job_backfill, _plain_append)
        figures: dict[str, Any] = {}
        for step in steps:
            figures.update(step(spark, bootstrap, live, replay, work / f"backfill-{n}"))
        figures["ratio"] = figures["job_s"] / figures["append_s"]
        figures["order"] = " then ".join("plain" if f is _plain_append else "job" for f in steps)
        print(f"  round {n + 1} ({figures['order']}): job {figures['job_s']:.1f}s, "
              f"plain {figures['append_s']:.1f}s, {figures['ratio']:.2f}x", flush=True)  # fmt: skip
        out["rounds"].append(figures)
    warm = out["rounds"][1:] or out["rounds"]
    out["ratio"] = sum(r["job_s"] for r in warm) / sum(r["append_s"] for r in warm)
    return out


def _job_backfill(spark: Any, bootstrap: str, live: str, replay: str, root: Path) -> dict[str, Any]:
    config = config_for(bootstrap, live, replay, root)
    create_tables(spark, config.tables)
    ensure_topics(config)
    started = time.monotonic()
    start(spark, config, once=True).awaitTermination()
    job_s = time.monotonic() - started
    return {
        "job_s": job_s,
        "rows": spark.table(config.tables.runs).count(),
        "logged": spark.table(config.tables.events).count(),
    }


def _plain_append(spark: Any, bootstrap: str, live: str, replay: str, root: Path) -> dict[str, Any]:
    """The same records, decoded the same way, appended with no lookup, fold or second table
    to a fresh event-log table (same DDL and partitioning as the job's)."""
    plain = TableNames.at_path(root / "plain_append")
    create_tables(spark, plain)
    started = time.monotonic()
    raw = (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", replay)
        .option("startingOffsets", "earliest")
        .option("endingOffsets", "latest")
        .load()
    )
    plain_path = plain.events.removeprefix("delta.`").removesuffix("`")
    decode.events(decode.classify(raw)).write.format("delta").mode("append").save(plain_path)
    append_s = time.monotonic() - started
    return {"append_s": append_s, "append_rows": spark.table(plain.events).count()}


# -- (c) upsert cost growth -------------------------------------------------------------------
_VALUES = {
    "model_name": "concat('model_', CAST(id % 25 AS STRING))",
    "model_version": "'v1'",
    "run_timestamp": "timestamp_seconds({start} + (id % {days}) * 86400 + id % 86400)",
    "model_type": "element_at(array('SARIMAX', 'XGBoost', 'Prophet'), CAST(id % 3 AS INT) + 1)",
    "hyperparameters": "map('order', '(1,1,1)')",
    "feature_config": "map('weather', true)",
    "training_start_date": "DATE'2022-01-01'",
    "training_end_date": "DATE'2024-12-31'",
    "forecast_horizon_days": "14",
    "commodity": "CASE WHEN id % 2 = 0 THEN 'Coffee' ELSE 'Sugar' END",
    "mae_14day": "2.0 + (id % 1000) / 1000.0",
    "directional_accuracy": "0.5 + (id % 100) / 1000.0",
    "beats_baseline": "id % 3 = 0",
    "execution_time_seconds": "30.0 + id % 60",
    "is_production": "false",
}


def state_rows(
    spark: Any,
    first_id: int,
    n: int,
    days: int,
    start_day: date,
    *,
    stride: int = 1,
    event_count: int = 1,
) -> Any:
    """Rows shaped like ``projection.project`` output, generated without events.

    Row ``id`` always gets the same experiment_id and run_timestamp, so generating an id again
    with a higher ``event_count`` is an update of that run, in the same partition.
    """
    start = int(
        datetime(start_day.year, start_day.month, start_day.day, tzinfo=timezone.utc).timestamp()
    )
    columns = ["concat('bench-', sha2(CAST(id AS STRING), 256)) AS experiment_id"]
    for field in run_fields():
        name, sql_type = field.name, field.sql_type
        expr = _VALUES.get(name, f"CAST(NULL AS {sql_type})")
        columns.append(f"CAST({expr.format(start=start, days=days)} AS {sql_type}) AS {name}")
    columns += [
        f"CAST({event_count} AS BIGINT) AS _rs_event_count",
        "CAST(uuid() AS STRING) AS _rs_last_event_id",
        "current_timestamp() AS _rs_last_event_time",
        "current_timestamp() AS _rs_first_seen_at",
        "current_timestamp() AS _rs_last_seen_at",
        "named_struct('event_time', current_timestamp(), 'event_id', uuid()) AS _rs_run_from",
        f"CAST(NULL AS {KEY_TYPE}) AS _rs_production_from",
        f"CAST(NULL AS {KEY_TYPE}) AS _rs_notes_from",
        f"transform(sequence(1, {event_count}), i -> uuid()) AS _rs_event_ids",
    ]
    ids = spark.range(first_id, first_id + n * stride, stride, numPartitions=2)
    return ids.selectExpr(*columns)


def bench_merge(
    spark: Any, work: Path, *, small: int, big: int, batch: int, days: int, repeats: int
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, size in (("small", small), ("big", big)):
        tables = TableNames.at_path(work / f"merge-{label}")
        create_tables(spark, tables)
        started = time.monotonic()
        state_rows(spark, 0, size, days, date(2023, 1, 1)).write.format("delta").mode(
            "append"
        ).save(tables.runs.removeprefix("delta.`").removesuffix("`"))
        build_s = time.monotonic() - started
        files = spark.sql(f"DESCRIBE DETAIL {tables.runs}").first()["numFiles"]
        print(f"  built {label} table: {size} rows, {files} files in {build_s:.1f}s", flush=True)
        if label == "small":  # warm-up, not counted: JIT and first-use costs
            warm = state_rows(spark, 10**9, batch, 7, date(2025, 1, 1))
            upsert_runs(spark, tables, warm)
        times = []
        for r in range(repeats):
            new = state_rows(spark, 2 * 10**9 + r * batch, batch, 7, date(2025, 1, 1))
            new = new.localCheckpoint()  # time the upsert, not the generation of its input
            started = time.monotonic()
            upsert_runs(spark, tables, new)
            times.append(time.monotonic() - started)
        updates = []
        for r in range(repeats):  # re-recorded runs spread over the whole table
            changed = state_rows(
                spark, r, batch, days, date(2023, 1, 1), stride=size // batch, event_count=2 + r
            ).localCheckpoint()
            started = time.monotonic()
            upsert_runs(spark, tables, changed)
            updates.append(time.monotonic() - started)
        out[label] = {
            "update_s": updates,
            "update_median_s": statistics.median(updates),
            "rows": size,
            "files": files,
            "build_s": build_s,
            "merge_s": times,
            "median_s": statistics.median(times),
        }
    out["ratio"] = out["big"]["median_s"] / out["small"]["median_s"]
    out["update_ratio"] = out["big"]["update_median_s"] / out["small"]["update_median_s"]
    return out


# -- (d) one micro-batch against a short and a long history ----------------------------------
HISTORY_NS = uuid.UUID("0c5e7d4a-8f3b-4a61-9d2e-7b1f6a3c5e90")
HISTORY_START = datetime(2025, 1, 15, tzinfo=timezone.utc)  # after the training window


def history_id(run: int) -> str:
    return str(uuid.uuid5(HISTORY_NS, f"run-{run}"))


def history_event(run: int, k: int, at: datetime, payload: dict[str, Any]) -> dict[str, Any]:
    """The ``k``-th event of run ``run``: recorded first, then re-recorded, promoted or
    annotated in turn."""
    experiment_id = history_id(run)
    kind = k % 4 if k else 0
    if kind == 1:
        return build_event(
            contract.RUN_PROMOTED,
            experiment_id,
            promotion={"is_production": k % 8 == 1},
            event_time=at,
        )
    if kind == 2:
        return build_event(
            contract.RUN_ANNOTATED, experiment_id, annotation={"notes": f"note {k}"}, event_time=at
        )
    run_fields_now = {
        **payload,
        "mae_14day": 2.0 + (run * 7 + k) % 1000 / 1000,
        "commodity": "Coffee" if run % 2 else "Sugar",
        "run_timestamp": HISTORY_START + timedelta(hours=run % (24 * 365)),
    }
    return build_event(contract.RUN_RECORDED, experiment_id, run=run_fields_now, event_time=at)


def kafka_rows(events: list[dict[str, Any]], first_offset: int) -> list[tuple[Any, ...]]:
    when = datetime(2025, 6, 1)
    return [
        (e["experiment_id"].encode(), contract.encode(e), "history", 0, first_offset + i, when)
        for i, e in enumerate(events)
    ]


def build_history(spark: Any, tables: TableNames, events: int, work: Path) -> float:
    """A log of ``events`` events (two per run: recorded, then one more) and the tables the
    job would have made of it (``rebuild``), written without Kafka."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    _, payload = prepare_run({**SEED_RUN, "run_timestamp": HISTORY_START}, {})
    started = time.monotonic()
    create_tables(spark, tables)
    path = work / f"history-{events}.parquet"
    writer = None
    chunk = 100_000
    for first in range(0, events, chunk):
        batch = [
            history_event(i // 2, i % 2, HISTORY_START + timedelta(minutes=i), payload)
            for i in range(first, min(events, first + chunk))
        ]
        rows = kafka_rows(batch, first)
        table = pa.table(
            {
                name: [r[i] for r in rows]
                for i, name in enumerate(
                    ("key", "value", "topic", "partition", "offset", "timestamp")
                )
            }
        )
        table = table.cast(
            pa.schema(
                [
                    ("key", pa.binary()),
                    ("value", pa.binary()),
                    ("topic", pa.string()),
                    ("partition", pa.int32()),
                    ("offset", pa.int64()),
                    ("timestamp", pa.timestamp("us", tz="UTC")),
                ]
            )
        )
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()
    raw = spark.read.parquet(str(path))
    decode.events(decode.classify(raw)).write.format("delta").mode("append").save(
        tables.events.removeprefix("delta.`").removesuffix("`")
    )
    rebuild(spark, tables)
    return time.monotonic() - started


def bench_history(
    spark: Any, work: Path, *, small: int, big: int, batch_runs: int, per_run: int, repeats: int
) -> dict[str, Any]:
    """Time ``process_batch`` on ``batch_runs`` x ``per_run`` new events for runs spread over
    the history, against a log of ``small`` and of ``big`` events."""
    _, payload = prepare_run({**SEED_RUN, "run_timestamp": HISTORY_START}, {})
    out: dict[str, Any] = {}
    batch_id = 0
    for label, size in (("small", small), ("big", big)):
        tables = TableNames.at_path(work / f"history-{label}")
        build_s = build_history(spark, tables, size, work)
        log_files = spark.sql(f"DESCRIBE DETAIL {tables.events}").first()["numFiles"]
        run_files = spark.sql(f"DESCRIBE DETAIL {tables.runs}").first()["numFiles"]
        n_runs = spark.table(tables.runs).count()
        print(
            f"  {label}: {size} events ({log_files} files), {n_runs} runs ({run_files} files)"
            f" built in {build_s:.0f}s",
            flush=True,
        )
        times = []
        warm_up = 1 if label == "small" else 0  # the first batch warms the JVM: not counted
        for r in range(repeats + warm_up):
            stride = max(1, n_runs // batch_runs)
            later = datetime(2026, 6, 1, tzinfo=timezone.utc) + timedelta(days=r)
            events = [
                history_event(run, 2 + r * per_run + k, later + timedelta(seconds=k), payload)
                for run in range(r, r + stride * batch_runs, stride)
                for k in range(per_run)
            ]
            raw = spark.createDataFrame(
                kafka_rows(events, 10**9 + r * len(events)),
                "key binary, value binary, topic string, partition int, offset long, "
                "timestamp timestamp",
            ).localCheckpoint()
            started = time.monotonic()
            report = process_batch(spark, tables, raw, batch_id, resumed=False)
            elapsed = time.monotonic() - started
            batch_id += 1
            assert report.valid == len(events), report
            if r >= warm_up:
                times.append(elapsed)
        out[label] = {
            "events": size,
            "runs": n_runs,
            "log_files": log_files,
            "run_files": run_files,
            "batch_s": times,
            "median_s": statistics.median(times),
        }
    out["ratio"] = out["big"]["median_s"] / out["small"]["median_s"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--trigger", type=float, default=0.5)
    parser.add_argument("--pace", type=float, default=1.0, help="seconds between emitted runs")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5, help="(b) rounds, alternating order")
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--days", type=int, default=365, help="run_date spread of merge tables")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--history-small", type=int, default=10_000, help="(d) short log")
    parser.add_argument("--history-big", type=int, default=1_000_000, help="(d) long log")
    parser.add_argument("--batch-runs", type=int, default=100, help="(d) runs a batch touches")
    parser.add_argument("--per-run", type=int, default=10, help="(d) new events per run")
    parser.add_argument("--skip", action="append", default=[], choices=["a", "b", "c", "d"])
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every micro-batch")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    if args.verbose:
        logging.getLogger("runstream.consumer").setLevel(logging.DEBUG)

    work = Path(tempfile.mkdtemp(prefix="rs-bench-"))
    broker = LocalBroker(work / "kafka", port=free_port(), controller_port=free_port())
    results: dict[str, Any] = {}
    began = time.monotonic()
    broker.up()
    try:
        spark = spark_session("runstream-bench", shuffle_partitions=2)
        print(
            f"machine: {os.cpu_count()} cores; Spark {spark.version}; broker {broker.bootstrap};"
            f" work {work}",
            flush=True,
        )
        if "a" not in args.skip:
            print("(a) freshness ...", flush=True)
            results["a"] = bench_freshness(
                spark, broker.bootstrap, work, runs=args.runs, trigger=args.trigger, pace=args.pace
            )
        if "b" not in args.skip:
            print("(b) backfill throughput ...", flush=True)
            results["b"] = bench_backfill(
                spark, broker.bootstrap, work, events=args.events, rounds=args.rounds
            )
        if "c" not in args.skip:
            print("(c) upsert cost growth ...", flush=True)
            results["c"] = bench_merge(
                spark,
                work,
                small=args.small,
                big=args.big,
                batch=args.batch,
                days=args.days,
                repeats=args.repeats,
            )
        if "d" not in args.skip:
            print("(d) one batch against a short and a long history ...", flush=True)
            results["d"] = bench_history(
                spark,
                work,
                small=args.history_small,
                big=args.history_big,
                batch_runs=args.batch_runs,
                per_run=args.per_run,
                repeats=args.repeats,
            )
        spark.stop()
    finally:
        broker.down()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\n== runstream consumer benchmark ({time.monotonic() - began:.0f}s total) ==")
    if "a" in results:
        a = results["a"]
        print(
            f"(a) freshness, emit_run() return -> row readable (Delta commit), {a['runs']} runs,"
            f" trigger {a['trigger_s']}s, one run every {a['pace_s']}s:\n"
            f"    median {a['median_s']:.2f}s  p95 {a['p95_s']:.2f}s  "
            f"min {a['min_s']:.2f}s  max {a['max_s']:.2f}s  ({a['merges']} model_runs commits)"
        )
    if "b" in results:
        b = results["b"]
        print(f"(b) backfill of {b['events']} events via the replay topic (availableNow), "
              f"{len(b['rounds'])} rounds:")  # fmt: skip
        for n, r in enumerate(b["rounds"], 1):
            print(
                f"    round {n} ({r['order']}): job (lookup, fold, rows, log append) "
                f"{r['job_s']:.1f}s = {b['events'] / r['job_s']:.0f} events/s -> {r['rows']} "
                f"rows, {r['logged']} logged; plain Delta append of the same decoded rows "
                f"{r['append_s']:.1f}s = {b['events'] / r['append_s']:.0f} events/s -> "
                f"{r['append_rows']} rows; {r['ratio']:.2f}x"
            )
        warm = "rounds 2-" + str(len(b["rounds"])) if len(b["rounds"]) > 1 else "one round"
        print(f"    ratio job/append, both warm ({warm}, their total times): {b['ratio']:.2f}x "
              "(goal: at most 2x)")  # fmt: skip
    if "c" in results:
        c = results["c"]
        for label in ("small", "big"):
            r = c[label]
            each = [round(t, 2) for t in r["merge_s"]]
            print(
                f"(c) upsert {args.batch} new runs into {r['rows']} rows ({r['files']} files): "
                f"median {r['median_s']:.2f}s of {each}"
            )
        print(f"    ratio {c['big']['rows']} / {c['small']['rows']} rows: {c['ratio']:.2f}x")
        for label in ("small", "big"):
            r = c[label]
            each = [round(t, 2) for t in r["update_s"]]
            print(
                f"(c') upsert {args.batch} updates of existing runs (spread over the table) into "
                f"{r['rows']} rows: median {r['update_median_s']:.2f}s of {each}"
            )
        print(f"    ratio: {c['update_ratio']:.2f}x")
    if "d" in results:
        d = results["d"]
        n = args.batch_runs * args.per_run
        for label in ("small", "big"):
            r = d[label]
            each = [round(t, 2) for t in r["batch_s"]]
            print(
                f"(d) a batch of {n} new events for {args.batch_runs} runs, against a log of "
                f"{r['events']} events ({r['log_files']} files; {r['runs']} runs in "
                f"{r['run_files']} files): median {r['median_s']:.2f}s of {each}"
            )
        print(f"    ratio long/short history: {d['ratio']:.2f}x (goal: at most 1.3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
