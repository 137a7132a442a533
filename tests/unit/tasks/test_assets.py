"""annotate_outlets on hand-built contexts: aliases and contexts without outlet events."""

from __future__ import annotations

from together_provider.tasks.assets import annotate_outlets


class _Accessor:
    def __init__(self):
        self.extra = {}


class _Events:
    """Stands in for Airflow's outlet event accessors: indexed by an asset, kept by its URI as Airflow keeps
    them by the asset's key (an Asset is unhashable on Airflow 3.0 and 3.1, so a dict of assets cannot)."""

    def __init__(self):
        self.by_uri = {}

    def __getitem__(self, asset):
        return self.by_uri.setdefault(str(asset.uri), _Accessor())


class _Task:
    def __init__(self, outlets):
        self.outlets = outlets


def test_aliases_and_contexts_without_outlet_events_are_left_alone():
    from airflow.providers.common.compat.assets import Asset, AssetAlias

    asset, alias = Asset("together://x"), AssetAlias("a")
    events = _Events()
    assert annotate_outlets({"task": _Task([asset, alias]), "outlet_events": events}, {"k": 1}) == [asset.uri]
    assert events[asset].extra == {"k": 1} and list(events.by_uri) == [str(asset.uri)]
    assert annotate_outlets({"task": _Task([asset])}, {"k": 1}) == []
    assert annotate_outlets({"task": _Task([])}, {"k": 1}) == []
