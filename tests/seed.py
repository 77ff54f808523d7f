"""The seed's example run from "Recording an Experiment", verbatim."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any


def seed_experiment() -> dict[str, Any]:
    experiment = {
        "experiment_id": str(uuid.uuid4()),
        "model_name": "sarimax_auto_weather_v1",
        "model_version": "v1",
        "run_timestamp": datetime.now(),
        "model_type": "SARIMAX",
        "hyperparameters": {
            "order": "(1,1,1)",
            "seasonal_order": "(1,1,1,7)",
            "exog_vars": "temp_c,humidity_pct,precipitation_mm"
        },
        "feature_config": {
            "weather": True,
            "vix": False,
            "cop_usd": False
        },
        "training_start_date": "2022-01-01",
        "training_end_date": "2024-12-31",
        "forecast_horizon_days": 14,
        "commodity": "Coffee",
        "mae_14day": 3.10,
        "directional_accuracy": 0.695,
        "beats_baseline": True,
        "execution_time_seconds": 45.2,
        "hardware_config": "local",
        "run_by": "Connor"
    }  # fmt: skip
    return experiment
