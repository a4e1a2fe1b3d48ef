"""Edge hit ids become the same key strings as ``str`` gives, remembered within a bound."""

from __future__ import annotations

import uuid

import pytest

from services.storage.point_keys import PointKeys
from services.storage.port import point_id


def test_keys_are_the_ids_string_form_and_are_remembered():
    keys = PointKeys(limit=10)
    ids = [uuid.UUID(point_id(f"p{i}")) for i in range(5)]
    assert [keys(u) for u in ids] == [point_id(f"p{i}") for i in range(5)]
    assert len(keys) == 5
    again = uuid.UUID(point_id("p0"))  # a new UUID object for a known id: the kept string
    assert keys(again) is keys(ids[0])
    assert len(keys) == 5


def test_integer_and_string_ids_are_formatted_not_kept():
    keys = PointKeys()
    assert keys(42) == "42" and keys("abc") == "abc"
    assert len(keys) == 0


def test_a_full_map_starts_over():
    keys = PointKeys(limit=3)
    for i in range(3):
        keys(uuid.uuid5(uuid.NAMESPACE_URL, str(i)))
    assert len(keys) == 3
    fourth = uuid.uuid5(uuid.NAMESPACE_URL, "3")
    assert keys(fourth) == str(fourth)
    assert len(keys) == 1
    with pytest.raises(ValueError, match="limit"):
        PointKeys(limit=0)
