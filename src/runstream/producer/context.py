"""``tracked_run``: time a block and fill the run's infrastructure columns.

::

    with tracked_run(model_name="sarimax_auto_weather_v1", model_version="v1", ...) as run:
        fit_and_score()
        run["mae_14day"] = 3.10

On exit the run is emitted with ``execution_time_seconds``, ``hardware_config``,
``databricks_cluster_id``, ``run_by`` and ``cost_estimate_usd`` filled unless the block set
them. If the block raises, the run is still recorded with what is known (the error goes into
``notes``) and the exception is re-raised.

Cost: hours x the hourly price of the hardware. Prices come from ``RUNSTREAM_PRICE_TABLE`` (a
JSON object of hardware key -> USD per hour) or the defaults below; the key is the Databricks
node type when on Databricks, else ``"local"``. Unknown keys give no estimate.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from runstream import environment_variables as env

log = logging.getLogger(__name__)

# USD per hour; "local" is a laptop's electricity and wear, close enough to free.
DEFAULT_PRICES: dict[str, float] = {
    "local": 0.0,
    "i3.xlarge": 0.312 + 0.27,
    "m5d.large": 0.113 + 0.10,
    "Standard_DS3_v2": 0.293 + 0.22,
}


def _memory_gib() -> float | None:
    try:
        pages = os.sysconf("SC_PHYS_PAGES")
        size = os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return round(pages * size / 2**30, 1)


def _gpu() -> str | None:
    nvidia = Path("/proc/driver/nvidia/gpus")
    if nvidia.is_dir():
        names = []
        for gpu in sorted(nvidia.iterdir()):
            info = (gpu / "information").read_text(errors="replace")
            for line in info.splitlines():
                if line.startswith("Model:"):
                    names.append(line.split(":", 1)[1].strip())
        if names:
            return ", ".join(names)
    return None


def cluster_id() -> str | None:
    """The Databricks cluster id from the cluster's environment, if any."""
    return os.environ.get("DATABRICKS_CLUSTER_ID") or os.environ.get("DB_CLUSTER_ID") or None


def hardware_key() -> str:
    return os.environ.get("DATABRICKS_NODE_TYPE") or os.environ.get("DB_NODE_TYPE") or "local"


def hardware_config() -> str:
    """A one-line description of where the run ran."""
    cid = cluster_id()
    if cid:
        workers = os.environ.get("DB_NUM_WORKERS") or os.environ.get("DATABRICKS_NUM_WORKERS")
        parts = [f"databricks cluster {cid}", f"node {hardware_key()}"]
        if workers:
            parts.append(f"{workers} workers")
        return ", ".join(parts)
    parts = ["local", platform.processor() or platform.machine(), f"{os.cpu_count()} cores"]
    mem = _memory_gib()
    if mem is not None:
        parts.append(f"{mem} GiB")
    gpu = _gpu()
    if gpu:
        parts.append(f"GPU {gpu}")
    return ", ".join(parts)


def price_table() -> dict[str, float]:
    path = env.RUNSTREAM_PRICE_TABLE.get()
    if not path:
        return dict(DEFAULT_PRICES)
    data = json.loads(Path(path).expanduser().read_text())
    return {str(k): float(v) for k, v in data.items()}


def cost_estimate(seconds: float, key: str | None = None) -> float | None:
    price = price_table().get(key or hardware_key())
    return None if price is None else round(seconds / 3600.0 * price, 6)


def run_by() -> str:
    explicit = env.RUNSTREAM_RUN_BY.get()
    if explicit:
        return explicit
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@contextmanager
def tracked_run(emitter: Any = None, **columns: Any) -> Iterator[dict[str, Any]]:
    """Yield a dict of the run's columns; emit it, timed and described, when the block ends."""
    from runstream.producer.emitter import default_emitter

    run: dict[str, Any] = dict(columns)
    start = time.perf_counter()
    failure: BaseException | None = None
    try:
        yield run
    except BaseException as exc:
        failure = exc
        raise
    finally:
        elapsed = time.perf_counter() - start
        run.setdefault("execution_time_seconds", elapsed)
        run.setdefault("hardware_config", hardware_config())
        if cluster_id():
            run.setdefault("databricks_cluster_id", cluster_id())
        run.setdefault("run_by", run_by())
        if "cost_estimate_usd" not in run:
            run["cost_estimate_usd"] = cost_estimate(run["execution_time_seconds"])
        if failure is not None:
            note = f"run failed: {type(failure).__name__}: {failure}"
            run["notes"] = f"{run['notes']}\n{note}" if run.get("notes") else note
        target = emitter if emitter is not None else default_emitter()
        if failure is None:
            target.emit_run(run)
        else:
            try:
                target.emit_run(run)
            except Exception:
                log.exception("could not record the failed run")
