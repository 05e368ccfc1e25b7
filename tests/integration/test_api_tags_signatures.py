"""Tags (upload field, PATCH per key, shown in details and lists) and signatures read from real ONNX and
safetensors archives at upload, through the real app and database."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from tests.api_support import SharedApi, api_client, make_archive, shared_api, upload
from tests.factories import seed_model_document
from tests.integration.test_api_models import seed_validator
from tests.integration.test_api_upload import assert_error, assert_validation_error
from tests.model_archives import linear_onnx_bytes, safetensors_bytes, tar_gz


@pytest.fixture(scope="module")
async def shared(infra, tmp_path_factory) -> AsyncIterator[SharedApi]:
    """One app and database for the tests that are refused: they hold one model, uploaded with a tag."""
    async with shared_api(infra, tmp_path_factory.mktemp("tags"), "ns_a") as api:
        kept = await upload(api.app_client, "ns_a", name="kept", tags='{"keep": "me"}')
        assert kept.status_code == 201, kept.text
        yield api


@pytest.fixture
async def client(shared: SharedApi):
    """The shared app's client, for tests that change nothing."""
    return await shared.client()


@pytest.fixture
async def kept_model_id(shared: SharedApi) -> str:
    """The shared database's one model (tags {"keep": "me"})."""
    found = await shared.db.custom_models.find_one({"name": "kept"})
    return str(found["model_id"])


@pytest.fixture
async def own_client(topics, db, make_key):
    """A client of the test's own app and database, for tests that write."""
    async with api_client(topics, await make_key("ns_a")) as client:
        yield client


async def details(client, model_id: str) -> dict:
    response = await client.get(f"/v1/namespaces/ns_a/models/{model_id}")
    assert response.status_code == 200, response.text
    seed_validator("ModelDetailResponse").validate(response.json())
    return response.json()["model"]


# --- tags -----------------------------------------------------------------------------------------------


async def test_tags_given_at_upload_show_in_details_and_lists(own_client) -> None:
    response = await upload(own_client, "ns_a", tags=json.dumps({"team": "search", "stage": "canary"}))
    assert response.status_code == 201, response.text
    model_id = response.json()["model_id"]

    assert (await details(own_client, model_id))["tags"] == {"team": "search", "stage": "canary"}
    listed = (await own_client.get("/v1/namespaces/ns_a/models")).json()["models"]
    assert listed[0]["tags"] == {"team": "search", "stage": "canary"}


async def test_models_without_tags_show_an_empty_object(own_client, db) -> None:
    await db.custom_models.insert_one(seed_model_document("ns_a", "legacy"))
    await db.custom_models.insert_one(seed_model_document("ns_a", "null-tags", tags=None))
    plain = (await upload(own_client, "ns_a", version="2")).json()["model_id"]

    assert (await details(own_client, "legacy"))["tags"] == {}
    assert (await details(own_client, "null-tags"))["tags"] == {}
    assert (await details(own_client, plain))["tags"] == {}
    listed = (await own_client.get("/v1/namespaces/ns_a/models")).json()["models"]
    assert [m["tags"] for m in listed] == [{}, {}, {}]


@pytest.mark.parametrize(
    "tags",
    [
        "not json",
        '["a", "b"]',
        '{"team": 3}',
        '{"bad key": "x"}',
        '{"a.b": "x"}',
        '{"$where": "x"}',
        json.dumps({"k": "v" * 257}),
        json.dumps({f"k{i}": "v" for i in range(51)}),
    ],
)
async def test_invalid_upload_tags_are_422_and_store_nothing(client, shared, tags) -> None:
    response = await upload(client, "ns_a", tags=tags)
    assert_validation_error(response, "tags")
    assert await shared.db.custom_models.count_documents({}) == 1  # the module's model only


async def test_patch_sets_and_removes_tags_and_answers_the_details(own_client) -> None:
    model_id = (await upload(own_client, "ns_a", tags='{"stage": "canary", "old": "x", "team": "a"}')).json()[
        "model_id"
    ]
    before = await details(own_client, model_id)

    response = await own_client.patch(
        f"/v1/namespaces/ns_a/models/{model_id}",
        json={"tags": {"stage": "prod", "old": None, "owner": "ml", "never-there": None}},
    )

    assert response.status_code == 200, response.text
    seed_validator("ModelDetailResponse").validate(response.json())
    assert response.json()["model"]["tags"] == {"stage": "prod", "team": "a", "owner": "ml"}
    after = await details(own_client, model_id)
    assert after["tags"] == {"stage": "prod", "team": "a", "owner": "ml"}
    assert after["updated_at"] > before["updated_at"]


async def test_concurrent_patches_of_different_keys_lose_nothing(own_client) -> None:
    model_id = (await upload(own_client, "ns_a")).json()["model_id"]

    responses = await asyncio.gather(
        *(
            own_client.patch(f"/v1/namespaces/ns_a/models/{model_id}", json={"tags": {f"k{i}": str(i)}})
            for i in range(20)
        )
    )

    assert all(r.status_code == 200 for r in responses)
    assert (await details(own_client, model_id))["tags"] == {f"k{i}": str(i) for i in range(20)}


@pytest.mark.parametrize(
    "body",
    [
        {"tags": {"bad key": "x"}},
        {"tags": {"a.b": "x"}},
        {"tags": {"$set": "x"}},
        {"tags": {}},
        {"tags": {"k": "v" * 257}},
        {"tags": {"k": 1}},
        {"tags": "k=v"},
        {"labels": {"k": "v"}},
    ],
)
async def test_invalid_patches_are_422_and_change_nothing(client, kept_model_id, body) -> None:
    model_id = kept_model_id  # uploaded with tags {"keep": "me"}

    response = await client.patch(f"/v1/namespaces/ns_a/models/{model_id}", json=body)

    assert response.status_code == 422, response.text
    seed_validator("HTTPValidationError").validate(response.json())
    assert (await details(client, model_id))["tags"] == {"keep": "me"}


async def test_a_patch_may_not_pass_the_tag_limit(own_client) -> None:
    model_id = (await upload(own_client, "ns_a", tags=json.dumps({f"k{i}": "v" for i in range(50)}))).json()[
        "model_id"
    ]
    refused = await own_client.patch(
        f"/v1/namespaces/ns_a/models/{model_id}", json={"tags": {"one-more": "x"}}
    )
    swapped = await own_client.patch(
        f"/v1/namespaces/ns_a/models/{model_id}", json={"tags": {"k0": None, "other": "x"}}
    )

    assert_validation_error(refused, "tags")
    assert swapped.status_code == 200 and len(swapped.json()["model"]["tags"]) == 50


async def test_patch_of_an_unknown_model_is_404_and_of_a_foreign_namespace_403(client) -> None:
    missing = await client.patch("/v1/namespaces/ns_a/models/nope", json={"tags": {"k": "v"}})
    foreign = await client.patch("/v1/namespaces/ns_z/models/nope", json={"tags": {"k": "v"}})

    assert_error(missing, 404, "NotFoundError", None)
    assert_error(foreign, 403, "ForbiddenError", "namespace_forbidden")


# --- signatures -----------------------------------------------------------------------------------------


async def test_onnx_inputs_and_outputs_are_read_from_the_archive(own_client) -> None:
    archive = tar_gz({"model.onnx": linear_onnx_bytes(), "config.json": b"{}"})

    model_id = (await upload(own_client, "ns_a", archive, model_format="onnx")).json()["model_id"]

    model = await details(own_client, model_id)
    assert model["input_schema"] == {
        "source": "onnx",
        "file": "model.onnx",
        "inputs": [{"name": "x", "type": "tensor(float)", "shape": [None, 3]}],
    }
    assert model["output_schema"] == {
        "source": "onnx",
        "file": "model.onnx",
        "outputs": [{"name": "y", "type": "tensor(float)", "shape": [None, 2]}],
    }


async def test_safetensors_tensors_are_read_from_the_header(own_client) -> None:
    archive = tar_gz({"weights/model.safetensors": safetensors_bytes()})

    model_id = (await upload(own_client, "ns_a", archive, model_format="safetensors")).json()["model_id"]

    model = await details(own_client, model_id)
    assert model["input_schema"]["source"] == "safetensors"
    assert sorted(model["input_schema"]["tensors"], key=lambda t: t["name"]) == [
        {"name": "encoder.bias", "dtype": "F32", "shape": [4], "file": "weights/model.safetensors"},
        {"name": "encoder.weight", "dtype": "F32", "shape": [3, 4], "file": "weights/model.safetensors"},
        {"name": "step", "dtype": "I64", "shape": [1], "file": "weights/model.safetensors"},
    ]
    assert model["output_schema"] is None


async def test_schemas_the_client_sends_win_over_the_archive(own_client) -> None:
    archive = tar_gz({"model.onnx": linear_onnx_bytes()})
    sent = {"inputs": [{"name": "x", "type": "tensor(float)", "shape": [1, 3]}]}

    model_id = (
        await upload(own_client, "ns_a", archive, model_format="onnx", input_schema=json.dumps(sent))
    ).json()["model_id"]

    model = await details(own_client, model_id)
    assert model["input_schema"] == sent
    assert model["output_schema"]["outputs"][0]["name"] == "y"  # the one not sent is still read


async def test_an_unreadable_model_file_gives_no_signature_and_still_registers(own_client) -> None:
    archive = make_archive({"model.onnx": b"\x08\x01not really onnx", "config.json": b"{}"})

    response = await upload(own_client, "ns_a", archive, model_format="onnx")

    assert response.status_code == 201, response.text
    model = await details(own_client, response.json()["model_id"])
    assert model["input_schema"] is None and model["output_schema"] is None


async def test_a_schema_field_that_is_not_a_json_object_is_422(client) -> None:
    response = await upload(client, "ns_a", input_schema="[1, 2]")
    assert_validation_error(response, "input_schema")
