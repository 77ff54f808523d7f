"""Both engines give the same answers: Spark (what the job uses) and the light path (delta-rs,
no JVM), over one table written by the streaming job.

The table: 2,400 runs over both commodities and 25 models, 300 of them re-recorded with new
metrics (updates), 60 promoted (10 of those demoted again), 150 annotated, and
``beats_baseline`` true, false and unknown (null). Every named query, for each commodity and
two limits, must return the same rows in the same order (floats to 1e-9), and ad-hoc SQL
filtering on booleans, nulls and dates must select the same runs. The boolean filters are the
point: a delta-rs dataset filtered on a boolean column once returned no rows from a
Spark-written table.
"""

from __future__ import annotations

import random
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from runstream import delta_reader
from runstream.consumer.queries import run_query
from runstream.devtools.testkit import produce
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
MODELS = [f"model_{i:02d}" for i in range(25)]


@pytest.fixture(scope="module")
def table(spark: Any, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from runstream.consumer.topics import fresh_topic

    rng = random.Random(7)
    root: Path = tmp_path_factory.mktemp("engines")
    live, replay = fresh_topic(kafka_bootstrap, "eng-live"), fresh_topic(kafka_bootstrap, "eng-rp")
    events = []
    ids = [str(uuid.uuid4()) for _ in range(RUNS)]
    for i, experiment_id in enumerate(ids):
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
        events.append(recorded(experiment_id, at, **fields))
        if i % 8 == 0:  # an update: the same run recorded again, later, with new metrics
            fields = {**fields, "mae_14day": fields["mae_14day"] + 0.5, "beats_baseline": False}
            events.append(recorded(experiment_id, at + HOUR, **fields))
        if i % 40 == 0:
            events.append(promoted(experiment_id, at + 2 * HOUR))
        if i % 240 == 0:
            events.append(promoted(experiment_id, at + 3 * HOUR, is_production=False))
        if i % 16 == 0:
            events.append(annotated(experiment_id, at + HOUR, f"note {i}"))
    produce(kafka_bootstrap, [(live, key_of(e), encoded(e)) for e in events])
    config = job_config(kafka_bootstrap, live, replay, root)
    run_once(spark, config)
    assert spark.table(config.tables.runs).count() == RUNS
    return config.tables


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
def test_named_queries_agree(spark: Any, table: Any, name: str, commodity: str, limit: int) -> None:
    on_spark = run_query(spark, table, name, commodity=commodity, limit=limit)
    light = delta_reader.run_query(table, name, commodity=commodity, limit=limit)
    assert on_spark, "the query must select something for the comparison to mean anything"
    if name in ("history", "prune", "all"):  # orders with ties: compare as sorted lists
        key = repr
        on_spark, light = sorted(on_spark, key=key), sorted(light, key=key)
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
def test_filters_on_booleans_nulls_and_dates_agree(spark: Any, table: Any, where: str) -> None:
    sql = "SELECT experiment_id FROM {} WHERE " + where
    on_spark = {r["experiment_id"] for r in spark.sql(sql.format(table.runs)).collect()}
    dt = delta_reader.open_runs(table)
    light = {r["experiment_id"] for r in delta_reader.sql_rows(dt, sql.format("model_runs"))}
    assert on_spark, f"{where} selects nothing; the comparison would prove nothing"
    assert light == on_spark
