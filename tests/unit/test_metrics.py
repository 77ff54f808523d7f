"""runstream.metrics: each column on a case worked by hand (the working is in each docstring),
the Diebold-Mariano test against hand values and an independent computation, its symmetry and
its degenerate cases, and the columns passing the run's own validation."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from runstream.contract.events import prepare_run
from runstream.demo import seed_experiment
from runstream.errors import InputError
from runstream.metrics import DMResult, beats_baseline, diebold_mariano, evaluate

COLUMNS = ["mae_1day", "mae_7day", "mae_14day", "rmse_14day", "mape_14day",
           "directional_accuracy", "dm_test_vs_naive", "dm_pvalue", "beats_baseline"]  # fmt: skip

# A 14-day window (day 0 = 100). Errors (forecast - actual): days 1-7 of size 1,2,1,1,2,0,0,
# days 8-14 of size 3, on actuals of 100 (days 1-7) and 150/50 alternating (days 8-14).
ERRORS = np.array([1, -2, 1, -1, 2, 0, 0, 3, -3, 3, -3, 3, -3, 3], dtype=float)
ACTUAL = np.array([100] * 7 + [150, 50] * 3 + [150], dtype=float)
FORECAST = ACTUAL + ERRORS
NAIVE = np.full(14, 100.0)


def _walks(windows: int, days: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random-walk prices: (day-0 values per window, actual paths windows x days)."""
    rng = np.random.default_rng(seed)
    prices = 100 + np.cumsum(rng.normal(size=(windows, days + 1)), axis=1)
    return prices[:, 0], prices[:, 1:]


# -- accuracy columns ----------------------------------------------------------------------------


def test_errors_over_days_1_to_k_by_hand() -> None:
    """|e| = 1,2,1,1,2,0,0, 3,3,3,3,3,3,3.
    mae_1day = 1; mae_7day = (1+2+1+1+2+0+0)/7 = 7/7 = 1; mae_14day = (7 + 7*3)/14 = 2.
    rmse_14day = sqrt((1+4+1+1+4+0+0 + 7*9)/14) = sqrt(74/14).
    mape_14day, percent: days 1-7 on 100 -> 1,2,1,1,2,0,0 %; days 8-14: 3 on 150 -> 2 %,
    3 on 50 -> 6 %, so 2,6,2,6,2,6,2 %; sum 7 + 26 = 33, over 14 days = 33/14 %."""
    out = evaluate(ACTUAL, FORECAST, NAIVE, last_observed=100)
    assert list(out) == COLUMNS
    assert out["mae_1day"] == 1.0
    assert out["mae_7day"] == 1.0
    assert out["mae_14day"] == 2.0
    assert out["rmse_14day"] == pytest.approx(math.sqrt(74 / 14))
    assert out["mape_14day"] == pytest.approx(33 / 14)


def test_mape_leaves_out_days_whose_actual_is_zero() -> None:
    """Actual 0 on days 1 and 2 (errors 5 and 7 there are left out); the other 12 days have
    actual 10 and error 1 -> 10 % each; mape = 10. All actuals zero -> None (MAE still 1)."""
    actual = np.array([0, 0] + [10] * 12, dtype=float)
    forecast = actual + np.array([5, 7] + [1] * 12)
    assert evaluate(actual, forecast, actual, last_observed=10)["mape_14day"] == pytest.approx(10)
    zeros = np.zeros(14)
    out = evaluate(zeros, zeros + 1, zeros + 2, last_observed=0)
    assert out["mape_14day"] is None
    assert out["mae_14day"] == 1.0


def test_directional_accuracy_counts_ties_as_a_direction() -> None:
    """Day 0 = 10. actual 11, 9, 10, 12, 8 moves up, down, flat, up, down;
    forecast 12, 11, 10, 10.5, 10 calls up, up, flat, up, flat.
    Right: day 1 (up/up), day 3 (flat/flat), day 4 (up/up) -> 3/5 = 0.6. Day 5's flat call
    is wrong: the actual moved. The naive forecast (10 every day) is right only on day 3: 1/5."""
    actual = [11, 9, 10, 12, 8]
    assert evaluate(actual, [12, 11, 10, 10.5, 10], actual, last_observed=10)[
        "directional_accuracy"
    ] == pytest.approx(0.6)
    assert evaluate(actual, [10] * 5, actual, last_observed=10)[
        "directional_accuracy"
    ] == pytest.approx(0.2)


def test_a_shorter_horizon_leaves_longer_columns_empty() -> None:
    """Five days: mae_1day = |12 - 11| = 1; no 7- or 14-day column."""
    actual = [11, 9, 10, 12, 8]
    out = evaluate(actual, [12, 11, 10, 10.5, 10], [10] * 5, last_observed=10)
    assert out["mae_1day"] == 1.0
    assert [out[c] for c in ("mae_7day", "mae_14day", "rmse_14day", "mape_14day")] == [None] * 4


# -- the Diebold-Mariano test ------------------------------------------------------------------


def test_dm_by_hand_and_the_autocovariance_term_matters() -> None:
    """Absolute loss; baseline errors all 1, forecast errors 2,3,5,4,6, so
    d = 1,2,4,3,5; n = 5, mean 3, deviations -2,-1,1,0,2.
    gamma_0 = (4+1+1+0+4)/5 = 2; gamma_1 = ((-1)(-2) + (1)(-1) + (0)(1) + (2)(0))/5 = 0.2.
    h=1: V = 2, DM = 3/sqrt(2/5); HLN factor sqrt((n-h)(n-h+1))/n = sqrt(4*5)/5 = sqrt(0.8);
         DM* = 3 * sqrt(0.8/0.4) = 3*sqrt(2) = 4.2426.
    h=2: V = 2 + 2*0.2 = 2.4, DM = 3/sqrt(2.4/5) = 3/sqrt(0.48); factor sqrt(3*4)/5 =
         sqrt(0.48); DM* = 3 exactly.
    p-value for h=2, t with 4 df, whose CDF is 1/2 + (3/4)x(1 - x^2/3), x = t/sqrt(4+t^2):
    x = 3/sqrt(13), p = 2(1 - F) = 1 - (9/(2 sqrt 13))(10/13) = 1 - 45/(13 sqrt 13) = 0.0399."""
    actual = np.array([10.0, 11, 12, 13, 14])
    baseline = actual + 1
    forecast = actual + np.array([2, 3, 5, 4, 6])
    one = diebold_mariano(actual, forecast, baseline, h=1, loss="absolute")
    two = diebold_mariano(actual, forecast, baseline, h=2, loss="absolute")
    assert one.statistic == pytest.approx(3 * math.sqrt(2))
    assert two.statistic == pytest.approx(3.0)
    assert two.pvalue == pytest.approx(1 - 45 / (13 * math.sqrt(13)))
    assert two.pvalue_better == pytest.approx(1 - two.pvalue / 2)  # forecast is worse
    assert (two.mean_differential, two.n, two.h, two.bartlett) == (3.0, 5, 2, False)
    assert not beats_baseline(two)


def test_dm_falls_back_to_bartlett_weights_when_the_variance_is_not_positive() -> None:
    """d = 1,3,2,4,0 (absolute loss, baseline perfect): mean 2, deviations -1,1,0,2,-2;
    gamma_0 = 10/5 = 2, gamma_1 = (-1 + 0 + 0 - 4)/5 = -1, so at h=2 the truncated
    V = 2 - 2 = 0. Bartlett: V = 2 + 2(1 - 1/2)(-1) = 1; DM = 2/sqrt(1/5) = 2 sqrt 5;
    times sqrt(0.48) -> 2 sqrt(2.4) = 3.098."""
    result = diebold_mariano([0.0] * 5, [1, 3, 2, 4, 0], [0.0] * 5, h=2, loss="absolute")
    assert result.bartlett
    assert result.statistic == pytest.approx(2 * math.sqrt(2.4))


def test_dm_agrees_with_an_independent_computation() -> None:
    """The variance of the mean written as a double sum over pairs of points at most h-1
    apart, Var(mean d) = (1/n^2) sum_{|i-j|<h} (d_i - mean)(d_j - mean) (each lag from both
    sides), HLN's factor in its published form, and the t-distribution p-value from the
    regularized incomplete beta function, P(|T| > t) = I_{df/(df+t^2)}(df/2, 1/2); plain
    Python but for the beta."""
    from scipy.special import betainc

    rng = np.random.default_rng(7)
    actual = rng.normal(size=60).cumsum()
    forecast = actual + rng.normal(scale=0.9, size=60)
    baseline = actual + rng.normal(scale=1.1, size=60)
    h, n = 3, 60
    d = [(a - f) ** 2 - (a - b) ** 2 for a, f, b in zip(actual, forecast, baseline, strict=True)]
    mean = sum(d) / n
    pairs = sum((d[i] - mean) * (d[j] - mean) for i in range(n) for j in range(n) if abs(i - j) < h)
    var_of_mean = pairs / n**2
    statistic = mean / math.sqrt(var_of_mean) * math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    df = n - 1
    pvalue = float(betainc(df / 2, 0.5, df / (df + statistic**2)))

    result = diebold_mariano(actual, forecast, baseline, h=h)
    assert result.statistic == pytest.approx(statistic, rel=1e-12)
    assert result.pvalue == pytest.approx(pvalue, rel=1e-9)
    assert result.mean_differential == pytest.approx(mean)


@pytest.mark.parametrize("loss", ["squared", "absolute"])
@pytest.mark.parametrize("h", [1, 2, 7])
def test_dm_swapping_forecast_and_baseline_flips_the_sign(loss: Any, h: int) -> None:
    """d -> -d: the mean changes sign, the autocovariances do not."""
    rng = np.random.default_rng(h)
    actual = rng.normal(size=80)
    first, second = actual + rng.normal(size=80), actual + rng.normal(scale=1.3, size=80)
    ab = diebold_mariano(actual, first, second, h=h, loss=loss)
    ba = diebold_mariano(actual, second, first, h=h, loss=loss)
    assert ba.statistic == pytest.approx(-ab.statistic)
    assert ba.pvalue == pytest.approx(ab.pvalue)
    assert ba.pvalue_better == pytest.approx(1 - ab.pvalue_better)


def test_identical_forecasts_give_no_evidence_and_no_nan() -> None:
    """d = 0 everywhere, zero variance: statistic 0.0, p-value 1.0, one-sided 0.5, no beat."""
    actual = np.arange(20.0)
    same = actual + np.sin(actual)
    result = diebold_mariano(actual, same, same.copy(), h=3)
    assert (result.statistic, result.pvalue, result.pvalue_better) == (0.0, 1.0, 0.5)
    assert not beats_baseline(result)
    out = evaluate(actual[:14], same[:14], same[:14], last_observed=0)
    assert (out["dm_test_vs_naive"], out["dm_pvalue"], out["beats_baseline"]) == (0.0, 1.0, False)


def test_a_constant_loss_differential_is_infinitely_significant_and_still_recordable() -> None:
    """Absolute loss, actual above both forecasts every day, forecast 1 closer: d = -1 every
    day. No variance, a non-zero mean: statistic -inf, p-value 0. The table's column must be
    finite, so evaluate() records dm_test_vs_naive as None, dm_pvalue 0.0, a beat."""
    actual = np.arange(10.0, 24.0)
    result = diebold_mariano(actual, actual - 1, actual - 2, loss="absolute")
    assert (result.statistic, result.pvalue) == (-math.inf, 0.0)
    out = evaluate(actual, actual - 1, actual - 2, last_observed=9, loss="absolute")
    assert (out["dm_test_vs_naive"], out["dm_pvalue"], out["beats_baseline"]) == (None, 0.0, True)
    prepare_run({**seed_experiment(), **out})


@pytest.mark.parametrize("h", [1, 7, 14])
def test_a_clearly_better_forecast_beats_the_baseline_and_a_worse_one_does_not(h: int) -> None:
    rng = np.random.default_rng(100 + h)
    actual = rng.normal(size=300).cumsum()
    good = actual + rng.normal(scale=0.5, size=300)
    naive = actual + rng.normal(scale=2.0, size=300)
    better = diebold_mariano(actual, good, naive, h=h)
    assert better.statistic < 0
    assert better.pvalue < 0.01
    assert beats_baseline(better)
    worse = diebold_mariano(actual, naive, good, h=h)
    assert worse.pvalue < 0.01  # significantly different, in the wrong direction
    assert not beats_baseline(worse)


def test_beats_baseline_takes_its_level() -> None:
    """The hand case of test_dm_by_hand reversed: forecast better, two-sided p = 0.0399."""
    actual = np.array([10.0, 11, 12, 13, 14])
    result = diebold_mariano(actual, actual + 1, actual + np.array([2, 3, 5, 4, 6]), h=2,
                             loss="absolute")  # fmt: skip
    assert beats_baseline(result)
    assert beats_baseline(result, level=0.05)
    assert not beats_baseline(result, level=0.01)


# -- several windows -----------------------------------------------------------------------------


def test_windows_pool_the_errors_and_test_one_mean_differential_per_window() -> None:
    """3 windows x 2 days, absolute loss, actual and baseline 0, forecast rows (1,1), (2,2),
    (4,2). mae_1day = (1+2+4)/3 = 7/3. Per-window mean differential: 1, 2, 3; mean 2,
    deviations -1,0,1, gamma_0 = 2/3; DM = 2/sqrt((2/3)/3) = 3 sqrt 2; HLN with n=3, h=1:
    sqrt(2*3)/3 = sqrt(2/3); DM* = 3 sqrt 2 sqrt(2/3) = 2 sqrt 3.
    Direction, pooled: day 0 = (0, 10); actual (1,2), (9,11); forecast (1,-1), (8,12):
    up/up, up/down, down/down, up/up -> 3/4."""
    zeros = np.zeros((3, 2))
    forecast = np.array([[1.0, 1], [2, 2], [4, 2]])
    out = evaluate(zeros, forecast, zeros, last_observed=[0, 0, 0], loss="absolute")
    assert out["mae_1day"] == pytest.approx(7 / 3)
    assert out["dm_test_vs_naive"] == pytest.approx(2 * math.sqrt(3))
    actual = np.array([[1.0, 2], [9, 11]])
    out = evaluate(actual, np.array([[1.0, -1], [8, 12]]), actual, last_observed=[0, 10])
    assert out["directional_accuracy"] == 0.75


def test_over_many_windows_a_good_model_beats_the_naive_forecast() -> None:
    """40 walk-forward windows of 14 days: a forecast near the actual beats the naive
    no-change forecast; the naive forecast against the good one does not beat."""
    last, actual = _walks(40, 14, seed=3)
    naive = np.repeat(last[:, None], 14, axis=1)
    good = actual + np.random.default_rng(4).normal(scale=0.3, size=actual.shape)
    out = evaluate(actual, good, naive, last_observed=last)
    assert out["beats_baseline"] is True
    assert out["dm_pvalue"] < 0.01  # type: ignore[operator]
    assert evaluate(actual, naive, good, last_observed=last)["beats_baseline"] is False


# -- the columns as a run ------------------------------------------------------------------------


@pytest.mark.parametrize("windows", [1, 40])
def test_the_columns_are_plain_values_that_emit_run_accepts(windows: int) -> None:
    """Merged into the seed's example run, the columns pass the run's validation unchanged."""
    last, actual = _walks(windows, 14, seed=windows)
    naive = np.repeat(last[:, None], 14, axis=1)
    forecast = actual + np.random.default_rng(0).normal(size=actual.shape)
    if windows == 1:
        actual, forecast, naive, last = actual[0], forecast[0], naive[0], last[0]
    out = evaluate(actual, forecast, naive, last_observed=last)
    assert {type(v) for v in out.values()} <= {float, bool}
    _, payload = prepare_run({**seed_experiment(), **out})
    assert {c: payload[c] for c in COLUMNS} == out


# -- bad input -----------------------------------------------------------------------------------

GOOD: dict[str, Any] = {"actual": ACTUAL, "forecast": FORECAST, "baseline": NAIVE,
                        "last_observed": 100}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        ({"forecast": FORECAST[:13]}, ("forecast has shape (13,)", "one forecast value per")),
        ({"baseline": np.r_[NAIVE[:13], np.nan]}, ("baseline holds nan at index 13", "fill")),
        ({"actual": np.r_[np.inf, ACTUAL[1:]]}, ("actual holds inf at index 0",)),
        ({"actual": [], "forecast": [], "baseline": []}, ("actual is empty",)),
        ({"actual": np.zeros((2, 2, 2))}, ("actual must be 1-D (days) or 2-D",)),
        ({"forecast": ["1.0", "x"] * 7}, ("forecast must be numbers",)),
        ({"last_observed": [100, 101]}, ("last_observed has 2 values for 1 windows",)),
        ({"last_observed": math.nan}, ("last_observed holds nan",)),
        ({"h": 0}, ("h must be a whole number >= 1, got 0",)),
        ({"h": 2.5}, ("h must be a whole number",)),
        ({"h": 14}, ("h=14 needs at least 15 points", "pass a smaller h or more windows")),
        ({"loss": "mse"}, ("loss must be one of 'squared', 'absolute', got 'mse'",)),
        ({"level": 5}, ("level must be a number between 0 and 1", "got 5")),
    ],
)
def test_invalid_input_names_the_argument_and_the_fix(
    change: dict[str, Any], fragments: tuple[str, ...]
) -> None:
    args = {**GOOD, **change}
    with pytest.raises(InputError) as caught:
        evaluate(args.pop("actual"), args.pop("forecast"), args.pop("baseline"), **args)
    assert isinstance(caught.value, ValueError)
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_diebold_mariano_needs_more_points_than_h() -> None:
    with pytest.raises(InputError, match=r"actual has 3 points; .* h=3 needs at least 4"):
        diebold_mariano([1.0, 2, 3], [1.0, 2, 4], [1.0, 3, 3], h=3)
    with pytest.raises(InputError, match="actual must be 1-D"):
        diebold_mariano([[1.0, 2]], [[1.0, 2]], [[1.0, 2]])


def test_dm_result_is_frozen() -> None:
    result = diebold_mariano([1.0, 2, 3], [1.0, 2, 4], [1.0, 3, 3])
    assert isinstance(result, DMResult)
    with pytest.raises(AttributeError):
        result.pvalue = 0.0  # type: ignore[misc]


def test_import_runstream_does_not_load_the_metrics_module() -> None:
    loaded = "print('runstream.metrics' in sys.modules, 'scipy' in sys.modules)"
    code = f"import sys, runstream; {loaded}"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]
