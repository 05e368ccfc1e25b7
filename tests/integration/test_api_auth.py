"""Bearer API keys on /v1: who gets in, and what a key for one namespace can see of another."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import msgspec
import pytest

from modelreg.shared.contracts import COMMAND_DECODER, CommandType
from tests.api_support import SharedApi, api_client, bearer, make_archive, shared_api
from tests.conftest import insert_api_key, read_topic
from tests.factories import seed_model_document
from tests.integration.test_api_models import seed_validator

# Every /v1 route: (method, path template, is a write).
ROUTES = [
    ("GET", "/v1/namespaces/{ns}/models", False),
    ("POST", "/v1/namespaces/{ns}/models", True),
    ("GET", "/v1/namespaces/{ns}/models/{model}", False),
    ("DELETE", "/v1/namespaces/{ns}/models/{model}", True),
    ("POST", "/v1/namespaces/{ns}/models/{model}/deploy", True),
    ("DELETE", "/v1/namespaces/{ns}/models/{model}/deploy", True),
    ("GET", "/v1/namespaces/{ns}/models/{model}/events", False),
]


async def call(client, method: str, path: str, headers: dict[str, str] | None = None):
    if method == "POST" and path.endswith("/models"):
        return await client.post(
            path,
            data={"name": "intruder", "version": "1", "model_format": "onnx"},
            files={"file": ("m.tar.gz", make_archive(), "application/gzip")},
            headers=headers,
        )
    return await client.request(method, path, headers=headers)


def error_of(response, status: int, error_type: str, code: str | None) -> dict:
    assert response.status_code == status, (response.request.method, response.request.url, response.text)
    body = response.json()
    seed_validator("ErrorResponse").validate(body)
    assert body["error"]["type"] == error_type and body["error"]["code"] == code
    return body


def model_not_found(namespace_id: str, model_id: str) -> dict:
    return {
        "success": False,
        "status": 404,
        "error": {
            "message": "Model not found",
            "type": "NotFoundError",
            "code": None,
            "details": {"resource": "model", "namespace_id": namespace_id, "model_id": model_id},
        },
    }


@pytest.fixture(scope="module")
async def shared(infra, tmp_path_factory) -> AsyncIterator[SharedApi]:
    """One app (no key of its own) and database for the tests that only read or are refused."""
    async with shared_api(infra, tmp_path_factory.mktemp("auth"), authenticated=False) as api:
        await api.db.custom_models.insert_many(
            [seed_model_document("ns_a", "m1")]
            + [seed_model_document(ns, f"m_{ns}") for ns in ("ns_a", "ns_b", "ns_c")]
        )
        yield api


@pytest.fixture
async def client(shared: SharedApi):
    return await shared.client()


@pytest.fixture
def shared_key(shared: SharedApi) -> Callable[..., Awaitable[str]]:
    """`make_key` for the shared database: a new key concerns only the test that made it."""

    async def create(*namespaces: str, admin: bool = False) -> str:
        return await insert_api_key(shared.db, shared.settings, *namespaces, admin=admin)

    return create


@pytest.fixture
async def own_client(topics, db):
    """A client of the test's own app and database, for tests that write."""
    async with api_client(topics) as client:
        yield client


@pytest.mark.parametrize(("method", "template", "_"), ROUTES)
async def test_every_v1_route_needs_a_key(client, method, template, _) -> None:
    path = template.format(ns="ns_a", model="m1")

    response = await call(client, method, path)

    body = error_of(response, 401, "UnauthorizedError", "missing_api_key")
    assert body["status"] == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        ("Basic dXNlcjpwYXNz", "invalid_authorization"),
        ("Bearer", "invalid_authorization"),
        ("Bearer    ", "invalid_authorization"),
        ("Bearer not-a-key", "invalid_api_key"),
        ("Bearer mrk_0123456789ab_" + "A" * 43, "invalid_api_key"),  # well formed, unknown prefix
    ],
)
async def test_malformed_or_unknown_keys_are_401(client, authorization, code) -> None:
    response = await client.get("/v1/namespaces/ns_a/models", headers={"Authorization": authorization})
    error_of(response, 401, "UnauthorizedError", code)


async def test_a_known_prefix_with_a_wrong_secret_is_401(client, shared_key) -> None:
    key = await shared_key("ns_a")
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")

    assert (await client.get("/v1/namespaces/ns_a/models", headers=bearer(key))).status_code == 200
    response = await client.get("/v1/namespaces/ns_a/models", headers=bearer(tampered))
    error_of(response, 401, "UnauthorizedError", "invalid_api_key")


async def test_revoked_key_is_401(client, shared, shared_key) -> None:
    key = await shared_key("ns_a")
    assert (await client.get("/v1/namespaces/ns_a/models", headers=bearer(key))).status_code == 200

    await shared.db.api_keys.update_one({"prefix": key.split("_")[1]}, {"$set": {"revoked": True}})

    response = await client.get("/v1/namespaces/ns_a/models", headers=bearer(key))
    error_of(response, 401, "UnauthorizedError", "invalid_api_key")


async def test_keys_are_bound_to_the_pepper_they_were_hashed_with(topics, db, make_key) -> None:
    key = await make_key("ns_a")  # hashed with the test settings' pepper ("")
    peppered = msgspec.structs.replace(topics, api_key_pepper="another-secret")
    async with api_client(peppered, key) as client:
        error_of(await client.get("/v1/namespaces/ns_a/models"), 401, "UnauthorizedError", "invalid_api_key")


async def test_options_preflight_needs_no_key_and_reveals_nothing(client) -> None:
    for path in (
        "/v1/namespaces/ns_a/models",
        "/v1/namespaces/ns_a/models/m1",
        "/v1/namespaces/ns_a/models/nope",
    ):
        response = await client.options(path)
        assert response.status_code == 204 and response.content == b""
        assert "OPTIONS" in response.headers["allow"]


async def test_health_and_openapi_stay_public(client) -> None:
    assert (await client.get("/health/live")).status_code == 200
    assert (await client.get("/health/ready")).status_code == 200
    schema = await client.get("/schema/openapi.json")
    assert schema.status_code == 200
    spec = schema.json()
    assert spec["components"]["securitySchemes"]["BearerApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["BearerApiKey"]["description"],
    }
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            # The signed upload URL of presigned uploads is its own credential.
            public = not path.startswith("/v1/") or path == "/v1/uploads/{upload_id}"
            expected = None if public else [{"BearerApiKey": []}]
            assert operation.get("security") == expected, path


async def test_a_key_for_one_namespace_cannot_read_or_change_another(
    own_client, db, make_key, topics
) -> None:
    await db.custom_models.insert_one(seed_model_document("ns_b", "secret_model", deployed=True))
    before = await db.custom_models.find_one({"model_id": "secret_model"})
    own = bearer(await make_key("ns_a"))
    admin = bearer(await make_key(admin=True))

    for method, template, is_write in ROUTES:
        existing = template.format(ns="ns_b", model="secret_model")
        missing = template.format(ns="ns_b", model="no_such_model")
        for path in (existing, missing):
            response = await call(own_client, method, path, headers=own)
            if is_write:
                body = error_of(response, 403, "ForbiddenError", "namespace_forbidden")
                assert body["error"]["details"] == {"namespace_id": "ns_b"}
            elif "{model}" in template:
                # Exactly what an authorized key gets for a model that does not exist: no existence leak.
                model_id = path.split("/")[5]
                assert response.status_code == 404
                assert response.json() == model_not_found("ns_b", model_id)
            else:
                body = error_of(response, 404, "NotFoundError", None)
                assert body["error"]["message"] == "Namespace not found"
        if not is_write and "{model}" in template:
            truly_missing = await call(own_client, method, missing, headers=admin)
            assert truly_missing.json() == model_not_found("ns_b", "no_such_model")

    # Nothing changed: the model is untouched, nothing was uploaded, no command was sent before the admin's.
    assert await db.custom_models.find_one({"model_id": "secret_model"}) == before
    assert await db.custom_models.count_documents({}) == 1
    undeploy = await own_client.delete("/v1/namespaces/ns_b/models/secret_model/deploy", headers=admin)
    assert undeploy.status_code == 202
    records = await read_topic(topics, topics.commands_topic, expected=1)
    assert [COMMAND_DECODER.decode(r.value).command_type for r in records] == [CommandType.UNDEPLOY]


async def test_keys_reach_exactly_their_namespaces_and_admin_keys_reach_all(client, shared_key) -> None:
    # m_ns_a, m_ns_b and m_ns_c are seeded.
    two = bearer(await shared_key("ns_a", "ns_b"))
    admin = bearer(await shared_key(admin=True))

    for ns, allowed in (("ns_a", True), ("ns_b", True), ("ns_c", False)):
        listing = await client.get(f"/v1/namespaces/{ns}/models", headers=two)
        details = await client.get(f"/v1/namespaces/{ns}/models/m_{ns}", headers=two)
        assert (listing.status_code, details.status_code) == ((200, 200) if allowed else (404, 404))
        assert (await client.get(f"/v1/namespaces/{ns}/models/m_{ns}", headers=admin)).status_code == 200
