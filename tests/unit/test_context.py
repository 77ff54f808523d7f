"""``tracked_run``: timing, infrastructure columns, cost, and a failing block."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from runstream import Emitter, ValidationError, tracked_run
from runstream.demo import seed_experiment
from runstream.devtools.testkit import spooled_events

INFRA = ("execution_time_seconds", "hardware_config", "databricks_cluster_id",
         "cost_estimate_usd", "run_by")  # fmt: skip


def _columns() -> dict[str, Any]:
    """The seed's run minus what tracked_run fills in."""
    run = seed_experiment()
    for key in (*INFRA, "experiment_id", "run_timestamp"):
        run.pop(key, None)
    return run


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("DATABRICKS_CLUSTER_ID", "DB_CLUSTER_ID", "DATABRICKS_NODE_TYPE", "DB_NODE_TYPE",
                "DB_NUM_WORKERS", "DATABRICKS_NUM_WORKERS", "RUNSTREAM_PRICE_TABLE",
                "RUNSTREAM_RUN_BY"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)


def _prices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table: Any) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(table))
    monkeypatch.setenv("RUNSTREAM_PRICE_TABLE", str(path))


def _work() -> int:
    return sum(i * i for i in range(200_000))


def test_the_block_is_timed_into_execution_time_seconds(emitter: Emitter) -> None:
    outer_start = time.perf_counter()
    with tracked_run(emitter, **_columns()) as run:
        inner_start = time.perf_counter()
        _work()
        inner = time.perf_counter() - inner_start
        run["mae_14day"] = 3.1
    outer = time.perf_counter() - outer_start
    (event,) = spooled_events(emitter.spool)
    recorded = event["run"]["execution_time_seconds"]
    print(f"\nblock took {inner:.4f}s inside, {outer:.4f}s outside; recorded {recorded:.4f}s")
    assert inner <= recorded <= outer
    assert event["run"]["mae_14day"] == 3.1
    assert event["experiment_id"] == run["experiment_id"], "the id is known inside the block"


def test_local_hardware_and_the_login_name_are_filled(emitter: Emitter) -> None:
    with tracked_run(emitter, **_columns()):
        pass
    (event,) = spooled_events(emitter.spool)
    run = event["run"]
    assert run["hardware_config"].startswith("local, ") and "cores" in run["hardware_config"]
    assert run["databricks_cluster_id"] is None
    assert run["run_by"]
    assert run["cost_estimate_usd"] == 0.0  # the default price of "local"


def test_databricks_cluster_and_node_price_come_from_the_environment(
    emitter: Emitter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABRICKS_CLUSTER_ID", "0101-123456-abcd")
    monkeypatch.setenv("DATABRICKS_NODE_TYPE", "i3.xlarge")
    monkeypatch.setenv("DB_NUM_WORKERS", "4")
    _prices(tmp_path, monkeypatch, {"local": 0.0, "i3.xlarge": 7.2})
    with tracked_run(emitter, execution_time_seconds=1800.0, **_columns()):
        pass
    (event,) = spooled_events(emitter.spool)
    run = event["run"]
    assert run["databricks_cluster_id"] == "0101-123456-abcd"
    assert (
        run["hardware_config"] == "databricks cluster 0101-123456-abcd, node i3.xlarge, 4 workers"
    )
    assert run["cost_estimate_usd"] == pytest.approx(3.6)  # half an hour at 7.2 USD/h


def test_cost_is_the_measured_time_at_the_local_price(
    emitter: Emitter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _prices(tmp_path, monkeypatch, {"local": 3600.0})  # 1 USD per second
    with tracked_run(emitter, **_columns()):
        _work()
    (event,) = spooled_events(emitter.spool)
    run = event["run"]
    assert run["cost_estimate_usd"] == pytest.approx(run["execution_time_seconds"], abs=1e-6)
    assert run["cost_estimate_usd"] > 0


def test_an_unknown_hardware_key_gives_no_estimate(
    emitter: Emitter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _prices(tmp_path, monkeypatch, {"i3.xlarge": 1.0})
    with tracked_run(emitter, **_columns()):
        pass
    (event,) = spooled_events(emitter.spool)
    assert event["run"]["cost_estimate_usd"] is None


@pytest.mark.parametrize(
    ("content", "fragment"),
    [(None, "cannot be read"), ("{nope", "is not JSON"), ("[1, 2]", "must be a JSON object"),
     ('{"local": "cheap"}', "the price of 'local' must be a number"),
     ('{"local": -1}', "must be >= 0")],
    ids=["missing", "not-json", "not-object", "not-number", "negative"],
)  # fmt: skip
def test_a_broken_price_table_fails_before_the_block_runs(
    emitter: Emitter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str | None,
    fragment: str,
) -> None:  # fmt: skip
    path = tmp_path / "prices.json"
    if content is not None:
        path.write_text(content)
    monkeypatch.setenv("RUNSTREAM_PRICE_TABLE", str(path))
    ran = False
    with pytest.raises(ValidationError) as caught, tracked_run(emitter, **_columns()):
        ran = True
    assert not ran
    assert "RUNSTREAM_PRICE_TABLE" in str(caught.value) and fragment in str(caught.value)
    assert emitter.spool.status().pending == 0


def test_run_by_keyword_beats_environment_beats_login(
    emitter: Emitter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNSTREAM_RUN_BY", "ci-bot")
    with tracked_run(emitter, **_columns()):
        pass
    with tracked_run(emitter, run_by="automated", **_columns()):
        pass
    by = sorted(e["run"]["run_by"] for e in spooled_events(emitter.spool))
    assert by == ["automated", "ci-bot"]


def test_values_set_in_the_block_win(emitter: Emitter) -> None:
    with tracked_run(emitter, **_columns()) as run:
        run["hardware_config"] = "gpu box"
        run["execution_time_seconds"] = 12.5
    (event,) = spooled_events(emitter.spool)
    assert event["run"]["hardware_config"] == "gpu box"
    assert event["run"]["execution_time_seconds"] == 12.5


def test_a_failing_block_is_still_recorded_and_its_exception_re_raised(emitter: Emitter) -> None:
    boom = RuntimeError("window 7 diverged")
    with pytest.raises(RuntimeError) as caught, tracked_run(emitter, notes="walk-forward",
                                                             **_columns()) as run:  # fmt: skip
        run["mae_1day"] = 2.0
        raise boom
    assert caught.value is boom
    (event,) = spooled_events(emitter.spool)
    assert event["experiment_id"] == run["experiment_id"]
    recorded = event["run"]
    assert recorded["notes"] == "walk-forward\nrun failed: RuntimeError: window 7 diverged"
    assert recorded["mae_1day"] == 2.0
    assert recorded["execution_time_seconds"] >= 0
    assert recorded["model_name"] == "sarimax_auto_weather_v1"


def test_a_failing_block_with_bad_columns_still_raises_its_own_exception(
    emitter: Emitter, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(KeyError), tracked_run(emitter, **_columns()) as run:
        run["mae_14day"] = float("nan")
        raise KeyError("missing window")
    assert emitter.spool.status().pending == 0
    assert "could not record the failed run" in caplog.text
    assert "mae_14day must be a finite number" in caplog.text


def test_a_clean_block_with_bad_columns_raises_validation_error(
    emitter: Emitter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    with pytest.raises(ValidationError, match="directional_accuracy"), \
            tracked_run(emitter, **_columns()) as run:  # fmt: skip
        run["directional_accuracy"] = 69.5
    assert emitter.spool.status().pending == 0
