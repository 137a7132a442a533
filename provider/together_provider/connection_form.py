"""The ``together`` connection form, as data: read by Airflow 3.2+ from the provider info (without
importing the hook) and by Airflow 2.11-3.1 through ``TogetherHook.get_ui_field_behaviour()``.

No Airflow import here: Airflow's provider manager calls ``get_provider_info`` in every process that
loads providers. Defaults and bounds come from ``client/settings.py``, the code that applies them.
"""

from __future__ import annotations

from typing import Any

from together_provider.client.cost import DEFAULT_BATCH_DISCOUNT
from together_provider.client.settings import (
    DEFAULT_BASE_URL,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_CONSOLE_URL,
    DEFAULT_MAX_RESPONSE_MB,
    DEFAULT_MAX_RETRIES,
    DEFAULT_REQUESTS_PER_SECOND,
    DEFAULT_TIMEOUT,
    DEFAULT_TOTAL_TIMEOUT,
    MIN_MAX_RESPONSE_MB,
    MIN_REQUESTS_PER_SECOND,
    MIN_TIMEOUT,
    MIN_TOTAL_TIMEOUT,
)

HOOK_NAME = "Together AI"

HIDDEN_FIELDS = ["login", "schema", "port"]
RELABELING = {"host": "Base URL", "password": "API Key"}
PLACEHOLDERS = {
    "host": DEFAULT_BASE_URL,
    "password": "your Together API key (or leave empty to use TOGETHER_API_KEY)",
    "extra": f'{{"timeout": {DEFAULT_TIMEOUT:g}, "max_retries": {DEFAULT_MAX_RETRIES}}}',
}


def _field(
    label: str,
    kind: str,
    description: str,
    default: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
) -> dict[str, Any]:
    # "null" as well: a field left empty is a setting left at its default, as in the Extra JSON.
    schema: dict[str, Any] = {"type": [kind, "null"], "default": default}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    return {"label": label, "description": description, "schema": schema}


# The UI fills a field with its default and saves what the field holds, so a default here is a value the
# connection then stores. total_timeout therefore defaults to empty (a stored one would stop growing with
# raised per-read timeouts), and console_url too, so that the provider's own default still applies; so
# does batch_discount, which follows Together's pricing rather than staying what it was when saved.
CONN_FIELDS: dict[str, dict[str, Any]] = {
    "timeout": _field(
        "Read timeout (s)",
        "number",
        "Seconds to wait for each read of an answer.",
        DEFAULT_TIMEOUT,
        minimum=MIN_TIMEOUT,
    ),
    "connect_timeout": _field(
        "Connect timeout (s)",
        "number",
        "Seconds to wait for a connection to the base URL.",
        DEFAULT_CONNECT_TIMEOUT,
        minimum=MIN_TIMEOUT,
    ),
    "max_retries": _field(
        "Max retries",
        "integer",
        "Retries after the first attempt of an API call (connection errors, 429, 5xx), with backoff.",
        DEFAULT_MAX_RETRIES,
        minimum=0,
    ),
    "total_timeout": _field(
        "Total timeout per call (s)",
        "number",
        f"Seconds one attempt of an API call may take in all, however slowly the answer arrives. "
        f"Empty: {DEFAULT_TOTAL_TIMEOUT:g}, or connect plus read timeout when more. "
        "File transfers are not bound by it.",
        None,
        minimum=MIN_TOTAL_TIMEOUT,
    ),
    "max_response_mb": _field(
        "Max API answer size (MiB)",
        "number",
        "The most an API answer may hold once decompressed (file downloads are not capped).",
        DEFAULT_MAX_RESPONSE_MB,
        minimum=MIN_MAX_RESPONSE_MB,
    ),
    "max_requests_per_second": _field(
        "Max requests per second (triggerer)",
        "number",
        "What all deferred waits on this connection in one triggerer may send together.",
        DEFAULT_REQUESTS_PER_SECOND,
        minimum=MIN_REQUESTS_PER_SECOND,
    ),
    "console_url": _field(
        "Batch page URL pattern",
        "string",
        f"The task's 'Together batch' link, with {{batch_id}} where the batch id goes. Empty: "
        f"{DEFAULT_CONSOLE_URL} when the base URL is Together's API, else no link.",
        None,
    ),
    "prices": _field(
        "Prices per million tokens (cost estimate)",
        "object",
        'Per model, what a million input and output tokens cost, e.g. {"meta-llama/Llama-3.3-70B-Instruct-'
        'Turbo": {"input": 0.88, "output": 0.88}}: BatchResultsOperator estimates the cost from them. '
        "Empty: no estimate. None is built in, since prices change.",
        None,
    ),
    "batch_discount": _field(
        "Batch discount (share off the prices)",
        "number",
        f"What the Batch API takes off the prices above, 0 to 1 (0 when they are already batch prices). "
        f"Empty: {DEFAULT_BATCH_DISCOUNT:g}, Together's 'up to 50%' off serverless rates.",
        None,
        minimum=0,
        maximum=1,
    ),
}


def connection_type_entry(hook_class_name: str) -> dict[str, Any]:
    """The provider info's ``connection-types`` entry, in the keys Airflow 3.2+ reads."""
    return {
        "connection-type": "together",
        "hook-class-name": hook_class_name,
        "hook-name": HOOK_NAME,
        "ui-field-behaviour": {
            "hidden-fields": list(HIDDEN_FIELDS),
            "relabeling": dict(RELABELING),
            "placeholders": dict(PLACEHOLDERS),
        },
        "conn-fields": {name: {**spec, "schema": dict(spec["schema"])} for name, spec in CONN_FIELDS.items()},
    }


def ui_field_behaviour() -> dict[str, Any]:
    """The same form in the shape ``get_ui_field_behaviour()`` returns (Airflow 2.11-3.1)."""
    return {
        "hidden_fields": list(HIDDEN_FIELDS),
        "relabeling": dict(RELABELING),
        "placeholders": dict(PLACEHOLDERS),
    }
