"""The built wheel carries the one schema folder and works on its own in a fresh venv.

``schemas/`` is the only copy of the schemas (the package reads it through the link
``src/runstream/_schemas``); the wheel build must follow the link. The check: build the wheel,
install it with its light dependencies only into a new virtual environment, and there encode
and decode an event and read the DDL template, far from the source tree.
"""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

from runstream import contract

ROOT = Path(__file__).resolve().parents[2]

CHECK = """
import json, runstream
from runstream import contract
from runstream.contract import prepare_run, build_event
from runstream.demo import seed_experiment
assert "site-packages" in runstream.__file__, runstream.__file__
run_id, payload = prepare_run(seed_experiment())
event = build_event(contract.RUN_RECORDED, run_id, run=payload)
back = contract.decode(contract.encode(event))
assert back["run"]["model_name"] == "sarimax_auto_weather_v1"
assert "{run_columns}" in contract.read_schema_file("model_runs.sql")
print(json.dumps({"versions": [v.version for v in contract.versions()],
                  "experiment_id": back["experiment_id"]}))
"""


def test_the_wheel_carries_the_schemas_and_decodes_in_a_fresh_venv(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(ROOT)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    (wheel,) = dist.glob("runstream-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("runstream/_schemas/"))
    assert shipped == sorted(p.name for p in (ROOT / "schemas").iterdir())

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", str(wheel)],
                   check=True, capture_output=True, text=True)  # fmt: skip
    done = subprocess.run(
        [python, "-c", CHECK], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    shipped_versions = [v.version for v in contract.versions()]
    assert f'"versions": {shipped_versions}' in done.stdout
