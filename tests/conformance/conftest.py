"""Shared fixtures for checking the emulator against the OpenAPI spec and the official SDK."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from jsonschema import Draft202012Validator, FormatChecker
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.templating.responses.exceptions import ResponseNotFound
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from together_provider.testing.emulator import EmulatorServer

SPEC_PATH = Path(__file__).resolve().parents[2] / "spec" / "together-openapi.yaml"
# The spec's only server is https://api.together.ai/v1 and its paths are relative to it: requests are
# re-addressed there before lookup, so "/v1/batches" on the emulator is "/batches" in the spec.
SPEC_ORIGIN = "https://api.together.ai"
SPEC_URN = "urn:together-openapi"
API_KEY = "test-key"
UNDECLARED = (ResponseNotFound, OperationNotFound, PathNotFound)


def nullable_as_31(node: Any) -> Any:
    """Rewrite OpenAPI 3.0 ``nullable: true`` as a 3.1 ``type: [X, "null"]``.

    The spec says ``openapi: 3.1.0`` but ErrorData marks ``param`` and ``code`` with the 3.0 keyword
    ``nullable: true`` (``default: null``), which 3.1 ignores, so a literal 3.1 validator rejects the
    ``"param": null`` the API sends. The intent is plain; honour it.
    """
    if isinstance(node, dict):
        node = {key: nullable_as_31(value) for key, value in node.items()}
        if node.get("nullable") is True and isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
        return node
    if isinstance(node, list):
        return [nullable_as_31(item) for item in node]
    return node


class SpecChecker:
    """Validates emulator answers: with openapi-core where the spec declares the method, path and status;
    with jsonschema against a named component schema where the spec is silent."""

    def __init__(self, spec: dict) -> None:
        self.spec = spec
        # The spec fails openapi-spec-validator (e.g. a boolean property with default "auto"), so skip the
        # whole-document check; response validation itself works.
        self.openapi = OpenAPI.from_dict(copy.deepcopy(spec), config=Config(spec_validator_cls=None))
        self.registry = Registry().with_resource(
            SPEC_URN, Resource.from_contents(spec, default_specification=DRAFT202012)
        )

    def schema(self, name: str) -> Draft202012Validator:
        return Draft202012Validator(
            {"$ref": f"{SPEC_URN}#/components/schemas/{name}"},
            registry=self.registry,
            format_checker=FormatChecker(),
        )

    def __call__(self, response: requests.Response, fallback: str | None = None) -> str:
        """Returns "spec" or "schema:<name>" to say how the answer was checked; fails on any mismatch."""
        prepared = response.request.copy()
        url = requests.utils.urlparse(prepared.url)
        prepared.url = SPEC_ORIGIN + url.path + (f"?{url.query}" if url.query else "")
        try:
            result = self.openapi.unmarshal_response(
                RequestsOpenAPIRequest(prepared), RequestsOpenAPIResponse(response)
            )
            errors = list(result.errors)
        except UNDECLARED as exc:
            errors = [exc]
        if errors and all(isinstance(error, UNDECLARED) for error in errors):
            assert fallback, (
                f"the spec does not declare {response.request.method} {url.path} -> "
                f"{response.status_code}; name the schema the answer should follow"
            )
            problems = [error.message for error in self.schema(fallback).iter_errors(response.json())]
            assert not problems, f"{response.request.method} {url.path} -> {response.status_code}: {problems}"
            return f"schema:{fallback}"
        details = [repr(getattr(error, "__cause__", None) or error) for error in errors]
        assert not errors, f"{response.request.method} {url.path} -> {response.status_code}: {details}"
        return "spec"


@pytest.fixture(scope="session")
def spec() -> dict:
    with open(SPEC_PATH, "rb") as handle:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return nullable_as_31(yaml.load(handle, Loader=loader))


@pytest.fixture(scope="session")
def conforms(spec) -> SpecChecker:
    return SpecChecker(spec)


@pytest.fixture(scope="session")
def emulator_server():
    # Not the root conftest's shared emulator: these tests reset theirs before each test.
    with EmulatorServer(api_key=API_KEY, validating_seconds=0.2, processing_seconds=0.5) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_emulator(emulator_server):
    emulator_server.reset()
    yield
