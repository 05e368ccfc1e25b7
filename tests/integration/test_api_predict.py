"""The inference routes against real HTTP servers standing in for Ray Serve endpoints, through the app."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Iterator

import msgspec
import pytest

from modelreg.services.devstack.embedded import free_port
from tests.api_support import SharedApi, api_process, bearer, shared_api
from tests.conftest import insert_api_key
from tests.endpoints import StandInEndpoint, stand_in_endpoint
from tests.factories import seed_model_document
from tests.integration.test_api_deployments import observed

MODELS = "/v1/namespaces/ns_a/models"
ALIASES = "/v1/namespaces/ns_a/names/resnet/aliases"


def deployed_at(endpoint: str) -> dict:
    return observed(
        "deployed",
        deployed=True,
        deployment_info={"endpoint": endpoint, "base_image": "img", "deployed_at": None},
    )


def seed_models(endpoint_a: StandInEndpoint, endpoint_b: StandInEndpoint) -> list[dict]:
    closed_port = free_port()
    return [
        seed_model_document(
            "ns_a", "ma", name="resnet", version="1", **deployed_at(endpoint_a.url + "/ns_a/ma")
        ),
        seed_model_document(
            "ns_a", "mb", name="resnet", version="2", **deployed_at(endpoint_b.url + "/ns_a/mb")
        ),
        seed_model_document("ns_a", "idle", name="resnet", version="3"),
        seed_model_document("ns_a", "slow", **deployed_at(endpoint_a.url + "/slow")),
        seed_model_document("ns_a", "fail", **deployed_at(endpoint_a.url + "/fail")),
        seed_model_document("ns_a", "refuse", **deployed_at(endpoint_a.url + "/refuse")),
        seed_model_document("ns_a", "stream", **deployed_at(endpoint_a.url + "/stream")),
        seed_model_document("ns_a", "gone", **deployed_at(f"http://127.0.0.1:{closed_port}/x")),
    ]


@pytest.fixture(scope="module")
def shared_endpoints() -> Iterator[tuple[StandInEndpoint, StandInEndpoint]]:
    with stand_in_endpoint("A") as a, stand_in_endpoint("B") as b:
        yield a, b


@pytest.fixture
def shared_a(shared_endpoints) -> StandInEndpoint:
    return shared_endpoints[0]


@pytest.fixture(scope="module")
async def shared(infra, tmp_path_factory, shared_endpoints) -> AsyncIterator[SharedApi]:
    """One app, database and pair of endpoints for the tests that only predict (they move no alias)."""
    workdir = tmp_path_factory.mktemp("predict")
    async with shared_api(
        infra, workdir, "ns_a", predict_timeout_s=0.5, predict_connect_timeout_s=0.5
    ) as api:
        await api.db.custom_models.insert_many(seed_models(*shared_endpoints))
        yield api


@pytest.fixture
async def client(shared: SharedApi):
    return await shared.client()


def error_code(response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["status"] == status
    return body["error"]["code"]


async def test_predict_forwards_the_body_and_answers_with_the_endpoints_answer(client, shared_a) -> None:
    response = await client.post(
        f"{MODELS}/ma/predict", json={"inputs": {"x": [[1.0, 2.0]]}}, headers={"X-Request-ID": "req-42"}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"served_by": "A", "echo": {"inputs": {"x": [[1.0, 2.0]]}}}
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-served-by"] == "A"
    seen = shared_a.seen_headers[-1]
    assert seen["content-type"] == "application/json" and seen["x-request-id"] == "req-42"
    assert "authorization" not in seen  # the registry's key never leaves the registry


async def test_a_streamed_answer_arrives_whole(client) -> None:
    response = await client.post(f"{MODELS}/stream/predict", json={})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.text.splitlines() == ['{"part": 1}', '{"part": 2}', '{"part": 3}']


async def test_refusals_and_endpoint_failures(client) -> None:
    refused = await client.post(f"{MODELS}/refuse/predict", json={})
    assert refused.status_code == 422 and refused.json() == {"error": "input x missing"}  # passed through
    assert error_code(await client.post(f"{MODELS}/fail/predict", json={}), 502) == "endpoint_error"
    unreachable = await client.post(f"{MODELS}/gone/predict", json={})
    assert error_code(unreachable, 502) == "endpoint_unreachable"
    assert error_code(await client.post(f"{MODELS}/slow/predict", json={}), 504) == "endpoint_timeout"
    not_deployed = await client.post(f"{MODELS}/idle/predict", json={})
    assert error_code(not_deployed, 409) == "model_not_deployed"
    assert not_deployed.json()["error"]["details"]["deployment_status"] == "not_deployed"
    assert (await client.post(f"{MODELS}/missing/predict", json={})).status_code == 404
    assert error_code(await client.post(f"{ALIASES}/nope/predict", json={}), 404) == "alias_not_found"


async def test_namespace_rules_apply(client, shared) -> None:
    foreign = bearer(await insert_api_key(shared.db, shared.settings, "ns_b"))
    denied = await client.post(f"{MODELS}/ma/predict", json={}, headers=foreign)
    assert error_code(denied, 403) == "namespace_forbidden"
    assert (
        await client.post(f"{MODELS}/ma/predict", json={}, headers={"Authorization": ""})
    ).status_code == 401


@pytest.fixture
def endpoint_a():
    with stand_in_endpoint("A") as server:
        yield server


@pytest.fixture
def endpoint_b():
    with stand_in_endpoint("B") as server:
        yield server


@pytest.fixture
async def served(topics, db, make_key, tmp_path, endpoint_a, endpoint_b):
    """The same models, with endpoints and a database of the test's own (it moves an alias and counts every
    request), behind a real API process: the loop's requests run concurrently with the moves."""
    await db.custom_models.insert_many(seed_models(endpoint_a, endpoint_b))
    settings = msgspec.structs.replace(topics, predict_timeout_s=5.0)
    async with api_process(settings, tmp_path / "api.log", await make_key("ns_a")) as served:
        yield served


async def test_predicting_through_an_alias_follows_its_moves_with_no_failed_request(
    served, endpoint_a, endpoint_b
) -> None:
    client = served
    assert (await client.put(f"{ALIASES}/production", json={"model_id": "ma"})).status_code == 200
    served: collections.Counter[str] = collections.Counter()
    failures: list[str] = []
    stop = asyncio.Event()

    async def predict_in_a_loop() -> None:
        while not stop.is_set():
            response = await client.post(f"{ALIASES}/production/predict", json={"inputs": [1]})
            if response.status_code != 200:
                failures.append(f"{response.status_code} {response.text[:200]}")
            else:
                served[response.json()["served_by"]] += 1

    async def served_since(before: int, by: str) -> None:
        while served[by] < before + 5:
            await asyncio.sleep(0.01)

    loops = [asyncio.create_task(predict_in_a_loop()) for _ in range(4)]
    try:
        await asyncio.wait_for(served_since(0, "A"), 30)
        for target, by in [("mb", "B"), ("ma", "A"), ("mb", "B")]:
            moved = await client.put(
                f"{ALIASES}/production", json={"model_id": target}, params={"require_deployed": "true"}
            )
            assert moved.status_code == 200, moved.text
            await asyncio.wait_for(served_since(served[by], by), 30)
        rolled = await client.post(f"{ALIASES}/production/rollback")
        assert rolled.json()["alias"]["model_id"] == "ma"
        await asyncio.wait_for(served_since(served["A"], "A"), 30)
    finally:
        stop.set()
        await asyncio.gather(*loops)

    assert failures == []
    assert served["A"] > 0 and served["B"] > 0
    # After the last move every answer comes from the new target.
    after = (await client.post(f"{ALIASES}/production/predict", json={})).json()
    assert after["served_by"] == "A"
    assert endpoint_a.requests + endpoint_b.requests == sum(served.values()) + 1


X_SCHEMA = {"inputs": [{"name": "x", "type": "tensor(float)", "shape": [None, 2]}]}


async def test_a_json_body_is_checked_against_the_models_input_schema(client, shared, shared_a) -> None:
    # A model only this test reads.
    await shared.db.custom_models.insert_one(
        seed_model_document(
            "ns_a", "typed", input_schema=X_SCHEMA, **deployed_at(shared_a.url + "/ns_a/typed")
        )
    )
    forwarded = len(shared_a.seen_headers)

    wrong = await client.post(f"{MODELS}/typed/predict", json={"inputs": {"x": [[1.0, 2.0, 3.0]], "z": [1]}})
    assert error_code(wrong, 422) == "invalid_model_inputs"
    problems = wrong.json()["error"]["details"]["inputs"]
    assert sorted(p["input"] for p in problems) == ["x", "z"]
    assert error_code(await client.post(f"{MODELS}/typed/predict", json={"x": [[1.0, 2.0]]}), 422) == (
        "invalid_model_inputs"
    )
    assert len(shared_a.seen_headers) == forwarded  # refused before reaching the endpoint

    fits = await client.post(f"{MODELS}/typed/predict", json={"inputs": {"x": [[1.0, 2.0]]}})
    assert fits.status_code == 200, fits.text
    # Other content types are the endpoint's business; models without inputs in their schema are not checked.
    raw = await client.post(
        f"{MODELS}/typed/predict", content=b'{"x": 1}', headers={"content-type": "application/octet-stream"}
    )
    assert raw.status_code == 200, raw.text
    assert (await client.post(f"{MODELS}/ma/predict", json={"anything": 1})).status_code == 200
