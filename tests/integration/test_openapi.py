"""What /openapi.json says: every route of the three external APIs, their security schemes,
bodies and answers; nothing of the operator's side (health, metrics, console)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import jsonschema_rs
import pytest
import schemathesis

from tidings.api.app import create_app
from tidings.config import Settings

SEED_004 = {
    ("/rest/sms/create", "put"),
    ("/rest/sms/create", "post"),
    ("/rest/sms/create", "get"),
    ("/rest/sms/price", "put"),
    ("/rest/sms/price", "post"),
    ("/rest/sms/price", "get"),
    ("/rest/sms/prices", "get"),
    ("/rest/sms/prices/{tariff}", "get"),
    ("/rest/sms/reference/{reference}", "get"),
    ("/rest/sms/task/{task_id}", "get"),
    ("/rest/sms/{message_id}", "get"),
    ("/rest/stat/create", "post"),
    ("/rest/stat/file/id/{key}/format/{fmt}", "get"),
    ("/rest/stat/list", "get"),
    ("/rest/message/list/{key}", "delete"),
}
SEED_004 |= {
    (f"/rest/{product}/{operation}", method)
    for product in ("viber", "hlr")
    for operation, method in [
        ("create", "put"),
        ("create", "post"),
        ("create", "get"),
        ("prices", "get"),
        ("prices/{tariff}", "get"),
        ("reference/{reference}", "get"),
    ]
}
SEED_004 |= {
    ("/rest/viber/price", "put"),
    ("/rest/viber/price", "post"),
    ("/rest/viber/{message_id}", "get"),
    ("/rest/hlr/{key}", "get"),
}
# The seed's short forms: the same operations at the root.
SEED_004 |= {(path.removeprefix("/rest"), method) for path, method in SEED_004}
DR = {
    ("/{client_id}/api/dr/{message_id}/simple", "get"),
    ("/{client_id}/api/dr/{message_id}/advanced", "get"),
    ("/{client_id}/api/dr/external/{extra_id}/simple", "get"),
    ("/{client_id}/api/dr/external/{extra_id}/advanced", "get"),
}
DLR = {("/api/dlr", "get"), ("/api/dlr", "post")}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    app = create_app(Settings(database_url="sqlite:///unused.db"), with_workers=False)

    async def fetch() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tidings") as http:
            answer = await http.get("/openapi.json")
        assert answer.status_code == 200
        result: dict[str, Any] = answer.json()
        return result

    return asyncio.run(fetch())


def _operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (path, method): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }


def test_every_route_of_the_three_apis_is_documented(document: dict[str, Any]) -> None:
    operations = _operations(document)
    assert set(operations) >= SEED_004 | DR | DLR
    ids = [operation["operationId"] for operation in operations.values()]
    assert len(ids) == len(set(ids))


def test_operator_routes_are_not_in_the_document(document: dict[str, Any]) -> None:
    for path in document["paths"]:
        assert not path.startswith(("/health", "/metrics", "/console", "/openapi")), path
    # The catch-alls that answer error 4 for unknown client-API paths are not operations.
    assert "/rest/{path}" not in document["paths"]
    assert "/sms/{path}" not in document["paths"]


def test_security_schemes_say_how_each_api_authenticates(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["apiKey"] == schemes["apiKey"] | {"type": "apiKey", "in": "header"}
    assert schemes["apiKey"]["name"] == "X-API-KEY"
    assert schemes["drBasic"]["type"] == "http"
    assert schemes["drBasic"]["scheme"] == "basic"
    assert (schemes["dlrLogin"]["in"], schemes["dlrLogin"]["name"]) == ("query", "_login")
    assert (schemes["dlrPassword"]["in"], schemes["dlrPassword"]["name"]) == ("query", "_password")
    operations = _operations(document)
    for key in SEED_004:
        assert operations[key]["security"] == [{"apiKey": []}], key
    for key in DR:
        assert operations[key]["security"] == [{"drBasic": []}], key
    for key in DLR:
        assert operations[key]["security"] == [{"dlrLogin": [], "dlrPassword": []}], key


def _schema_ref(response: dict[str, Any], media_type: str = "application/json") -> str:
    ref: str = response["content"][media_type]["schema"]["$ref"]
    return ref.rsplit("/", 1)[1]


def test_every_operation_documents_its_apis_error_shape(document: dict[str, Any]) -> None:
    operations = _operations(document)
    for key in SEED_004 | DR | DLR:
        responses = operations[key]["responses"]
        assert "422" not in responses, key  # handlers read raw text: FastAPI never answers 422
        for status in ("401", "413", "429", "500"):
            assert status in responses, (key, status)
        assert responses["429"]["headers"]["Retry-After"]["required"] is True
    for key in SEED_004:
        for status in ("401", "403", "413", "429", "500"):
            assert _schema_ref(operations[key]["responses"][status]) == "SeedError"
    for key in DR:
        assert _schema_ref(operations[key]["responses"]["404"]) == "DrError"
        assert "WWW-Authenticate" in operations[key]["responses"]["401"]["headers"]
    for key in DLR:
        for status in ("400", "401", "413", "415", "429", "500"):
            response = operations[key]["responses"][status]
            assert _schema_ref(response, "application/vnd.api+json") == "DlrErrors"
    error = document["components"]["schemas"]["SeedError"]
    assert set(error["required"]) == {"error", "errorDescription"}
    assert error["properties"]["error"]["type"] == "string"


def test_answers_and_bodies(document: dict[str, Any]) -> None:
    operations = _operations(document)
    create = operations[("/rest/sms/create", "post")]
    assert set(create["requestBody"]["content"]) == {
        "application/json",
        "text/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    }
    created = create["responses"]["200"]["content"]["application/json"]["schema"]["anyOf"]
    assert [ref["$ref"].rsplit("/", 1)[1] for ref in created] == ["SmsCreated", "SmsBatchCreated"]
    assert {"402", "409"} <= set(create["responses"])
    # GET on create is error 4, never a success.
    assert set(operations[("/sms/create", "get")]["responses"]) == {
        "401",
        "403",
        "404",
        "413",
        "429",
        "500",
    }
    dlr = operations[("/api/dlr", "post")]
    assert {p["name"] for p in dlr["parameters"]} == {"message_id", "message_state", "request_id"}
    assert dlr["requestBody"]["required"] is False
    assert set(dlr["responses"]["200"]["content"]) == {"application/vnd.api+json"}
    assert (
        _schema_ref(
            operations[("/{client_id}/api/dr/{message_id}/simple", "get")]["responses"]["200"]
        )
        == "SimpleReport"
    )
    stat_file = operations[("/rest/stat/file/id/{key}/format/{fmt}", "get")]["responses"]["200"]
    assert set(stat_file["content"]) == {"application/json", "application/xml", "text/csv"}
    for (path, _), operation in operations.items():
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path":
                assert parameter["schema"]["minLength"] == 1, path


def test_schemathesis_reads_every_operation(document: dict[str, Any]) -> None:
    schema = schemathesis.openapi.from_dict(document)
    labels = [result.ok().label for result in schema.get_all_operations()]
    assert len(labels) == len(_operations(document))


def test_the_seeds_request_examples_fit_the_documented_body(document: dict[str, Any]) -> None:
    content = _operations(document)[("/rest/sms/create", "post")]["requestBody"]["content"]
    media = content["application/json"]
    # The document's references point into its components: validate with them at the root.
    validator = jsonschema_rs.Draft202012Validator(
        {**media["schema"], "components": document["components"]}
    )
    assert set(media["examples"]) == {"phone", "phones", "individual"}
    for example in media["examples"].values():
        assert validator.is_valid(example["value"]), example
    assert not validator.is_valid({"destination": "phone", "msisdn": "x"})


def test_the_seeds_viber_example_fits_the_documented_body(document: dict[str, Any]) -> None:
    content = _operations(document)[("/rest/viber/create", "post")]["requestBody"]["content"]
    media = content["application/json"]
    validator = jsonschema_rs.Draft202012Validator(
        {**media["schema"], "components": document["components"]}
    )
    assert set(media["examples"]) == {"seed", "with_sms_alternative"}
    for example in media["examples"].values():
        assert validator.is_valid(example["value"]), example
    assert not validator.is_valid({"messages": "not a list"})
