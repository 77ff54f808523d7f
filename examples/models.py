"""The model registry of the walk-forward example, in the seed's shape, and its fit functions.

``REGISTRY`` maps a model name to ``{"type", "function", "params", "experiment_tags"}`` as the
seed's ``model_registry.py`` does: 25 variants in eight families (3 baselines, 2 moving
averages, 4 ARIMA, 4 SARIMAX, 4 ETS, 1 Theta, 5 gradient boosting, 2 ridge). Every
``function`` takes the training prices and their dates and the dates to forecast, and returns
one price per forecast date; ``params`` are its keyword arguments, and are what the run records
as ``hyperparameters``. Orders are kept modest, so one fit takes well under a second.

The statistical models come from statsmodels, the learned ones from scikit-learn (lagged daily
log returns as features, forecast recursively one day at a time). ``fit_forecast`` is what a
worker process runs: one model on one training window, timed, with statsmodels' convergence
warnings caught and returned as notes instead of printed.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from runstream.examples.prices import Array, Dates, load

Fit = Callable[..., Array]


# -- baselines and simple rules -------------------------------------------------------------
def naive(y: Array, dates: Dates, future: Dates) -> Array:
    """The last price, held flat (the baseline every run is tested against)."""
    return np.full(future.size, y[-1], dtype=np.float64)


def random_walk_drift(y: Array, dates: Dates, future: Dates) -> Array:
    """The last price plus the training window's average daily change."""
    slope = float(y[-1] - y[0]) / (y.size - 1)
    return np.asarray(y[-1] + slope * np.arange(1, future.size + 1), dtype=np.float64)


def seasonal_naive(y: Array, dates: Dates, future: Dates, *, season_length: int) -> Array:
    """The price of the same weekday (``season_length`` trading days) one season back."""
    back = np.arange(future.size) % season_length
    return y[y.size - season_length + back]


def moving_average(y: Array, dates: Dates, future: Dates, *, window: int) -> Array:
    """The mean of the last ``window`` prices, held flat."""
    return np.full(future.size, y[-window:].mean(), dtype=np.float64)


# -- statsmodels ----------------------------------------------------------------------------
def weekday_dummies(dates: Dates) -> Array:
    """Tuesday..Friday indicators (Monday is the base)."""
    weekday = (dates.astype(np.int64) + 3) % 7
    return np.asarray(weekday[:, None] == np.arange(1, 5)[None, :], dtype=np.float64)


def arima(y: Array, dates: Dates, future: Dates, *, order: tuple[int, int, int]) -> Array:
    from statsmodels.tsa.arima.model import ARIMA

    return np.asarray(ARIMA(y, order=order).fit().forecast(future.size))


def sarimax(
    y: Array,
    dates: Dates,
    future: Dates,
    *,
    order: tuple[int, int, int],
    seasonal_order: tuple[int, int, int, int] = (0, 0, 0, 0),
    trend: str = "n",
    exog_vars: str = "",
) -> Array:
    """SARIMAX; ``trend="t"`` with one difference is a drift; ``exog_vars="weekday"`` adds
    weekday indicators as regressors (known for the forecast dates too)."""
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    exog, ahead = (weekday_dummies(dates), weekday_dummies(future)) if exog_vars else (None, None)
    model = SARIMAX(y, exog=exog, order=order, seasonal_order=seasonal_order, trend=trend)
    return np.asarray(model.fit(disp=False).forecast(future.size, exog=ahead))


def ets(
    y: Array, dates: Dates, future: Dates, *, error: str, trend: str, damped_trend: bool
) -> Array:
    """Exponential smoothing (ETS) in state-space form; ``trend="none"`` for none."""
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    model = ETSModel(
        y, error=error, trend=None if trend == "none" else trend, damped_trend=damped_trend
    )
    return np.asarray(model.fit(disp=False).forecast(future.size))


def theta(y: Array, dates: Dates, future: Dates, *, deseasonalize: bool, period: int) -> Array:
    from statsmodels.tsa.forecasting.theta import ThetaModel

    model = ThetaModel(y, period=period, deseasonalize=deseasonalize)
    return np.asarray(model.fit().forecast(future.size))


# -- scikit-learn on lagged returns ---------------------------------------------------------
def _recursive(
    make: Callable[[], Any], y: Array, dates: Dates, future: Dates, lags: int, calendar: bool
) -> Array:
    """Fit ``make()`` to predict the next daily log return from the last ``lags`` returns
    (and the weekday of the day predicted), then forecast one day at a time, feeding each
    prediction back as the newest lag."""
    returns = np.diff(np.log(y))
    rows = returns.size - lags
    features = np.lib.stride_tricks.sliding_window_view(returns, lags)[:rows]
    if calendar:
        features = np.hstack([features, weekday_dummies(dates[lags + 1 :])])
    model = make().fit(features, returns[lags:])
    history, path = list(returns[-lags:]), []
    for day in range(future.size):
        row = np.array(history[-lags:])
        if calendar:
            row = np.concatenate([row, weekday_dummies(future[day : day + 1])[0]])
        step = float(model.predict(row[None, :])[0])
        history.append(step)
        path.append(step)
    return np.asarray(y[-1] * np.exp(np.cumsum(path)))


def gradient_boosting(
    y: Array,
    dates: Dates,
    future: Dates,
    *,
    lags: int,
    max_iter: int,
    learning_rate: float,
    max_leaf_nodes: int,
    calendar: bool = False,
    random_state: int = 0,
) -> Array:
    """scikit-learn's HistGradientBoostingRegressor (LightGBM-style trees) on lagged returns."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    def make() -> Any:
        return HistGradientBoostingRegressor(
            max_iter=max_iter, learning_rate=learning_rate, max_leaf_nodes=max_leaf_nodes,
            random_state=random_state,
        )  # fmt: skip

    return _recursive(make, y, dates, future, lags, calendar)


def ridge(
    y: Array, dates: Dates, future: Dates, *, lags: int, alpha: float, calendar: bool = False
) -> Array:
    """Standardised lagged returns, ridge regression."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def make() -> Any:
        return make_pipeline(StandardScaler(), Ridge(alpha=alpha))

    return _recursive(make, y, dates, future, lags, calendar)


# -- the registry ---------------------------------------------------------------------------
_GB = {"max_iter": 100, "learning_rate": 0.1, "max_leaf_nodes": 15, "random_state": 0}
_GB_SLOW = {"max_iter": 300, "learning_rate": 0.03, "max_leaf_nodes": 7, "random_state": 0}
_SES, _HOLT = {"error": "add", "trend": "none"}, {"error": "add", "trend": "add"}
# name: (type, function, params, experiment_tags: feature_set, complexity, production_candidate)
_VARIANTS: dict[str, tuple[str, Fit, dict[str, Any], str, str, bool]] = {
    "naive_last_value":     ("Naive", naive, {}, "price", "low", False),
    "random_walk_drift":    ("RandomWalk", random_walk_drift, {}, "price", "low", False),
    "seasonal_naive_5d":    ("SeasonalNaive", seasonal_naive, {"season_length": 5}, "price",
                             "low", False),
    "moving_average_5d":    ("MovingAverage", moving_average, {"window": 5}, "price", "low", False),
    "moving_average_20d":   ("MovingAverage", moving_average, {"window": 20}, "price", "low",
                             False),
    "arima_110":            ("ARIMA", arima, {"order": (1, 1, 0)}, "price", "low", False),
    "arima_011":            ("ARIMA", arima, {"order": (0, 1, 1)}, "price", "low", False),
    "arima_111":            ("ARIMA", arima, {"order": (1, 1, 1)}, "price", "medium", True),
    "arima_212":            ("ARIMA", arima, {"order": (2, 1, 2)}, "price", "medium", False),
    "sarimax_111_s5":       ("SARIMAX", sarimax, {"order": (1, 1, 1),
                             "seasonal_order": (1, 0, 0, 5)}, "price", "medium", True),
    "sarimax_011_s5":       ("SARIMAX", sarimax, {"order": (0, 1, 1),
                             "seasonal_order": (0, 0, 1, 5)}, "price", "medium", False),
    "sarimax_111_drift":    ("SARIMAX", sarimax, {"order": (1, 1, 1), "trend": "t"}, "price",
                             "medium", False),
    "sarimax_111_weekday":  ("SARIMAX", sarimax, {"order": (1, 1, 1), "exog_vars": "weekday"},
                             "calendar", "medium", True),
    "ets_ann":              ("ETS", ets, {**_SES, "damped_trend": False}, "price", "low", False),
    "ets_aan":              ("ETS", ets, {**_HOLT, "damped_trend": False}, "price", "low", False),
    "ets_aadn":             ("ETS", ets, {**_HOLT, "damped_trend": True}, "price", "medium",
                             True),
    "ets_mnn":              ("ETS", ets, {"error": "mul", "trend": "none", "damped_trend": False},
                             "price", "low", False),
    "theta_s5":             ("Theta", theta, {"deseasonalize": True, "period": 5}, "price", "low",
                             False),
    "hgb_lags5":            ("GradientBoosting", gradient_boosting, {"lags": 5, **_GB}, "lags",
                             "high", False),
    "hgb_lags10":           ("GradientBoosting", gradient_boosting, {"lags": 10, **_GB}, "lags",
                             "high", True),
    "hgb_lags20":           ("GradientBoosting", gradient_boosting, {"lags": 20, **_GB}, "lags",
                             "high", False),
    "hgb_lags10_weekday":   ("GradientBoosting", gradient_boosting, {"lags": 10, **_GB,
                             "calendar": True}, "lags+calendar", "high", True),
    "hgb_lags10_slow":      ("GradientBoosting", gradient_boosting, {"lags": 10, **_GB_SLOW},
                             "lags", "high", False),
    "ridge_lags10":         ("Ridge", ridge, {"lags": 10, "alpha": 1.0}, "lags", "low", False),
    "ridge_lags20_weekday": ("Ridge", ridge, {"lags": 20, "alpha": 10.0, "calendar": True},
                             "lags+calendar", "low", False),
}  # fmt: skip
REGISTRY: dict[str, dict[str, Any]] = {
    name: {
        "type": kind,
        "function": function,
        "params": params,
        "experiment_tags": {
            "feature_set": feature_set,
            "complexity": complexity,
            "production_candidate": candidate,
        },
    }
    for name, (kind, function, params, feature_set, complexity, candidate) in _VARIANTS.items()
}
BASELINE = "naive_last_value"


def feature_config(params: Mapping[str, Any]) -> dict[str, bool]:
    """Which inputs a model uses, as ``model_runs.feature_config`` records them."""
    seasonal = params.get("seasonal_order", (0, 0, 0, 0))[3] == 5
    weekly = seasonal or params.get("season_length") == 5 or params.get("period") == 5
    return {
        "price_history": True,
        "lagged_returns": "lags" in params,
        "weekday": bool(params.get("calendar")) or params.get("exog_vars") == "weekday",
        "weekly_seasonality": bool(weekly and params.get("deseasonalize", True)),
    }


# -- what a worker process runs -------------------------------------------------------------
@dataclass(frozen=True)
class Fitted:
    """One model's forecast for one window, or why there is none."""

    forecast: tuple[float, ...] | None
    seconds: float  # fit and forecast, wall clock in the worker
    notes: tuple[str, ...]
    error: str | None


def start_worker() -> None:
    """Load the model libraries, then hold BLAS and OpenMP to one thread per worker process:
    the pool already uses every core, and two processes that each spin up a thread per core
    made gradient boosting ten times slower. (threadpoolctl limits only the libraries loaded
    when it is called, hence the imports first.)"""
    import sklearn.ensemble  # noqa: F401
    import statsmodels.tsa.statespace.sarimax  # noqa: F401
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def fit_forecast(model: str, commodity: str, start: int, end: int, horizon: int) -> Fitted:
    """Fit ``model`` to ``commodity``'s prices ``[start, end)`` and forecast the ``horizon``
    trading days after them. A failure is returned, not raised, so one bad fit never stops a
    backtest."""
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    series = load(commodity)
    y, dates = series.values[start:end], series.dates[start:end]
    future = series.dates[end : end + horizon]
    entry = REGISTRY[model]
    began = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            path = np.asarray(entry["function"](y, dates, future, **entry["params"]), float)
        except Exception as exc:
            return Fitted(None, time.perf_counter() - began, (), f"{type(exc).__name__}: {exc}")
    seconds = time.perf_counter() - began
    if path.shape != (horizon,) or not all(math.isfinite(v) for v in path):
        return Fitted(None, seconds, (), f"forecast is not {horizon} finite prices: {path!r}")
    notes = tuple(dict.fromkeys(
        f"statsmodels did not converge: {str(w.message).splitlines()[0]}"
        for w in caught if issubclass(w.category, ConvergenceWarning)
    ))  # fmt: skip
    return Fitted(tuple(float(v) for v in path), seconds, notes, None)
