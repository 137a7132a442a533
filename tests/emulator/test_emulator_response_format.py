"""The emulator's answer to a request asking for structured output: JSON valid against the schema."""

from __future__ import annotations

import json
from typing import Literal

import jsonschema
import pytest
from pydantic import BaseModel, Field

from together_provider.testing.emulator.processing import answer, structured_reply


class Address(BaseModel):
    city: str
    zip_code: str = Field(min_length=5, max_length=5)


class Review(BaseModel):
    sentiment: Literal["positive", "negative", "neutral"]
    score: int = Field(ge=1, le=5)
    confidence: float = Field(gt=0.5, lt=1)
    tags: list[str] = Field(min_length=2)
    address: Address
    previous: list[Address]
    note: str | None = None
    verified: bool


class Node(BaseModel):
    name: str
    children: list[Node] = []
    parent: Node | None = None


def _format(schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "out", "schema": schema}}


@pytest.mark.parametrize("model", [Review, Address, Node])
def test_the_reply_validates_against_a_pydantic_schema(model):
    schema = model.model_json_schema()
    reply = structured_reply(_format(schema))
    assert reply is not None
    document = json.loads(reply)
    jsonschema.validate(document, schema)
    model.model_validate(document)


def test_the_reply_is_deterministic_and_takes_the_first_enum_value_and_typed_placeholders():
    schema = Review.model_json_schema()
    first, second = structured_reply(_format(schema)), structured_reply(_format(schema))
    assert first == second
    document = json.loads(first)
    assert document["sentiment"] == "positive"
    assert document["score"] == 1 and isinstance(document["score"], int)
    assert document["address"] == {"city": "string", "zip_code": "strin"}
    assert len(document["tags"]) == 2 and document["previous"] == [document["address"]]
    assert document["note"] == "string" and document["verified"] is False


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"when": {"type": "string", "format": "date-time"}}},
        {
            "type": "object",
            "properties": {
                "pair": {"type": "array", "prefixItems": [{"type": "integer"}, {"const": "x"}], "minItems": 2}
            },
        },
        {"type": "object", "properties": {"n": {"type": ["null", "number"], "minimum": 3}}},
        {"type": "object", "properties": {"i": {"type": "integer", "exclusiveMaximum": -2}}},
        {"type": "object", "properties": {"i": {"type": "integer", "exclusiveMinimum": 2.5, "maximum": 9}}},
        {"type": "object", "properties": {"f": {"type": "number", "exclusiveMaximum": 0}}},
        {
            "type": "object",
            "properties": {"empty": {"type": "array", "items": {"type": "string"}, "maxItems": 0}},
        },
        {
            "type": "object",
            "properties": {"x": {"allOf": [{"$ref": "#/$defs/A"}]}},
            "$defs": {"A": {"type": "object", "properties": {"a": {"enum": [7, 8]}}, "required": ["a"]}},
        },
    ],
)
def test_the_reply_validates_against_hand_written_schemas(schema):
    jsonschema.validate(json.loads(structured_reply(_format(schema))), schema)


def test_json_object_mode_gets_an_object_and_text_or_no_format_gets_none():
    assert structured_reply({"type": "json_object"}) == "{}"
    assert structured_reply({"type": "text"}) is None
    assert structured_reply(None) is None


def test_a_chat_completion_with_response_format_carries_the_json_as_its_content():
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "rate this"}],
        "response_format": _format(Address.model_json_schema()),
    }
    ok, result = answer("/v1/chat/completions", body, "k" * 32, 0)
    assert ok
    assert json.loads(result["choices"][0]["message"]["content"]) == {"city": "string", "zip_code": "strin"}
    ok, plain = answer("/v1/chat/completions", {**body, "response_format": None}, "k" * 32, 0)
    assert plain["choices"][0]["message"]["content"] == "Emulated answer to: rate this"
