"""Read runs from a file the user names: a JSON object, a JSON array, or JSON Lines.

``runstream emit`` reads this way: the whole file, since it validates every run before it emits
any. (``runstream backfill`` streams its files instead: ``runstream.backfill_sources``, which
also reads CSV and Parquet.) A missing or unreadable file
and a document that is not JSON raise ``InputError`` naming the file, the line and the fix; a
record that is JSON but not an object is passed on, so the caller rejects it by its number
like any other invalid run.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runstream.errors import InputError


def _text(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text("utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file; give the path of a JSON file of runs") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a folder; give the path of a JSON file of runs") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text ({exc.reason}); save it as UTF-8") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc


def read_runs(path: str) -> Iterator[Any]:
    """Each run in ``path`` (``-`` is stdin), in order. JSON Lines is read line by line."""
    text = _text(path)
    name = "stdin" if path == "-" else path
    if not text.strip():
        raise InputError(f"{name} is empty; give one run as a JSON object, or a list of them")
    if text.lstrip()[0] in "[{":
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            if exc.msg == "Extra data":
                document = None  # several documents, one per line: JSON Lines, read below
            else:
                raise InputError(
                    f"{name} is not valid JSON: {exc.msg} at line {exc.lineno}, column "
                    f"{exc.colno}; give a JSON object, a JSON array or one object per line"
                ) from None
        if isinstance(document, list):
            yield from document
            return
        if document is not None:
            yield document
            return
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"line {number} of {name} is not JSON ({exc.msg}); give one JSON object "
                    "per line"
                ) from None
