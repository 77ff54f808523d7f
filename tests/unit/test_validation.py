"""emit_run() input: what it accepts, and the error for each kind of bad input.

Every bad input must fail at the call with one ValidationError whose text names the field and
the fix, and must leave nothing in the spool (checked on disk: no pending file, no temp file).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from datetime import time as dtime
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from runstream import Emitter, ValidationError, contract
from runstream.consumer.tables import TableNames, ddl
from runstream.contract.fields import run_fields
from runstream.demo import seed_experiment
from runstream.devtools.testkit import spooled_events

DROP = object()  # a column the case removes from the seed's run

UTC = timezone.utc
NOW = datetime.now(UTC)

# (case id, changes to the seed's example, fragments the message must contain).
# The first fragment always names the field; a later one states the fix.
BAD: list[tuple[str, dict[Any, Any], tuple[str, ...]]] = [
    # -- required columns ------------------------------------------------------------------
    ("missing-model_name", {"model_name": DROP},
     ("model_name is required and missing", "model_name='sarimax_auto_weather_v1'")),
    ("missing-model_version", {"model_version": DROP},
     ("model_version is required", "model_version='v1'")),
    ("missing-model_type", {"model_type": DROP},
     ("model_type is required", "model_type='SARIMAX'")),
    ("missing-training_start_date", {"training_start_date": DROP},
     ("training_start_date is required", "training_start_date='2022-01-01'")),
    ("missing-training_end_date", {"training_end_date": DROP},
     ("training_end_date is required", "training_end_date='2024-12-31'")),
    ("missing-forecast_horizon_days", {"forecast_horizon_days": DROP},
     ("forecast_horizon_days is required", "forecast_horizon_days=14")),
    ("missing-commodity", {"commodity": DROP}, ("commodity is required", "commodity='Coffee'")),
    ("none-commodity", {"commodity": None}, ("commodity is required", "add it")),
    # -- names -----------------------------------------------------------------------------
    ("empty-model_name", {"model_name": ""}, ("model_name must not be empty", "give it a value")),
    ("blank-commodity", {"commodity": "   "}, ("commodity must not be empty", "'Coffee'")),
    ("int-model_name", {"model_name": 42}, ("model_name must be a string", "got int 42")),
    ("long-model_version", {"model_version": "v" * 300},
     ("model_version must be at most 256 characters", "put long descriptions in notes")),
    ("surrogate-model_type", {"model_type": "SARIMAX\ud800"},
     ("model_type is not valid UTF-8", "fix its encoding")),
    # -- unknown columns -------------------------------------------------------------------
    ("typo-mae14", {"mae14": 3.1},
     ("'mae14' is not a model_runs column", "did you mean 'mae_14day'")),
    ("typo-modelname", {"modelname": "x"}, ("'modelname'", "did you mean 'model_name'")),
    ("typo-directional", {"directional_acuracy": 0.7},
     ("'directional_acuracy'", "did you mean 'directional_accuracy'")),
    ("word-cluster_id", {"cluster_id": "0101-abc"},
     ("'cluster_id'", "did you mean 'databricks_cluster_id'")),
    ("ambiguous-mae", {"mae": 3.1}, ("'mae'", "one of 'mae_1day', 'mae_7day', 'mae_14day'")),
    ("unrelated-learning_rate", {"learning_rate": 0.1},
     ("'learning_rate' is not a model_runs column", "put it in hyperparameters")),
    # -- metrics ---------------------------------------------------------------------------
    ("nan-mae_14day", {"mae_14day": float("nan")},
     ("mae_14day must be a finite number, got nan", "pass None")),
    ("inf-rmse_14day", {"rmse_14day": float("inf")},
     ("rmse_14day must be a finite number", "None")),
    ("neg-inf-dm_test", {"dm_test_vs_naive": float("-inf")},
     ("dm_test_vs_naive must be a finite number", "could not be computed")),
    ("str-mae_1day", {"mae_1day": "3.1"},
     ("mae_1day must be a number or None, got str '3.1'", "float()")),
    ("bool-mae_7day", {"mae_7day": True}, ("mae_7day must be a number", "got bool True")),
    ("list-mape", {"mape_14day": [4.2]}, ("mape_14day must be a number", "float()")),
    ("negative-mae_14day", {"mae_14day": -0.5},
     ("mae_14day must not be negative, got -0.5", "are >= 0")),
    ("negative-execution_time", {"execution_time_seconds": -1},
     ("execution_time_seconds must not be negative", ">= 0")),
    ("negative-cost", {"cost_estimate_usd": -0.01}, ("cost_estimate_usd must not be negative",)),
    ("percent-directional_accuracy", {"directional_accuracy": 69.5},
     ("directional_accuracy must be a fraction between 0 and 1, got 69.5", "divide by 100")),
    ("negative-directional_accuracy", {"directional_accuracy": -0.1},
     ("directional_accuracy must be a fraction between 0 and 1",)),
    ("above-one-dm_pvalue", {"dm_pvalue": 1.5}, ("dm_pvalue must be a fraction between 0 and 1",)),
    ("nan-dm_pvalue", {"dm_pvalue": float("nan")}, ("dm_pvalue must be a finite number",)),
    # -- booleans --------------------------------------------------------------------------
    ("str-beats_baseline", {"beats_baseline": "True"},
     ("beats_baseline must be True or False, got str 'True'", "pass a bool")),
    ("int-beats_baseline", {"beats_baseline": 1}, ("beats_baseline must be True or False",)),
    ("str-is_production", {"is_production": "yes"}, ("is_production must be True or False",)),
    # -- horizon ---------------------------------------------------------------------------
    ("zero-horizon", {"forecast_horizon_days": 0},
     ("forecast_horizon_days must be a positive number of days", "usually 14")),
    ("negative-horizon", {"forecast_horizon_days": -14},
     ("forecast_horizon_days must be a positive",)),
    ("float-horizon", {"forecast_horizon_days": 14.5},
     ("forecast_horizon_days must be a whole number of days such as 14",)),
    ("str-horizon", {"forecast_horizon_days": "14"},
     ("forecast_horizon_days must be a whole number",)),
    ("bool-horizon", {"forecast_horizon_days": True},
     ("forecast_horizon_days must be a whole number",)),
    ("huge-horizon", {"forecast_horizon_days": 10**6},
     ("forecast_horizon_days must be at most 100000 days",)),
    # -- dates -----------------------------------------------------------------------------
    ("bad-month-start", {"training_start_date": "2022-13-01"},
     ("training_start_date must be a date like '2022-01-01'", "'2022-13-01'")),
    ("dmy-end", {"training_end_date": "31/12/2024"}, ("training_end_date must be a date like",)),
    ("int-start", {"training_start_date": 20220101},
     ("training_start_date must be a date or a 'YYYY-MM-DD' string", "got int")),
    ("start-after-end", {"training_start_date": "2025-01-01"},
     ("training_start_date (2025-01-01) must not be after training_end_date", "swap them")),
    # -- run_timestamp and the time rule ---------------------------------------------------
    ("words-run_timestamp", {"run_timestamp": "yesterday"},
     ("run_timestamp must be a datetime or an ISO-8601 string", "'2024-12-31T08:30:00'")),
    ("epoch-run_timestamp", {"run_timestamp": 1_700_000_000},
     ("run_timestamp must be a datetime, got int", "datetime.fromtimestamp")),
    ("time-run_timestamp", {"run_timestamp": dtime(8, 30)},
     ("run_timestamp must be a datetime such as datetime.now()", "got time")),
    ("naive-far-future", {"run_timestamp": datetime(2999, 1, 1)},
     ("run_timestamp must lie between 1970-01-01 and now", "the time zone")),
    ("aware-future", {"run_timestamp": NOW + timedelta(days=2)},
     ("run_timestamp must lie between 1970-01-01 and now", "check the clock")),
    ("aware-before-1970", {"run_timestamp": datetime(1969, 12, 31, 23, tzinfo=UTC)},
     ("run_timestamp must lie between",)),
    ("naive-datetime-max", {"run_timestamp": datetime.max}, ("run_timestamp must lie between",)),
    ("iso-future-offset", {"run_timestamp": "2999-01-01T00:00:00+05:00"},
     ("run_timestamp must lie between",)),
    # -- maps ------------------------------------------------------------------------------
    ("list-hyperparameters", {"hyperparameters": ["order", "(1,1,1)"]},
     ("hyperparameters must be a dict of name -> value", "got list")),
    ("int-key-hyperparameters", {"hyperparameters": {1: "a"}},
     ("hyperparameters keys must be non-empty strings", "str(key)")),
    ("object-hyperparameter", {"hyperparameters": {"alpha": object()}},
     ("hyperparameters['alpha'] must be a string or JSON-serialisable", "str()")),
    ("nan-hyperparameter", {"hyperparameters": {"alpha": float("nan")}},
     ("hyperparameters['alpha'] must be finite", "as a string")),
    ("too-many-hyperparameters", {"hyperparameters": {f"p{i}": "1" for i in range(1001)}},
     ("hyperparameters must have at most 1000 entries",)),
    ("str-feature", {"feature_config": {"weather": "yes"}},
     ("feature_config['weather'] must be True or False", "got str 'yes'")),
    ("str-feature_config", {"feature_config": "weather"}, ("feature_config must be a dict",)),
    ("empty-key-feature_config", {"feature_config": {" ": True}},
     ("feature_config keys must be non-empty strings",)),
    # -- free text -------------------------------------------------------------------------
    ("int-data_version", {"data_version": 3},
     ("data_version must be a string or None, got int 3", "str()")),
    ("bytes-hardware_config", {"hardware_config": b"local"}, ("hardware_config must be a string",)),
    ("list-run_by", {"run_by": ["Connor"]}, ("run_by must be a string",)),
    ("long-notes", {"notes": "n" * (64 * 1024 + 1)},
     ("notes must be at most 65536 characters", "put its path or link here")),
    # -- experiment_id ---------------------------------------------------------------------
    ("int-experiment_id", {"experiment_id": 123},
     ("experiment_id must be a UUID string, got int 123", "str(uuid.uuid4())")),
    ("empty-experiment_id", {"experiment_id": ""},
     ("experiment_id must not be empty", "leave it out and one is generated")),
    ("long-experiment_id", {"experiment_id": "x" * 200},
     ("experiment_id must be a UUID", "str(uuid.uuid4())")),
    ("not-a-uuid-experiment_id", {"experiment_id": "exp-42"},
     ("experiment_id must be a UUID, got 'exp-42'", "one is generated")),
    ("newline-experiment_id", {"experiment_id": "6f1c1a52-2f0e-4c55-9d0a-5f2b8f0b7a11\nx"},
     ("experiment_id must be a UUID", "str(uuid.uuid4())")),
    # -- commodities: a configured list, with a did-you-mean --------------------------------
    ("lowercase-commodity", {"commodity": "coffee"},
     ("commodity 'coffee' is not a known commodity", "did you mean 'Coffee'?")),
    ("misspelt-commodity", {"commodity": "Cofee"},
     ("commodity 'Cofee' is not a known commodity", "did you mean 'Coffee'?")),
    ("unknown-commodity", {"commodity": "Wheat"},
     ("commodity 'Wheat' is not a known commodity", "RUNSTREAM_COMMODITIES")),
    # -- control characters ------------------------------------------------------------------
    ("nul-model_name", {"model_name": "sarimax\x00v1"},
     ("model_name must not contain control characters", "'\\x00'", "remove it")),
    ("newline-model_version", {"model_version": "v1\nv2"},
     ("model_version must not contain control characters", "'\\n'")),
    ("nul-notes", {"notes": "fine\x00"},
     ("notes must not contain control characters other than tabs and line breaks",)),
    # -- plausible training dates --------------------------------------------------------------
    ("year-one-start", {"training_start_date": "0001-01-01"},
     ("training_start_date must be on or after 1900-01-01, got 0001-01-01", "check the year")),
    ("year-9999-end", {"training_end_date": "9999-12-31"},
     ("training_end_date (9999-12-31) must not be after the run's date", "check the year")),
    ("end-after-run", {"training_end_date": "2024-12-31",
                       "run_timestamp": datetime(2024, 6, 1, tzinfo=UTC)},
     ("training_end_date (2024-12-31) must not be after the run's date (2024-06-01",
      "cannot train on the future")),
    # -- numbers too large for a double -------------------------------------------------------
    ("huge-int-mae_14day", {"mae_14day": 10**400},
     ("mae_14day must be a finite number, got an integer of 401 digits", "check the units")),
    # -- the whole event -------------------------------------------------------------------
    ("oversized-event", {"hyperparameters": {"blob": "x" * 1_100_000}},
     ("the encoded run is", "shorten notes or hyperparameters")),
]  # fmt: skip


def _apply(changes: dict[Any, Any]) -> dict[Any, Any]:
    run: dict[Any, Any] = seed_experiment()
    for key, value in changes.items():
        if value is DROP:
            run.pop(key, None)
        else:
            run[key] = value
    return run


def _nothing_written(emitter: Emitter) -> None:
    assert emitter.spool.status().pending == 0
    assert not any((emitter.spool.root / "tmp").iterdir()), "a temp file was left behind"


def test_an_experiment_id_in_any_uuid_form_is_stored_canonical(emitter: Emitter) -> None:
    canonical = str(uuid.uuid4())
    forms = [canonical.upper(), "{" + canonical + "}", f"urn:uuid:{canonical}",
             canonical.replace("-", ""), uuid.UUID(canonical)]  # fmt: skip
    for form in forms:
        receipt = emitter.emit_run(_apply({"experiment_id": form}))
        assert receipt.experiment_id == canonical, form


def test_a_new_commodity_is_accepted_once_the_list_is_extended(tmp_path: Path) -> None:
    wheat = Emitter(spool_dir=tmp_path, send=False, commodities=["Coffee", "Sugar", "Wheat"])
    assert wheat.emit_run(_apply({"commodity": "Wheat"})).experiment_id


def test_the_commodity_list_comes_from_its_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNSTREAM_COMMODITIES", "Cocoa, Coffee")
    emitter = Emitter(spool_dir=tmp_path, send=False)
    assert emitter.emit_run(_apply({"commodity": "Cocoa"})).experiment_id
    with pytest.raises(ValidationError, match="'Sugar' is not a known commodity"):
        emitter.emit_run(_apply({"commodity": "Sugar"}))


def test_there_are_at_least_forty_distinct_bad_inputs() -> None:
    assert len({case for case, _, _ in BAD}) == len(BAD) >= 40


@pytest.mark.parametrize(("changes", "fragments"), [(c, f) for _, c, f in BAD],
                         ids=[case for case, _, _ in BAD])  # fmt: skip
def test_bad_input_is_refused_with_the_field_and_the_fix(
    emitter: Emitter, changes: dict[Any, Any], fragments: tuple[str, ...]
) -> None:
    with pytest.raises(ValidationError) as caught:
        emitter.emit_run(_apply(changes))
    error = caught.value
    assert isinstance(error, ValueError), "ValidationError must be catchable as ValueError"
    assert len(error.problems) == 1, error.problems  # one bad field, one problem, no cascade
    message = str(error)
    assert "nothing was written" in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    _nothing_written(emitter)


def test_the_keyword_form_is_checked_the_same_way(emitter: Emitter) -> None:
    run = seed_experiment()
    run["mae_14day"] = float("nan")
    with pytest.raises(ValidationError, match="mae_14day must be a finite number"):
        emitter.emit_run(**run)
    _nothing_written(emitter)


def test_every_problem_is_reported_at_once_in_field_order(emitter: Emitter) -> None:
    run = _apply({"model_name": "", "mae_14day": float("nan"), "directional_accuracy": 69.5,
                  "beats_baseline": "yes", "commodity": DROP, "mae14": 1.0})  # fmt: skip
    with pytest.raises(ValidationError) as caught:
        emitter.emit_run(run)
    problems = caught.value.problems
    assert [p.split(" ", 1)[0] for p in problems] == [
        "'mae14'", "model_name", "commodity", "mae_14day", "directional_accuracy",
        "beats_baseline",
    ]  # fmt: skip
    assert str(caught.value).startswith("run rejected, 6 problems; nothing was written:")
    _nothing_written(emitter)


def test_a_non_dict_is_refused_with_the_two_call_forms(emitter: Emitter) -> None:
    with pytest.raises(
        ValidationError, match=r"a run must be a dict of columns, got list; call emit_run"
    ):
        emitter.emit_run([seed_experiment()])  # type: ignore[arg-type]
    _nothing_written(emitter)


# -- what is accepted --------------------------------------------------------------------
def test_the_seed_example_goes_in_verbatim_and_is_not_changed(emitter: Emitter) -> None:
    experiment = seed_experiment()
    before = dict(experiment)
    receipt = emitter.emit_run(experiment)
    assert experiment == before, "emit_run must not modify the caller's dict"
    assert receipt.experiment_id == experiment["experiment_id"]
    assert receipt.event_type == contract.RUN_RECORDED
    assert receipt.spool_path.exists()
    (event,) = spooled_events(emitter.spool)
    assert event["event_id"] == receipt.event_id
    run = event["run"]
    assert run["training_start_date"] == date(2022, 1, 1)
    assert run["feature_config"] == {"weather": True, "vix": False, "cop_usd": False}
    assert run["run_timestamp"] == experiment["run_timestamp"].astimezone(UTC)


def test_keywords_work_alone_and_win_over_the_dict(emitter: Emitter) -> None:
    seed = seed_experiment()
    by_keywords = emitter.emit_run(**seed)
    mixed = emitter.emit_run(seed, mae_14day=2.5, notes="rerun")
    events = {e["event_id"]: e for e in spooled_events(emitter.spool)}
    assert events[by_keywords.event_id]["run"]["mae_14day"] == 3.10
    assert events[mixed.event_id]["run"]["mae_14day"] == 2.5
    assert events[mixed.event_id]["run"]["notes"] == "rerun"


def test_experiment_id_and_run_timestamp_are_filled_when_left_out(emitter: Emitter) -> None:
    run = seed_experiment()
    del run["experiment_id"], run["run_timestamp"]
    before = datetime.now(UTC)
    receipt = emitter.emit_run(run)
    after = datetime.now(UTC)
    assert uuid.UUID(receipt.experiment_id).version == 4
    (event,) = spooled_events(emitter.spool)
    assert event["experiment_id"] == receipt.experiment_id
    assert before <= event["run"]["run_timestamp"] <= after


def test_numbers_registered_as_real_are_accepted(emitter: Emitter) -> None:
    # NumPy scalars register with numbers.Real/Integral; Fraction stands in for them here.
    emitter.emit_run(_apply({"mae_14day": Fraction(31, 10), "forecast_horizon_days": 14}))
    (event,) = spooled_events(emitter.spool)
    assert event["run"]["mae_14day"] == 3.1


def test_hyperparameters_that_are_not_strings_are_stored_as_text(emitter: Emitter) -> None:
    emitter.emit_run(_apply({"hyperparameters": {"order": (1, 1, 1), "alpha": 0.5, "x": "s"}}))
    (event,) = spooled_events(emitter.spool)
    assert event["run"]["hyperparameters"] == {"order": "(1, 1, 1)", "alpha": "0.5", "x": "s"}


def test_names_are_stripped(emitter: Emitter) -> None:
    emitter.emit_run(_apply({"commodity": "  Coffee "}))
    (event,) = spooled_events(emitter.spool)
    assert event["run"]["commodity"] == "Coffee"


# The seed's table ("Delta Table Schema"), column by column: name, type, NOT NULL.
SEED_TABLE = [
    ("experiment_id", "STRING", True), ("model_name", "STRING", True),
    ("model_version", "STRING", True), ("run_timestamp", "TIMESTAMP", True),
    ("model_type", "STRING", True), ("hyperparameters", "MAP<STRING, STRING>", False),
    ("feature_config", "MAP<STRING, BOOLEAN>", False), ("data_version", "STRING", False),
    ("training_start_date", "DATE", True), ("training_end_date", "DATE", True),
    ("forecast_horizon_days", "INT", True), ("commodity", "STRING", True),
    ("mae_1day", "DOUBLE", False), ("mae_7day", "DOUBLE", False),
    ("mae_14day", "DOUBLE", False), ("rmse_14day", "DOUBLE", False),
    ("mape_14day", "DOUBLE", False), ("directional_accuracy", "DOUBLE", False),
    ("dm_test_vs_naive", "DOUBLE", False), ("dm_pvalue", "DOUBLE", False),
    ("beats_baseline", "BOOLEAN", False), ("execution_time_seconds", "DOUBLE", False),
    ("hardware_config", "STRING", False), ("databricks_cluster_id", "STRING", False),
    ("cost_estimate_usd", "DOUBLE", False), ("model_path", "STRING", False),
    ("dashboard_url", "STRING", False), ("run_by", "STRING", False),
    ("notes", "STRING", False),
    ("is_production", "BOOLEAN", True),  # the seed's DEFAULT FALSE: the fold fills it
]  # fmt: skip
# runstream's own columns after the seed's: the registry's experiment_tags (schema v3).
ADDED = [("tags", "MAP<STRING, STRING>", False)]


def test_the_ddl_derived_from_the_field_table_is_the_seed_table_then_tags() -> None:
    statement = ddl(TableNames.at_path("/lake"))[0]
    body = statement[statement.index("CREATE TABLE") :].split("(", 1)[1]
    columns = []
    for line in body.splitlines():
        text = line.strip().rstrip(",")
        if not text or text.startswith("--"):
            continue
        if text.startswith("run_date"):
            break
        name, rest = text.split(" ", 1)
        columns.append((name, rest.removesuffix(" NOT NULL"), rest.endswith("NOT NULL")))
    assert columns == SEED_TABLE + ADDED
    assert [f.name for f in run_fields()] == [c[0] for c in (SEED_TABLE + ADDED)[1:]]


# -- the time rule -----------------------------------------------------------------------
@pytest.fixture()
def local_zone_utc_minus_3(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run in a zone 3 hours behind UTC (POSIX TZ, no tz database needed)."""
    monkeypatch.setenv("TZ", "RST3")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("local_zone_utc_minus_3")
@pytest.mark.parametrize(
    ("given", "stored"),
    [
        (datetime(2024, 6, 1, 12, 0), datetime(2024, 6, 1, 15, 0, tzinfo=UTC)),
        (datetime(2024, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))),
         datetime(2024, 6, 1, 10, 0, tzinfo=UTC)),
        ("2024-06-01T12:00:00", datetime(2024, 6, 1, 15, 0, tzinfo=UTC)),
        ("2024-06-01T12:00:00+00:00", datetime(2024, 6, 1, 12, 0, tzinfo=UTC)),
        (date(2024, 6, 1), datetime(2024, 6, 1, 3, 0, tzinfo=UTC)),
        ("2024-06-01", datetime(2024, 6, 1, 3, 0, tzinfo=UTC)),
    ],
    ids=["naive-is-local", "aware-keeps-its-zone", "naive-iso", "aware-iso",
         "date-is-local-midnight", "date-string"],
)  # fmt: skip
def test_the_time_rule(emitter: Emitter, given: Any, stored: datetime) -> None:
    emitter.emit_run(_apply({"run_timestamp": given, "training_end_date": "2024-05-31"}))
    (event,) = spooled_events(emitter.spool)
    assert event["run"]["run_timestamp"] == stored


def test_the_filled_ddl_leaves_no_placeholder_and_no_column_in_a_comment() -> None:
    for statement in ddl(TableNames.at_path("/lake")):
        assert "{" not in statement and "}" not in statement
        comments = [line for line in statement.splitlines() if line.startswith("--")]
        assert not any("`/lake" in line for line in comments), comments
