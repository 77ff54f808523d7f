"""Lake and checkpoint locations: URIs used exactly as given, local paths made absolute.

On a cluster the executors read and write the tables, so ``Path("file:///x")`` (which folds
into ``file:/x``) or a path relative to the driver's working directory would name the wrong
place. The job's configuration is built without Spark, so this needs no JVM.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runstream.consumer.job import JobConfig
from runstream.consumer.tables import TableNames, location

URIS = [
    "file:///data/lake",
    "s3a://bucket/runstream/lake",
    "abfss://lake@account.dfs.core.windows.net/runstream",
    "dbfs:/runstream/lake",
]


@pytest.mark.parametrize("uri", URIS)
def test_a_uri_lake_is_used_as_given(uri: str) -> None:
    config = JobConfig.from_env(lake=uri, table="")
    assert config.tables.runs == f"delta.`{uri}/model_runs`"
    assert config.tables.lake == uri
    assert config.checkpoint == f"{uri}/_checkpoints/consume"


@pytest.mark.parametrize("uri", [*URIS, "/Volumes/main/experiments/runstream/checkpoints"])
def test_a_checkpoint_is_used_as_given(uri: str) -> None:
    assert JobConfig.from_env(lake="/lake", table="", checkpoint=uri).checkpoint == uri


def test_local_paths_become_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = JobConfig.from_env(lake="lake", table="", checkpoint="ck")
    assert config.tables.runs == f"delta.`{tmp_path / 'lake' / 'model_runs'}`"
    assert config.checkpoint == str(tmp_path / "ck")
    assert location("~/x") == str(Path.home() / "x")


def test_a_catalog_table_has_no_lake() -> None:
    tables = TableNames.in_catalog("main.experiments.model_runs")
    assert tables.lake is None
    assert tables.events == "main.experiments.model_run_events"
