"""The README's demo flow, then the user's next commands, in one environment: they find the
demo's runs.

`make demo` runs `runstream jars` and `runstream demo` and sets no RUNSTREAM_* variable
(tests/unit/test_settings.py), so here every command runs with the defaults a user gets: no
RUNSTREAM_HOME, a data home of the test's own (XDG_DATA_HOME), from a checkout-like folder.
The demo runs the walk-forward example's reduced grid (4 windows x 25 models x 2 commodities);
then `runstream query ... --json`, from the same folder and environment, must count its 200
runs and list its best ones. `runstream demo --windows 0` (also what an install without the
examples extra runs) records the seed's one example run into the same table, and `query best`
finds it too. The demo's broker listens on a free port so it cannot meet another broker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from runstream import environment_variables as env
from runstream.devtools.kafka_broker import free_port
from runstream.examples.models import REGISTRY


def test_queries_after_the_demo_find_the_demos_runs(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_") or k in (
            env.RUNSTREAM_CACHE_DIR.name, env.RUNSTREAM_TEST_BOOTSTRAP.name)
    }  # fmt: skip
    environment["XDG_DATA_HOME"] = str(tmp_path / "data")
    environment[env.RUNSTREAM_CACHE_DIR.name] = str(env.RUNSTREAM_CACHE_DIR.get_path())

    def runstream(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "runstream", *argv], cwd=checkout, env=environment,
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip

    assert runstream("jars").returncode == 0
    demo = runstream("demo", "--port", str(free_port()))
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "Traceback" not in demo.stdout + demo.stderr
    assert "200 of 200 runs landed" in demo.stdout, demo.stdout
    shown = ("query best --commodity WTI", "query history --commodity Coffee (SYNTHETIC",
             "runstream query prune", "dashboard written to", "End to end: ")  # fmt: skip
    assert all(line in demo.stdout for line in shown), demo.stdout
    assert "query best --json" in demo.stdout, "the demo ends by saying what to run next"
    assert "-m runstream.examples.walk_forward --windows 40" in demo.stdout
    data = tmp_path / "data" / "runstream"
    assert (data / "lake" / "model_runs").is_dir()
    assert "<svg" in (data / "model_runs_dashboard.html").read_text()

    def rows(*argv: str) -> list[dict[str, Any]]:
        done = runstream("query", *argv, "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        return [json.loads(line) for line in done.stdout.splitlines()]

    for commodity in ("WTI", "Coffee"):
        history = rows("history", "--commodity", commodity)
        assert sum(r["total_experiments"] for r in history) == 100
    best = rows("best")  # the seed's query as written: Coffee
    assert best and all(r["model_name"] in REGISTRY for r in best)

    seed = runstream("demo", "--port", str(free_port()), "--windows", "0")
    assert seed.returncode == 0, seed.stdout + seed.stderr
    emitted = next(line for line in seed.stdout.splitlines() if "emit_run() returned" in line)
    experiment_id = emitted.rsplit(": ", 1)[1].strip()
    assert experiment_id, "the demo printed the run's id"
    assert "201 run(s) in the table so far" in seed.stdout
    seeds = [r for r in rows("best") if r["model_name"] == "sarimax_auto_weather_v1"]
    assert [r["mae_14day"] for r in seeds] == [3.1]
