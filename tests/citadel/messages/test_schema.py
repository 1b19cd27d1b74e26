"""The checked-in JSON Schema (docs/events.schema.json) matches the code; so does its tool."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from citadel.messages import EVENT_NAMES
from citadel.messages.schema import SCHEMA_PATH, main, render_schema


def test_checked_in_schema_matches_the_code() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == render_schema(), (
        "docs/events.schema.json is stale: run scripts/gen_schema"
    )


def test_schema_is_a_tagged_union_of_every_event() -> None:
    schema = json.loads(render_schema())
    assert schema["discriminator"]["propertyName"] == "event"
    assert set(schema["discriminator"]["mapping"]) == set(EVENT_NAMES)


def test_check_mode_fails_on_a_missing_or_stale_file_and_passes_once_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "events.schema.json"
    assert main(["--check"], path) == 1
    assert main([], path) == 0
    assert path.read_text(encoding="utf-8") == render_schema()
    assert main(["--check"], path) == 0
    path.write_text(render_schema().replace('"event"', '"type"', 1), encoding="utf-8")
    assert main(["--check"], path) == 1
    assert "out of date" in capsys.readouterr().err
    assert main(["--bogus"], path) == 2
