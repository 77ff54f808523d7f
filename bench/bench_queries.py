"""Query benchmark: the leaderboard on a 1,000,000-run model_runs table, light engine vs Spark
vs MLflow.

Run: ``.venv/bin/python bench/bench_queries.py`` (the first run builds the table: minutes;
later runs reuse it). ``--quick`` is a smoke test (50,000 runs, 1,000 MLflow runs).

The question is the seed's "best" query (``schemas/queries.sql``): the five runs with the
lowest 14-day MAE among those that beat the baseline, for one commodity. Three figures:

(1) in-process: ``runstream.engines.named_query(engine, "best")`` on the light engine
    (``LightEngine``: delta-rs QueryBuilder, no JVM; a fresh engine per query, so each time
    opens the table's log, and an engine reused) and on a warm Spark session (``SparkEngine``:
    one query to warm, then ``--repeats``); medians and the ratio;
(2) whole process: ``runstream query best --engine light|spark --lake DIR --json`` as a
    subprocess, median of ``--light-runs`` and ``--spark-runs``; the ratio, and whether the
    project's goal (light at most 1 s as a whole process) holds;
(3) MLflow: ``MlflowClient.search_runs`` answering the same question on a SQLite tracking
    store of ``--mlflow-runs`` runs, loaded by ``runstream.mlflow_bridge.export`` (exactly as
    ``runstream export-mlflow`` stores them: an experiment per commodity, ``beats_baseline``
    as a tag, ``mae_14day`` as a metric) from a Delta table of the same runs, in chunks of
    ``--mlflow-chunk`` until done or ``--mlflow-budget`` seconds passed; next to the light
    engine on a table of exactly the runs loaded (like for like) and on the big table.
    MLflow's usage telemetry is switched off (``MLFLOW_DISABLE_TELEMETRY``) unless set.

The big table is built once with Spark and reused (``--dir``, default
``$RUNSTREAM_CACHE_DIR/bench/queries-1m``): the project's own DDL (``create_tables``: columns,
NOT NULLs, partitioning by a bucket of experiment_id, CHECK constraints, which Delta enforces
on every write), rows over ``--days`` days (two commodities, 25 models of 6 types,
beats_baseline true/false/null, a few in production) appended in ``--batches`` appends in
time order, as a stream writes them, then compacted as ``runstream maintain`` does (OPTIMIZE):
one file per bucket, 1,024 files. Every answer is checked: light, Spark, both CLIs and MLflow
must agree.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from runstream.consumer.projection import KEY_TYPE
from runstream.consumer.session import spark_session
from runstream.consumer.tables import BUCKET, RUNS, TableNames, create_tables
from runstream.contract.fields import run_fields
from runstream.engines import LightEngine, SparkEngine, named_query
from runstream.environment_variables import RUNSTREAM_CACHE_DIR

log = logging.getLogger("bench_queries")

COMMODITY = "Coffee"
GOAL_S = 1.0  # the project's goal for `runstream query best --engine light`, whole process
MARKER = "bench-queries.json"  # written beside the tables once a build has finished
GENERATOR = 3  # bump when the rows below change, so cached tables are rebuilt
FIRST_DAY = date(2024, 11, 1)
KNOWN = "search_runs 0.43 s at 5,000 runs, 7.2 s at 20,000 (an earlier measurement)"

# 25 models: (model_name, model_type), as a forecasting team names them.
MODELS: tuple[tuple[str, str], ...] = (
    ("sarimax_auto_weather_v1", "SARIMAX"), ("sarimax_auto_v2", "SARIMAX"),
    ("sarimax_weather_fx", "SARIMAX"), ("sarimax_seasonal_7", "SARIMAX"),
    ("sarimax_vix", "SARIMAX"), ("xgboost_lags_28", "XGBoost"), ("xgboost_weather", "XGBoost"),
    ("xgboost_weather_fx", "XGBoost"), ("xgboost_deep", "XGBoost"), ("xgboost_tuned_v3", "XGBoost"),
    ("prophet_default", "Prophet"), ("prophet_holidays", "Prophet"),
    ("prophet_weather", "Prophet"), ("prophet_changepoints", "Prophet"), ("lstm_64", "LSTM"),
    ("lstm_128_dropout", "LSTM"), ("lstm_weather", "LSTM"), ("arima_111", "ARIMA"),
    ("arima_auto", "ARIMA"), ("arima_212", "ARIMA"), ("ets_additive", "ETS"),
    ("ets_damped", "ETS"), ("ets_multiplicative", "ETS"), ("lightgbm_lags", "XGBoost"),
    ("naive_seasonal_ref", "ARIMA"),
)  # fmt: skip
HARDWARE: tuple[tuple[str, float], ...] = (
    ("local", 0.0), ("i3.xlarge", 0.312), ("m5.2xlarge", 0.384), ("g5.xlarge", 1.006),
)  # fmt: skip
PEOPLE = ("Connor", "Ana", "Priya", "Tom", "Mei", "Luis")


def _array(values: Sequence[object]) -> str:
    return "array(" + ", ".join(repr(v) for v in values) + ")"


def _uniform(salt: int) -> str:
    """A uniform number in [0, 1) that depends only on the row's id and ``salt``."""
    return f"(pmod(xxhash64(id, {salt}), 1099511627776) / CAST(1099511627776 AS DOUBLE))"


def _uuid(hex_column: str) -> str:
    """A version-4-shaped UUID from a SHA-256 hex column (stable per row)."""
    h = hex_column
    return (f"concat_ws('-', substr({h}, 1, 8), substr({h}, 9, 4), "
            f"concat('4', substr({h}, 14, 3)), concat('8', substr({h}, 18, 3)), "
            f"substr({h}, 21, 12))")  # fmt: skip


def generated_runs(spark: Any, first: int, stop: int, runs: int, days: int) -> Any:
    """Rows ``first``..``stop - 1`` of a ``runs``-row table, shaped like ``model_runs`` (the
    run's columns in the DDL's order, then the bookkeeping columns; run_date is generated by
    Delta). Row ``id`` falls on day ``id * days // runs``, so ids in order are runs in time
    order; everything else is a function of the id alone, so a row is the same whichever
    batch or table produces it."""
    from pyspark.sql import functions as F

    start = int(datetime(FIRST_DAY.year, FIRST_DAY.month, FIRST_DAY.day,
                         tzinfo=timezone.utc).timestamp())  # fmt: skip
    names, types = [m[0] for m in MODELS], [m[1] for m in MODELS]
    draws = ["id"] + [f"{_uniform(k)} AS u{k}" for k in range(1, 21)]
    base = [
        "*",
        f"{start} + CAST(id * {days} DIV {runs} AS BIGINT) * 86400 + CAST(u1 * 86400 AS BIGINT)"
        " AS t0",
        f"CAST(u2 * {len(MODELS)} AS INT) + 1 AS m",
        f"CASE WHEN u3 < 0.5 THEN '{COMMODITY}' ELSE 'Sugar' END AS c",
        # better models have lower MAE; Sugar is quoted in cents, so its errors are smaller
        f"(2.4 + pmod(CAST(u2 * {len(MODELS)} AS INT) * 7, 9) * 0.12) * (0.85 + 0.5 * u9)"
        " * CASE WHEN u3 < 0.5 THEN 1.0 ELSE 0.22 END AS mae",
        "5.0 + u15 * u15 * 1800.0 AS secs",
        f"CAST(u16 * {len(HARDWARE)} AS INT) + 1 AS hw",
        "sha2(concat('run-', CAST(id AS STRING)), 256) AS h_run",
        "sha2(concat('event-', CAST(id AS STRING)), 256) AS h_event",
    ]
    hardware = _array([h for h, _ in HARDWARE])
    rates = "array(" + ", ".join(f"CAST({r} AS DOUBLE)" for _, r in HARDWARE) + ")"
    values = {
        "model_name": f"element_at({_array(names)}, m)",
        "model_version": "concat('v', CAST(1 + CAST(u4 * 3 AS INT) AS STRING))",
        "run_timestamp": "timestamp_seconds(t0)",
        "model_type": f"element_at({_array(types)}, m)",
        "hyperparameters": "map('order', concat('(', CAST(CAST(u5 * 3 AS INT) AS STRING), ',1,',"
        " CAST(CAST(u6 * 3 AS INT) AS STRING), ')'), 'seasonal_order', '(1,1,1,7)',"
        " 'lookback_days', CAST(30 * (1 + CAST(u7 * 12 AS INT)) AS STRING))",
        "feature_config": "map('weather', u5 < 0.7, 'vix', u6 < 0.4, 'cop_usd', u7 < 0.2)",
        "data_version": "concat('prices-', date_format(timestamp_seconds(t0), 'yyyy-MM'))",
        "training_start_date": "date_sub(to_date(timestamp_seconds(t0)), 1 + CAST(u8 * 14 AS INT)"
        " + 730 + CAST(u7 * 365 AS INT))",
        "training_end_date": "date_sub(to_date(timestamp_seconds(t0)), 1 + CAST(u8 * 14 AS INT))",
        "forecast_horizon_days": "14",
        "commodity": "c",
        "mae_1day": "mae * (0.35 + 0.1 * u10)",
        "mae_7day": "mae * (0.7 + 0.1 * u10)",
        "mae_14day": "mae",
        "rmse_14day": "mae * (1.2 + 0.15 * u11)",
        "mape_14day": "mae * (1.7 + 0.4 * u11)",
        "directional_accuracy": "0.42 + 0.33 * u12",
        "dm_test_vs_naive": "CASE WHEN u9 < 0.45 THEN -0.8 - 2.5 * u13 ELSE 2.2 * u13 - 0.6 END",
        "dm_pvalue": "u14",
        "beats_baseline": "CASE WHEN u17 < 0.04 THEN NULL ELSE u9 < 0.45 END",
        "execution_time_seconds": "secs",
        "hardware_config": f"element_at({hardware}, hw)",
        "databricks_cluster_id": "CASE WHEN hw = 1 THEN NULL"
        " ELSE concat('0601-', substr(h_run, 1, 6), '-abc', CAST(hw AS STRING)) END",
        "cost_estimate_usd": f"secs / 3600.0 * element_at({rates}, hw)",
        "model_path": "concat('dbfs:/FileStore/models/', "
        f"element_at({_array(names)}, m), '/', {_uuid('h_run')})",
        "run_by": f"element_at({_array(PEOPLE)}, CAST(u18 * {len(PEOPLE)} AS INT) + 1)",
        "notes": "CASE WHEN u19 < 0.02 THEN 'rerun with the new weather features' END",
        "is_production": "u20 < 0.00001",
    }
    columns = [f"CAST({_uuid('h_run')} AS STRING) AS experiment_id"]
    for run_field in run_fields():
        expr = values.get(run_field.name, "NULL")
        columns.append(f"CAST({expr} AS {run_field.sql_type}) AS {run_field.name}")
    columns += [
        "CAST(1 AS BIGINT) AS _rs_event_count",
        f"{_uuid('h_event')} AS _rs_last_event_id",
        "timestamp_seconds(t0 + CAST(secs AS BIGINT) + 1) AS _rs_last_event_time",
        "timestamp_seconds(t0 + CAST(secs AS BIGINT) + 3 + CAST(u10 * 8 AS BIGINT))"
        " AS _rs_first_seen_at",
        "timestamp_seconds(t0 + CAST(secs AS BIGINT) + 3 + CAST(u10 * 8 AS BIGINT))"
        " AS _rs_last_seen_at",
        "named_struct('event_time', timestamp_seconds(t0 + CAST(secs AS BIGINT) + 1),"
        f" 'event_id', {_uuid('h_event')}) AS _rs_run_from",
        f"CAST(NULL AS {KEY_TYPE}) AS _rs_production_from",
        f"CAST(NULL AS {KEY_TYPE}) AS _rs_notes_from",
        f"array({_uuid('h_event')}) AS _rs_event_ids",
    ]
    rows = spark.range(first, stop, numPartitions=2).selectExpr(*draws).selectExpr(*base)
    rows = rows.selectExpr(*columns)
    # one task per bucket: one file per partition folder, as a MERGE writes them
    return rows.repartition(F.expr(BUCKET))


def table_path(tables: TableNames) -> str:
    return tables.runs.removeprefix("delta.`").removesuffix("`")


def build_table(spark: Any, lake: Path, runs: int, days: int, batches: int) -> float:
    """Create the tables under ``lake`` (the job's DDL) and append ``runs`` rows in
    ``batches`` appends, each a run of whole days, oldest first; returns seconds taken."""
    started = time.monotonic()
    tables = TableNames.at_path(lake)
    create_tables(spark, tables)
    path = table_path(tables)
    cuts = sorted({b * days // batches for b in range(batches)} | {days})
    for b, (day, next_day) in enumerate(itertools.pairwise(cuts)):
        first, stop = -(-day * runs // days), -(-next_day * runs // days)  # ceilings
        generated_runs(spark, first, stop, runs, days).write.format("delta").mode("append").save(
            path
        )
        log.info("  batch %d/%d: rows %d..%d, days %d..%d (%.0fs so far)", b + 1,
                 len(cuts) - 1, first, stop - 1, day, next_day - 1,
                 time.monotonic() - started)  # fmt: skip
    spark.sql(f"OPTIMIZE {tables.runs}")  # as `runstream maintain` does
    return time.monotonic() - started


@dataclass
class TableFacts:
    lake: Path
    rows: int
    files: int
    versions: int
    built_s: float | None  # None: reused from an earlier run


def table_facts(lake: Path, built_s: float | None) -> TableFacts:
    from deltalake import DeltaTable

    table = DeltaTable(str(lake / RUNS))
    engine = LightEngine(TableNames.at_path(lake))
    rows = int(engine.sql("SELECT count(*) AS n FROM model_runs")[0]["n"])
    return TableFacts(lake, rows, len(table.file_uris()), table.version() + 1, built_s)


def ensure_table(spark: Any, lake: Path, runs: int, days: int, batches: int) -> TableFacts:
    """The big table under ``lake``: reused when a finished build with the same settings is
    there, else (re)built. Only the job's tables and the marker are ever deleted, and only
    when the marker says this script made them."""
    wanted = {"generator": GENERATOR, "runs": runs, "days": days, "batches": batches}
    marker = lake / MARKER
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        log.info("reusing the %d-run table under %s", runs, lake)
        return table_facts(lake, None)
    ours = marker.is_file() or not (lake / RUNS).exists()
    if not ours:
        raise SystemExit(f"{lake} holds a model_runs table this script did not build; "
                         "give another --dir")  # fmt: skip
    for name in (MARKER, RUNS, "model_run_events", "model_run_rejects", "model_run_pending"):
        target = lake / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    lake.mkdir(parents=True, exist_ok=True)
    log.info("building the %d-run table under %s (once; later runs reuse it)", runs, lake)
    built_s = build_table(spark, lake, runs, days, batches)
    marker.write_text(json.dumps(wanted))
    return table_facts(lake, built_s)


# -- timing ------------------------------------------------------------------------------------
@dataclass
class Timing:
    samples: list[float]
    answer: list[dict[str, Any]] = field(default_factory=list)
    first_s: float | None = None  # the untimed warm-up, when there was one

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def each(self) -> str:
        return "[" + ", ".join(f"{s:.3g}" for s in self.samples) + "]"


def timed(action: Callable[[], list[dict[str, Any]]], repeats: int, warm: bool = True) -> Timing:
    first_s = None
    answer: list[dict[str, Any]] = []
    if warm:
        started = time.perf_counter()
        answer = action()
        first_s = time.perf_counter() - started
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        answer = action()
        samples.append(time.perf_counter() - started)
    return Timing(samples, answer, first_s)


def light_best(lake: Path) -> list[dict[str, Any]]:
    """A fresh LightEngine: opens the table's log, then runs the query (what a process does)."""
    return named_query(LightEngine(TableNames.at_path(lake)), "best", commodity=COMMODITY)


def maes(rows: list[dict[str, Any]]) -> list[float]:
    return [float(r["mae_14day"]) for r in rows]


def same_answer(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    """Equal leaderboards: same runs in the same order with the same scores."""
    key = [(r["model_name"], r["model_version"], str(r["run_timestamp"])) for r in a]
    other = [(r["model_name"], r["model_version"], str(r["run_timestamp"])) for r in b]
    close = all(math.isclose(x, y, rel_tol=1e-12) for x, y in zip(maes(a), maes(b), strict=False))
    return key == other and close and len(a) == len(b)


# -- (2) whole process -------------------------------------------------------------------------
def runstream_command() -> list[str]:
    """The ``runstream`` console script beside this Python (a venv), else ``python -m``."""
    script = Path(sys.executable).with_name("runstream")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "runstream"]


def whole_process(command: list[str], env: dict[str, str], runs: int) -> Timing:
    samples = []
    answer: list[dict[str, Any]] = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        samples.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} exited with {done.returncode}:\n"
                             f"{done.stderr[-3000:]}")  # fmt: skip
        answer = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    for row in answer:  # JSON carries the timestamp as text; compare it as Python prints it
        row["run_timestamp"] = datetime.fromisoformat(str(row["run_timestamp"]))
    return Timing(samples, answer)


# -- (3) MLflow --------------------------------------------------------------------------------
class RowsEngine:
    """An ``Engine`` whose every query returns the given rows: how ``mlflow_bridge.export``
    is fed one chunk of ``model_runs`` at a time (export reads ``SELECT * FROM model_runs``)."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.as_of: int | None = None

    def sql(self, text: str) -> list[dict[str, Any]]:
        return self.rows

    def pinned(self, version: int | None) -> RowsEngine:
        return self

    def history(self) -> list[dict[str, Any]]:
        return []


@dataclass
class MlflowLoad:
    runs: int
    seconds: float
    asked: int


def load_mlflow(uri: str, rows: list[dict[str, Any]], chunk: int, budget_s: float) -> MlflowLoad:
    """Export ``rows`` into MLflow with the project's bridge, ``chunk`` rows at a time, until
    all are in or ``budget_s`` has passed."""
    from runstream.mlflow_bridge import export

    started = time.monotonic()
    loaded = 0
    for first in range(0, len(rows), chunk):
        part = rows[first : first + chunk]
        result = export(RowsEngine(part), uri)
        loaded += result.created
        elapsed = time.monotonic() - started
        log.info("  MLflow: %d of %d runs in %.0fs (%.0f runs/s)", loaded, len(rows), elapsed,
                 loaded / elapsed)  # fmt: skip
        if elapsed > budget_s and loaded < len(rows):
            log.warning("MLflow loading stopped at its %.0fs budget: %d of %d runs", budget_s,
                        loaded, len(rows))  # fmt: skip
            break
    return MlflowLoad(loaded, time.monotonic() - started, len(rows))


def mlflow_best(uri: str) -> Callable[[], list[dict[str, Any]]]:
    """search_runs asking the leaderboard's question of the bridge's layout."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(f"runstream/{COMMODITY}")
    if experiment is None:
        raise SystemExit(f"MLflow has no experiment runstream/{COMMODITY}")

    def search() -> list[dict[str, Any]]:
        found = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.commodity = '{COMMODITY}' AND tags.beats_baseline = 'True'",
            order_by=["metrics.mae_14day ASC"],
            max_results=5,
        )
        return [{"model_name": r.data.tags.get("model_name"),
                 "mae_14day": r.data.metrics["mae_14day"]} for r in found]  # fmt: skip

    return search


def copy_runs(spark: Any, source: Path, target: Path, experiment_ids: list[str]) -> None:
    """A table under ``target`` holding exactly ``experiment_ids`` from ``source`` (same DDL,
    same layout), for when MLflow's budget cut the load short."""
    from pyspark.sql import functions as F

    tables = TableNames.at_path(target)
    create_tables(spark, tables)
    wanted = spark.createDataFrame([(i,) for i in experiment_ids], "experiment_id STRING")
    rows = spark.read.format("delta").load(str(source / RUNS)).drop("run_date", "_rs_bucket")
    rows = rows.join(F.broadcast(wanted), "experiment_id", "left_semi")
    rows = rows.repartition(F.expr(BUCKET))
    rows.write.format("delta").mode("append").save(table_path(tables))


# -- the run -----------------------------------------------------------------------------------
def machine() -> str:
    memory = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores, {memory} RAM, Python {platform.python_version()} "
        f"({platform.system()} {platform.machine()}), load average {load} at start"
    )


def versions_line(spark: Any) -> str:
    from importlib.metadata import version

    return (f"deltalake {version('deltalake')}, Spark {spark.version}, "
            f"delta-spark {version('delta-spark')}, MLflow {version('mlflow-skinny')}")  # fmt: skip


def label(runs: int) -> str:
    if runs % 1_000_000 == 0:
        return f"{runs // 1_000_000}m"
    return f"{runs // 1000}k" if runs % 1000 == 0 else str(runs)


def row(text: str, t: Timing) -> str:
    """One line of a figures table: what, the median, every sample."""
    return f"    {text:58}{t.median:>9.3f}  {t.each()}"


def title(text: str) -> str:
    """A figures table's heading, its columns over ``row``'s."""
    return f"\n{text:66}median s  each"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, help="rows of the big table (default 1,000,000)")
    parser.add_argument("--dir", type=Path,
                        help="lake of the big table, kept between runs (default "
                        "$RUNSTREAM_CACHE_DIR/bench/queries-<runs>)")  # fmt: skip
    parser.add_argument("--days", type=int, default=730, help="run dates spread (days)")
    parser.add_argument("--batches", type=int, help="appends that build it (default 24)")
    parser.add_argument("--repeats", type=int, default=5, help="timed in-process queries")
    parser.add_argument("--light-runs", type=int, default=5, help="whole-process light runs")
    parser.add_argument("--spark-runs", type=int, default=3, help="whole-process Spark runs")
    parser.add_argument("--mlflow-runs", type=int, help="runs loaded into MLflow (default 5,000)")
    parser.add_argument("--mlflow-chunk", type=int, default=1000, help="runs per export call")
    parser.add_argument("--mlflow-budget", type=float, default=1800.0,
                        help="seconds after which MLflow loading stops (default 1800)")  # fmt: skip
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 50,000 runs, 1,000 in MLflow, fewer repeats",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("-v", "--verbose", action="store_true", help="runstream's own logs")
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no usage reports mid-timing
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("mlflow", "alembic", "py4j", "runstream"):
        logging.getLogger(noisy).setLevel(logging.INFO if args.verbose else logging.WARNING)
    runs = args.runs or (50_000 if args.quick else 1_000_000)
    mlflow_runs = args.mlflow_runs or (1_000 if args.quick else 5_000)
    batches = args.batches or (4 if args.quick else 24)
    if args.quick:
        args.repeats, args.light_runs, args.spark_runs = 3, 3, 1
    lake = (args.dir or Path(RUNSTREAM_CACHE_DIR.get()).expanduser() / "bench"
            / f"queries-{label(runs)}").absolute()  # fmt: skip

    began = time.monotonic()
    header = machine()
    work = Path(tempfile.mkdtemp(prefix="rs-bench-queries-"))
    try:
        spark = spark_session("runstream-bench-queries", jvm_log=work / "spark.log")
        versions = versions_line(spark)
        big = ensure_table(spark, lake, runs, args.days, batches)
        log.info("table: %d rows in %d files", big.rows, big.files)

        # (1) in-process --------------------------------------------------------------------
        log.info("(1) in-process: light, then warm Spark")
        light_fresh = timed(lambda: light_best(lake), args.repeats)
        reused = LightEngine(TableNames.at_path(lake))
        light_reused = timed(lambda: named_query(reused, "best", commodity=COMMODITY),
                             args.repeats)  # fmt: skip
        spark_engine = SparkEngine(spark, TableNames.at_path(lake))
        spark_warm = timed(lambda: named_query(spark_engine, "best", commodity=COMMODITY),
                           args.repeats)  # fmt: skip

        # (3) the N-run table and MLflow's store (Spark still up to build the table) --------
        log.info("(3) a %d-run table, exported to MLflow", mlflow_runs)
        small_lake = work / "small-lake"
        build_table(spark, small_lake, mlflow_runs, args.days, 1)
        every = LightEngine(TableNames.at_path(small_lake)).sql(
            "SELECT * FROM model_runs ORDER BY experiment_id"  # a hash: any prefix is a sample
        )
        uri = f"sqlite:///{work / 'mlflow.db'}"
        loaded = load_mlflow(uri, every, args.mlflow_chunk, args.mlflow_budget)
        if loaded.runs < len(every):
            exact = work / "small-lake-loaded"
            copy_runs(spark, small_lake, exact, [r["experiment_id"] for r in every[: loaded.runs]])
            small_lake = exact
        small = table_facts(small_lake, None)
        light_small = timed(lambda: light_best(small_lake), args.repeats)
        spark.stop()  # its cores and memory to the processes timed next

        # (2) whole process ---------------------------------------------------------------------
        log.info("(2) whole process: runstream query best, light then Spark")
        env = {**os.environ, "RUNSTREAM_TABLE": "", "RUNSTREAM_HOME": str(work / "home")}
        base = [*runstream_command(), "query", "best", "--lake", str(lake), "--json"]
        cli_light = whole_process([*base, "--engine", "light"], env, args.light_runs)
        cli_spark = whole_process([*base, "--engine", "spark"], env, args.spark_runs)

        log.info("(3) MLflow search_runs")
        mlflow = timed(mlflow_best(uri), args.repeats)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    # -- report ----------------------------------------------------------------------------------
    total_s = time.monotonic() - began
    n, k = f"{big.rows:,}", f"{small.rows:,}"
    built = (f"built in {big.built_s:.0f}s" if big.built_s is not None
             else "reused from an earlier run")  # fmt: skip
    print(f"\n== runstream query benchmark ({total_s:.0f}s total) ==")
    print(f"machine: {header}")
    print(f"versions: {versions}")
    print(f"table: {lake / RUNS}: {n} rows in {big.files:,} files, {big.versions} versions "
          f"({built})")  # fmt: skip
    print(f"query: `best` for {COMMODITY}, top 5 by mae_14day among beats_baseline = TRUE")

    print(title(f"(1) the query in-process on {n} runs"))
    print(row("light (delta-rs QueryBuilder), fresh engine each", light_fresh))
    print(row("light (delta-rs QueryBuilder), engine reused", light_reused))
    print(row(f"Spark, warm session (first query {spark_warm.first_s:.1f}s, untimed)", spark_warm))
    print(f"    ratio Spark warm / light fresh: {spark_warm.median / light_fresh.median:.1f}x")

    print(title("(2) `runstream query best --json` as a whole process"))
    print(f"    command: {' '.join(base)} --engine light|spark")
    print(row(f"--engine light ({len(cli_light.samples)} runs)", cli_light))
    print(row(f"--engine spark ({len(cli_spark.samples)} runs)", cli_spark))
    print(f"    ratio spark / light: {cli_spark.median / cli_light.median:.1f}x")
    verdict = "holds" if cli_light.median <= GOAL_S else "DOES NOT HOLD"
    print(
        f"    goal: light whole process <= {GOAL_S:.0f} s on this machine: {verdict} "
        f"(median {cli_light.median:.2f}s, max {max(cli_light.samples):.2f}s)"
    )

    rate = loaded.runs / loaded.seconds if loaded.seconds else 0.0
    cut = "" if loaded.runs == loaded.asked else f", budget reached: {loaded.asked:,} asked"
    print(title(f"(3) the same question in MLflow (SQLite store, {loaded.runs:,} runs)"))
    print(
        f"    loaded with runstream.mlflow_bridge.export in chunks of {args.mlflow_chunk}: "
        f"{loaded.runs:,} runs in {loaded.seconds:.0f}s ({rate:.0f} runs/s{cut})"
    )
    print(row(f"MLflow search_runs, {k} runs (first {mlflow.first_s:.2f}s, untimed)", mlflow))
    print(row(f"light, {k} runs ({small.files:,} files), fresh engine each", light_small))
    print(f"    ratio MLflow / light at {k} runs: {mlflow.median / light_small.median:.1f}x")
    print(row(f"light, {n} runs ({big.files:,} files), fresh engine each", light_fresh))
    print(f"    ratio MLflow at {k} / light at {n} runs: "
          f"{mlflow.median / light_fresh.median:.1f}x")  # fmt: skip
    print(f"    known: {KNOWN}")

    checks = {
        "light fresh = light reused": same_answer(light_fresh.answer, light_reused.answer),
        "light = Spark (in-process)": same_answer(light_fresh.answer, spark_warm.answer),
        "light = CLI light": same_answer(light_fresh.answer, cli_light.answer),
        "light = CLI spark": same_answer(light_fresh.answer, cli_spark.answer),
        f"MLflow = light at {k} runs (MAEs)": len(mlflow.answer) == len(light_small.answer)
        and all(math.isclose(x, y, rel_tol=1e-12)
                for x, y in zip(maes(mlflow.answer), maes(light_small.answer), strict=False)),
    }  # fmt: skip
    print("\nanswers: " + "; ".join(f"{k_}: {'ok' if ok else 'DIFFER'}"
                                    for k_, ok in checks.items()))  # fmt: skip
    print("best (light, " + n + " runs): " + ", ".join(
        f"{r['model_name']} {r['mae_14day']:.4f}" for r in light_fresh.answer))  # fmt: skip
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
