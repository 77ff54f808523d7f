"""``runstream export-mlflow``: mirror ``model_runs`` into an MLflow tracking server.

Many teams already look at MLflow; the table stays the record and MLflow a view of it. Each
row becomes one MLflow run in the experiment ``runstream/<commodity>`` (scales never mixed):

- run name ``<model_name> <model_version>``, start time ``run_timestamp``, end time
  ``run_timestamp + execution_time_seconds``;
- params: each hyperparameter (``hp.<name>``) and each feature flag (``feature.<name>``);
- metrics: the table's numeric columns that are set (``mae_14day``, ``dm_pvalue``, ...);
- tags: ``runstream.experiment_id`` (the key), ``runstream.last_event_id`` (what was
  mirrored), the model's type, version, commodity and window, ``beats_baseline``,
  ``is_production``, ``run_by`` (as ``mlflow.user``), ``notes`` (as ``mlflow.note.content``),
  the other text columns, and the registry's ``tags`` (``tag.<name>``).

Idempotent: runs are found again by their ``runstream.experiment_id`` tag. A run already
mirrored with the same ``_rs_last_event_id`` is left alone; a changed one gets its metrics and
tags logged again, or, when its params changed (MLflow refuses to change a param), is deleted
and mirrored afresh. So exporting twice, or after new runs arrive, leaves each run once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from runstream.errors import SetupError

if TYPE_CHECKING:
    from runstream.engines import Engine

log = logging.getLogger(__name__)

KEY_TAG = "runstream.experiment_id"
VERSION_TAG = "runstream.last_event_id"
METRICS = ("mae_1day", "mae_7day", "mae_14day", "rmse_14day", "mape_14day",
           "directional_accuracy", "dm_test_vs_naive", "dm_pvalue", "execution_time_seconds",
           "cost_estimate_usd", "forecast_horizon_days")  # fmt: skip
TAGS = ("model_name", "model_version", "model_type", "commodity", "data_version",
        "training_start_date", "training_end_date", "beats_baseline", "is_production",
        "hardware_config", "databricks_cluster_id", "model_path", "dashboard_url")  # fmt: skip


@dataclass(frozen=True)
class ExportResult:
    created: int
    updated: int
    unchanged: int


def _ms(moment: datetime) -> int:
    if moment.tzinfo is None:  # the table's timestamps are UTC
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def mirror_of(row: dict[str, Any]) -> tuple[dict[str, str], dict[str, float], dict[str, str]]:
    """(params, metrics, tags) of one ``model_runs`` row, as MLflow stores them."""
    params = {f"hp.{k}": str(v) for k, v in sorted((row.get("hyperparameters") or {}).items())}
    flags = sorted((row.get("feature_config") or {}).items())
    params |= {f"feature.{k}": str(v).lower() for k, v in flags}
    metrics = {k: float(row[k]) for k in METRICS if row.get(k) is not None}
    tags = {k: str(row[k]) for k in TAGS if row.get(k) is not None}
    tags |= {f"tag.{k}": str(v) for k, v in sorted((row.get("tags") or {}).items())}
    tags |= {KEY_TAG: row["experiment_id"], VERSION_TAG: row["_rs_last_event_id"]}
    if row.get("run_by"):
        tags["mlflow.user"] = str(row["run_by"])
    if row.get("notes"):
        tags["mlflow.note.content"] = str(row["notes"])
    return params, metrics, tags


def _client(tracking_uri: str) -> Any:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as exc:
        raise SetupError("export-mlflow needs MLflow: pip install 'runstream[mlflow]'") from exc
    return MlflowClient(tracking_uri=tracking_uri)


def _experiment(client: Any, commodity: str) -> str:
    name = f"runstream/{commodity}"
    found = client.get_experiment_by_name(name)
    return str(found.experiment_id if found else client.create_experiment(name))


def _mirrored(client: Any, experiment_id: str) -> dict[str, Any]:
    """Runs already in the experiment, by their runstream key (active runs only)."""
    out: dict[str, Any] = {}
    token = None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token)
        for run in page:
            key = run.data.tags.get(KEY_TAG)
            if key:
                out[key] = run
        token = page.token
        if not token:
            return out


def _log(client: Any, run_id: str, params: dict[str, str], metrics: dict[str, float],
         tags: dict[str, str], at_ms: int) -> None:  # fmt: skip
    from mlflow.entities import Metric, Param, RunTag

    client.log_batch(
        run_id,
        metrics=[Metric(k, v, at_ms, 0) for k, v in metrics.items()],
        params=[Param(k, v) for k, v in params.items()],
        tags=[RunTag(k, v) for k, v in tags.items()],
    )


def export(engine: Engine, tracking_uri: str) -> ExportResult:
    """Mirror every row of ``model_runs`` (as ``engine`` reads it) into MLflow."""
    client = _client(tracking_uri)
    rows = engine.sql("SELECT * FROM model_runs ORDER BY commodity, run_timestamp, experiment_id")
    created = updated = unchanged = 0
    experiments: dict[str, tuple[str, dict[str, Any]]] = {}
    for row in rows:
        commodity = row["commodity"]
        if commodity not in experiments:
            experiment_id = _experiment(client, commodity)
            experiments[commodity] = (experiment_id, _mirrored(client, experiment_id))
        experiment_id, mirrored = experiments[commodity]
        params, metrics, tags = mirror_of(row)
        start = _ms(row["run_timestamp"])
        existing = mirrored.get(row["experiment_id"])
        if existing is not None and existing.data.tags.get(VERSION_TAG) == tags[VERSION_TAG]:
            unchanged += 1
            continue
        if existing is not None and existing.data.params == params:
            _log(client, existing.info.run_id, {}, metrics, tags, start)
            updated += 1
            continue
        if existing is not None:  # a param changed, which MLflow cannot update: mirror afresh
            client.delete_run(existing.info.run_id)
        run = client.create_run(
            experiment_id, start_time=start, tags={KEY_TAG: row["experiment_id"]},
            run_name=f"{row['model_name']} {row['model_version']}",
        )  # fmt: skip
        _log(client, run.info.run_id, params, metrics, tags, start)
        seconds = row.get("execution_time_seconds") or 0.0
        end = _ms(row["run_timestamp"] + timedelta(seconds=float(seconds)))
        client.set_terminated(run.info.run_id, status="FINISHED", end_time=end)
        created += existing is None
        updated += existing is not None
    log.info("MLflow at %s: %d created, %d updated, %d unchanged",
             tracking_uri, created, updated, unchanged)  # fmt: skip
    return ExportResult(created, updated, unchanged)
