"""Output for people and programs: a text table that fits 100 columns, JSON Lines with the
query's keys in order, CSV with a header."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import datetime

import pytest

from runstream.output import TABLE_WIDTH, print_rows

WIDE = [
    {"model_name": "sarimax_auto_weather_with_a_very_long_name_v1", "model_version": "v1",
     "mae_14day": 3.1, "directional_accuracy": 0.695, "execution_time_seconds": 45.2,
     "run_timestamp": datetime(2025, 1, 6, 9, 0, 1, 123456), "notes": "n" * 80, "x": None},
    {"model_name": "naive", "model_version": "v2", "mae_14day": 5.0,
     "directional_accuracy": None, "execution_time_seconds": 1.0,
     "run_timestamp": datetime(2025, 1, 7), "notes": None, "x": 1},
]  # fmt: skip


def test_the_table_fits_a_100_column_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    assert print_rows(WIDE, "table") == 2
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert all(len(line) <= TABLE_WIDTH for line in lines), [len(line) for line in lines]
    assert lines[0].startswith("model_name") and "…" in lines[1]
    assert "2025-01-06 09:00:01" in lines[1]  # times to the second


def test_json_is_one_object_per_row_with_the_querys_keys_in_order(
    capsys: pytest.CaptureFixture[str],
) -> None:
    print_rows(WIDE, "json")
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [list(r) for r in rows] == [list(WIDE[0]), list(WIDE[1])]
    assert rows[1]["directional_accuracy"] is None


def test_csv_has_a_header_and_every_row(capsys: pytest.CaptureFixture[str]) -> None:
    print_rows(WIDE, "csv")
    parsed = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert parsed[0] == list(WIDE[0])
    assert parsed[2][0] == "naive" and parsed[2][3] == "" and len(parsed) == 3


def test_a_reader_that_stops_reading_is_no_error() -> None:
    """`runstream schema | head -1`: the pipe closes before the output is written."""
    child = subprocess.Popen(
        [sys.executable, "-m", "runstream", "schema"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()
    stderr = child.stderr.read().decode()
    assert child.wait(timeout=60) == 0
    assert stderr == ""
