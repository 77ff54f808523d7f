"""Both engines give the same answers: Spark (what the job uses) and the light path (delta-rs,
no JVM), over one table written by the streaming job; time travel and a run's audit trail.

The table: 2,400 runs over both commodities and 25 models, 300 of them re-recorded with new
metrics (updates), 60 promoted (10 of those demoted again), 150 annotated, ``beats_baseline``
true, false and unknown (null) — written in two batches, the second adding better runs that
change the leaderboard. Every named query, for each commodity and two limits, must return
the same rows in the same order on both engines (floats to 1e-9); SQL filtering on booleans,
nulls and dates must select the same runs (a delta-rs dataset filtered on a boolean column
once returned no rows from a Spark-written table); ``--as-of`` the first batch's version must
print what the leaderboard printed then; ``show`` must list each distinct event once, in order.
"""

from __future__ import annotations

import random
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from runstream.devtools.testkit import produce
from runstream.engines import (
    LightEngine,
    SparkEngine,
    named_query,
    resolve_as_of,
    run_story,
    versions,
)
from tests.spark.support import (
    HOUR,
    T0,
    annotated,
    encoded,
    job_config,
    key_of,
    promoted,
    recorded,
    run_once,
)

RUNS = 2400
LATER = 50
MODELS = [f"model_{i:02d}" for i in range(25)]
STORY = str(uuid.uuid4())  # the run whose audit trail is checked


def _waves(rng: random.Random) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    first, second = [], []
    for i in range(RUNS):
        experiment_id = str(uuid.uuid4())
        at = T0 + timedelta(days=i % 40, minutes=i)
        fields = {
            "commodity": "Coffee" if i % 3 else "Sugar",
            "model_name": MODELS[i % len(MODELS)],
            "model_type": ["SARIMAX", "XGBoost", "Prophet", "LSTM"][i % 4],
            "mae_14day": round(1 + rng.random() * 4, 6) + i * 1e-7,  # no ties in "best"
            "beats_baseline": [True, False, None][rng.randrange(3)],
            "execution_time_seconds": rng.randrange(10, 4000),
            "run_timestamp": at,
        }
        first.append(recorded(experiment_id, at, **fields))
        if i % 8 == 0:  # an update: the same run recorded again, later, with new metrics
            fields = {**fields, "mae_14day": fields["mae_14day"] + 0.5, "beats_baseline": False}
            first.append(recorded(experiment_id, at + HOUR, **fields))
        if i % 40 == 0:
            first.append(promoted(experiment_id, at + 2 * HOUR))
        if i % 240 == 0:
            first.append(promoted(experiment_id, at + 3 * HOUR, is_production=False))
        if i % 16 == 0:
            first.append(annotated(experiment_id, at + HOUR, f"note {i}"))
    for i in range(LATER):  # better runs: a new leaderboard
        at = T0 + timedelta(days=50, minutes=i)
        second.append(recorded(str(uuid.uuid4()), at, commodity="Coffee" if i % 2 else "Sugar",
                               model_name="challenger", mae_14day=0.1 + i / 1000,
                               beats_baseline=True, run_timestamp=at))  # fmt: skip
    story = [
        recorded(STORY, T0, mae_14day=3.0),
        recorded(STORY, T0 + HOUR, mae_14day=2.5, beats_baseline=False),
        promoted(STORY, T0 + 2 * HOUR),
        annotated(STORY, T0 + 3 * HOUR, "kept for the audit"),
    ]
    first += story[:2]
    second += [story[1], *story[2:]]  # the re-recording is delivered twice
    return first, second


@pytest.fixture(scope="module")
def lake(spark: Any, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The table after both waves, the version after the first and what ``best`` said then."""
    from runstream.consumer.topics import fresh_topic

    root: Path = tmp_path_factory.mktemp("engines")
    live, replay = fresh_topic(kafka_bootstrap, "eng-live"), fresh_topic(kafka_bootstrap, "eng-rp")
    config = job_config(kafka_bootstrap, live, replay, root)
    first, second = _waves(random.Random(7))
    produce(kafka_bootstrap, [(live, key_of(e), encoded(e)) for e in first])
    run_once(spark, config)
    light = LightEngine(config.tables)
    then_version = max(v["version"] for v in versions(light))
    then_best = {c: named_query(light, "best", commodity=c) for c in ("Coffee", "Sugar")}
    produce(kafka_bootstrap, [(replay, key_of(e), encoded(e)) for e in second])
    run_once(spark, config)
    assert spark.table(config.tables.runs).count() == RUNS + LATER + 1
    return config.tables, then_version, then_best


def _same(left: list[dict[str, Any]], right: list[dict[str, Any]]) -> None:
    assert len(left) == len(right)
    for a, b in zip(left, right, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(a[key], float):
                assert b[key] == pytest.approx(a[key], rel=1e-9), key
            else:
                assert a[key] == b[key], key


@pytest.mark.parametrize("name", ["best", "history", "prune", "production", "all"])
@pytest.mark.parametrize("commodity", ["Coffee", "Sugar"])
@pytest.mark.parametrize("limit", [5, 50])
def test_named_queries_agree(spark: Any, lake: Any, name: str, commodity: str, limit: int) -> None:
    tables = lake[0]
    on_spark = named_query(SparkEngine(spark, tables), name, commodity=commodity, limit=limit)
    light = named_query(LightEngine(tables), name, commodity=commodity, limit=limit)
    assert on_spark, "the query must select something for the comparison to mean anything"
    if name in ("history", "prune", "all"):  # orders with ties: compare as sorted lists
        on_spark, light = sorted(on_spark, key=repr), sorted(light, key=repr)
    _same(on_spark, light)


@pytest.mark.parametrize(
    "where",
    [
        "beats_baseline = TRUE",
        "beats_baseline = FALSE",
        "beats_baseline IS NULL",
        "is_production = TRUE",
        "notes IS NOT NULL AND beats_baseline IS NOT NULL",
        "run_date >= DATE '2025-01-20' AND run_date < DATE '2025-02-01'",
        "training_end_date = DATE '2024-12-31' AND beats_baseline = TRUE AND commodity = 'Sugar'",
    ],
)
def test_filters_on_booleans_nulls_and_dates_agree(spark: Any, lake: Any, where: str) -> None:
    tables = lake[0]
    sql = "SELECT experiment_id FROM model_runs WHERE " + where
    on_spark = {r["experiment_id"] for r in SparkEngine(spark, tables).sql(sql)}
    light = {r["experiment_id"] for r in LightEngine(tables).sql(sql)}
    assert on_spark, f"{where} selects nothing; the comparison would prove nothing"
    assert light == on_spark


def test_versions_agree_and_count_the_job_writes(spark: Any, lake: Any) -> None:
    tables = lake[0]
    light, on_spark = versions(LightEngine(tables)), versions(SparkEngine(spark, tables))
    assert light == on_spark
    writes = [v for v in light if v["operation"] == "WRITE"]
    assert sum(v["rows_inserted"] for v in writes) == RUNS + LATER + 1
    assert sum(v["rows_updated"] for v in writes) >= 1  # the story run changed in wave two


def test_the_leaderboard_as_of_the_first_batch_is_what_it_printed_then(
    spark: Any, lake: Any
) -> None:
    tables, then_version, then_best = lake
    for engine in (LightEngine(tables), SparkEngine(spark, tables)):
        for commodity, printed in then_best.items():
            now = named_query(engine, "best", commodity=commodity)
            assert now != printed, "the second wave must have changed the leaderboard"
            then = named_query(engine.pinned(then_version), "best", commodity=commodity)
            _same(printed, then)


def test_as_of_a_run_is_the_version_that_gave_it_its_current_row(spark: Any, lake: Any) -> None:
    tables, then_version, _ = lake
    light = LightEngine(tables)
    newest = max(v["version"] for v in versions(light))
    some_first_wave_run = light.sql(
        "SELECT experiment_id FROM model_runs WHERE model_name = 'model_03' LIMIT 1"
    )[0]["experiment_id"]
    for engine in (light, SparkEngine(spark, tables)):
        assert resolve_as_of(engine, f"run:{STORY}") == newest  # changed again in wave two
        assert resolve_as_of(engine, f"run:{some_first_wave_run}") <= then_version
        assert resolve_as_of(engine, str(then_version)) == then_version


def test_show_lists_each_distinct_event_once_in_order(spark: Any, lake: Any) -> None:
    tables = lake[0]
    light = run_story(LightEngine(tables), STORY)
    on_spark = run_story(SparkEngine(spark, tables), STORY)
    assert light == on_spark
    assert [(e["event_type"], e["change"]) for e in light["events"]] == [
        ("run_recorded", "recorded"),
        ("run_recorded", "re-recorded: mae_14day, beats_baseline"),
        ("run_promoted", "is_production -> True"),
        ("run_annotated", "notes -> 'kept for the audit'"),
    ]
    assert light["row"]["mae_14day"] == 2.5 and light["row"]["is_production"] is True
    assert light["row"]["notes"] == "kept for the audit"
    assert light["rejects"] == []
