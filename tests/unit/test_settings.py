"""One settings registry: every RUNSTREAM_* variable the code reads is declared there, the
README's table is the registry's, and the Makefile sets none of them (so `make demo` and a
user's next `runstream ...` share the same defaults)."""

from __future__ import annotations

import re
from pathlib import Path

from runstream import environment_variables as env

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_table_is_the_registry() -> None:
    readme = (ROOT / "README.md").read_text()
    assert env.markdown_table() in readme, (
        "README.md's settings table differs from the registry; paste "
        "runstream.environment_variables.markdown_table() into it"
    )


def test_every_variable_the_code_names_is_declared() -> None:
    declared = {var.name for var in env.ALL}
    named: set[str] = set()
    for path in (ROOT / "src" / "runstream").rglob("*.py"):
        named |= set(re.findall(r"\bRUNSTREAM_[A-Z_]+\b", path.read_text()))
    assert named <= declared, f"read but not declared: {sorted(named - declared)}"


def test_nothing_outside_the_registry_reads_runstream_variables() -> None:
    offenders = []
    for path in (ROOT / "src" / "runstream").rglob("*.py"):
        if path.name == "environment_variables.py":
            continue
        text = path.read_text()
        if re.search(r"environ(\.get)?\(?\[?\s*[\"']RUNSTREAM_", text):
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"read RUNSTREAM_* directly instead of through the registry: {offenders}"


def test_the_makefile_sets_no_runstream_variable() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert not re.search(r"^\s*(export\s+)?RUNSTREAM_\w+\s*[:?]?=", makefile, re.MULTILINE)
