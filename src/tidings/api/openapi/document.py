"""FastAPI's document of the app, completed with what its handlers cannot show."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic.json_schema import models_json_schema
from starlette.routing import BaseRoute

from tidings.api.client.wire import ClientApiRoute
from tidings.api.openapi.models import (
    API_KEY,
    DLR_LOGIN,
    DLR_PASSWORD,
    DR_BASIC,
    MODELS,
    REF_TEMPLATE,
    SECURITY_SCHEMES,
)
from tidings.api.openapi.routes import dlr_common, dr_common, seed_common


def _route_kind(route: APIRoute) -> str | None:
    # Imported here: these modules import this one's helpers for their decorators.
    from tidings.api.dlr.wire import DlrRoute
    from tidings.api.dr.wire import DrRoute

    # Every seed-004 product's route class (SMS, Viber, HLR, statistics) is a ClientApiRoute.
    if isinstance(route, ClientApiRoute):
        return "seed004"
    if isinstance(route, DrRoute):
        return "dr"
    if isinstance(route, DlrRoute):
        return "dlr"
    return None


_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "seed004": [{API_KEY: []}],
    "dr": [{DR_BASIC: []}],
    "dlr": [{DLR_LOGIN: [], DLR_PASSWORD: []}],
}
# Every operation of an API can give these answers, whatever it does.
_COMMON_ANSWERS: dict[str, Callable[[], dict[int | str, dict[str, Any]]]] = {
    "seed004": seed_common,
    "dr": dr_common,
    "dlr": dlr_common,
}

# A path segment: never empty, no slash, not all dots (clients fold `.` and `..` away).
PATH_SEGMENT = {"type": "string", "minLength": 1, "pattern": r"^[^/]*[^/.][^/]*$"}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, completed with what its handlers cannot show."""
    with warnings.catch_warnings():
        # A route serving several methods gives each the same id; made unique below.
        warnings.filterwarnings("ignore", "Duplicate Operation ID", UserWarning)
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
        )
    _unique_operation_ids(schema)
    components = schema.setdefault("components", {})
    _, definitions = models_json_schema(
        [(model, "serialization") for model in MODELS], ref_template=REF_TEMPLATE
    )
    components.setdefault("schemas", {}).update(definitions["$defs"])
    components["securitySchemes"] = SECURITY_SCHEMES
    paths = schema.get("paths", {})
    for route, path, methods in _documented_routes(app.routes):
        kind = _route_kind(route)
        for method in methods:
            operation = paths.get(path, {}).get(method.lower())
            if operation is None:
                continue
            # Handlers take their path parameters as plain text: FastAPI never answers 422.
            operation["responses"].pop("422", None)
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "path":
                    parameter["schema"] = {**PATH_SEGMENT, **_own(parameter["schema"])}
            for response in operation["responses"].values():
                _drop_placeholder_content(response)
            if kind is None:
                continue
            operation.setdefault("security", _SECURITY[kind])
            for status, entry in _COMMON_ANSWERS[kind]().items():
                operation["responses"].setdefault(str(status), entry)
    for unused in ("HTTPValidationError", "ValidationError"):
        if not _referenced(schema, unused):
            components["schemas"].pop(unused, None)
    return schema


def _unique_operation_ids(schema: dict[str, Any]) -> None:
    seen: set[str] = set()
    for path_item in schema.get("paths", {}).values():
        for method, operation in path_item.items():
            operation_id = operation.get("operationId")
            if operation_id is None:
                continue
            if operation_id in seen:
                operation_id = f"{operation_id}_{method}"
                while operation_id in seen:
                    operation_id += "_"
                operation["operationId"] = operation_id
            seen.add(operation_id)


def _drop_placeholder_content(response: dict[str, Any]) -> None:
    """FastAPI adds `application/json` with an empty schema to the default answer; where the
    route documented its own media types, that placeholder is not an answer it gives."""
    content = response.get("content", {})
    if len(content) > 1:
        for media_type in [m for m, entry in content.items() if not entry.get("schema")]:
            del content[media_type]


def _own(parameter_schema: dict[str, Any]) -> dict[str, Any]:
    """What a route said about a path parameter beyond FastAPI's `{"type": "string"}`."""
    return {k: v for k, v in parameter_schema.items() if k not in ("type", "title")}


def _documented_routes(routes: Sequence[BaseRoute]) -> Iterator[tuple[APIRoute, str, set[str]]]:
    """Each documented API route (its class tells its API) with its full path and methods."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before 0.16x: included routers' routes are app.routes
        contexts: Iterable[Any] = routes
    else:
        contexts = iter_route_contexts(routes)
    for context in contexts:
        route = getattr(context, "original_route", context)
        if isinstance(route, APIRoute) and context.include_in_schema:
            yield route, context.path_format, set(context.methods or ())


def _referenced(schema: dict[str, Any], name: str) -> bool:
    target = f"#/components/schemas/{name}"

    def walk(node: Any) -> bool:
        if isinstance(node, dict):
            return any((k == "$ref" and v == target) or walk(v) for k, v in node.items())
        if isinstance(node, list):
            return any(walk(item) for item in node)
        return False

    return walk({k: v for k, v in schema.items() if k != "components"}) or walk(
        {k: v for k, v in schema["components"]["schemas"].items() if k != name}
    )


def install_openapi(app: FastAPI) -> None:
    """Serve `build_openapi`'s document at /openapi.json (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
