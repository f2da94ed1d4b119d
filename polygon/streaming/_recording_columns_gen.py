"""Make ``_recording_columns.py``, the Parquet columns of every event type, from the spec.

Run from a checkout after the specification changes::

    python -m polygon.streaming._recording_columns_gen          # rewrite the module
    python -m polygon.streaming._recording_columns_gen --check  # fail if it is stale

The specification (``tests/data/websocket-api.json``) is read here only; the
installed package carries the generated table, never the specification.

Each field gets a *kind*, from its JSON type and its description:

========== ===================================== ===================================
kind       from                                  Arrow type
========== ===================================== ===================================
string     ``string``                            ``string``
float      ``number``                            ``float64``
int        ``integer``                           ``int64``
bool       ``boolean``                           ``bool``
time_ms    an integer described as a timestamp   ``timestamp[ms, tz=UTC]``
time_ns    one described as nanoseconds          ``timestamp[ns, tz=UTC]``
int_list   an array of integers (conditions)     ``list<int64>``
levels     an array of arrays (a book side)      ``list<list<float64>>``
========== ===================================== ===================================
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "tests" / "data" / "websocket-api.json"
TARGET = Path(__file__).with_name("_recording_columns.py")

# Fields the specification describes without a JSON type.
_UNTYPED = {"fmv": "float", "val": "float", "sym": "string", "T": "string"}


class SpecError(Exception):
    """The specification holds something this generator cannot type."""


def _properties(schema: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for part in schema.get("allOf", [schema]):
        merged.update(part.get("properties", {}))
    return merged


def field_kind(name: str, spec: dict[str, Any]) -> str:
    """The kind of one field of an event schema."""
    json_type = spec.get("type")
    description = spec.get("description", "").lower()
    if name == "ev":
        return "string"
    if json_type in (None, "integer") and "nanosecond" in description:
        return "time_ns"
    if json_type in (None, "integer") and "timestamp" in description:
        return "time_ms"
    if json_type is None:
        if name not in _UNTYPED:
            raise SpecError(f"no type for field {name!r}")
        return _UNTYPED[name]
    if json_type == "array":
        item_type = spec.get("items", {}).get("type")
        return {"integer": "int_list", "array": "levels"}[item_type]
    return {"string": "string", "number": "float", "integer": "int", "boolean": "bool"}[json_type]


def columns_by_code(spec: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Every event code's fields and kinds, in the specification's order.

    A code that several paths share (``T`` on stocks and options) gets the
    union of their fields; a field typed differently by two of them is an error.
    """
    table: dict[str, dict[str, str]] = {}
    for path, item in spec["paths"].items():
        content = item["get"]["responses"]["200"]["content"]["application/json"]
        code = path.rsplit("/", 1)[-1]
        columns = table.setdefault(code, {})
        for name, field in _properties(content["schema"]).items():
            kind = field_kind(name, field)
            if columns.setdefault(name, kind) != kind:
                raise SpecError(f"{code}.{name} is {columns[name]} in one path, {kind} in {path}")
    return dict(sorted(table.items()))


def render(spec: dict[str, Any]) -> str:
    lines = [
        '"""The columns of a Parquet recording, by event code (generated: do not edit).',
        "",
        "Made by ``python -m polygon.streaming._recording_columns_gen`` from the API",
        "specification; ``tests/test_recording.py`` checks that it is current. The kinds",
        "are described in that module.",
        '"""',
        "",
        "COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {",
    ]
    for code, columns in columns_by_code(spec).items():
        lines.append(f"    {code!r}: (")
        lines += [f"        ({name!r}, {kind!r})," for name, kind in columns.items()]
        lines.append("    ),")
    lines.append("}")
    return "\n".join(lines).replace("'", '"') + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the module is stale")
    parser.add_argument("--spec", type=Path, default=SPEC, help="the specification (JSON)")
    args = parser.parse_args(argv)
    text = render(json.loads(args.spec.read_text(encoding="utf-8")))
    if args.check:
        if TARGET.read_text(encoding="utf-8") != text:
            sys.stderr.write(f"{TARGET.name} is stale: run python -m {__spec__.name}\n")
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
