"""Every CLI command is documented in the README (a command nobody can find does not exist)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from runstream.cli import build_parser

README = Path(__file__).resolve().parents[2] / "README.md"


def _commands(parser: argparse.ArgumentParser, prefix: str = "runstream") -> list[str]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append(f"{prefix} {name}")
                found.extend(_commands(sub, f"{prefix} {name}"))
    return found


def test_every_command_is_in_the_readme() -> None:
    text = README.read_text()
    commands = _commands(build_parser())
    assert "runstream kafka up" in commands and "runstream consume" in commands
    missing = []
    for command in commands:
        head, _, last = command.rpartition(" ")
        # Sub-commands may be listed as "runstream spool status / list / flush".
        if command not in text and not (f"`{last}`" in text and head in text):
            missing.append(command)
    assert not missing, f"commands missing from README.md: {missing}"


def test_import_does_not_load_spark_or_kafka() -> None:
    import subprocess
    import sys

    code = "import sys, runstream; print('pyspark' in sys.modules, 'kafka' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def _options(parser: argparse.ArgumentParser, prefix: str = "runstream") -> list[tuple[str, Any]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.extend(_options(sub, f"{prefix} {name}"))
        elif not isinstance(action, argparse._HelpAction):
            found.append((prefix, action))
    return found


def test_every_option_has_help_that_states_its_default() -> None:
    missing = []
    for command, action in _options(build_parser()):
        name = "/".join(action.option_strings) or action.dest
        if not action.help:
            missing.append(f"{command} {name}: no help")
        elif (
            action.option_strings
            and action.nargs != 0  # flags (store_true, count) are off unless given
            and "default" not in action.help
        ):
            missing.append(f"{command} {name}: help does not state the default")
    assert not missing, "\n".join(missing)
