"""OpenLineage for the provider's tasks: which files a task read and wrote, and a small run facet.

A task records a :class:`TaskLineage` while it runs (plain data, no OpenLineage types). Only its
``get_openlineage_facets_on_complete``, which only the OpenLineage provider calls, turns the record into
OpenLineage objects, so nothing here imports OpenLineage unless that provider is installed and asks.

Datasets follow OpenLineage's naming: a local file is namespace ``file`` and its absolute path; an object
in a store is namespace ``<scheme>://<bucket>`` and its key; a Together file is namespace
``together://<API host>`` and name ``files/<file id>``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from together_provider.client.settings import DEFAULT_BASE_URL, without_userinfo

FACET_NAME = "together_batch"
_SCHEMA_URL = (
    "https://github.com/together-airflow/airflow-provider-together/blob/main/docs/TogetherBatchRunFacet.json"
)


@dataclass
class TaskLineage:
    """What one task read and wrote. Locations are as the task saw them: a path, a URL or an
    ``ObjectStoragePath`` (its ``str``); file ids are Together's."""

    api_host: str = urlsplit(DEFAULT_BASE_URL).netloc
    input_locations: list[str] = field(default_factory=list)
    input_file_ids: list[str] = field(default_factory=list)
    output_locations: list[str] = field(default_factory=list)
    output_file_ids: list[str] = field(default_factory=list)
    batch_id: str | None = None
    status: str | None = None
    endpoint: str | None = None
    models: list[str] = field(default_factory=list)
    counts: dict[str, int] | None = None
    # ``(name, type, description)`` per column of a table written to ``output_locations``.
    output_schema: list[tuple[str, str, str]] | None = None


def api_host(base_url: str) -> str:
    """The host a Together file lives on, for its dataset namespace: ``host[:port]``, never a user name
    or password (lineage is stored and shown far from the connection)."""
    return urlsplit(without_userinfo(base_url)).netloc or urlsplit(DEFAULT_BASE_URL).netloc


def location_dataset(location: Any) -> tuple[str, str]:
    """``(namespace, name)`` of a path, a URL or an ``ObjectStoragePath``, read from its text alone: no
    filesystem is built and no connection looked up. A URL's ``conn_id@`` is not part of the dataset."""
    text = str(location)
    if "://" not in text:
        return "file", os.path.abspath(os.path.expanduser(text))
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme in ("file", "local"):
        return "file", parts.path
    bucket = parts.netloc.rsplit("@", 1)[-1]
    return f"{scheme}://{bucket}", parts.path.lstrip("/")


def file_dataset(lineage: TaskLineage, file_id: str) -> tuple[str, str]:
    return f"together://{lineage.api_host}", f"files/{file_id}"


def _datasets(lineage: TaskLineage, locations: list[str], file_ids: list[str]) -> list[tuple[str, str]]:
    found = [location_dataset(location) for location in locations]
    found += [file_dataset(lineage, file_id) for file_id in file_ids if file_id]
    return list(dict.fromkeys(found))


def run_facet_fields(lineage: TaskLineage) -> dict[str, Any]:
    """The run facet's fields; None ones are left out so the facet stays small."""
    fields = {
        "batchId": lineage.batch_id,
        "status": lineage.status,
        "endpoint": lineage.endpoint,
        "models": sorted(lineage.models) or None,
        "counts": lineage.counts,
    }
    return {key: value for key, value in fields.items() if value is not None}


def operator_lineage(lineage: TaskLineage | None) -> Any:
    """The task's ``OperatorLineage``, or an empty one when the task recorded nothing (it failed before
    reading anything, say). Imports OpenLineage: call it only from the OpenLineage hook methods."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    from together_provider._compat import OperatorLineage

    if lineage is None:
        return OperatorLineage()

    def datasets(pairs: list[tuple[str, str]], facets: dict[tuple[str, str], dict[str, Any]]) -> list[Any]:
        return [
            Dataset(namespace=namespace, name=name, facets=facets.get((namespace, name), {}))
            for namespace, name in pairs
        ]

    run_facets = {}
    fields = run_facet_fields(lineage)
    if fields:
        run_facets[FACET_NAME] = _run_facet_class()(**fields)
    table_facets: dict[tuple[str, str], dict[str, Any]] = {}
    if lineage.output_schema:
        schema = _schema_facet(lineage.output_schema)
        table_facets = {location_dataset(where): {"schema": schema} for where in lineage.output_locations}
    return OperatorLineage(
        inputs=datasets(_datasets(lineage, lineage.input_locations, lineage.input_file_ids), {}),
        outputs=datasets(_datasets(lineage, lineage.output_locations, lineage.output_file_ids), table_facets),
        run_facets=run_facets,
    )


def _schema_facet(columns: list[tuple[str, str, str]]) -> Any:
    """OpenLineage's schema facet of a table the task wrote. Imports OpenLineage, as its caller does."""
    from airflow.providers.common.compat.openlineage.facet import SchemaDatasetFacet, SchemaDatasetFacetFields

    return SchemaDatasetFacet(
        fields=[
            SchemaDatasetFacetFields(name=name, type=kind, description=description)
            for name, kind, description in columns
        ]
    )


_FACET_CLASS: Any = None


def _run_facet_class() -> Any:
    """The run facet's class, made on first use: its base class comes from OpenLineage."""
    global _FACET_CLASS
    if _FACET_CLASS is None:
        import attrs
        from airflow.providers.common.compat.openlineage.facet import RunFacet

        @attrs.define
        class TogetherBatchRunFacet(RunFacet):
            """The Together batch a task worked on."""

            batchId: str | None = None  # camelCase, as OpenLineage facet fields are
            status: str | None = None
            endpoint: str | None = None
            models: list[str] | None = None
            counts: dict[str, int] | None = None

            @staticmethod
            def _get_schema() -> str:
                return _SCHEMA_URL

        _FACET_CLASS = TogetherBatchRunFacet
    return _FACET_CLASS
