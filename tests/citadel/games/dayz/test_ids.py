"""Ids derived from a Steam64 id, checked against the simulator's independent implementation."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from citadel.games.dayz.ids import battleye_guid, dayz_player_id
from dayzsim._identity import be_guid, dayz_id


@given(st.integers(min_value=0, max_value=(1 << 64) - 1))
def test_ids_match_the_simulators(steam64: int) -> None:
    assert battleye_guid(str(steam64)) == be_guid(steam64)
    assert dayz_player_id(str(steam64)) == dayz_id(steam64)


def test_shapes_of_the_formats_md_example() -> None:
    guid = battleye_guid("76561190000000001")
    assert guid is not None
    assert len(guid) == 32
    assert guid == guid.lower()
    dayz = dayz_player_id("76561190000000001")
    assert dayz is not None
    assert len(dayz) == 44
    assert dayz.endswith("=")


def test_anything_but_a_steam64_id_gives_none() -> None:
    for bad in ("", "abc", "-1", "1.5", "٣", str(1 << 64), "7656119 0000000001"):
        assert battleye_guid(bad) is None
        assert dayz_player_id(bad) is None
    assert battleye_guid(" 76561190000000001 ") == battleye_guid("76561190000000001")
