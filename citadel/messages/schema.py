"""Render the JSON Schema of the event contract (``docs/events.schema.json``).

Run through ``scripts/gen_schema`` (write) or ``scripts/gen_schema --check`` (exit 1 on drift).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Final

from citadel.messages.events import event_schema

SCHEMA_PATH: Final = Path(__file__).resolve().parents[2] / "docs" / "events.schema.json"
"""Where the checked-in schema lives, relative to the source tree."""


def render_schema() -> str:
    """Return the schema as stable text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(event_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None, path: Path = SCHEMA_PATH) -> int:
    """Write the schema to ``path``, or with ``--check`` report whether it is up to date."""
    args = sys.argv[1:] if argv is None else argv
    text = render_schema()
    if args == ["--check"]:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            print(f"{path} is out of date; run scripts/gen_schema", file=sys.stderr)
            return 1
        return 0
    if args:
        print("usage: gen_schema [--check]", file=sys.stderr)
        return 2
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
