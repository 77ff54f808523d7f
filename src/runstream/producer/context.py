"""``tracked_run``: time a block and fill the run's infrastructure columns.

::

    with tracked_run(model_name="sarimax_auto_weather_v1", model_version="v1", ...) as run:
        fit_and_score()
        run["mae_14day"] = 3.10

``experiment_id`` and ``run_timestamp`` (the start of the block) are filled on entry, so the
block can log its id. On exit the run is emitted with ``execution_time_seconds``,
``hardware_config``, ``databricks_cluster_id``, ``run_by`` and ``cost_estimate_usd`` filled
unless the block set them. If the block raises, the run is still recorded with what is known
(the error goes into ``notes``) and the exception is re-raised, unchanged: nothing this module
does on the way out may replace the user's exception.

The price table is read on entry, so a broken ``RUNSTREAM_PRICE_TABLE`` fails before an hour of
backtesting, not after it.

Cost: hours x the hourly price of the hardware. Prices come from ``RUNSTREAM_PRICE_TABLE`` (a
JSON object of hardware key -> USD per hour) or the defaults below; the key is the Databricks
node type when on Databricks, else ``"local"``. Unknown keys give no estimate.
"""

from __future__ import annotations

import getpass
import json
import logging
import math
import os
import platform
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runstream import environment_variables as env
from runstream.errors import ValidationError
from runstream.machine import physical_memory

if TYPE_CHECKING:
    from runstream.producer.emitter import Emitter

log = logging.getLogger(__name__)

# USD per hour; "local" is a laptop's electricity and wear, close enough to free.
DEFAULT_PRICES: dict[str, float] = {
    "local": 0.0,
    "i3.xlarge": 0.312 + 0.27,
    "m5d.large": 0.113 + 0.10,
    "Standard_DS3_v2": 0.293 + 0.22,
}


def _memory_gib() -> float | None:
    memory = physical_memory()
    return None if memory is None else round(memory / 2**30, 1)


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
    """Hardware key -> USD per hour, from ``RUNSTREAM_PRICE_TABLE`` or the defaults.

    Raises ValidationError naming the variable and the problem when the file is unusable.
    """
    path = env.RUNSTREAM_PRICE_TABLE.get()
    if not path:
        return dict(DEFAULT_PRICES)
    where = f"RUNSTREAM_PRICE_TABLE ({path})"
    try:
        data = json.loads(Path(path).expanduser().read_text("utf-8"))
    except OSError as exc:
        raise ValidationError(
            [f"{where} cannot be read: {exc.strerror}; point it at a JSON file or unset it"]
        ) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError([f"{where} is not JSON: {exc}; fix the file"]) from exc
    if not isinstance(data, Mapping):
        raise ValidationError(
            [f'{where} must be a JSON object of hardware -> USD per hour, e.g. {{"local": 0.0}}']
        )
    prices: dict[str, float] = {}
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValidationError(
                [f"{where}: the price of {key!r} must be a number, got {value!r}; fix the file"]
            )
        if not math.isfinite(value) or value < 0:
            raise ValidationError(
                [f"{where}: the price of {key!r} must be >= 0, got {value!r}; fix the file"]
            )
        prices[str(key)] = float(value)
    return prices


def cost_estimate(
    seconds: float, key: str | None = None, prices: Mapping[str, float] | None = None
) -> float | None:
    """USD for ``seconds`` on hardware ``key``; None when the price is unknown."""
    price = (price_table() if prices is None else prices).get(key or hardware_key())
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
def tracked_run(emitter: Emitter | None = None, **columns: Any) -> Iterator[dict[str, Any]]:
    """Yield a dict of the run's columns; emit it, timed and described, when the block ends.

    ``columns`` are any ``emit_run`` columns; the block may add or change entries. Validation
    errors surface on exit (a clean exit raises them; after a failure they are logged, and the
    block's own exception propagates).
    """
    from runstream.producer.emitter import default_emitter

    prices = price_table()  # fail now, not after the run
    run: dict[str, Any] = dict(columns)
    if run.get("experiment_id") is None:
        run["experiment_id"] = str(uuid.uuid4())
    if run.get("run_timestamp") is None:
        run["run_timestamp"] = datetime.now(timezone.utc)
    start = time.perf_counter()
    failure: BaseException | None = None
    try:
        yield run
    except BaseException as exc:
        failure = exc
        raise
    finally:
        elapsed = time.perf_counter() - start
        if failure is None:
            (emitter or default_emitter()).emit_run(_describe(run, elapsed, prices, None))
        else:
            try:
                (emitter or default_emitter()).emit_run(_describe(run, elapsed, prices, failure))
            except Exception:
                log.exception("could not record the failed run %s", run.get("experiment_id"))


def _describe(
    run: dict[str, Any],
    elapsed: float,
    prices: Mapping[str, float],
    failure: BaseException | None,
) -> dict[str, Any]:
    """Fill the infrastructure columns the block left unset (in place, so the caller sees them)."""
    run.setdefault("execution_time_seconds", elapsed)
    run.setdefault("hardware_config", hardware_config())
    cid = cluster_id()
    if cid:
        run.setdefault("databricks_cluster_id", cid)
    run.setdefault("run_by", run_by())
    seconds = run["execution_time_seconds"]
    usable = isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
    if "cost_estimate_usd" not in run and usable and math.isfinite(seconds) and seconds >= 0:
        run["cost_estimate_usd"] = cost_estimate(float(seconds), prices=prices)
    if failure is not None:
        note = f"run failed: {type(failure).__name__}: {failure}"
        run["notes"] = f"{run['notes']}\n{note}" if run.get("notes") else note
    return run
