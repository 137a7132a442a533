"""annotate_outlets on hand-built contexts: aliases and contexts without outlet events."""

from __future__ import annotations

from together_provider.assets import annotate_outlets


class _Accessor:
    def __init__(self):
        self.extra = {}


class _Events(dict):
    def __missing__(self, key):
        self[key] = _Accessor()
        return self[key]


class _Task:
    def __init__(self, outlets):
        self.outlets = outlets


def test_aliases_and_contexts_without_outlet_events_are_left_alone():
    from airflow.providers.common.compat.assets import Asset, AssetAlias

    asset, alias = Asset("together://x"), AssetAlias("a")
    events = _Events()
    assert annotate_outlets({"task": _Task([asset, alias]), "outlet_events": events}, {"k": 1}) == [asset.uri]
    assert events[asset].extra == {"k": 1} and list(events) == [asset]
    assert annotate_outlets({"task": _Task([asset])}, {"k": 1}) == []
    assert annotate_outlets({"task": _Task([])}, {"k": 1}) == []
