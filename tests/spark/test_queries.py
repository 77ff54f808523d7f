"""The seed's three queries, run unchanged (table name only) on a known, hand-computed data set.

Load: 17 runs through Kafka and the job: Coffee and Sugar, several model types, one run
re-recorded from "beats baseline" to "does not", one with beats_baseline unknown, promotions
and a demotion. Invariants: each query returns exactly the rows worked out by hand below; the
stored SQL is the seed document's text; the dashboard views build and agree with the data.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from runstream.consumer.queries import (
    create_views,
    query_text,
    seed_queries,
)
from runstream.consumer.topics import fresh_topic
from runstream.dashboard import collect
from runstream.devtools.testkit import produce
from runstream.engines import LightEngine, SparkEngine, named_query
from tests.spark.support import (
    HOUR,
    T0,
    encoded,
    job_config,
    key_of,
    promoted,
    recorded,
    run_once,
    utc,
)

DAY = timedelta(days=1)


def run_query(spark: Any, tables: Any, name: str, **options: Any) -> list[dict[str, Any]]:
    """One named query on Spark, the engine the job uses."""
    return named_query(SparkEngine(spark, tables), name, **options)


SEED_DOC_CANDIDATES = (
    Path(__file__).resolve().parents[2] / "docs" / "seed" / "experiment-tracking-design.md",
    Path("/work/shared/seed/experiment-tracking-design.md"),
)
SEED_SECTIONS = {"best": "Finding Best Models", "history": "Experiment History for Presentation",
                 "prune": "Pruning Decision Support"}  # fmt: skip

# id: (commodity, model_name, model_type, mae_14day, beats_baseline, execution_time_seconds)
RUNS: dict[str, tuple[str, str, str, float, bool | None, float]] = {
    "c1": ("Coffee", "sarimax_auto_weather_v1", "SARIMAX", 3.10, True, 3600),
    "c2": ("Coffee", "sarimax_auto_weather_v1", "SARIMAX", 3.30, True, 1800),
    "c3": ("Coffee", "sarimax_v2", "SARIMAX", 3.20, True, 1800),
    "c4": ("Coffee", "xgb_v1", "XGBoost", 2.90, True, 7200),
    "c5": ("Coffee", "xgb_v3", "XGBoost", 3.00, True, 3600),
    "c6": ("Coffee", "xgb_v2", "XGBoost", 3.50, False, 360),  # first recorded as 2.0 / True
    "c7": ("Coffee", "xgb_v4", "XGBoost", 3.40, True, 720),  # sixth best: cut by LIMIT 5
    "c8": ("Coffee", "prophet_v1", "Prophet", 4.00, False, 600),
    "c9": ("Coffee", "naive", "Baseline", 5.00, False, 36),
    "c10": ("Coffee", "lstm_v1", "LSTM", 2.50, None, 1000),  # unknown: in neither list
    "s1": ("Sugar", "prophet_v1", "Prophet", 1.00, False, 100),
    "s2": ("Sugar", "prophet_v1", "Prophet", 1.20, False, 100),
    "s3": ("Sugar", "prophet_v1", "Prophet", 1.40, False, 100),
    "s4": ("Sugar", "naive", "Baseline", 6.00, False, 10),
    "s5": ("Sugar", "naive", "Baseline", 7.00, False, 10),
    "s6": ("Sugar", "xgb_v2", "XGBoost", 0.50, True, 50),  # best overall, but not Coffee
    "s7": ("Sugar", "xgb_v2", "XGBoost", 2.00, False, 50),  # xgb_v2 fails twice: not pruned
}


def _timestamp(key: str) -> Any:
    order = list(RUNS).index(key)
    return T0 + order * DAY


@pytest.fixture(scope="module")
def loaded(spark: Any, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("queries")
    live, replay = fresh_topic(kafka_bootstrap, "q-live"), fresh_topic(kafka_bootstrap, "q-rp")
    config = job_config(kafka_bootstrap, live, replay, root)
    ids = {key: f"q-{key}-{root.name}" for key in RUNS}
    events = []
    for key, (commodity, name, kind, mae, beats, seconds) in RUNS.items():
        at = _timestamp(key)
        fields = {
            "commodity": commodity, "model_name": name, "model_type": kind, "mae_14day": mae,
            "beats_baseline": beats, "execution_time_seconds": seconds, "run_timestamp": at,
        }  # fmt: skip
        if key == "c6":
            events.append(recorded(ids[key], at, **{**fields, "mae_14day": 2.0,
                                                    "beats_baseline": True}))  # fmt: skip
            events.append(recorded(ids[key], at + HOUR, **fields))
        else:
            events.append(recorded(ids[key], at, **fields))
    events += [
        promoted(ids["c4"], _timestamp("c4") + HOUR),
        promoted(ids["c4"], _timestamp("c4") + 3 * HOUR),  # again: still in since the first
        promoted(ids["c1"], _timestamp("c1") + HOUR),
        promoted(ids["c1"], _timestamp("c1") + 2 * HOUR, is_production=False),
        promoted(ids["s6"], _timestamp("s6") + HOUR),
    ]
    produce(kafka_bootstrap, [(live, key_of(e), encoded(e)) for e in events])
    run_once(spark, config)
    return config, ids


def test_stored_queries_are_the_seed_text() -> None:
    doc = next((p for p in SEED_DOC_CANDIDATES if p.exists()), None)
    if doc is None:
        pytest.skip("the seed document is not on this machine")
    text = doc.read_text()
    for name, title in SEED_SECTIONS.items():
        section = text[text.index(title) :]
        block = re.search(r"```sql\n(.*?)```", section, re.DOTALL)
        assert block is not None, title
        assert seed_queries()[name] == block[1].strip(), name


def test_seed_queries_return_the_hand_computed_rows(spark: Any, loaded: Any) -> None:
    config, _ = loaded
    tables = config.tables
    for name in ("best", "history", "prune"):
        sent = query_text(name, tables)
        assert sent == seed_queries()[name].replace("commodity.experiments.model_runs", tables.runs)

    best = run_query(spark, config.tables, "best")
    assert [(r["model_name"], r["mae_14day"]) for r in best] == [
        ("xgb_v1", 2.90), ("xgb_v3", 3.00), ("sarimax_auto_weather_v1", 3.10),
        ("sarimax_v2", 3.20), ("sarimax_auto_weather_v1", 3.30),
    ]  # fmt: skip
    assert list(best[0]) == ["model_name", "model_version", "mae_14day", "directional_accuracy",
                             "execution_time_seconds", "run_timestamp"]  # fmt: skip
    assert best[0]["run_timestamp"] == utc(_timestamp("c4"))
    assert best[0]["execution_time_seconds"] == 7200

    history = run_query(spark, config.tables, "history")
    assert [r["model_type"] for r in history[:2]] == ["XGBoost", "SARIMAX"]
    by_type = {r["model_type"]: r for r in history}
    assert set(by_type) == {"XGBoost", "SARIMAX", "Prophet", "Baseline", "LSTM"}
    expected = {  # total, unique, avg mae, best mae, hours
        "XGBoost": (4, 4, (2.9 + 3.0 + 3.5 + 3.4) / 4, 2.9, (7200 + 3600 + 360 + 720) / 3600),
        "SARIMAX": (3, 2, (3.1 + 3.3 + 3.2) / 3, 3.1, (3600 + 1800 + 1800) / 3600),
        "Prophet": (1, 1, 4.0, 4.0, 600 / 3600),
        "Baseline": (1, 1, 5.0, 5.0, 36 / 3600),
        "LSTM": (1, 1, 2.5, 2.5, 1000 / 3600),
    }
    for kind, (total, unique, avg, best_mae, hours) in expected.items():
        row = by_type[kind]
        assert (row["total_experiments"], row["unique_models"]) == (total, unique), kind
        assert row["avg_mae"] == pytest.approx(avg) and row["best_mae"] == pytest.approx(best_mae)
        assert row["total_hours"] == pytest.approx(hours), kind

    prune = run_query(spark, config.tables, "prune")
    assert [r["model_name"] for r in prune] == ["naive", "prophet_v1"]
    naive, prophet = prune
    assert naive["num_runs"] == 3 and naive["avg_mae"] == pytest.approx(6.0)
    assert naive["avg_time"] == pytest.approx((36 + 10 + 10) / 3)
    assert naive["last_run"] == utc(_timestamp("s5"))
    assert prophet["num_runs"] == 4 and prophet["avg_mae"] == pytest.approx(7.6 / 4)
    assert prophet["avg_time"] == pytest.approx((600 + 300) / 4)
    assert prophet["last_run"] == utc(_timestamp("s3"))


def test_production_query_parameters_and_views(spark: Any, loaded: Any) -> None:
    config, ids = loaded
    production = run_query(spark, config.tables, "production")
    assert [r["experiment_id"] for r in production] == [ids["c4"]]  # c1 was demoted
    sugar = run_query(spark, config.tables, "production", commodity="Sugar")
    assert [r["experiment_id"] for r in sugar] == [ids["s6"]]
    best_sugar = run_query(spark, config.tables, "best", commodity="Sugar", limit=1)
    assert [(r["model_name"], r["mae_14day"]) for r in best_sugar] == [("xgb_v2", 0.5)]
    everything = run_query(spark, config.tables, "all")
    assert {r["query"] for r in everything} == {"best", "history", "prune", "production"}
    assert len(everything) == 5 + 5 + 2 + 1

    views = create_views(spark, config.tables)
    assert views == ["model_leaderboard", "experiments_per_day", "production_models",
                     "rejects_per_day", "model_runs_summary", "runs_per_week", "mae_per_week",
                     "best_models", "experiment_history", "pruning_candidates",
                     "production_since"]  # fmt: skip
    leader = spark.sql(
        "SELECT * FROM model_leaderboard WHERE commodity = 'Coffee' AND model_name = 'xgb_v1'"
    ).first()
    assert leader["runs"] == 1 and leader["in_production"] is True
    assert leader["share_beats_baseline"] == pytest.approx(1.0)
    in_prod = {r["experiment_id"] for r in spark.table("production_models").collect()}
    assert in_prod == {ids["c4"], ids["s6"]}
    per_day = spark.sql("SELECT SUM(runs) AS n FROM experiments_per_day").first()
    assert per_day["n"] == len(RUNS)
    assert spark.table("rejects_per_day").count() == 0


def test_the_dashboard_reads_its_panels_from_the_views(spark: Any, loaded: Any) -> None:
    config, ids = loaded
    data = collect(SparkEngine(spark, config.tables))
    assert data.summary["runs"] == len(RUNS)
    coffee, sugar = data.commodities
    assert (coffee.name, sugar.name) == ("Coffee", "Sugar")
    weeks = coffee.panels["runs_per_week"] + sugar.panels["runs_per_week"]
    assert sum(r["runs"] for r in weeks) == len(RUNS)
    best_seed = run_query(spark, config.tables, "best")
    assert [r["mae_14day"] for r in coffee.panels["best"]] == [r["mae_14day"] for r in best_seed]
    # The seed's rule (3+ runs not beating naive) per commodity, so averages keep one price
    # scale: prophet_v1 fails 3 times on Sugar; naive fails 3 times only across both.
    assert [r["model_name"] for r in sugar.panels["prune"]] == ["prophet_v1"]
    assert coffee.panels["prune"] == []
    seed_prune = {r["model_name"] for r in run_query(spark, config.tables, "prune")}
    assert seed_prune == {"prophet_v1", "naive"}
    # In production since its first promotion (c4 was promoted twice, c1 demoted after one).
    since = {r["experiment_id"]: r["in_production_since"] for c in data.commodities
             for r in c.panels["production"]}  # fmt: skip
    assert since == {ids["c4"]: utc(_timestamp("c4") + HOUR),
                     ids["s6"]: utc(_timestamp("s6") + HOUR)}  # fmt: skip
    mae_weeks = {(r["model_name"], r["runs"]) for r in coffee.panels["mae_per_week"]}
    assert ("naive", 1) in mae_weeks
    # The light engine reads the same panels from the same views (floats to 1e-9: the two
    # engines may sum in different orders).
    light = collect(LightEngine(config.tables))
    _same_row(light.summary, data.summary)
    assert light.rejects == data.rejects and light.model_types == data.model_types
    for mine, theirs in zip(light.commodities, data.commodities, strict=True):
        assert mine.name == theirs.name
        for panel, rows in theirs.panels.items():
            assert len(mine.panels[panel]) == len(rows), panel
            for a, b in zip(mine.panels[panel], rows, strict=True):
                _same_row(a, b)


def _same_row(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for key, value in b.items():
        if isinstance(value, float):
            assert a[key] == pytest.approx(value, rel=1e-9), key
        else:
            assert a[key] == value, key
