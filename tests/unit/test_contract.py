"""The event contract: the package reads ``schemas/``, and every version reads every other.

Schema evolution is proven by encoding with one version's writer schema and resolving with
another version as the reader (both directions, every pair), once through ``contract`` and once
through fastavro's ``schemaless_reader`` directly, so the proof does not rest on our wrapper.
"""

from __future__ import annotations

import io
import itertools
import json
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import fastavro
import pytest

from runstream import contract
from runstream.contract.fields import run_fields
from runstream.errors import SchemaError

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"
SHIPPED = ROOT / "src" / "runstream" / "_schemas"


def test_the_package_reads_the_one_schema_folder() -> None:
    # src/runstream/_schemas is a link to schemas/, not a copy that could drift
    assert SHIPPED.is_symlink() and SHIPPED.resolve() == SCHEMAS.resolve()
    top = {p.name for p in SCHEMAS.iterdir() if p.name.endswith(".avsc")}
    assert set(contract.schema_files()) == top


def test_versions_one_and_two_exist_and_two_adds_source() -> None:
    versions = contract.versions()
    assert [v.version for v in versions][:2] == [1, 2]
    assert contract.latest() == versions[-1]
    v1, v2 = (json.loads(v.json) for v in versions[:2])
    v1_fields = {f["name"] for f in v1["fields"]}
    added = [f for f in v2["fields"] if f["name"] not in v1_fields]
    assert [(f["name"], f["type"], f["default"]) for f in added] == [("source", "string", "emit")]
    assert len({v.fingerprint for v in versions}) == len(versions), (
        "two versions share a fingerprint"
    )


def _run_record(version: contract.SchemaVersion) -> list[dict[str, Any]]:
    (run,) = [f for f in json.loads(version.json)["fields"] if f["name"] == "run"]
    return list(next(t for t in run["type"] if isinstance(t, dict))["fields"])


def test_run_fields_equal_the_avro_run_record_in_order() -> None:
    """The newest run record is the field table; each older one is a prefix of it (versions
    only append optional fields, so old events decode into the newest shape)."""
    names = [f.name for f in run_fields()]
    assert [f["name"] for f in _run_record(contract.latest())] == names
    for version in contract.versions():
        record = [f["name"] for f in _run_record(version)]
        assert record == names[: len(record)], version.version


def test_version_three_adds_the_registry_tags_as_an_optional_text_map() -> None:
    v2, v3 = contract.versions()[1:3]
    added = _run_record(v3)[len(_run_record(v2)) :]
    assert [(f["name"], f["type"], f["default"]) for f in added] == [
        ("tags", ["null", {"type": "map", "values": "string"}], None)
    ]


# -- evolution ---------------------------------------------------------------------------
def _run() -> dict[str, Any]:
    run: dict[str, Any] = {f.name: None for f in run_fields()}
    run.update(
        model_name="sarimax_auto_weather_v1", model_version="v1", model_type="SARIMAX",
        run_timestamp=datetime(2025, 1, 11, 9, 30, 0, 123456, tzinfo=timezone.utc),
        hyperparameters={"order": "(1,1,1)"}, feature_config={"weather": True, "vix": False},
        training_start_date=date(2022, 1, 1), training_end_date=date(2024, 12, 31),
        forecast_horizon_days=14, commodity="Coffee", mae_14day=3.1, directional_accuracy=0.695,
        beats_baseline=True, is_production=False, run_by="Connor",
        tags={"feature_set": "weather", "complexity": "medium"},
    )  # fmt: skip
    return run


def _event(event_type: str, **parts: Any) -> dict[str, Any]:
    return {
        "event_id": "3f0c5a1e-2b7d-4c1a-9e5f-0a1b2c3d4e5f",
        "event_type": event_type,
        "event_time": datetime(2025, 1, 11, 9, 31, tzinfo=timezone.utc),
        "experiment_id": "exp-1",
        "producer": {"host": "laptop", "pid": 42, "library_version": "0.1.0"},
        "source": "backfill",
        "run": None,
        "promotion": None,
        "annotation": None,
        **parts,
    }


EVENTS = {
    "recorded": _event(contract.RUN_RECORDED, run=_run()),
    "promoted": _event(contract.RUN_PROMOTED, promotion={"is_production": True}),
    "annotated": _event(contract.RUN_ANNOTATED, annotation={"notes": "weather helps"}),
}


def _fields(version: contract.SchemaVersion) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in json.loads(version.json)["fields"]}


def _run_fields(version: contract.SchemaVersion) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in _run_record(version)}


def _as_written_by(event: dict[str, Any], writer: contract.SchemaVersion) -> dict[str, Any]:
    """The event as a producer of ``writer``'s era would have made it (no newer fields, in
    the envelope or in the run)."""
    out = {k: v for k, v in event.items() if k in _fields(writer)}
    if out.get("run") is not None:
        out["run"] = {k: v for k, v in out["run"].items() if k in _run_fields(writer)}
    return out


def _expected(
    event: dict[str, Any], writer: contract.SchemaVersion, reader: contract.SchemaVersion
) -> dict[str, Any]:
    """What resolution must give: shared fields kept, reader-only fields at their default."""

    def resolved(written: dict[str, Any], reader_fields: dict[str, dict[str, Any]]) -> Any:
        return {
            name: written[name] if name in written else field["default"]
            for name, field in reader_fields.items()
        }

    out = resolved(_as_written_by(event, writer), _fields(reader))
    if out["run"] is not None:
        out["run"] = resolved(out["run"], _run_fields(reader))
    return out


PAIRS = list(itertools.product(contract.versions(), repeat=2))


@pytest.mark.parametrize("kind", sorted(EVENTS))
@pytest.mark.parametrize(("writer", "reader"), PAIRS,
                         ids=[f"v{w.version}-read-by-v{r.version}" for w, r in PAIRS])  # fmt: skip
def test_every_version_reads_every_other(
    kind: str, writer: contract.SchemaVersion, reader: contract.SchemaVersion
) -> None:
    event = EVENTS[kind]
    data = contract.encode(_as_written_by(event, writer), writer=writer)
    fp, body = contract.split_header(data)
    assert fp == writer.fingerprint
    expected = _expected(event, writer, reader)

    # through the contract, which finds the writer from the header
    assert contract.decode(data, reader=reader) == expected

    # and through fastavro directly, with explicit writer and reader schemas
    raw = fastavro.schemaless_reader(io.BytesIO(body), writer.parsed, reader.parsed)
    assert isinstance(raw, dict)
    raw["event_id"] = str(raw["event_id"])
    assert raw == expected


def test_an_old_event_reads_with_source_emit() -> None:
    v1 = contract.versions()[0]
    data = contract.encode(_as_written_by(EVENTS["recorded"], v1), writer=v1)
    assert contract.decode(data)["source"] == "emit"


def test_every_field_added_after_v1_has_a_default() -> None:
    # A field without a default makes old events unreadable by new readers.
    for old, new in itertools.pairwise(contract.versions()):
        for name in _fields(new).keys() - _fields(old).keys():
            assert "default" in _fields(new)[name], f"v{new.version} adds {name} with no default"


# -- the wire header ---------------------------------------------------------------------
def test_decode_returns_the_event_id_as_a_string() -> None:
    decoded = contract.decode(contract.encode(EVENTS["promoted"]))
    assert decoded["event_id"] == EVENTS["promoted"]["event_id"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "bad or missing C3 01 header"),
        (b"\x00\x01" + bytes(8) + b"x", "bad or missing C3 01 header"),
        (contract.MAGIC + bytes(8) + b"x", "unknown writer schema fingerprint"),
        (contract.MAGIC + contract.latest().fingerprint + b"\xff\xff", "does not decode"),
    ],
    ids=["empty", "no-magic", "unknown-fingerprint", "garbage-body"],
)
def test_undecodable_bytes_raise_schema_error(data: bytes, message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        contract.decode(data)
    assert contract.HEADER_SIZE == 10
