"""The heap of a local-master JVM runstream starts: a share of the machine's memory, unless the
user chose one in one of Spark's own ways."""

from __future__ import annotations

from pathlib import Path

import pytest

from runstream.consumer.session import local_driver_memory

GIB = 2**30


@pytest.fixture
def conf_dir(tmp_path: Path) -> dict[str, str]:
    """An environment whose spark-defaults.conf is in an empty folder of the test's own."""
    return {"SPARK_CONF_DIR": str(tmp_path)}


@pytest.mark.parametrize(
    ("physical_gib", "heap"),
    [(24, "6144m"), (16, "4096m"), (2, "1024m"), (64, "8192m")],
)
def test_a_quarter_of_the_machine_within_bounds(
    conf_dir: dict[str, str], physical_gib: int, heap: str
) -> None:
    assert local_driver_memory(conf_dir, physical_gib * GIB) == heap


@pytest.mark.parametrize(
    "chosen",
    [
        {"SPARK_DRIVER_MEMORY": "2g"},
        {"PYSPARK_SUBMIT_ARGS": "--driver-memory 2g pyspark-shell"},
        {"PYSPARK_SUBMIT_ARGS": "--conf spark.driver.memory=2g pyspark-shell"},
    ],
)
def test_a_heap_chosen_in_the_environment_stands(
    conf_dir: dict[str, str], chosen: dict[str, str]
) -> None:
    assert local_driver_memory({**conf_dir, **chosen}, 24 * GIB) is None


def test_a_heap_chosen_in_spark_defaults_stands(tmp_path: Path) -> None:
    (tmp_path / "spark-defaults.conf").write_text("spark.driver.memory   3g\n")
    assert local_driver_memory({"SPARK_CONF_DIR": str(tmp_path)}, 24 * GIB) is None


def test_a_commented_out_setting_is_not_a_choice(tmp_path: Path) -> None:
    (tmp_path / "spark-defaults.conf").write_text("# spark.driver.memory 3g\nspark.ui.port 4041\n")
    assert local_driver_memory({"SPARK_CONF_DIR": str(tmp_path)}, 24 * GIB) == "6144m"


def test_spark_home_conf_is_read_without_spark_conf_dir(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "spark-defaults.conf").write_text("spark.driver.memory 3g\n")
    assert local_driver_memory({"SPARK_HOME": str(tmp_path)}, 24 * GIB) is None
