"""``runstream demo``: the whole path on this machine, with the seed's example run.

Starts the local broker (unless one runs), emits the seed's example with ``emit_run``, runs the
streaming job once, prints the row read back from the Delta table, and what to run next. It
uses the same settings as every other command, so that next command finds the demo's table.
"""

from __future__ import annotations

import sys
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from runstream import environment_variables as env


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


def run_demo(port: int = 9092, keep_broker: bool = False, jvm_log: Path | None = None) -> int:
    """The demo; ``jvm_log`` receives the JVM's own output (see ``spark_session``)."""
    from runstream.consumer.job import JobConfig, ensure_topics, start
    from runstream.consumer.session import spark_session
    from runstream.devtools.kafka_broker import LocalBroker
    from runstream.producer.emitter import Emitter

    broker = LocalBroker.in_folder(env.home() / "kafka", port=port)
    started = broker.up()
    print(f"1. Kafka at {broker.bootstrap} ({'started' if started else 'already running'})")
    try:
        config = JobConfig.from_env(bootstrap_servers=broker.bootstrap)
        ensure_topics(config)
        experiment = seed_experiment()
        emitter = Emitter(bootstrap_servers=broker.bootstrap)
        receipt = emitter.emit_run(experiment)
        print(f"2. emit_run() returned; durable in {emitter.spool.root}: {receipt.experiment_id}")
        left = emitter.close(timeout_s=60)
        print(f"3. sent to topic {emitter.topic!r} ({left} left in the spool)")

        spark = spark_session("runstream-demo", jvm_log=jvm_log)
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
        spark.stop()
    finally:
        if started and not keep_broker:
            broker.down()
            print("6. Kafka stopped")
    print(next_steps(broker.bootstrap, kept=keep_broker or not started))
    return 0


def next_steps(bootstrap: str, *, kept: bool) -> str:
    """What to try after the demo, with the command path this environment installed."""
    installed = Path(sys.executable).with_name("runstream")
    cli = str(installed) if installed.exists() else "runstream"
    if installed.exists() and installed.is_relative_to(Path.cwd()):
        cli = str(installed.relative_to(Path.cwd()))
    broker = f"Kafka runs at {bootstrap}" if kept else f"`{cli} kafka up` starts Kafka again"
    return "\n".join([
        "",
        f"Next ({broker}; state in {env.home()}):",
        f"  {cli} query best --json      the seed's best-models query, from the same table",
        f"  {cli} dashboard              an HTML page of the table's questions",
        f"  {cli} kafka up               keep a broker running for emit_run() from Python",
        f"  {cli} consume                the streaming job, until Ctrl-C",
    ])  # fmt: skip
