"""Forecast accuracy and the Diebold-Mariano test, computed as the ``model_runs`` columns.

``evaluate(actual, forecast, baseline, last_observed=...)`` turns a backtest window (or many)
into the seed's metric columns, plain Python floats and bools, so
``emit_run({**fields, **evaluate(...)})`` takes them as they are. ``diebold_mariano`` is the
test itself, for any aligned series of forecasts. Needs NumPy and SciPy (the ``metrics``
extra); ``import runstream`` does not load this module.

The columns, for forecast paths of ``H`` days after a forecast origin (day 0):

========================  ==================================================================
``mae_{1,7,14}day``       mean absolute error over days 1..k of the path (``None`` if H < k)
``rmse_14day``            root mean squared error over days 1..14
``mape_14day``            mean absolute percentage error over days 1..14, in percent
``directional_accuracy``  share of days 1..H whose direction from day 0 is right, in [0, 1]
``dm_test_vs_naive``      Diebold-Mariano statistic, HLN-corrected (< 0: forecast better)
``dm_pvalue``             its two-sided p-value
``beats_baseline``        lower mean loss than the baseline and ``dm_pvalue < level``
========================  ==================================================================

Decisions, and why:

- *Over days 1..k, not day k alone.* The seed's backtester writes ``mae_14day`` from the
  window's MAE, and the table ranks runs by it; read as the error of day 14 alone,
  ``rmse_14day`` would equal ``mae_14day`` for every single-window run.
- *MAPE in percent* (4.2 means 4.2 %): the table's rule for ``mape_14day`` is non-negative,
  not a fraction as for ``directional_accuracy``. Days whose actual is exactly 0 are left out
  (their percentage error is undefined); if every day's actual is 0, MAPE is ``None``.
- *Direction ties*: a day counts as right when ``sign(forecast - last_observed) ==
  sign(actual - last_observed)`` with sign in {-1, 0, +1}. A forecast of no change is right
  only on a day whose actual did not change; so the naive forecast scores the share of
  unchanged days, and a model is not rewarded for staying flat.
- *Several windows* (2-D arrays, windows x days): errors are pooled, so each MAE, RMSE, MAPE
  and the directional share is over every window's days 1..k. The DM test runs on one value
  per window, that window's mean loss differential over its H days: it tests the path loss
  the table ranks runs by, and windows are the replications whose independence the test
  needs. Windows that do not share days are near independent (``h=1``); when consecutive
  origins are ``step`` days apart and ``step < H``, pass ``h = ceil(H / step)``, the number
  of consecutive windows that share a day, so the variance counts their covariance.
- *One window* (1-D arrays): the series tested is the window's own H daily loss
  differentials. Every day shares one forecast origin, so their errors are correlated and
  the p-value is optimistic; log one run per backtest over all its windows when the
  verdict matters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

from runstream.errors import InputError

__all__ = ["DMResult", "Loss", "beats_baseline", "diebold_mariano", "evaluate"]

Loss = Literal["squared", "absolute"]
LOSSES: tuple[Loss, ...] = ("squared", "absolute")
Array = npt.NDArray[np.float64]
_SHAPES = {0: "a number", 1: "1-D (days)", 2: "2-D (windows x days)"}


@dataclass(frozen=True)
class DMResult:
    """A Diebold-Mariano test of ``forecast`` against ``baseline``.

    ``statistic`` is negative when the forecast's mean loss is lower; ``pvalue`` is two-sided
    (equal accuracy against any difference) and ``pvalue_better`` one-sided (against the
    forecast being more accurate). ``mean_differential`` is the mean of
    ``loss(forecast error) - loss(baseline error)`` over the ``n`` points. ``bartlett`` is True
    when the truncated long-run variance was not positive and Bartlett weights were used.
    """

    statistic: float
    pvalue: float
    pvalue_better: float
    mean_differential: float
    n: int
    h: int
    loss: Loss
    bartlett: bool


def diebold_mariano(
    actual: npt.ArrayLike,
    forecast: npt.ArrayLike,
    baseline: npt.ArrayLike,
    *,
    h: int = 1,
    loss: Loss = "squared",
) -> DMResult:
    """Test whether ``forecast`` and ``baseline`` are equally accurate (Diebold and Mariano
    1995, JBES 13(3), with Harvey, Leybourne and Newbold 1997, IJF 13(2)).

    The three arguments are aligned 1-D series; each forecast is ``h`` steps ahead of its
    origin, origins one step apart. With the loss differential
    ``d_t = L(actual_t - forecast_t) - L(actual_t - baseline_t)`` (``loss``: ``"squared"``,
    ``L(e) = e**2``, or ``"absolute"``, ``L(e) = |e|``; pick the loss the forecast will be
    judged by) and its mean ``d̄`` over ``n`` points::

        gamma_k = 1/n * sum_{t=k+1..n} (d_t - d̄)(d_{t-k} - d̄)
        V       = gamma_0 + 2 * sum_{k=1..h-1} gamma_k
        DM      = d̄ / sqrt(V / n)
        DM*     = DM * sqrt((n + 1 - 2h + h(h-1)/n) / n) = DM * sqrt((n-h)(n-h+1)) / n

    Why the lags: consecutive h-step forecasts share h-1 unknown steps, so ``d_t`` is
    correlated up to lag h-1 even for optimal forecasts, and the variance of ``d̄`` must count
    it. Why the correction: DM's normal reference rejects too often in small samples; HLN's
    factor and Student's t with n-1 degrees of freedom bring the size back near nominal.

    The truncated ``V`` can come out non-positive in small samples; then Bartlett weights
    ``1 - k/h`` (Newey and West 1987) are used, which keep it positive. A constant ``d_t``
    has no variance: all zero (identical losses) gives statistic 0.0 and p-value 1.0; a
    constant non-zero ``d_t`` gives an infinite statistic and p-value 0.0.

    Raises ``InputError`` for series of different lengths, NaN or infinite values, ``h < 1``
    or fewer than ``h + 1`` points.
    """
    _check_options(h=h, loss=loss)
    a = _array("actual", actual, dims=(1,))
    f = _array("forecast", forecast, dims=(1,))
    b = _array("baseline", baseline, dims=(1,))
    _same_shape(a, forecast=f, baseline=b)
    if a.size <= h:
        raise InputError(
            f"actual has {a.size} points; the Diebold-Mariano test at h={h} needs at least "
            f"{h + 1} (n > h): pass more forecast origins or a smaller h"
        )
    return _test(_loss(a - f, loss) - _loss(a - b, loss), h=h, loss=loss)


def beats_baseline(result: DMResult, level: float = 0.05) -> bool:
    """True when the forecast's mean loss is lower and the two-sided p-value is below
    ``level``: the same p-value the table stores as ``dm_pvalue``, so a query's
    ``dm_pvalue < 0.05`` and ``beats_baseline`` never disagree on a lower-loss run."""
    _check_level(level)
    return result.mean_differential < 0 and result.pvalue < level


def evaluate(
    actual: npt.ArrayLike,
    forecast: npt.ArrayLike,
    baseline: npt.ArrayLike,
    *,
    last_observed: npt.ArrayLike,
    h: int = 1,
    loss: Loss = "squared",
    level: float = 0.05,
) -> dict[str, float | bool | None]:
    """The seed's metric columns for one forecast window or many (see the module's docstring).

    ``actual``, ``forecast`` and ``baseline`` (usually the naive forecast, ``last_observed``
    repeated) are paths of H days: 1-D for one window, 2-D (windows x days) for several.
    ``last_observed`` is day 0, the last value known at the forecast origin: a number, or one
    per window. ``h``, ``loss`` and ``level`` go to the Diebold-Mariano test and
    ``beats_baseline``; ``h`` counts points of the tested series (days for one window,
    windows for several).

    Values are Python floats and bools, or ``None`` where a column cannot be computed (a
    horizon shorter than the column's, MAPE with all-zero actuals, an infinite DM statistic).
    """
    _check_options(h=h, loss=loss)
    _check_level(level)
    a = _array("actual", actual, dims=(1, 2))
    f = _array("forecast", forecast, dims=(1, 2))
    b = _array("baseline", baseline, dims=(1, 2))
    _same_shape(a, forecast=f, baseline=b)
    a, f, b = np.atleast_2d(a), np.atleast_2d(f), np.atleast_2d(b)
    windows, days = a.shape
    last = _array("last_observed", last_observed, dims=(0, 1)).reshape(-1)
    if last.size != windows:
        raise InputError(
            f"last_observed has {last.size} values for {windows} windows; give one day-0 value "
            "per window (row of actual)"
        )
    d = _loss(a - f, loss) - _loss(a - b, loss)
    if windows == 1:
        series, what = d[0], f"actual has one window of {days} days, which are the series"
    else:
        series, what = d.mean(axis=1), f"actual has {windows} windows, one point each"
    if series.size <= h:
        raise InputError(
            f"{what}; the Diebold-Mariano test at h={h} needs at least {h + 1} points (n > h): "
            "pass a smaller h or more windows (2-D arrays, windows x days)"
        )
    result = _test(series, h=h, loss=loss)

    errors = f - a
    up_to_14 = days >= 14
    columns: dict[str, float | bool | None] = {
        f"mae_{k}day": float(np.abs(errors[:, :k]).mean()) if days >= k else None
        for k in (1, 7, 14)
    }
    columns["rmse_14day"] = math.sqrt(float((errors[:, :14] ** 2).mean())) if up_to_14 else None
    columns["mape_14day"] = _mape(a[:, :14], errors[:, :14]) if up_to_14 else None
    moved, called = np.sign(a - last[:, None]), np.sign(f - last[:, None])
    columns["directional_accuracy"] = float((moved == called).mean())
    columns["dm_test_vs_naive"] = result.statistic if math.isfinite(result.statistic) else None
    columns["dm_pvalue"] = result.pvalue
    columns["beats_baseline"] = beats_baseline(result, level)
    return columns


def _test(d: Array, *, h: int, loss: Loss) -> DMResult:
    """The DM statistic and p-values of a loss differential series (``diebold_mariano``)."""
    n = d.size
    mean = float(d.mean())
    variance, bartlett = 0.0, False
    if np.ptp(d) > 0:  # a constant series has no variance, whatever rounding says
        dev = d - mean
        gamma = np.array([dev[k:] @ dev[: n - k] for k in range(h)]) / n
        variance = float(gamma[0] + 2 * gamma[1:].sum())
        if variance <= 0:
            bartlett = True
            weights = 1 - np.arange(1, h) / h
            variance = float(gamma[0] + 2 * (weights * gamma[1:]).sum())
    if variance > 0:
        hln = math.sqrt((n - h) * (n - h + 1)) / n
        statistic = mean / math.sqrt(variance / n) * hln
    else:
        statistic = 0.0 if mean == 0 else math.copysign(math.inf, mean)
    df = n - 1
    return DMResult(
        statistic=statistic,
        pvalue=min(1.0, float(2 * stats.t.sf(abs(statistic), df))),
        pvalue_better=float(stats.t.cdf(statistic, df)),
        mean_differential=mean,
        n=n,
        h=int(h),
        loss=loss,
        bartlett=bartlett,
    )


def _mape(actual: Array, errors: Array) -> float | None:
    """Percent; days with a zero actual are left out, ``None`` when every actual is zero."""
    kept = actual != 0
    if not kept.any():
        return None
    return float(100 * (np.abs(errors[kept]) / np.abs(actual[kept])).mean())


def _loss(errors: Array, loss: Loss) -> Array:
    return errors**2 if loss == "squared" else np.abs(errors)


def _array(name: str, value: Any, *, dims: tuple[int, ...]) -> Array:
    """``value`` as a float array of one of ``dims`` dimensions, non-empty and finite."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"{name} must be numbers (a list or NumPy array), got {type(value).__name__}: {exc}"
        ) from exc
    if array.ndim not in dims:
        shapes = " or ".join(_SHAPES[d] for d in dims)
        raise InputError(f"{name} must be {shapes}, got shape {array.shape}")
    if array.size == 0:
        raise InputError(f"{name} is empty; give at least one day")
    finite = np.isfinite(array)
    if not finite.all():
        where = tuple(int(i) for i in np.argwhere(~finite)[0])  # () for a number
        at = f" at index {where[0] if len(where) == 1 else where}" if where else ""
        raise InputError(
            f"{name} holds {array[where]}{at}; drop or fill missing days (in all three paths "
            "alike) before evaluating"
        )
    return array


def _same_shape(actual: Array, **others: Array) -> None:
    for name, array in others.items():
        if array.shape != actual.shape:
            raise InputError(
                f"{name} has shape {array.shape} but actual has {actual.shape}; give one "
                f"{name} value per actual value"
            )


def _check_options(*, h: int, loss: str) -> None:
    if isinstance(h, bool) or not isinstance(h, int | np.integer) or h < 1:
        raise InputError(
            f"h must be a whole number >= 1, got {h!r}; h is the forecast horizon in steps "
            "of the tested series (1 when its points share no forecast days)"
        )
    if loss not in LOSSES:
        raise InputError(f"loss must be one of {', '.join(map(repr, LOSSES))}, got {loss!r}")


def _check_level(level: float) -> None:
    if isinstance(level, bool) or not isinstance(level, float | int) or not 0 < level < 1:
        raise InputError(f"level must be a number between 0 and 1 (e.g. 0.05), got {level!r}")
