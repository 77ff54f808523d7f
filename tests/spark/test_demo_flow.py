"""The README's demo flow, then the user's next command, in one environment: it finds the run.

`make demo` runs `runstream jars` and `runstream demo` and sets no RUNSTREAM_* variable
(tests/unit/test_settings.py), so here both commands run with the defaults a user gets: no
RUNSTREAM_HOME, a data home of the test's own (XDG_DATA_HOME), from a checkout-like folder.
Then `runstream query best --json`, from the same folder and environment, must print the
demo's run. The demo's broker listens on a free port so it cannot meet another broker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from runstream import environment_variables as env
from runstream.devtools.kafka_broker import free_port


def test_query_after_the_demo_finds_the_demos_run(tmp_path: Path) -> None:
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
    emitted = next(line for line in demo.stdout.splitlines() if "emit_run() returned" in line)
    experiment_id = emitted.rsplit(": ", 1)[1].strip()
    assert "query best --json" in demo.stdout, "the demo ends by saying what to run next"

    query = runstream("query", "best", "--json")
    assert query.returncode == 0, query.stdout + query.stderr
    rows = [json.loads(line) for line in query.stdout.splitlines()]
    assert [r["model_name"] for r in rows] == ["sarimax_auto_weather_v1"]
    assert rows[0]["mae_14day"] == 3.1
    assert (tmp_path / "data" / "runstream" / "lake" / "model_runs").is_dir()
    assert experiment_id, "the demo printed the run's id"
