"""The manual's table of what a repair sends again (docs/repair.md) says what the code does: each row's
example error is run through client.repair.repairable."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from together_provider.client.repair import repairable

MANUAL = Path(__file__).resolve().parents[3] / "docs" / "repair.md"
ROW = re.compile(r"^\| (?P<what>[^|]+) \| (?P<sent>yes|never) \| `(?P<example>\{.*\})` \|$")


def rows():
    found = [m.groupdict() for m in map(ROW.match, MANUAL.read_text().splitlines()) if m]
    return [pytest.param(json.loads(r["example"]), r["sent"] == "yes", id=r["what"][:40]) for r in found]


def test_the_table_is_found():
    assert len(rows()) >= 8


@pytest.mark.parametrize(("error", "sent_again"), rows())
def test_each_row_of_the_manual_says_what_the_code_decides(error, sent_again):
    assert repairable(error) is sent_again
