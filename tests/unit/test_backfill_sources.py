"""Reading historical runs from files: every format, the CSV mapping rules, --map, bad records
reported where they are, and memory that stays flat in the file's size."""

from __future__ import annotations

import csv
import io
import json
import sys
import tracemalloc
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from runstream import backfill_sources
from runstream.backfill import backfill, prepare_event
from runstream.backfill_sources import (
    Row,
    field_kinds,
    open_source,
    parse_mapping,
    read_text_value,
)
from runstream.errors import InputError, SetupError


def history(n: int, **changes: Any) -> list[dict[str, Any]]:
    """``n`` valid historical runs (distinct), as a file would hold them."""
    return [
        {
            "model_name": f"model_{i % 7}", "model_version": "v1", "model_type": "SARIMAX",
            "run_timestamp": f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T09:00:00+00:00",
            "training_start_date": "2022-01-01", "training_end_date": "2023-12-31",
            "forecast_horizon_days": 14, "commodity": "Sugar", "mae_14day": 2.0 + i / 1000,
            "hyperparameters": {"order": "(1,1,1)", "window": i},
            "feature_config": {"weather": i % 2 == 0}, "notes": "backfilled " * 5,
            **changes,
        }
        for i in range(n)
    ]  # fmt: skip


def rows(path: Path, fmt: str = "auto", mapping: dict[str, str] | None = None) -> list[Row]:
    return list(open_source(str(path), fmt, mapping).rows())


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


# -- JSON Lines ----------------------------------------------------------------------------------
def test_json_lines_each_line_a_run_a_bad_line_reported_by_its_number(tmp_path: Path) -> None:
    good = history(3)
    path = tmp_path / "old.jsonl"
    path.write_text(
        json.dumps(good[0]) + "\n\n" + "{oops\n" + json.dumps(good[1]) + "\r\n"
        + json.dumps(good[2]) + "\n"
    )  # fmt: skip
    found = rows(path)
    assert [r.where for r in found] == ["line 1", "line 3", "line 4", "line 5"]
    assert [r.record for r in found if not r.problems] == good
    assert found[1].record is None and "not JSON" in found[1].problems[0]


def test_a_json_lines_file_is_read_as_such_whatever_its_name(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "runs.txt", history(2))
    source = open_source(str(path))
    assert source.format == "jsonl"
    assert [r.record for r in source.rows()] == history(2)


# -- JSON ------------------------------------------------------------------------------------------
def test_json_array_items_with_their_line_and_bad_items_in_between(tmp_path: Path) -> None:
    good = history(2)
    path = tmp_path / "old.json"
    path.write_text(
        "[\n" + json.dumps(good[0], indent=2) + ",\n"
        + '{"model_name": "x",}' + ",\n"  # a trailing comma: this item only
        + "42,\n" + json.dumps(good[1]) + "\n]\n"
    )  # fmt: skip
    found = rows(path)
    after = 2 + len(json.dumps(good[0], indent=2).splitlines())  # the first item's lines
    assert [r.where for r in found] == [
        "item 1 (line 2)", f"item 2 (line {after})", f"item 3 (line {after + 1})",
        f"item 4 (line {after + 2})",
    ]  # fmt: skip
    assert found[0].record == good[0] and found[3].record == good[1]
    assert "not valid JSON" in found[1].problems[0]
    assert found[2].record == 42  # not a run: rejected by validation, by its number


def test_a_json_array_broken_between_items_ends_the_file_with_a_reason(tmp_path: Path) -> None:
    good = history(3)
    path = tmp_path / "old.json"
    path.write_text(f"[{json.dumps(good[0])}\n{json.dumps(good[1])}, {json.dumps(good[2])}]")
    found = rows(path)
    assert found[0].record == good[0]
    assert found[1].where == "line 2" and "expected ',' or ']' after item 1" in found[1].problems[0]
    assert "the rest of the file was not read" in found[1].problems[0]
    assert len(found) == 2


def test_a_cut_short_json_array_says_so(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    path.write_text("[" + json.dumps(history(1)[0]) + ', {"model_name": "half')
    found = rows(path)
    assert found[0].record == history(1)[0]
    assert found[1].where == "item 2 (line 1)" and "cut short" in found[1].problems[0]


def test_one_pretty_printed_object_and_objects_one_after_another(tmp_path: Path) -> None:
    runs = history(3)
    path = tmp_path / "one.json"
    path.write_text(json.dumps(runs[0], indent=2))
    assert [r.record for r in rows(path)] == runs[:1]
    path.write_text("\n".join(json.dumps(r, indent=1) for r in runs))
    found = rows(path)
    assert [r.record for r in found] == runs
    assert found[1].where.startswith("item 2 (line ")


@pytest.mark.parametrize("chunk", [1, 3, 7, 64])
def test_the_array_scanner_cuts_items_right_at_any_chunk_boundary(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tiny chunks put every boundary everywhere: inside strings, escapes, nested brackets."""
    monkeypatch.setattr(backfill_sources, "CHUNK", chunk)
    items = [
        {"notes": 'a "quoted" \\ back\\slash ] } [ {', "nested": {"a": [1, {"b": "]"}]}},
        [1, 2, "x,y"],
        'a string, with ] and \\" inside',
        -12.5e3,
        {"unicode": "caf\u00e9 \u2603", "escaped": "\\u00e9"},
        None,
    ]
    text = "[\n " + ",\n  ".join(json.dumps(i) for i in items) + "\n]\n"
    found = list(backfill_sources._json_values(io.StringIO(text), array=True))
    assert [r.record for r in found] == items
    assert [r.where for r in found] == [f"item {n} (line {n + 1})" for n in range(1, 7)]


def test_an_oversized_item_is_skipped_unread_and_the_next_one_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(backfill_sources, "CHUNK", 16)
    monkeypatch.setattr(backfill_sources, "MAX_RECORD_BYTES", 100)
    small = {"model_name": "small"}
    text = json.dumps([{"notes": "x" * 500}, small, {"a": [{"b": "y" * 300}]}, small])
    found = list(backfill_sources._json_values(io.StringIO(text), array=True))
    assert [r.record for r in found] == [None, small, None, small]
    assert "longer than" in found[0].problems[0] and "skipped unread" in found[2].problems[0]


def test_an_oversized_line_is_skipped_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backfill_sources, "MAX_RECORD_BYTES", 200)
    path = tmp_path / "old.jsonl"
    path.write_text(json.dumps({"notes": "x" * 1000}) + "\n" + json.dumps({"a": 1}) + "\n")
    found = rows(path)
    assert [r.where for r in found] == ["line 1", "line 2"]
    assert found[0].record is None and "longer than" in found[0].problems[0]
    assert found[1].record == {"a": 1}


# -- CSV ---------------------------------------------------------------------------------------
def write_csv(path: Path, header: list[str], *lines: list[str]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(lines)
    return path


CSV_HEADER = [
    "model_name", "model_version", "model_type", "commodity", "run_timestamp",
    "training_start_date", "training_end_date", "forecast_horizon_days", "mae_14day",
    "beats_baseline", "hyperparameters", "feature_config", "notes",
]  # fmt: skip


def test_csv_cells_are_read_by_the_field_table_types(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "old.csv", CSV_HEADER,
        ["arima", "v1", "SARIMAX", "Coffee", "2024-01-15T09:00:00Z", "2022-01-01",
         "2024-01-14", "14", "2.5", "TRUE", "order=(1,1,1); trend = c", "weather=yes;fx=0",
         "multi\nline, with comma"],
        ["naive", "v1", "Naive", "Coffee", "2024-01-15 09:00:00+01:00", "2022-01-01",
         "2024-01-14", "14.0", "", "0", '{"window": 30, "method": "last"}',
         '{"weather": false}', ""],
    )  # fmt: skip
    first, second = rows(path)
    assert first.where == "line 2" and second.where == "line 4"  # the quoted line break
    assert first.problems == () and second.problems == ()
    assert first.record["forecast_horizon_days"] == 14
    assert first.record["mae_14day"] == 2.5 and first.record["beats_baseline"] is True
    assert first.record["hyperparameters"] == {"order": "(1,1,1)", "trend": "c"}
    assert first.record["feature_config"] == {"weather": True, "fx": False}
    assert first.record["notes"] == "multi\nline, with comma"
    assert first.record["run_timestamp"] == "2024-01-15T09:00:00+00:00"  # Z made explicit
    assert second.record["forecast_horizon_days"] == 14
    assert second.record["mae_14day"] is None and second.record["notes"] is None  # empty: null
    assert second.record["beats_baseline"] is False
    assert second.record["hyperparameters"] == {"window": 30, "method": "last"}
    assert second.record["feature_config"] == {"weather": False}
    # and they validate: ISO dates and timestamps, maps as the contract wants them
    one, two = prepare_event(first.record), prepare_event(second.record)
    assert one["run"]["run_timestamp"] == datetime(2024, 1, 15, 9, tzinfo=timezone.utc)
    assert two["run"]["run_timestamp"] == datetime(2024, 1, 15, 8, tzinfo=timezone.utc)
    assert one["run"]["training_end_date"] == date(2024, 1, 14)
    assert two["run"]["hyperparameters"] == {"window": "30", "method": "last"}


def test_a_csv_run_and_the_same_run_as_json_are_the_same_event(tmp_path: Path) -> None:
    run = history(1)[0]
    cells = {**run, "hyperparameters": "order=(1,1,1);window=0", "feature_config": "weather=1"}
    path = write_csv(tmp_path / "one.csv", list(cells), [str(v) for v in cells.values()])
    (row,) = rows(path)
    assert prepare_event(row.record)["event_id"] == prepare_event(run)["event_id"]


def test_bad_csv_cells_are_reported_by_line_and_column_and_the_row_goes_no_further(
    tmp_path: Path,
) -> None:
    path = write_csv(
        tmp_path / "old.csv", ["model_name", "forecast_horizon_days", "beats_baseline",
                               "mae_14day", "hyperparameters"],
        ["a", "fourteen", "maybe", "abc", "order"],
        ["b", "14", "true", "1.5", "p=1", "an extra cell"],
    )  # fmt: skip
    bad, extra = rows(path)
    assert bad.where == "line 2" and extra.where == "line 3"
    assert bad.problems == (
        "forecast_horizon_days: 'fourteen' is not a whole number",
        "beats_baseline: 'maybe' is not true or false (true/false, 1/0, yes/no)",
        "mae_14day: 'abc' is not a number",
        "hyperparameters: 'order' is not key=value; write key=value;key=value or a JSON object",
    )
    assert bad.unread == {"forecast_horizon_days", "beats_baseline", "mae_14day",
                          "hyperparameters"}  # fmt: skip
    assert "forecast_horizon_days" not in bad.record
    assert extra.record is None and "6 cells, but the header has 5 columns" in extra.problems[0]


def test_csv_header_problems_fail_before_any_row(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", ["model_name", "mae14"], ["x", "1"])
    with pytest.raises(InputError, match=r"'mae14' is not a model_runs column; --map mae_14day"):
        open_source(str(path))
    path = write_csv(tmp_path / "b.csv", ["", "model_name"], ["0", "x"])
    with pytest.raises(InputError, match="column 1 has no name"):
        open_source(str(path))
    path = write_csv(tmp_path / "c.csv", ["model_name", "model_name"], ["x", "y"])
    with pytest.raises(InputError, match="appears twice"):
        open_source(str(path))


def test_map_fills_fields_from_other_columns_in_every_format(tmp_path: Path) -> None:
    mapping = parse_mapping(["model_name=Model", "mae_14day=MAE 14"])
    path = write_csv(tmp_path / "m.csv", ["Model", "MAE 14", "commodity"], ["arima", "2.5", "x"])
    (row,) = rows(path, mapping=mapping)
    assert row.record == {"model_name": "arima", "mae_14day": 2.5, "commodity": "x"}
    path = write_jsonl(tmp_path / "m.jsonl", [{"Model": "arima", "MAE 14": 2.5}])
    (row,) = rows(path, mapping=mapping)
    assert row.record == {"model_name": "arima", "mae_14day": 2.5}
    path = write_jsonl(tmp_path / "both.jsonl", [{"Model": "a", "model_name": "b"}])
    (row,) = rows(path, mapping=mapping)
    assert "model_name is given twice" in row.problems[0]


def test_map_mistakes_are_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="did you mean 'model_name'"):
        parse_mapping(["model_nme=Model"])
    with pytest.raises(InputError, match="must be FIELD=COLUMN"):
        parse_mapping(["model_name"])
    with pytest.raises(InputError, match="gives model_name twice"):
        parse_mapping(["model_name=a", "model_name=b"])
    path = write_csv(tmp_path / "m.csv", ["model_name"], ["x"])
    with pytest.raises(InputError, match="has no column 'Model'"):
        open_source(str(path), mapping={"model_name": "Model"})
    path = write_jsonl(tmp_path / "m.jsonl", [{"model_name": "x"}])
    source = open_source(str(path), mapping={"mae_14day": "MAE"})
    list(source.rows())
    assert source.notes == ["--map mae_14day=MAE: no record has the key 'MAE'"]


def test_text_values_follow_the_field_table() -> None:
    kinds = field_kinds()
    assert kinds["forecast_horizon_days"] == "integer" and kinds["mae_1day"] == "number"
    assert kinds["beats_baseline"] == "boolean" and kinds["training_end_date"] == "date"
    assert kinds["run_timestamp"] == "timestamp" and kinds["hyperparameters"] == "map:text"
    assert kinds["feature_config"] == "map:boolean" and kinds["experiment_id"] == "text"
    assert read_text_value("number", "  ") is None
    assert read_text_value("list:integer", "1; 2;3") == [1, 2, 3]
    assert read_text_value("list:text", '["a", "b;c"]') == ["a", "b;c"]
    with pytest.raises(ValueError, match="is not JSON"):
        read_text_value("map:text", "{not json")


# -- Parquet -----------------------------------------------------------------------------------
def test_parquet_by_row_batches_with_maps_decimals_and_text_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    from decimal import Decimal

    monkeypatch.setattr(backfill_sources, "PARQUET_BATCH_ROWS", 2)
    n = 5
    table = pa.table({
        "Model": [f"m{i}" for i in range(n)],
        "model_version": ["v1"] * n, "model_type": ["SARIMAX"] * n, "commodity": ["Sugar"] * n,
        "run_timestamp": pa.array([datetime(2024, 1, 1 + i, tzinfo=timezone.utc)
                                   for i in range(n)], pa.timestamp("us", tz="UTC")),
        "training_start_date": pa.array([date(2022, 1, 1)] * n, pa.date32()),
        "training_end_date": ["2023-12-31"] * n,
        "forecast_horizon_days": pa.array([14.0] * n),  # pandas' floats for whole numbers
        "mae_14day": pa.array([Decimal("2.50")] * (n - 1) + [None], pa.decimal128(5, 2)),
        "hyperparameters": pa.array([[("p", "1")]] * n, pa.map_(pa.string(), pa.string())),
        "feature_config": ["weather=true"] * (n - 1) + ["weather=perhaps"],
        "__index_level_0__": list(range(n)),
    })  # fmt: skip
    path = tmp_path / "old.parquet"
    pq.write_table(table, path)
    source = open_source(str(path), mapping={"model_name": "Model"})
    assert (source.format, source.total, source.unit) == ("parquet", n, "rows")
    found = list(source.rows())
    assert [r.where for r in found] == [f"row {i}" for i in range(1, n + 1)]
    assert source.position() == n
    first = found[0].record
    assert first["model_name"] == "m0" and first["forecast_horizon_days"] == 14
    assert first["mae_14day"] == 2.5 and first["hyperparameters"] == {"p": "1"}
    assert first["feature_config"] == {"weather": True} and "__index_level_0__" not in first
    assert prepare_event(first)["run"]["training_start_date"] == date(2022, 1, 1)
    assert found[-1].record["mae_14day"] is None
    assert found[-1].problems == ("feature_config: 'perhaps' is not true or false "
                                  "(true/false, 1/0, yes/no)",)  # fmt: skip


def test_parquet_without_pyarrow_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.parquet"
    path.write_bytes(b"PAR1" + b"\0" * 16 + b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(SetupError, match=r"pip install 'runstream\[parquet\]'"):
        open_source(str(path))


# -- files that cannot be read ---------------------------------------------------------------
def test_missing_empty_folder_and_utf16_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        open_source(str(tmp_path / "nope.csv"))
    with pytest.raises(InputError, match="is a folder"):
        open_source(str(tmp_path))
    (tmp_path / "empty.jsonl").write_text("\n  \n")
    with pytest.raises(InputError, match="is empty"):
        open_source(str(tmp_path / "empty.jsonl"))
    (tmp_path / "wide.csv").write_text("model_name\nx\n", encoding="utf-16")
    with pytest.raises(InputError, match="UTF-16"):
        open_source(str(tmp_path / "wide.csv"))


def test_a_byte_that_is_not_utf8_spoils_its_run_only(tmp_path: Path) -> None:
    runs = history(2)
    path = tmp_path / "old.jsonl"
    lines = [json.dumps(r).encode() for r in runs]
    lines[0] = lines[0].replace(b"backfilled", b"backfill\xe9d", 1)
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = backfill(open_source(str(path)).rows(), dry_run=True)
    assert (result.to_send, result.invalid) == (1, 1)
    assert result.invalid_rows[0].where == "line 1"
    assert "notes is not valid UTF-8 text" in result.invalid_rows[0].reason


# -- memory ------------------------------------------------------------------------------------
def _peak(func: Any) -> int:
    tracemalloc.start()
    try:
        func()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _write(path: Path, fmt: str, n: int) -> Path:
    runs = history(n)
    if fmt == "jsonl":
        return write_jsonl(path, runs)
    if fmt == "json":
        with path.open("w") as handle:  # written item by item: no n-sized string here either
            handle.write("[\n")
            for i, run in enumerate(runs):
                handle.write(("," if i else "") + json.dumps(run, indent=2) + "\n")
            handle.write("]\n")
        return path
    flat = [{**r, "hyperparameters": json.dumps(r["hyperparameters"]),
             "feature_config": "weather=1"} for r in runs]  # fmt: skip
    return write_csv(path, list(flat[0]), *[[str(v) for v in r.values()] for r in flat])


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv"])
def test_reading_keeps_memory_flat_in_the_file_size(tmp_path: Path, fmt: str) -> None:
    """The peak of Python allocations while streaming 10x the rows stays that of 1x, far
    below the file's size (a reader that loaded the file, or kept its rows, fails here)."""
    small = _write(tmp_path / f"small.{fmt}", fmt, 2_000)
    large = _write(tmp_path / f"large.{fmt}", fmt, 20_000)

    def read(path: Path) -> None:
        for row in open_source(str(path)).rows():
            assert not row.problems

    read(small)  # warm up: caches, compiled patterns
    peak_small, peak_large = _peak(lambda: read(small)), _peak(lambda: read(large))
    size = large.stat().st_size
    assert size > 3 * 1024 * 1024
    assert peak_large < 1024 * 1024, f"{peak_large} bytes at peak for a {size}-byte file"
    assert peak_large < peak_small * 1.5 + 128 * 1024, (peak_small, peak_large)


def test_a_dry_run_keeps_memory_flat_too(tmp_path: Path) -> None:
    """The whole pipeline (read, validate, build each event) holds no row it is done with."""
    small = _write(tmp_path / "small.jsonl", "jsonl", 500)
    large = _write(tmp_path / "large.jsonl", "jsonl", 5_000)

    def run(path: Path) -> None:
        result = backfill(open_source(str(path)).rows(), dry_run=True)
        assert result.to_send == result.read

    run(small)
    peak_small, peak_large = _peak(lambda: run(small)), _peak(lambda: run(large))
    assert peak_large < peak_small * 1.5 + 128 * 1024, (peak_small, peak_large)
