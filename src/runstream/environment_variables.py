"""Every environment variable runstream reads, in one place.

Precedence everywhere: an explicit keyword argument (or command-line option), then the
variable, then the default here. The README's table of settings is ``markdown_table()``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EnvVar:
    """One documented setting: its variable name, default and meaning.

    ``shown`` is the default as the README shows it, where the real default is computed
    (``~/.local/share/runstream``) or derived from another setting (``$RUNSTREAM_HOME/spool``).
    """

    name: str
    default: str
    help: str
    shown: str | None = None

    def get(self, override: str | None = None) -> str:
        """The explicit value if given, else the environment's, else the default."""
        if override is not None:
            return override
        return os.environ.get(self.name, self.default)

    def get_path(self, override: str | os.PathLike[str] | None = None) -> Path:
        """``get`` as a path, with ``~`` expanded."""
        return Path(self.get(None if override is None else os.fspath(override))).expanduser()


def _default_home() -> str:
    return os.path.join(os.environ.get("XDG_DATA_HOME", "~/.local/share"), "runstream")


def _default_cache() -> str:
    return os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "runstream")


RUNSTREAM_BOOTSTRAP_SERVERS = EnvVar(
    "RUNSTREAM_BOOTSTRAP_SERVERS",
    "127.0.0.1:9092",
    "Kafka bootstrap servers, comma separated; when set, wins over `bootstrap.servers` of "
    "`RUNSTREAM_KAFKA_PROPERTIES` (`--bootstrap-servers` wins over both)",
)
RUNSTREAM_TOPIC = EnvVar("RUNSTREAM_TOPIC", "model_runs", "live topic that `emit_run()` feeds")
RUNSTREAM_REPLAY_TOPIC = EnvVar(
    "RUNSTREAM_REPLAY_TOPIC", "model_runs.replay", "topic that `runstream backfill` writes to"
)
RUNSTREAM_HOME = EnvVar(
    "RUNSTREAM_HOME",
    _default_home(),
    "state folder: spool, local broker, local lake, checkpoints and logs live below it",
    shown="~/.local/share/runstream",
)
RUNSTREAM_SPOOL_DIR = EnvVar(
    "RUNSTREAM_SPOOL_DIR",
    "",
    "the spool; on clusters point it at durable storage (a cluster's local disk disappears "
    "with the cluster)",
    shown="$RUNSTREAM_HOME/spool",
)
RUNSTREAM_SPOOL_MAX_EVENTS = EnvVar(
    "RUNSTREAM_SPOOL_MAX_EVENTS",
    "100000",
    "the spool's bound; past it `emit_run` raises `SpoolFullError` and drops nothing",
)
RUNSTREAM_FLUSH_TIMEOUT = EnvVar(
    "RUNSTREAM_FLUSH_TIMEOUT", "10", "seconds a process waits at exit for unsent events"
)
RUNSTREAM_KAFKA_PROPERTIES = EnvVar(
    "RUNSTREAM_KAFKA_PROPERTIES",
    "",
    "Java-style Kafka client properties file (`bootstrap.servers`, `security.protocol`, "
    "`sasl.*`, `ssl.*`; `${env:NAME}` reads a variable) used by every part, producer and Spark "
    "job; see Secured Kafka",
)
RUNSTREAM_KAFKA_CONFIG = EnvVar(
    "RUNSTREAM_KAFKA_CONFIG",
    "",
    "JSON object of extra kafka-python producer tuning (`linger_ms`, `client_id`), applied over "
    "`RUNSTREAM_KAFKA_PROPERTIES`; producers only, never Spark; never logged, never in events",
)
RUNSTREAM_COMMODITIES = EnvVar(
    "RUNSTREAM_COMMODITIES",
    "Coffee,Sugar",
    "commodities a run may name, comma separated; a variant spelling (`coffee`, `Cofee`) is "
    "refused with a did-you-mean",
)
RUNSTREAM_PRICE_TABLE = EnvVar(
    "RUNSTREAM_PRICE_TABLE",
    "",
    "JSON file of USD per hour by hardware key, for `cost_estimate_usd`",
)
RUNSTREAM_RUN_BY = EnvVar("RUNSTREAM_RUN_BY", "", "default `run_by`", shown="(login name)")
RUNSTREAM_LAKE = EnvVar(
    "RUNSTREAM_LAKE", "", "folder of the local Delta tables", shown="$RUNSTREAM_HOME/lake"
)
RUNSTREAM_TABLE = EnvVar(
    "RUNSTREAM_TABLE",
    "",
    "catalog name of the runs table, e.g. `commodity.experiments.model_runs`; the log and "
    "quarantine sit beside it (empty: path tables under the lake)",
)
RUNSTREAM_SPARK_JARS = EnvVar(
    "RUNSTREAM_SPARK_JARS",
    "auto",
    "`auto`: jars from the Maven cache (offline); `packages`: `spark.jars.packages` "
    "(internet); `none`: Databricks, built in",
)
RUNSTREAM_SPARK_MASTER = EnvVar(
    "RUNSTREAM_SPARK_MASTER",
    "local[2]",
    "Spark master of the job and the Spark-side commands (unused with `RUNSTREAM_SPARK_JARS=none`)",
)
RUNSTREAM_CACHE_DIR = EnvVar(
    "RUNSTREAM_CACHE_DIR",
    _default_cache(),
    "where Maven-resolved jars are kept",
    shown="~/.cache/runstream",
)
RUNSTREAM_TEST_BOOTSTRAP = EnvVar(
    "RUNSTREAM_TEST_BOOTSTRAP",
    "",
    "tests only: a running Kafka to use instead of starting one",
)

ALL: tuple[EnvVar, ...] = tuple(v for v in globals().values() if isinstance(v, EnvVar))


def markdown_table() -> str:
    """The README's table of settings, made from this registry (a test compares the two)."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for var in ALL:
        default = var.shown if var.shown is not None else var.default
        shown = default if default.startswith("(") else f"`{default}`" if default else ""
        lines.append(f"| `{var.name}` | {shown} | {var.help} |")
    return "\n".join(lines)


def home() -> Path:
    return RUNSTREAM_HOME.get_path()


def spool_dir(override: str | os.PathLike[str] | None = None) -> Path:
    if override is not None:
        return Path(override).expanduser()
    value = RUNSTREAM_SPOOL_DIR.get()
    return Path(value).expanduser() if value else home() / "spool"


def commodities(override: Iterable[str] | None = None) -> tuple[str, ...]:
    """The commodity list: ``override`` if given, else RUNSTREAM_COMMODITIES."""
    items = RUNSTREAM_COMMODITIES.get().split(",") if override is None else list(override)
    return tuple(dict.fromkeys(c.strip() for c in items if c.strip()))


def lake_dir(override: str | os.PathLike[str] | None = None) -> Path:
    if override is not None:
        return Path(override).expanduser()
    value = RUNSTREAM_LAKE.get()
    return Path(value).expanduser() if value else home() / "lake"
