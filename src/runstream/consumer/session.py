"""One SparkSession factory for three places.

- here and in CI, offline: the Delta, Kafka-source and Avro jars come from the local Maven
  cache (``runstream.jvm``) through ``spark.jars``, set before the JVM starts;
- a laptop with internet: ``RUNSTREAM_SPARK_JARS=packages`` uses ``spark.jars.packages``;
- Databricks: ``RUNSTREAM_SPARK_JARS=none``; the runtime has all three built in, and the
  active session is reused.

The JVM writes its own start-up chatter (log4j banner, NativeCodeLoader and similar warnings)
straight to the file descriptors it inherits, below Python's reach. ``jvm_log`` hands it a log
file instead of the user's terminal (``default_jvm_log()``), which the CLI does unless ``-v``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from runstream import jvm
from runstream.consumer.decode import MAX_RECORD_BYTES
from runstream.environment_variables import RUNSTREAM_SPARK_JARS, RUNSTREAM_SPARK_MASTER, home
from runstream.errors import ConfigError, SetupError
from runstream.machine import physical_memory

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
# The Kafka source's options carry credentials (kafka.sasl.jaas.config, *.password, an inline
# PEM key). Spark prints options in logged and explained plans unless they match these: the
# first masks SQL/data source options, the second Spark conf and environment values. Both keep
# Spark's own defaults (url; secret|password|token|access key) and add the JAAS line and keys.
REDACTION = {
    "spark.sql.redaction.options.regex": "(?i)url|password|secret|token|jaas|keystore\\.key",
    "spark.redaction.regex": "(?i)secret|password|token|access[.]?key|jaas|keystore\\.key",
}
CODEGEN_CACHE_ENTRIES = 5000
"""Compiled classes a session keeps (``spark.sql.codegen.cache.maxEntries``, a static
setting: it must be given before the JVM starts)."""
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


def default_jvm_log() -> Path:
    """Where command-line tools send the JVM's own output: ``$RUNSTREAM_HOME/logs/spark.log``."""
    return home() / "logs" / "spark.log"


def _jvm_not_launched() -> bool:
    """True when creating a session will start a new JVM (none yet, and no outer one such as
    Databricks' or spark-submit's, which hand over ``PYSPARK_GATEWAY_PORT``)."""
    from pyspark import SparkContext

    return SparkContext._gateway is None and "PYSPARK_GATEWAY_PORT" not in os.environ


@contextlib.contextmanager
def _jvm_output_to(path: str | os.PathLike[str] | None, app_name: str) -> Iterator[None]:
    """Point file descriptors 1 and 2 at ``path`` for the block, then restore them.

    pyspark launches the JVM with ``Popen`` and no stdout/stderr arguments (stdin is a pipe, and
    SIGINT is ignored in the child), so the JVM inherits descriptors 1 and 2 as they are at that
    moment and keeps them for life. Swapping them only around the launch moves all of the JVM's
    own output to the log file while Python's ``sys.stdout``/``sys.stderr`` (the same
    descriptors, restored) stay on the terminal. Anything Python itself writes during the
    block goes to the file too. The file is appended to, so concurrent commands share it safely.
    """
    if path is None or not _jvm_not_launched():
        yield
        return
    target = Path(path).expanduser()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as exc:
        log.warning("cannot open %s for the JVM's output (%s); leaving it on the terminal",
                    target, exc)  # fmt: skip
        yield
        return
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    os.write(fd, f"--- {stamp} pid {os.getpid()}: {app_name} starts its JVM ---\n".encode())
    _flush_std()
    saved = (os.dup(1), os.dup(2))  # os.dup's copies are not inherited by the JVM
    failed = False
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        yield
    except Exception:
        failed = True
        raise
    finally:
        _flush_std()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for spare in (*saved, fd):
            os.close(spare)
        # The reason a JVM did not start (a bad setting, a jar that would not resolve) is in
        # its own output, which the user would otherwise never see.
        if failed:
            log.error("Spark did not start; the JVM's output is in %s", target)
    log.debug("the JVM's output goes to %s", target)


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()


# Avro reads a length prefix before the bytes it announces: a poison record of a few bytes can
# claim a 1 GiB string, and the decoder's allocation then kills the JVM (OutOfMemoryError),
# stopping the stream. Avro's own limits (system properties, read when a JVM starts) make that a
# decode error, which the job quarantines like any other. Nothing valid comes near them: the job
# quarantines any record over MAX_RECORD_BYTES before decoding it. On Databricks set the same
# options in the cluster's Spark config (deploy/databricks/databricks.yml does).
_AVRO_LIMIT_OPTIONS = " ".join(
    f"-Dorg.apache.avro.limits.{kind}.maxLength={MAX_RECORD_BYTES}"
    for kind in ("string", "bytes", "collectionItems")
)
AVRO_LIMITS = {
    "spark.driver.extraJavaOptions": _AVRO_LIMIT_OPTIONS,
    "spark.executor.extraJavaOptions": _AVRO_LIMIT_OPTIONS,
}


DRIVER_MEMORY_SHARE = 4
"""A local-master JVM that runstream starts gets 1/DRIVER_MEMORY_SHARE of the machine's memory
as its heap, within ``DRIVER_MEMORY_GIB``."""
DRIVER_MEMORY_GIB = (1, 8)
_DRIVER_MEMORY_FLAG = re.compile(r"(^|\s)(--driver-memory|spark\.driver\.memory)\b")


def local_driver_memory(
    environ: Mapping[str, str] | None = None, physical_bytes: int | None = None
) -> str | None:
    """``spark.driver.memory`` for a local-master JVM this process starts, or None when the
    user chose a heap in one of Spark's own ways (``SPARK_DRIVER_MEMORY``, ``--driver-memory``
    or ``spark.driver.memory`` in ``PYSPARK_SUBMIT_ARGS``, ``spark.driver.memory`` in
    ``spark-defaults.conf``), which then stands.

    With a local master every task runs inside the driver, so its heap is all the memory the
    job and ``rebuild`` have. Spark's default of 1 GiB is sized for a driver that only plans:
    ``rebuild`` of a 2,000,000-event log ran out of it (``OutOfMemoryError: Java heap
    space``). A quarter of the machine's memory, between 1 and 8 GiB, is the default instead;
    the JVM takes it from the system only as it needs it.
    """
    environ = os.environ if environ is None else environ
    if environ.get("SPARK_DRIVER_MEMORY") or _DRIVER_MEMORY_FLAG.search(
        environ.get("PYSPARK_SUBMIT_ARGS", "")
    ):
        return None
    defaults = _spark_defaults_file(environ)
    if defaults is not None and _DRIVER_MEMORY_FLAG.search(_read_quietly(defaults)):
        return None
    if physical_bytes is None:
        physical_bytes = physical_memory()
        if physical_bytes is None:  # the system does not say: Spark's default stands
            return None
    low, high = DRIVER_MEMORY_GIB
    mib = physical_bytes // DRIVER_MEMORY_SHARE // 2**20
    return f"{min(max(mib, low * 1024), high * 1024)}m"


THROUGHPUT_GC = "-XX:+UseParallelGC"
"""The garbage collector of a local-master JVM that runstream starts. Its tasks run in that
JVM, and a batch allocates much and briefly (decoded records, a Parquet writer per file), so
throughput is what counts, and the JVM's default (G1) does part of its work concurrently, on
the cores the tasks need. On two cores, four warm backfills of 100,000 events through the job
took 32 s and 28 s with this collector against 38 s and 40 s with G1 (alternating processes,
two of each), and a plain append of the same rows 16 s and 14 s against 16 s and 18 s."""
_GC_FLAG = re.compile(r"-XX:\+Use\w*GC\b")
_JVM_OPTION_VARIABLES = (
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "PYSPARK_SUBMIT_ARGS",
)


def local_gc_option(environ: Mapping[str, str] | None = None) -> str | None:
    """``THROUGHPUT_GC`` for a local-master JVM this process starts, or None when a collector
    is chosen in the JVM's options already (``JAVA_TOOL_OPTIONS``, ``_JAVA_OPTIONS``,
    ``JDK_JAVA_OPTIONS``, ``PYSPARK_SUBMIT_ARGS``): a JVM given two refuses to start."""
    environ = os.environ if environ is None else environ
    if any(_GC_FLAG.search(environ.get(name, "")) for name in _JVM_OPTION_VARIABLES):
        return None
    return THROUGHPUT_GC


def _spark_defaults_file(environ: Mapping[str, str]) -> Path | None:
    """The ``spark-defaults.conf`` spark-submit reads: ``$SPARK_CONF_DIR``, else
    ``$SPARK_HOME/conf``, else the installed pyspark's ``conf`` folder."""
    if environ.get("SPARK_CONF_DIR"):
        folder = Path(environ["SPARK_CONF_DIR"])
    elif environ.get("SPARK_HOME"):
        folder = Path(environ["SPARK_HOME"]) / "conf"
    else:
        try:
            import pyspark
        except ImportError:
            return None
        folder = Path(pyspark.__file__).parent / "conf"
    return folder / "spark-defaults.conf"


def _read_quietly(path: Path) -> str:
    # only the meaningful lines: a commented-out setting is not a choice
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def spark_session(
    app_name: str = "runstream",
    *,
    jars_mode: str | None = None,
    shuffle_partitions: int = 2,
    extra_conf: dict[str, str] | None = None,
    jvm_log: str | os.PathLike[str] | None = None,
) -> SparkSession:
    """Build (or reuse) a SparkSession with Delta, the Kafka source and Avro available.

    ``jvm_log``: a file that receives the JVM's own stdout and stderr (its log4j output and
    start-up warnings) instead of this process's terminal; ``default_jvm_log()`` is the usual
    place. ``None`` (the default) leaves them where they are. It applies only when this call
    starts the JVM; a reused session keeps the output it was started with.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise SetupError("the consumer needs Spark: pip install 'runstream[spark]'") from exc

    mode = RUNSTREAM_SPARK_JARS.get(jars_mode)
    if mode not in ("auto", "packages", "none"):
        raise ConfigError(
            f"{RUNSTREAM_SPARK_JARS.name} must be auto, packages or none, got {mode!r}"
        )
    if mode == "none":
        with _jvm_output_to(jvm_log, app_name):
            spark = SparkSession.builder.appName(app_name).getOrCreate()
        # a runtime SQL conf: it can be set on a session someone else started (Databricks)
        key = "spark.sql.redaction.options.regex"
        spark.conf.set(key, REDACTION[key])
        return spark
    master = RUNSTREAM_SPARK_MASTER.get()
    local = master.startswith("local")
    if local:
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = (
        SparkSession.builder.appName(app_name)
        .master(master)
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", _DELTA_CATALOG)
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.default.parallelism", str(shuffle_partitions))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        # Spark's default is ./spark-warehouse: the driver's working directory, wherever that is.
        .config("spark.sql.warehouse.dir", str(home().absolute() / "spark-warehouse"))
        .config("spark.databricks.delta.snapshotPartitions", "2")
        # Default 10000: VACUUM lists files with that many tasks, ~30 s on a laptop.
        .config("spark.sql.sources.parallelPartitionDiscovery.parallelism",
                str(max(2, shuffle_partitions)))
        .config("spark.sql.streaming.stateStore.providerClass",
                "org.apache.spark.sql.execution.streaming.state.HDFSBackedStateStoreProvider")
        .config("spark.databricks.delta.schema.autoMerge.enabled", "false")
        # Spark keeps 100 compiled classes by default; one micro-batch of the job (the
        # decoder of each schema version, the fold, Delta's own log replay) compiles more, so
        # every batch compiled them all again: about 40% of a small batch's CPU time.
        .config("spark.sql.codegen.cache.maxEntries", str(CODEGEN_CACHE_ENTRIES))
    )  # fmt: skip
    for key, value in {**REDACTION, **AVRO_LIMITS}.items():
        builder = builder.config(key, value)
    if local:
        # Everything on the loopback interface, whatever the host's name resolves to. On a
        # cluster the executors must reach the driver, so Spark's own choice stands there
        # (SPARK_LOCAL_IP, or spark.driver.host in $SPARK_CONF_DIR/spark-defaults.conf).
        builder = builder.config("spark.driver.host", "127.0.0.1")
        builder = builder.config("spark.driver.bindAddress", "127.0.0.1")
        # Adaptive execution re-plans every shuffle stage; on one machine, with two shuffle
        # partitions, that buys nothing and costs about 0.1 s per query stage, which a
        # micro-batch of a few events pays several times (bench/bench_consumer.py (a)).
        builder = builder.config("spark.sql.adaptive.enabled", "false")
        launching = _jvm_not_launched()
        memory = local_driver_memory() if launching else None
        if memory is not None:
            builder = builder.config("spark.driver.memory", memory)
        gc = local_gc_option() if launching else None
        if gc is not None:
            options = f"{AVRO_LIMITS['spark.driver.extraJavaOptions']} {gc}"
            builder = builder.config("spark.driver.extraJavaOptions", options)
        # Local files through runstream's Hadoop file system, which sets permissions without
        # starting a chmod process per file (jvm.local_fs_jar). The driver is the only JVM
        # with a local master, so its class path is the one to extend.
        local_fs = jvm.local_fs_jar()
        if local_fs is not None:
            builder = builder.config("spark.driver.extraClassPath", str(local_fs))
            builder = builder.config("spark.hadoop.fs.file.impl", jvm.LOCAL_FS_CLASS)
    if mode == "packages":
        builder = builder.config("spark.jars.packages", ",".join(PACKAGES))
    else:
        builder = builder.config("spark.jars", ",".join(str(j) for j in connector_jars()))
    for key, value in (extra_conf or {}).items():
        builder = builder.config(key, value)
    with _jvm_output_to(jvm_log, app_name):
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
