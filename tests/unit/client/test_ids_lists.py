"""Reading the ids a task was given: one id, or a list from what a template rendered."""

from __future__ import annotations

import pytest

from together_provider.client.ids import batch_ids_of


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("b-1", "b-1"),
        (" b-1 ", "b-1"),
        (["b-1", "b-2"], ["b-1", "b-2"]),
        (("b-1",), ["b-1"]),
        ("['b-1', 'b-2']", ["b-1", "b-2"]),
        ('["b-1", "b-2"]', ["b-1", "b-2"]),
        ([" b-1 "], ["b-1"]),
    ],
)
def test_ids_read_from_what_a_template_rendered(value, expected):
    assert batch_ids_of(value, "batch_id") == expected


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ([], "batch_id is an empty list"),
        ("[]", "batch_id is an empty list"),
        ([None], "batch_id[0] must be a non-empty string: give a Together id"),
        (["b", ".."], "batch_id[1] is only dots, which a URL would read as a relative path"),
        (["b\r\nINFO forged"], "batch_id[0] holds control characters"),
        (".", "batch_id is only dots"),
        (["b", {"id": "c"}], "batch_id[1] must be a non-empty string"),
        (["b", "b"], "batch_id lists batch 'b' twice"),
        ("[b", "batch_id looks like a list"),
        ("None", "batch_id must be a non-empty string"),
    ],
)
def test_bad_ids_are_refused_naming_the_field(value, words):
    with pytest.raises(ValueError, match="batch_id") as refused:
        batch_ids_of(value, "batch_id")
    assert words in str(refused.value)
