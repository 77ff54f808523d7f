"""``runstream demo``: the whole path on this machine, with a real backtest.

Starts the local broker (unless one runs), then runs a reduced grid of the walk-forward example
(``runstream.examples.walk_forward``: 4 windows x 25 models x 2 commodities = 200 runs,
recorded with ``emit_runs``, one batch per window), runs the streaming job once, prints the
seed's three queries from the table (light engine, as ``runstream query`` does), writes the
dashboard and prints the time it all took and what to run next. It uses the same settings as
every other command, so that next command finds the demo's table.

Without the ``examples`` extra (statsmodels, scikit-learn, arch) it says how to install it and
records the seed's one example run instead, as does ``--windows 0``.
"""

from __future__ import annotations

import importlib.util
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runstream import environment_variables as env

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from runstream.consumer.job import JobConfig

DEMO_WINDOWS = 4  # x 25 models x 2 commodities = 200 runs
# What the walk-forward example imports beyond the core package (the `examples` extra).
EXAMPLE_MODULES = ("numpy", "scipy", "statsmodels", "sklearn", "threadpoolctl", "arch")


def seed_experiment() -> dict[str, Any]:
    """The seed document's example run ("Recording an Experiment"), as it writes it: a new
    ``experiment_id`` and ``run_timestamp`` each call. The demo, the tests and the benchmarks
    all use this one copy."""
    return {
        "experiment_id": str(uuid.uuid4()),
        "model_name": "sarimax_auto_weather_v1",
        "model_version": "v1",
        "run_timestamp": datetime.now(),
        "model_type": "SARIMAX",
        "hyperparameters": {
            "order": "(1,1,1)",
            "seasonal_order": "(1,1,1,7)",
            "exog_vars": "temp_c,humidity_pct,precipitation_mm",
        },
        "feature_config": {"weather": True, "vix": False, "cop_usd": False},
        "training_start_date": "2022-01-01",
        "training_end_date": "2024-12-31",
        "forecast_horizon_days": 14,
        "commodity": "Coffee",
        "mae_14day": 3.10,
        "directional_accuracy": 0.695,
        "beats_baseline": True,
        "execution_time_seconds": 45.2,
        "hardware_config": "local",
        "run_by": "Connor",
    }


def example_missing() -> str | None:
    """None when the walk-forward example can run here, else which module is missing."""
    for name in EXAMPLE_MODULES:
        if importlib.util.find_spec(name) is None:
            return name
    return None


def run_demo(
    port: int = 9092,
    keep_broker: bool = False,
    jvm_log: Path | None = None,
    windows: int = DEMO_WINDOWS,
) -> int:
    """The demo; ``jvm_log`` receives the JVM's own output (see ``spark_session``);
    ``windows`` 0 records the seed's one example run instead of the walk-forward grid."""
    from runstream.consumer.job import JobConfig, ensure_topics
    from runstream.devtools.kafka_broker import LocalBroker

    began = time.monotonic()
    missing = example_missing() if windows > 0 else None
    grid = windows > 0 and missing is None
    broker = LocalBroker.in_folder(env.home() / "kafka", port=port)
    started = broker.up()
    print(f"1. Kafka at {broker.bootstrap} ({'started' if started else 'already running'})")
    try:
        config = JobConfig.from_env(bootstrap_servers=broker.bootstrap)
        ensure_topics(config)
        if missing is not None:
            print(
                f"   The walk-forward example needs the examples extra ({missing} is not "
                "installed): pip install 'runstream[examples]'. Recording the seed's one "
                "example run instead."
            )
        if grid:
            code = _walk_forward(broker.bootstrap, config, jvm_log, windows)
        else:
            code = _seed_run(broker.bootstrap, config, jvm_log)
    finally:
        if started and not keep_broker:
            broker.down()
            print("Kafka stopped")
    print(f"\nEnd to end: {time.monotonic() - began:.0f} s")
    print(next_steps(broker.bootstrap, kept=keep_broker or not started, walk_forward=grid))
    return code


def _seed_run(bootstrap: str, config: JobConfig, jvm_log: Path | None) -> int:
    """Emit the seed's example run, run the job once, print the row read back."""
    from runstream.consumer.job import start
    from runstream.consumer.session import spark_session
    from runstream.producer.emitter import Emitter

    experiment = seed_experiment()
    emitter = Emitter(bootstrap_servers=bootstrap)
    receipt = emitter.emit_run(experiment)
    print(f"2. emit_run() returned; durable in {emitter.spool.root}: {receipt.experiment_id}")
    left = emitter.close(timeout_s=60)
    print(f"3. sent to topic {emitter.topic!r} ({left} left in the spool)")

    spark = spark_session("runstream-demo", jvm_log=jvm_log)
    try:
        start(spark, config, once=True).awaitTermination()
        print(f"4. streaming job ran once into {config.tables.runs}")
        row = spark.sql(
            f"SELECT * FROM {config.tables.runs} WHERE experiment_id = '{receipt.experiment_id}'"
        ).collect()
        if not row:
            print("the run is not in the table")
            return 1
        print("5. the run, read back from Delta:")
        for key, value in row[0].asDict().items():
            print(f"   {key:>24} = {value}")
        total = spark.sql(f"SELECT count(*) AS n FROM {config.tables.runs}").first()
        print(f"   ({total['n'] if total else 0} run(s) in the table so far)")
    finally:
        spark.stop()
    return 0


def _walk_forward(bootstrap: str, config: JobConfig, jvm_log: Path | None, windows: int) -> int:
    """The walk-forward grid through emit_runs, the job once, the seed's queries, the
    dashboard. Returns 0 when every planned run landed in the table."""
    from runstream.consumer.job import start
    from runstream.consumer.session import spark_session
    from runstream.examples import models, prices, walk_forward
    from runstream.producer.emitter import Emitter

    commodities = prices.COMMODITIES
    lines = walk_forward.describe(commodities, windows, list(models.REGISTRY))
    print(f"2. {lines[0]}", *(f"   {line}" for line in lines[1:]), sep="\n", flush=True)
    # The demo records WTI runs: its emitter accepts WTI besides the configured commodities.
    emitter = Emitter(
        bootstrap_servers=bootstrap, commodities=walk_forward.allow_commodities(commodities)
    )
    summary = walk_forward.run(windows=windows, commodities=commodities, emitter=emitter)
    for line in summary.lines():
        print(f"   {line}")
    left = emitter.close(timeout_s=60)
    print(f"3. sent to topic {emitter.topic!r} ({left} left in the spool)", flush=True)

    spark = spark_session("runstream-demo", jvm_log=jvm_log)
    try:
        start(spark, config, once=True).awaitTermination()
        engine = _engine(spark, config)
        ids = ", ".join(f"'{i}'" for i in summary.experiment_ids) or "''"
        landed = engine.sql(f"SELECT COUNT(*) AS n FROM model_runs WHERE experiment_id IN ({ids})")
        total = engine.sql("SELECT COUNT(*) AS n FROM model_runs")
        n, everything = int(landed[0]["n"]), int(total[0]["n"])
        print(
            f"4. streaming job ran once into {config.tables.runs}: {n} of {summary.emitted} "
            f"runs landed ({everything} run(s) in the table so far)"
        )
        _queries(engine, commodities)
        _dashboard(engine, config)
    finally:
        spark.stop()
    return 0 if n == summary.emitted == summary.planned else 1


def _engine(spark: SparkSession, config: JobConfig) -> Any:
    """The light engine (delta-rs) when it can read the tables, as the query verbs choose."""
    from runstream.engines import LightEngine, SparkEngine

    if config.tables.lake is not None and LightEngine.available():
        return LightEngine(config.tables)
    return SparkEngine(spark, config.tables)


def _queries(engine: Any, commodities: tuple[str, ...]) -> None:
    """The seed's three queries, printed as ``runstream query`` prints them."""
    from runstream.engines import LightEngine, named_query
    from runstream.examples import prices
    from runstream.output import print_rows

    how = "light engine" if isinstance(engine, LightEngine) else "Spark engine"
    print(f"5. the seed's three queries ({how}, as `runstream query` runs them):")
    for name in ("best", "history"):
        for commodity in commodities:
            synthetic = " (SYNTHETIC prices)" if prices.load(commodity).synthetic else ""
            print(f"\n   runstream query {name} --commodity {commodity}{synthetic}")
            print_rows(named_query(engine, name, commodity=commodity), "table")
    print("\n   runstream query prune (every commodity)")
    print_rows(named_query(engine, "prune"), "table")


def _dashboard(engine: Any, config: JobConfig) -> None:
    from runstream.dashboard import write_dashboard
    from runstream.errors import SetupError

    path = env.home() / "model_runs_dashboard.html"
    try:
        written = write_dashboard(engine, config.tables.runs, path)
    except SetupError as exc:
        print(f"6. no dashboard: {exc}")
        return
    print(f"\n6. dashboard written to {written} (open it in a browser)")


def next_steps(bootstrap: str, *, kept: bool, walk_forward: bool = False) -> str:
    """What to try after the demo, with the command path this environment installed."""
    installed = Path(sys.executable).with_name("runstream")
    cli = str(installed) if installed.exists() else "runstream"
    python = sys.executable
    if installed.exists() and installed.is_relative_to(Path.cwd()):
        cli = str(installed.relative_to(Path.cwd()))
        python = str(Path(sys.executable).relative_to(Path.cwd()))
    broker = f"Kafka runs at {bootstrap}" if kept else f"`{cli} kafka up` starts Kafka again"
    history = [f"  {cli} query history --commodity WTI   the seed's history query, for WTI"]
    full = [
        f"  {python} -m runstream.examples.walk_forward --windows 40   the seed's whole "
        "plan, 2,000 runs"
    ]
    return "\n".join([
        "",
        f"Next ({broker}; state in {env.home()}):",
        f"  {cli} query best --json      the seed's best-models query, from the same table",
        *(history if walk_forward else []),
        f"  {cli} dashboard              an HTML page of the table's questions",
        f"  {cli} kafka up               keep a broker running for emit_run() from Python",
        *(full if walk_forward else []),
        f"  {cli} consume                the streaming job, until Ctrl-C",
    ])  # fmt: skip
