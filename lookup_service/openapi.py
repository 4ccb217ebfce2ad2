"""The OpenAPI 3.1 document of the service, generated from the pydantic models of each route.

Routes are declared once (`Route`: path, operation, path/query parameter models, response models); the app
registers its views from the same list, so the document cannot drift from what is served. Parameter and
body schemas are pydantic's JSON schemas; shared models go to `components/schemas`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

REF_TEMPLATE = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Route:
    """One operation (GET unless `method` says otherwise). `rule` uses Flask syntax (`/v1/movies/<movie_id>`);
    `body` is the JSON request body's model (POST)."""

    rule: str
    operation_id: str
    summary: str
    tag: str
    responses: dict[int, type[BaseModel]]
    path: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    descriptions: dict[int, str] = field(default_factory=dict)
    method: str = "GET"
    body: type[BaseModel] | None = None

    @property
    def openapi_path(self) -> str:
        return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", self.rule)


def _parameters(model: type[BaseModel] | None, location: str) -> list[dict[str, Any]]:
    if model is None:
        return []
    schema = model.model_json_schema(ref_template=REF_TEMPLATE)
    required = set(schema.get("required", []))
    params = []
    for name, prop in schema["properties"].items():
        prop = {k: v for k, v in prop.items() if k != "title"}
        if prop.get("type") == "array":
            prop.pop("default", None)  # a list default would read as a required empty array
        param = {
            "name": name,
            "in": location,
            "required": location == "path" or name in required,
            "schema": prop,
        }
        if "description" in prop:
            param["description"] = prop["description"]
        params.append(param)
    return params


def openapi_document(routes: list[Route], title: str, version: str) -> dict[str, Any]:
    """The whole document as a JSON-ready dict."""
    models = sorted({m for r in routes for m in r.responses.values()}, key=lambda m: m.__name__)
    bodies = sorted({r.body for r in routes if r.body is not None}, key=lambda m: m.__name__)
    _, defs = models_json_schema(
        [(m, "serialization") for m in models] + [(m, "validation") for m in bodies],
        ref_template=REF_TEMPLATE,
    )
    paths: dict[str, Any] = {}
    for route in routes:
        responses = {
            str(status): {
                "description": route.descriptions.get(status, model.__doc__ or model.__name__).strip(),
                "content": {
                    "application/json": {"schema": {"$ref": REF_TEMPLATE.format(model=model.__name__)}}
                },
            }
            for status, model in sorted(route.responses.items())
        }
        operation: dict[str, Any] = {
            "operationId": route.operation_id,
            "summary": route.summary,
            "tags": [route.tag],
            "parameters": _parameters(route.path, "path") + _parameters(route.query, "query"),
            "responses": responses,
        }
        if route.body is not None:
            ref = {"$ref": REF_TEMPLATE.format(model=route.body.__name__)}
            operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref}}}
        paths.setdefault(route.openapi_path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": defs.get("$defs", {})},
    }
