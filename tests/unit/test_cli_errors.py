"""A user's mistake never shows a traceback: each one is one line on stderr and an exit code.

Each case runs the real command line (``python -m runstream``) in a fresh ``RUNSTREAM_HOME``
and checks the documented exit code, one stderr line naming the problem (and its fix), and
no "Traceback" anywhere in the output. None of them needs a broker or Spark: the unreachable
broker is a port where nothing listens, and the missing table is noticed before Spark starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runstream.cli import EXIT_MISSING, EXIT_OK, EXIT_USAGE
from runstream.demo import seed_experiment
from runstream.devtools.kafka_broker import free_port


def _seed_json(**changes: object) -> str:
    run = {**seed_experiment(), **changes}
    run["run_timestamp"] = run["run_timestamp"].isoformat()
    return json.dumps(run)


DEAD = f"127.0.0.1:{free_port()}"  # nothing listens here

# (case id, files to write {name: text}, extra environment, argv, exit code, stderr fragments)
CASES: list[tuple[str, dict[str, str], dict[str, str], list[str], int, tuple[str, ...]]] = [
    ("emit-missing-file", {}, {}, ["emit", "nope.json"], EXIT_USAGE,
     ("nope.json: no such file",)),
    ("emit-folder", {"runs/x": ""}, {}, ["emit", "runs"], EXIT_USAGE, ("runs is a folder",)),
    ("emit-malformed-json", {"bad.json": '{"model_name": '}, {}, ["emit", "bad.json"],
     EXIT_USAGE, ("bad.json is not valid JSON", "line 1")),
    ("emit-empty-file", {"empty.json": "\n"}, {}, ["emit", "empty.json"], EXIT_USAGE,
     ("empty.json is empty",)),
    ("emit-not-an-object", {"n.json": "42"}, {}, ["emit", "n.json"], EXIT_USAGE,
     ("must be a dict of columns, got int",)),
    ("emit-invalid-run", {"r.json": _seed_json(commodity="coffee")}, {}, ["emit", "r.json"],
     EXIT_USAGE, ("did you mean 'Coffee'",)),
    ("emit-one-bad-run-in-a-list",
     {"r.json": f"[{_seed_json()}, {_seed_json(mae_14day=-1)}]"}, {}, ["emit", "r.json"],
     EXIT_USAGE, ("run 2: mae_14day must not be negative",)),
    ("emit-broker-down", {"r.json": _seed_json()}, {"RUNSTREAM_FLUSH_TIMEOUT": "5"},
     ["emit", "r.json", "--bootstrap-servers", DEAD], EXIT_OK,
     (f"Kafka at {DEAD} is unreachable", "safe in", "runstream spool flush")),
    ("backfill-missing-file", {}, {}, ["backfill", "old.jsonl"], EXIT_USAGE,
     ("old.jsonl: no such file",)),
    ("backfill-record-not-an-object", {"old.json": "[[1,2]]"}, {},
     ["backfill", "old.json", "--dry-run"], EXIT_USAGE,
     ("old.json item 1 (line 1): a run must be a JSON object of columns, got list",)),
    ("backfill-bad-json-line", {"old.jsonl": _seed_json() + "\n{oops\n"}, {},
     ["backfill", "old.jsonl", "--dry-run"], EXIT_USAGE, ("old.jsonl line 2: not JSON",)),
    ("backfill-bad-csv-cell", {"old.csv": "model_name,mae_14day\nx,abc\n"}, {},
     ["backfill", "old.csv", "--dry-run"], EXIT_USAGE,
     ("old.csv line 2: mae_14day: 'abc' is not a number",)),
    ("backfill-csv-unknown-column", {"old.csv": "model_name,mae14\nx,1\n"}, {},
     ["backfill", "old.csv"], EXIT_USAGE,
     ("'mae14' is not a model_runs column", "--map mae_14day=mae14")),
    ("backfill-map-without-column", {"old.csv": "model_name\nx\n"}, {},
     ["backfill", "old.csv", "--map", "mae_14day=MAE"], EXIT_USAGE,
     ("--map mae_14day=MAE: old.csv has no column 'MAE'",)),
    ("backfill-not-parquet", {"old.parquet": "model_name\nx\n"}, {},
     ["backfill", "old.parquet"], EXIT_USAGE, ("old.parquet is not a readable Parquet file",)),
    ("backfill-broker-down", {"old.jsonl": _seed_json() + "\n"}, {},
     ["backfill", "old.jsonl", "--bootstrap-servers", DEAD], EXIT_MISSING,
     (f"Kafka at {DEAD} is unreachable", "RUNSTREAM_BOOTSTRAP_SERVERS", "nothing was sent")),
    ("query-before-any-table", {}, {}, ["query", "best"], EXIT_MISSING,
     ("no model_runs table at", "runstream consume --once")),
    ("dashboard-before-any-table", {}, {}, ["dashboard"], EXIT_MISSING,
     ("no model_runs table",)),
    ("maintain-before-any-table", {}, {}, ["maintain"], EXIT_MISSING, ("no model_runs table",)),
    ("rebuild-before-any-table", {}, {}, ["rebuild"], EXIT_MISSING, ("no model_runs table",)),
    ("bad-spool-bound-setting", {}, {"RUNSTREAM_SPOOL_MAX_EVENTS": "lots"},
     ["spool", "status"], EXIT_USAGE, ("RUNSTREAM_SPOOL_MAX_EVENTS must be a number",)),
    ("bad-flush-timeout-setting", {}, {"RUNSTREAM_FLUSH_TIMEOUT": "-1"}, ["spool", "status"],
     EXIT_USAGE, ("RUNSTREAM_FLUSH_TIMEOUT must be a number",)),
    ("kafka-config-not-json", {}, {"RUNSTREAM_KAFKA_CONFIG": "sasl=yes"}, ["spool", "status"],
     EXIT_USAGE, ("RUNSTREAM_KAFKA_CONFIG must be a JSON object",)),
    ("kafka-config-weakens-delivery", {}, {"RUNSTREAM_KAFKA_CONFIG": '{"acks": 1}'},
     ["spool", "status"], EXIT_USAGE, ("may not set 'acks'",)),
    ("unknown-command", {}, {}, ["frobnicate"], EXIT_USAGE, ("invalid choice: 'frobnicate'",)),
    ("bad-option-value", {}, {}, ["query", "best", "--limit", "five"], EXIT_USAGE,
     ("invalid int value: 'five'",)),
    ("missing-argument", {}, {}, ["emit"], EXIT_USAGE, ("the following arguments are required",)),
]  # fmt: skip


def run_cli(
    argv: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "RUNSTREAM_HOME": str(cwd / "home"), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "runstream", *argv],
        cwd=cwd, env=environment, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_there_are_at_least_fifteen_mistakes() -> None:
    assert len({case for case, *_ in CASES}) >= 15


@pytest.mark.parametrize(
    ("files", "env", "argv", "code", "fragments"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_a_mistake_is_one_line_and_an_exit_code(
    tmp_path: Path,
    files: dict[str, str],
    env: dict[str, str],
    argv: list[str],
    code: int,
    fragments: tuple[str, ...],
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    done = run_cli(argv, tmp_path, env)
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    assert done.returncode == code, output
    lines = done.stderr.splitlines()
    assert len(lines) == 1, f"expected one stderr line, got {lines}"
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"


def test_with_v_a_mistake_shows_its_details(tmp_path: Path) -> None:
    done = run_cli(["-v", "emit", "nope.json"], tmp_path)
    assert done.returncode == EXIT_USAGE
    assert "Traceback" in done.stderr and "nope.json: no such file" in done.stderr
