"""Every environment variable runstream reads, in one place.

Precedence everywhere: an explicit keyword argument, then the variable, then the default here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EnvVar:
    """One documented setting: its variable name, default and meaning."""

    name: str
    default: str
    help: str

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
    "RUNSTREAM_BOOTSTRAP_SERVERS", "127.0.0.1:9092", "Kafka bootstrap servers, comma separated."
)
RUNSTREAM_TOPIC = EnvVar("RUNSTREAM_TOPIC", "model_runs", "Live topic that emit_run() feeds.")
RUNSTREAM_REPLAY_TOPIC = EnvVar(
    "RUNSTREAM_REPLAY_TOPIC", "model_runs.replay", "Topic that backfills write to."
)
RUNSTREAM_HOME = EnvVar(
    "RUNSTREAM_HOME",
    _default_home(),
    "State folder: spool, local broker, local lake and checkpoints live below it.",
)
RUNSTREAM_SPOOL_DIR = EnvVar(
    "RUNSTREAM_SPOOL_DIR",
    "",
    "Spool folder (default: $RUNSTREAM_HOME/spool). Point it at durable storage on clusters.",
)
RUNSTREAM_SPOOL_MAX_EVENTS = EnvVar(
    "RUNSTREAM_SPOOL_MAX_EVENTS", "100000", "Most events the spool holds before refusing more."
)
RUNSTREAM_FLUSH_TIMEOUT = EnvVar(
    "RUNSTREAM_FLUSH_TIMEOUT", "10", "Seconds the process waits at exit for the spool to drain."
)
RUNSTREAM_CACHE_DIR = EnvVar(
    "RUNSTREAM_CACHE_DIR", _default_cache(), "Cache for Maven-resolved jars (broker, Spark)."
)
RUNSTREAM_LAKE = EnvVar(
    "RUNSTREAM_LAKE",
    "",
    "Where the Delta tables live locally (default: $RUNSTREAM_HOME/lake).",
)
RUNSTREAM_TABLE = EnvVar(
    "RUNSTREAM_TABLE",
    "",
    "Name of the runs table: a catalog name (commodity.experiments.model_runs) or empty "
    "for path tables under RUNSTREAM_LAKE.",
)
RUNSTREAM_SPARK_JARS = EnvVar(
    "RUNSTREAM_SPARK_JARS",
    "auto",
    "How Spark gets its connectors: 'auto' (local cache, resolving with Maven if needed), "
    "'packages' (spark.jars.packages, needs internet), 'none' (Databricks: built in).",
)
RUNSTREAM_PRICE_TABLE = EnvVar(
    "RUNSTREAM_PRICE_TABLE",
    "",
    "JSON file of hourly prices for cost_estimate_usd (see runstream.producer.context).",
)
RUNSTREAM_RUN_BY = EnvVar("RUNSTREAM_RUN_BY", "", "Default run_by (else the login name).")
RUNSTREAM_COMMODITIES = EnvVar(
    "RUNSTREAM_COMMODITIES",
    "Coffee,Sugar",
    "Commodities a run may name, comma separated; a variant spelling is refused with a "
    "did-you-mean.",
)
RUNSTREAM_SPARK_MASTER = EnvVar(
    "RUNSTREAM_SPARK_MASTER",
    "local[2]",
    "Spark master of the job and the Spark-side commands (unused when RUNSTREAM_SPARK_JARS=none).",
)
RUNSTREAM_TEST_BOOTSTRAP = EnvVar(
    "RUNSTREAM_TEST_BOOTSTRAP",
    "",
    "Tests only: a running Kafka to use instead of starting one.",
)
RUNSTREAM_KAFKA_CONFIG = EnvVar(
    "RUNSTREAM_KAFKA_CONFIG",
    "",
    "JSON object of extra kafka-python producer settings (TLS, SASL); never logged.",
)

ALL: tuple[EnvVar, ...] = tuple(v for v in globals().values() if isinstance(v, EnvVar))


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
