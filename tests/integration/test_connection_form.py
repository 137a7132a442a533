"""The ``together`` connection form: declared in the provider info (what Airflow 3.2+ reads, without
importing the hook) and returned by the hook (what 2.11-3.1 call), from the same data."""

from __future__ import annotations

import importlib.resources
import json

import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_2_PLUS

from together_provider import get_provider_info
from together_provider.client.cost import Pricing
from together_provider.client.settings import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_RESPONSE_MB,
    DEFAULT_MAX_RETRIES,
    DEFAULT_REQUESTS_PER_SECOND,
    DEFAULT_TIMEOUT,
    ConnectionSettings,
)
from together_provider.hooks.together import TogetherHook

EXTRAS = {
    "timeout",
    "connect_timeout",
    "max_retries",
    "console_url",
    "max_requests_per_second",
    "total_timeout",
    "max_response_mb",
    "prices",
    "batch_discount",
}
# Read by BatchResultsOperator for its cost estimate (client/cost.py), not by the transport's settings.
PRICING_EXTRAS = {"prices", "batch_discount"}


def together_entry() -> dict:
    (entry,) = [e for e in get_provider_info()["connection-types"] if e["connection-type"] == "together"]
    return entry


def test_the_entry_matches_the_provider_yaml_schema():
    """Airflow's runtime schema lets any key through; provider.yaml's states what conn-fields may hold."""
    import jsonschema

    text = (importlib.resources.files("airflow") / "provider.yaml.schema.json").read_text()
    item = json.loads(text)["properties"]["connection-types"]["items"]
    if "conn-fields" not in item["properties"]:
        pytest.skip("this Airflow's provider.yaml schema predates conn-fields")
    jsonschema.validate(together_entry(), item)


def test_every_extra_is_a_typed_field_with_its_real_default():
    fields = together_entry()["conn-fields"]
    assert set(fields) == EXTRAS
    for name, spec in fields.items():
        assert spec["label"] and spec["description"], name
        assert "default" in spec["schema"] and "null" in spec["schema"]["type"], name
    defaults = {name: spec["schema"]["default"] for name, spec in fields.items()}
    assert defaults == {
        "timeout": DEFAULT_TIMEOUT,
        "connect_timeout": DEFAULT_CONNECT_TIMEOUT,
        "max_retries": DEFAULT_MAX_RETRIES,
        "max_requests_per_second": DEFAULT_REQUESTS_PER_SECOND,
        "max_response_mb": DEFAULT_MAX_RESPONSE_MB,
        # Empty: a stored value would change what an unset extra means (see connection_form.py).
        "total_timeout": None,
        "console_url": None,
        # Empty: no price is built in, and the discount follows the provider's default.
        "prices": None,
        "batch_discount": None,
    }
    assert fields["max_retries"]["schema"]["type"][0] == "integer"
    assert fields["prices"]["schema"]["type"][0] == "object"
    # What the form would save, field by field, is what the settings accept (the bounds included).
    bounds = {
        n: (s["schema"].get("minimum"), s["schema"].get("maximum"))
        for n, s in fields.items()
        if "minimum" in s["schema"] or "maximum" in s["schema"]
    }

    def accept(extra):
        ConnectionSettings.from_parts(host=None, password="k", extra=extra)
        Pricing.from_extra(extra)

    accept(defaults)
    for name, (low, high) in bounds.items():
        accept({name: low} if low is not None else {})
        accept({name: high} if high is not None else {})
        for outside in (low - 1 if low is not None else None, high + 1 if high is not None else None):
            if outside is not None:
                with pytest.raises(ValueError, match=name):
                    accept({name: outside})
    assert {n for n in bounds if n in PRICING_EXTRAS} == {"batch_discount"}
    Pricing.from_extra({"prices": {"m/x": {"input": 0.88, "output": 0.88}}})


def test_the_hook_returns_the_same_form_for_airflow_before_3_2():
    behaviour = together_entry()["ui-field-behaviour"]
    assert TogetherHook.get_ui_field_behaviour() == {
        "hidden_fields": behaviour["hidden-fields"],
        "relabeling": behaviour["relabeling"],
        "placeholders": behaviour["placeholders"],
    }


def test_the_providers_manager_sees_the_form():
    """On 3.2+ from the provider info, before that through the hook: the same labels either way."""
    import importlib.util

    from airflow.providers_manager import ProvidersManager

    if not AIRFLOW_V_3_2_PLUS and importlib.util.find_spec("flask_appbuilder") is None:
        # Before 3.2 Airflow reads a hook's form only where flask_appbuilder is installed (2.11 always
        # has it; 3.0 and 3.1 with the FAB provider): without it, it logs that and shows the plain form.
        pytest.skip("Airflow before 3.2 without flask_appbuilder collects no hook's form")

    behaviour = ProvidersManager().field_behaviours["together"]
    assert behaviour["hidden_fields"] == ["login", "schema", "port"]
    assert behaviour["relabeling"] == {"host": "Base URL", "password": "API Key"}


@pytest.mark.skipif(not AIRFLOW_V_3_2_PLUS, reason="the UI reads the form from provider info since 3.2")
def test_the_ui_hook_meta_endpoint_returns_the_form(airflow_db, monkeypatch):
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    # Airflow's simple auth manager, with every user an admin: the endpoint needs a signed-in user.
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    HookMetaService.hook_meta_data.cache_clear()
    with TestClient(create_app(apps="core")) as client:
        answer = client.get("/ui/connections/hook_meta")
    assert answer.status_code == 200, answer.text
    (together,) = [t for t in answer.json() if t["connection_type"] == "together"]
    assert together["hook_name"] == "Together AI"
    fields = together["standard_fields"]
    assert (
        fields["host"]["title"] == "Base URL" and fields["host"]["placeholder"] == "https://api.together.ai"
    )
    assert fields["password"]["title"] == "API Key"
    assert "TOGETHER_API_KEY" in fields["password"]["placeholder"]
    assert all(fields[name]["hidden"] for name in ("login", "url_schema", "port"))
    assert not fields["host"]["hidden"] and not fields["password"]["hidden"]
    extras = together["extra_fields"]
    assert set(extras) == EXTRAS
    assert extras["timeout"]["value"] == DEFAULT_TIMEOUT
    assert extras["timeout"]["schema"]["title"] == "Read timeout (s)"
    assert extras["max_retries"]["schema"]["type"] == ["integer", "null"]
    assert "connect plus read timeout" in extras["total_timeout"]["description"]
