"""``runstream backfill`` against a real broker, as a user runs it: a CSV lands on the replay
topic (the invalid row listed, the rest sent), a second run sends nothing (every run "already
sent"), a corrected row is the only thing a third run sends, and an unreachable broker fails
at once with one line and exit 3."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runstream import contract
from runstream.backfill import prepare_event
from runstream.backfill_sources import open_source
from runstream.cli import EXIT_MISSING, EXIT_OK, EXIT_USAGE
from runstream.devtools.kafka_broker import free_port
from runstream.devtools.testkit import read_topic

HEADER = ["model", "model_version", "model_type", "commodity", "run_timestamp",
          "training_start_date", "training_end_date", "forecast_horizon_days", "mae_14day",
          "beats_baseline", "hyperparameters", "feature_config"]  # fmt: skip


def _rows(n: int) -> list[list[str]]:
    return [
        [f"model_{i}", "v1", "SARIMAX", "Coffee", f"2024-03-{1 + i % 28:02d}T09:00:00Z",
         "2022-01-01", "2024-02-28", "14", f"{2 + i / 100:.2f}", "yes" if i % 2 else "no",
         f"order=(1,1,{i % 3});trend=c", '{"weather": true}']
        for i in range(n)
    ]  # fmt: skip


def _write(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)


def _cli(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runstream", "backfill", *argv],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "RUNSTREAM_HOME": str(tmp_path / "home")},
    )  # fmt: skip


def _end_offset(bootstrap: str, topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


def _expected_ids(path: Path) -> list[str]:
    """The event ids of the file's valid rows, computed the way the backfill derives them."""
    ids = []
    for row in open_source(str(path), mapping={"model_name": "model"}).rows():
        if not row.problems:
            ids.append(prepare_event(row.record)["event_id"])
    return ids


def test_a_csv_lands_a_rerun_sends_nothing_a_fixed_row_alone_goes(
    kafka_bootstrap: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = new_topic("replay")
    rows = _rows(30)
    rows[11][7] = "fourteen"  # line 13: one bad cell
    path = tmp_path / "history.csv"
    _write(path, rows)
    argv = [str(path), "--map", "model_name=model", "--topic", topic,
            "--bootstrap-servers", kafka_bootstrap]  # fmt: skip

    first = _cli(tmp_path, *argv, "--json")
    assert first.returncode == EXIT_USAGE, first.stderr
    summary: dict[str, Any] = json.loads(first.stdout)
    assert (summary["sent"], summary["skipped"], summary["invalid"]) == (29, 0, 1)
    assert summary["invalid_rows"] == [{
        "where": "line 13",
        "reason": "forecast_horizon_days: 'fourteen' is not a whole number",
    }]  # fmt: skip
    assert first.stderr.splitlines() == [
        f"runstream: {path} line 13: forecast_horizon_days: 'fourteen' is not a whole number"
    ]  # one line per invalid row, no progress bar (stderr is not a terminal)
    records = read_topic(kafka_bootstrap, topic, expected=29)
    events = [contract.decode(r.value) for r in records]
    assert sorted(e["event_id"] for e in events) == sorted(_expected_ids(path))
    assert {e["source"] for e in events} == {"backfill"}
    assert all(r.key == e["experiment_id"].encode() for r, e in zip(records, events, strict=True))
    by_name = {e["run"]["model_name"]: e["run"] for e in events}
    assert by_name["model_1"]["hyperparameters"] == {"order": "(1,1,1)", "trend": "c"}
    assert by_name["model_1"]["beats_baseline"] is True
    assert by_name["model_2"]["feature_config"] == {"weather": True}

    again = _cli(tmp_path, *argv)
    assert again.returncode == EXIT_USAGE, again.stderr
    assert again.stdout.startswith(f"{path}: 0 run(s) sent to {topic}, 29 already sent (skipped)")
    assert _end_offset(kafka_bootstrap, topic) == 29  # nothing more on the topic

    rows[11][7] = "14"
    _write(path, rows)
    fixed = _cli(tmp_path, *argv)
    assert fixed.returncode == EXIT_OK, fixed.stderr
    assert fixed.stdout.startswith(f"{path}: 1 run(s) sent to {topic}, 29 already sent")
    assert fixed.stderr == ""
    (last,) = read_topic(kafka_bootstrap, topic, expected=30)[29:]
    assert contract.decode(last.value)["run"]["model_name"] == "model_11"


def test_an_unreachable_broker_fails_at_once_with_one_line_and_exit_3(tmp_path: Path) -> None:
    path = tmp_path / "history.csv"
    _write(path, _rows(3))
    dead = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    done = _cli(tmp_path, str(path), "--map", "model_name=model", "--bootstrap-servers", dead)
    seconds = time.monotonic() - started
    assert done.returncode == EXIT_MISSING
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert (
        line.startswith(f"runstream: Kafka at {dead} is unreachable") and "nothing was sent" in line
    )
    assert seconds < 15, f"took {seconds:.1f}s"
    assert not (tmp_path / "home" / "backfill").exists()  # no ledger for a broker never reached
