"""The checked-in JSON Schema (docs/events.schema.json) matches the code."""

from __future__ import annotations

import json
import subprocess
import sys

from citadel.messages import EVENT_NAMES
from citadel.messages.schema import SCHEMA_PATH, render_schema


def test_checked_in_schema_matches_the_code() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == render_schema(), (
        "docs/events.schema.json is stale: run scripts/gen_schema"
    )


def test_schema_is_a_tagged_union_of_every_event() -> None:
    schema = json.loads(render_schema())
    assert schema["discriminator"]["propertyName"] == "event"
    assert set(schema["discriminator"]["mapping"]) == set(EVENT_NAMES)


def test_render_is_stable() -> None:
    assert render_schema() == render_schema()


def test_check_mode_exit_status() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "citadel.messages.schema", "--check"],
        capture_output=True,
        check=False,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
