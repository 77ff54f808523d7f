"""``runstream consume --once`` on a real Spark standalone cluster: does it run, and how long?

The issue "a real Spark cluster": the job must run unchanged when ``RUNSTREAM_SPARK_MASTER``
names a cluster, which needs three things ``local[2]`` hides: the connector jars shipped to the
executors (``spark.jars``, served by the driver), lake and checkpoint URIs used as given (the
lake here is a ``file://`` URI), and nothing relative to the driver's working directory (the
CLI runs from an empty folder of its own, which must stay empty).

It starts its own Kafka broker (``LocalBroker``), a master and one worker (1 core, 1 GiB) from
the installed pyspark with ``spark-class``, each in its own process group, produces ``--runs``
run_recorded events, runs the CLI as a user would, and checks:

- the table: the rows read back (delta-rs when installed, the ``query`` extra; else Spark);
- that executors really ran tasks: the master lists the application as completed, and the
  worker's work folder holds the application's executor folder, whose log shows tasks.

The master, the worker and the broker are stopped at the end whatever happens (their process
groups are killed). This lives here, not in the test suite, because one run takes well over
the suite's ~90 s budget on the 2-core development machine (two extra JVMs, executor start-up):
see the README's Deployment section for the figure.

    python bench/bench_standalone_cluster.py [--runs 5]

Exit status 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from runstream import contract
from runstream.consumer.topics import fresh_topic
from runstream.contract import build_event, prepare_run
from runstream.demo import seed_experiment
from runstream.devtools.kafka_broker import LocalBroker, free_port
from runstream.devtools.testkit import kafka_producer, wait_for

START_S = 180.0  # master and worker up, on a busy 2-core machine
RUN_S = 600.0  # the CLI: a driver JVM, an executor JVM, one batch


def spark_class() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "bin" / "spark-class"


def loopback_env() -> dict[str, str]:
    """Every JVM binds to the loopback interface, whatever the host's name resolves to."""
    return {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_NO_DAEMONIZE": "1"}


@contextmanager
def daemon(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A Spark daemon in its own process group (spark-class runs java, which may start more),
    the whole group killed on the way out; its output goes to ``log`` for error messages."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(spark_class()), *args], stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=loopback_env(), start_new_session=True,
        )  # fmt: skip
    try:
        yield proc
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=15)
                break
            except subprocess.TimeoutExpired:
                continue


def master_state(ui_port: int) -> dict[str, Any]:
    """The master's JSON status page (workers, running and completed applications)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=5) as resp:
            return dict(json.load(resp))
    except OSError:
        return {}


@contextmanager
def standalone_cluster(work: Path) -> Iterator[tuple[str, int, Path]]:
    """(master URL, master web UI port, the worker's work folder) of a running cluster."""
    port, ui_port, worker_ui = free_port(), free_port(), free_port()
    master_url = f"spark://127.0.0.1:{port}"
    worker_dir = work / "worker-work"
    logs = work / "cluster-logs"
    logs.mkdir()
    with ExitStack() as stack:
        master = stack.enter_context(daemon(
            ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
             "--port", str(port), "--webui-port", str(ui_port)],
            logs / "master.log",
        ))  # fmt: skip
        worker = stack.enter_context(daemon(
            ["org.apache.spark.deploy.worker.Worker", master_url, "--host", "127.0.0.1",
             "--cores", "1", "--memory", "1g", "--work-dir", str(worker_dir),
             "--webui-port", str(worker_ui)],
            logs / "worker.log",
        ))  # fmt: skip

        def worker_alive() -> bool:
            for proc, name in ((master, "master"), (worker, "worker")):
                if proc.poll() is not None:
                    text = (logs / f"{name}.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"the Spark {name} exited ({proc.returncode}):\n{text}")
            workers = master_state(ui_port).get("workers", [])
            return any(w.get("state") == "ALIVE" for w in workers)

        wait_for(worker_alive, START_S, f"a worker registered with {master_url}")
        yield master_url, ui_port, worker_dir


def produce_runs(bootstrap: str, topic: str, n: int) -> list[str]:
    """``n`` run_recorded events of distinct runs; returns their experiment ids, sorted."""
    when = datetime(2025, 1, 15, tzinfo=timezone.utc)  # after the seed's training window
    _, payload = prepare_run({**seed_experiment(), "run_by": "bench", "run_timestamp": when}, {})
    ids = sorted(str(uuid.uuid4()) for _ in range(n))
    producer = kafka_producer(bootstrap)
    try:
        futures = []
        for k, experiment_id in enumerate(ids):
            run = {**payload, "mae_14day": 1.0 + k}
            event = build_event(contract.RUN_RECORDED, experiment_id, run=run, source="bench")
            value = contract.encode(event)
            futures.append(producer.send(topic, key=experiment_id.encode(), value=value))
        producer.flush(timeout=120)
        for future in futures:
            future.get(timeout=60)
    finally:
        producer.close(timeout=10)
    return ids


def read_ids(lake_uri: str) -> list[str]:
    """experiment_id of every row of model_runs, read through the URI the job was given."""
    try:
        from deltalake import DeltaTable
    except ImportError:
        os.environ["RUNSTREAM_SPARK_MASTER"] = "local[1]"
        from runstream.consumer.session import spark_session

        spark = spark_session("runstream-bench-read")
        try:
            rows = spark.read.format("delta").load(f"{lake_uri}/model_runs").collect()
            return sorted(r["experiment_id"] for r in rows)
        finally:
            spark.stop()
    from deltalake import QueryBuilder  # DataFusion; needs no pyarrow

    table = DeltaTable(f"{lake_uri}/model_runs")
    result = QueryBuilder().register("runs", table).execute("SELECT experiment_id FROM runs")
    return sorted(str(v) for v in result.read_all().column("experiment_id").to_pylist())


def check(condition: bool, what: str, failures: list[str]) -> None:
    print(f"  {'ok  ' if condition else 'FAIL'} {what}", flush=True)
    if not condition:
        failures.append(what)


def run(runs: int, work: Path) -> list[str]:
    failures: list[str] = []
    broker = LocalBroker(work / "kafka", port=free_port(), controller_port=free_port())
    began = time.monotonic()
    broker.up()
    try:
        live = fresh_topic(broker.bootstrap, "cluster-live")
        replay = fresh_topic(broker.bootstrap, "cluster-replay")
        ids = produce_runs(broker.bootstrap, live, runs)
        with standalone_cluster(work) as (master_url, ui_port, worker_dir):
            print(f"cluster up: {master_url} ({time.monotonic() - began:.1f}s since start)")
            lake_uri = (work / "lake").as_uri()  # file:///...
            elsewhere = work / "driver-cwd"  # an empty working directory that must stay so
            elsewhere.mkdir()
            env = {
                **loopback_env(),
                "RUNSTREAM_HOME": str(work / "home"),
                "RUNSTREAM_SPARK_MASTER": master_url,
                "RUNSTREAM_TOPIC": live,
                "RUNSTREAM_REPLAY_TOPIC": replay,
            }
            started = time.monotonic()
            done = subprocess.run(
                [sys.executable, "-m", "runstream", "consume", "--once", "--json",
                 "--bootstrap-servers", broker.bootstrap, "--lake", lake_uri],
                capture_output=True, text=True, env=env, cwd=elsewhere, timeout=RUN_S,
            )  # fmt: skip
            seconds = time.monotonic() - started
            print(f"RUNSTREAM_SPARK_MASTER={master_url} runstream consume --once "
                  f"--lake {lake_uri}: exit {done.returncode}, {seconds:.1f}s")  # fmt: skip
            if done.returncode != 0:
                print(f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}", file=sys.stderr)
                return [f"consume exited {done.returncode}"]
            summary = json.loads(done.stdout.splitlines()[-1])
            rows = read_ids(lake_uri)
            check(summary["runs_in_table"] == runs, f"summary: {runs} rows in the table",
                  failures)  # fmt: skip
            check(rows == ids, f"read back: {len(rows)} rows, the {runs} runs produced", failures)
            check((work / "lake" / "_checkpoints" / "consume" / "commits").is_dir(),
                  "checkpoint under the lake URI", failures)  # fmt: skip
            check(not any(elsewhere.iterdir()), "nothing written to the driver's working "
                  "directory", failures)  # fmt: skip

            def completed() -> list[dict[str, Any]]:
                return list(master_state(ui_port).get("completedapps", []))

            with suppress(AssertionError):  # the check below says what is missing
                wait_for(lambda: bool(completed()), 60, "the master to list a completed app")
            names = [app["name"] for app in completed()]
            check(names == ["runstream-consume"], "the master lists the app as completed", failures)
            app_dirs = [d for d in worker_dir.iterdir() if d.name.startswith("app-")]
            logs = [f.read_text(errors="replace") for d in app_dirs for f in d.glob("*/stderr")]
            jars = " ".join(f.name for d in app_dirs for f in d.glob("*/*.jar"))
            check(len(app_dirs) == 1, "the worker made a folder for the application", failures)
            shipped = "spark-sql-kafka" in jars and "delta-spark" in jars
            check(shipped, "the connector jars were shipped to the executor", failures)
            ran = any("Running task" in text for text in logs)
            check(ran, "the executor's log shows the tasks it ran", failures)
            print(f"\nstandalone cluster: {len(rows)} rows; consume --once {seconds:.1f}s "
                  f"(driver and executor start, one batch); whole run "
                  f"{time.monotonic() - began:.1f}s; {os.cpu_count()} cores, load average "
                  f"{os.getloadavg()[0]:.1f}")  # fmt: skip
    finally:
        broker.down()
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs to produce (default: 5)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args()
    # A SIGTERM (a CI timeout) unwinds like Ctrl-C, so the master, the worker and the broker
    # are still stopped by the context managers and finally blocks below.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    work = Path(tempfile.mkdtemp(prefix="rs-cluster-"))
    try:
        failures = run(args.runs, work)
    finally:
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if failures:
        print(f"FAILED: {'; '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
