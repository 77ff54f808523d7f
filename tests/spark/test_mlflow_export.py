"""``export-mlflow`` into a local SQLite-backed MLflow store: each run once, values equal to
the table's, idempotent across repeats and across new, updated and re-parametrised runs."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from runstream.devtools.testkit import produce
from runstream.engines import LightEngine
from tests.spark.support import HOUR, T0, encoded, job_config, key_of, promoted, recorded, run_once

pytest.importorskip("mlflow")


def _mirrored(uri: str) -> dict[str, Any]:
    from mlflow.tracking import MlflowClient

    from runstream.mlflow_bridge import KEY_TAG

    client = MlflowClient(tracking_uri=uri)
    runs = []
    for experiment in client.search_experiments():
        runs += client.search_runs([experiment.experiment_id], max_results=1000)
    keys = [r.data.tags[KEY_TAG] for r in runs]
    assert len(keys) == len(set(keys)), "a run was mirrored twice"
    return {r.data.tags[KEY_TAG]: r for r in runs}


def _assert_equal_to_table(table_rows: list[dict[str, Any]], mirrored: dict[str, Any]) -> None:
    from runstream.mlflow_bridge import mirror_of

    assert set(mirrored) == {r["experiment_id"] for r in table_rows}
    for row in table_rows:
        run = mirrored[row["experiment_id"]]
        params, metrics, tags = mirror_of(row)
        assert run.data.params == params
        assert run.data.metrics == pytest.approx(metrics)
        assert {k: run.data.tags.get(k) for k in tags} == tags
        assert run.info.run_name == f"{row['model_name']} {row['model_version']}"


def test_export_twice_and_after_changes_mirrors_each_run_once(
    spark: Any, kafka_bootstrap: str, new_topic: Any, tmp_path: Path
) -> None:
    from runstream.mlflow_bridge import export

    live, replay = new_topic("mlf-live"), new_topic("mlf-replay")
    config = job_config(kafka_bootstrap, live, replay, tmp_path)
    ids = [str(uuid.uuid4()) for _ in range(12)]
    events = [
        recorded(experiment_id, T0 + timedelta(minutes=i), commodity="Coffee" if i % 2 else "Sugar",
                 mae_14day=2.0 + i / 10, hyperparameters={"order": "(1,1,1)", "alpha": i},
                 tags={"feature_set": "weather", "production_candidate": i % 3 == 0})
        for i, experiment_id in enumerate(ids)
    ]  # fmt: skip
    produce(kafka_bootstrap, [(live, key_of(e), encoded(e)) for e in events])
    run_once(spark, config)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    engine = LightEngine(config.tables)

    first = export(engine, uri)
    again = export(engine, uri)
    assert (first.created, first.updated, first.unchanged) == (12, 0, 0)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 12)
    _assert_equal_to_table(engine.sql("SELECT * FROM model_runs"), _mirrored(uri))
    registry_tags = [r.data.tags.get("tag.feature_set") for r in _mirrored(uri).values()]
    assert registry_tags == ["weather"] * 12

    changes = [
        recorded(str(uuid.uuid4()), T0 + HOUR, mae_14day=1.5),  # a new run
        promoted(ids[0], T0 + HOUR),  # tags change
        recorded(ids[1], T0 + HOUR, commodity="Coffee", mae_14day=9.0,  # a param changes
                 hyperparameters={"order": "(2,1,1)", "alpha": 1}),
    ]  # fmt: skip
    produce(kafka_bootstrap, [(live, key_of(e), encoded(e)) for e in changes])
    run_once(spark, config)
    third = export(engine, uri)
    assert (third.created, third.updated, third.unchanged) == (1, 2, 10)
    _assert_equal_to_table(engine.sql("SELECT * FROM model_runs"), _mirrored(uri))
