"""The read API against a real MongoDB-protocol server, checked against the seed contract."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from litestar.testing import AsyncTestClient

from modelreg.services.api.app import create_app
from tests.factories import seed_model_document

SPEC = yaml.safe_load((Path(__file__).parents[2] / "docs/spec/get-model-details.openapi.yaml").read_text())
DETAILS_PATH = "/v1/namespaces/{namespace_id}/models/{model_id}"


def seed_validator(component: str) -> jsonschema.Validator:
    """A validator for one of the seed's component schemas, resolving its $refs inside the seed."""
    schema = {"$ref": f"#/components/schemas/{component}", "components": SPEC["components"]}
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def assert_rfc3339_with_zone(value: str) -> None:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None, value


@pytest.fixture
async def client(settings, db, make_key) -> Any:
    key = await make_key("ns_a", "other_ns")
    async with AsyncTestClient(app=create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        yield client


async def test_details_of_a_seed_only_document_match_the_seed_schema(client, db) -> None:
    await db.custom_models.insert_one(seed_model_document("ns_a", "model_a"))

    response = await client.get("/v1/namespaces/ns_a/models/model_a")

    assert response.status_code == 200
    body = response.json()
    seed_validator("ModelDetailResponse").validate(body)
    assert body["success"] is True
    model = body["model"]
    assert model["model_id"] == "model_a" and model["namespace_id"] == "ns_a"
    assert model["deployed"] is False and model["deployment_info"] is None
    assert model["deployment_status"] == "not_deployed"
    assert model["resource_requirements"] == {"num_cpus": 1.0, "num_gpus": 0, "memory": 4294967296}
    assert_rfc3339_with_zone(model["created_at"])
    assert_rfc3339_with_zone(model["updated_at"])
    assert "deployment_history" not in model and "_id" not in model


async def test_deployed_legacy_document_reports_deployed_with_full_info(client, db) -> None:
    info = {
        "ray_cluster_url": "ray://head:10001",
        "ray_deployment_name": "ns_a--model_b",
        "endpoint": "http://serve:8000/ns_a/model_b",
        "base_image": "rayproject/ray:2.60.0",
        "deployed_at": datetime(2026, 3, 1, 12, 0, 0),
    }
    await db.custom_models.insert_one(
        seed_model_document("ns_a", "model_b", deployed=True, deployment_info=info)
    )

    body = (await client.get("/v1/namespaces/ns_a/models/model_b")).json()

    seed_validator("ModelDetailResponse").validate(body)
    assert body["model"]["deployed"] is True
    assert body["model"]["deployment_status"] == "deployed"
    returned = body["model"]["deployment_info"]
    assert set(returned) == {
        "ray_cluster_url",
        "ray_deployment_name",
        "endpoint",
        "base_image",
        "deployed_at",
    }
    assert returned["endpoint"] == info["endpoint"]
    assert_rfc3339_with_zone(returned["deployed_at"])


async def test_unknown_model_is_a_seed_shaped_404(client, db) -> None:
    await db.custom_models.insert_one(seed_model_document("ns_a", "model_c"))

    for path in ("/v1/namespaces/ns_a/models/missing", "/v1/namespaces/other_ns/models/model_c"):
        response = await client.get(path)
        assert response.status_code == 404
        body = response.json()
        seed_validator("ErrorResponse").validate(body)
        assert body["success"] is False and body["status"] == 404
        assert body["error"]["type"] == "NotFoundError"
        assert body["error"]["message"] == "Model not found"
        assert set(body["error"]) == {"message", "type", "code", "details"}


async def test_invalid_path_parameter_is_a_seed_shaped_422(client, db) -> None:
    response = await client.get(f"/v1/namespaces/ns_a/models/{'m' * 300}")

    assert response.status_code == 422
    body = response.json()
    seed_validator("HTTPValidationError").validate(body)
    assert body["detail"] and body["detail"][0]["loc"][:2] == ["path", "model_id"]
    assert body["detail"][0]["msg"]


async def test_unknown_route_and_wrong_method_use_error_response(client, db) -> None:
    for method, path, status in (("get", "/v2/nothing", 404), ("put", "/v1/namespaces/a/models/b", 405)):
        response = await getattr(client, method)(path)
        assert response.status_code == status
        seed_validator("ErrorResponse").validate(response.json())


async def test_corrupt_document_gives_500_without_internals(client, db) -> None:
    await db.custom_models.insert_one(
        seed_model_document("ns_a", "broken", model_format="tensorflow-savedmodel")
    )

    response = await client.get("/v1/namespaces/ns_a/models/broken")

    assert response.status_code == 500
    body = response.json()
    seed_validator("ErrorResponse").validate(body)
    assert body["error"] == {
        "message": "Internal server error",
        "type": "InternalServerError",
        "code": None,
        "details": None,
    }
    assert "tensorflow" not in response.text and "Traceback" not in response.text


async def test_health_endpoints(client) -> None:
    assert (await client.get("/health/live")).json() == {"status": "ok"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["mongodb"] == "ok"


def _types(prop: dict[str, Any]) -> set[str]:
    """A property's possible types ($refs by name), whether written with anyOf, oneOf, allOf or directly."""
    variants = prop.get("anyOf") or prop.get("oneOf") or prop.get("allOf") or [prop]
    found = set()
    for variant in variants:
        if "$ref" in variant:
            found.add(variant["$ref"].rsplit("/", 1)[-1])
        elif "type" in variant:
            found.add(
                variant["type"] if isinstance(variant["type"], str) else "|".join(sorted(variant["type"]))
            )
    return found


async def test_served_openapi_declares_the_seed_components(client) -> None:
    served = (await client.get("/schema/openapi.json")).json()
    served_components = served["components"]["schemas"]

    for name, seed in SPEC["components"]["schemas"].items():
        assert name in served_components, name
        mine = served_components[name]
        assert sorted(mine.get("required", [])) == sorted(seed.get("required", [])), name
        for prop_name, seed_prop in seed["properties"].items():
            assert prop_name in mine["properties"], f"{name}.{prop_name}"
            mine_prop = mine["properties"][prop_name]
            assert _types(mine_prop) == _types(seed_prop), f"{name}.{prop_name}"
            assert mine_prop.get("enum") == seed_prop.get("enum"), f"{name}.{prop_name}"
            for bound in ("minimum", "maximum", "default", "format"):
                assert mine_prop.get(bound) == seed_prop.get(bound), f"{name}.{prop_name}.{bound}"

    operation = served["paths"][DETAILS_PATH]["get"]
    seed_operation = SPEC["paths"][DETAILS_PATH]["get"]
    assert operation["operationId"] == seed_operation["operationId"]
    assert set(operation["responses"]) >= set(seed_operation["responses"])
    for status, seed_response in seed_operation["responses"].items():
        assert operation["responses"][status]["description"] == seed_response["description"]
        if "content" in seed_response:
            seed_ref = seed_response["content"]["application/json"]["schema"]["$ref"]
            assert operation["responses"][status]["content"]["application/json"]["schema"]["$ref"] == seed_ref


async def test_ready_reports_503_while_mongodb_is_down(infra, tmp_path) -> None:
    from modelreg.services.devstack import embedded
    from tests.conftest import make_settings

    server = embedded.secantus(tmp_path / "db", log_dir=tmp_path).start()
    try:
        settings = make_settings(infra, mongodb_url=server.url)
        async with AsyncTestClient(app=create_app(settings)) as client:
            assert (await client.get("/health/ready")).status_code == 200
            server.kill()
            response = await client.get("/health/ready")
            assert response.status_code == 503
            assert response.json()["status"] == "unavailable"
            assert (await client.get("/health/live")).status_code == 200
    finally:
        server.stop()
