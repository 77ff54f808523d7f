"""One SparkSession factory for three places.

- here and in CI, offline: the Delta, Kafka-source and Avro jars come from the local Maven
  cache (``runstream.jvm``) through ``spark.jars``, set before the JVM starts;
- a laptop with internet: ``RUNSTREAM_SPARK_JARS=packages`` uses ``spark.jars.packages``;
- Databricks: ``RUNSTREAM_SPARK_JARS=none``; the runtime has all three built in, and the
  active session is reused.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from runstream import jvm
from runstream.environment_variables import RUNSTREAM_SPARK_JARS
from runstream.errors import SetupError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

SPARK_VERSION = "4.2.0"
DELTA_VERSION = "4.4.0"
PACKAGES = (
    f"io.delta:delta-spark_4.2_2.13:{DELTA_VERSION}",
    f"org.apache.spark:spark-sql-kafka-0-10_2.13:{SPARK_VERSION}",
    f"org.apache.spark:spark-avro_2.13:{SPARK_VERSION}",
)
_DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
_VERSIONED = re.compile(r"^(?P<artifact>.+?)-\d[\w.\-]*\.jar$")


def _artifact(jar: Path) -> str:
    match = _VERSIONED.match(jar.name)
    return match["artifact"] if match else jar.stem


def connector_jars() -> list[Path]:
    """Resolved connector jars minus those pyspark already bundles (by artifact name), so the
    classpath never holds two versions of one library."""
    import pyspark

    bundled = {_artifact(j) for j in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    return [j for j in jvm.resolve(jvm.SPARK_CONNECTORS) if _artifact(j) not in bundled]


def spark_session(
    app_name: str = "runstream",
    *,
    jars_mode: str | None = None,
    shuffle_partitions: int = 2,
    extra_conf: dict[str, str] | None = None,
) -> SparkSession:
    """Build (or reuse) a SparkSession with Delta, the Kafka source and Avro available."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise SetupError("the consumer needs Spark: pip install 'runstream[spark]'") from exc

    mode = RUNSTREAM_SPARK_JARS.get(jars_mode)
    if mode == "none":
        return SparkSession.builder.appName(app_name).getOrCreate()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = (
        SparkSession.builder.appName(app_name)
        .master(os.environ.get("RUNSTREAM_SPARK_MASTER", "local[2]"))
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", _DELTA_CATALOG)
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.default.parallelism", str(shuffle_partitions))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.databricks.delta.snapshotPartitions", "2")
        # Default 10000: VACUUM lists files with that many tasks, ~30 s on a laptop.
        .config("spark.sql.sources.parallelPartitionDiscovery.parallelism",
                str(max(2, shuffle_partitions)))
        .config("spark.sql.streaming.stateStore.providerClass",
                "org.apache.spark.sql.execution.streaming.state.HDFSBackedStateStoreProvider")
        .config("spark.databricks.delta.schema.autoMerge.enabled", "false")
    )  # fmt: skip
    if mode == "packages":
        builder = builder.config("spark.jars.packages", ",".join(PACKAGES))
    elif mode == "auto":
        builder = builder.config("spark.jars", ",".join(str(j) for j in connector_jars()))
    else:
        raise SetupError(f"RUNSTREAM_SPARK_JARS must be auto, packages or none, got {mode!r}")
    for key, value in (extra_conf or {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
