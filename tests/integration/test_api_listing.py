"""Listing a namespace's models: pagination, total count, filters and a stable order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from tests.api_support import SharedApi, shared_api
from tests.factories import BASE_TIME, seed_model_document
from tests.integration.test_api_models import seed_validator


async def insert_models(db) -> list[dict]:
    """Seven models in ns_a (three share a creation time, to exercise the tie-break) and one elsewhere."""
    documents = []
    for i in range(7):
        created = BASE_TIME + timedelta(minutes=min(i, 4))  # models 4, 5, 6 share a timestamp
        documents.append(
            seed_model_document(
                "ns_a",
                f"m{i}",
                name=f"model-{i % 3}",
                version=str(i),
                model_format="onnx" if i % 2 == 0 else "safetensors",
                task_type="embedding" if i < 3 else "classification",
                deployed=i in (1, 5),
                created_at=created,
                updated_at=created,
            )
        )
    documents.append(seed_model_document("ns_other", "elsewhere"))
    await db.custom_models.insert_many(documents)
    return documents


@pytest.fixture(scope="module")
async def shared(infra, tmp_path_factory) -> AsyncIterator[SharedApi]:
    """Every test here only reads: one app and database, seeded once (ns_empty stays empty)."""
    async with shared_api(infra, tmp_path_factory.mktemp("listing"), "ns_a", "ns_empty") as api:
        await insert_models(api.db)
        yield api


@pytest.fixture
async def client(shared: SharedApi):
    return await shared.client()


async def page_ids(client, **params) -> tuple[list[str], dict]:
    response = await client.get("/v1/namespaces/ns_a/models", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    return [m["model_id"] for m in body["models"]], body


async def test_newest_first_with_model_id_breaking_ties_and_pages_that_add_up(client) -> None:
    first, body = await page_ids(client, limit=3)
    assert body["total"] == 7 and body["limit"] == 3 and body["offset"] == 0 and body["next_offset"] == 3
    second, body2 = await page_ids(client, limit=3, offset=3)
    third, body3 = await page_ids(client, limit=3, offset=6)

    assert first + second + third == ["m4", "m5", "m6", "m3", "m2", "m1", "m0"]
    assert body2["next_offset"] == 6 and body3["next_offset"] is None
    for model in body["models"]:
        seed_validator("CustomModelDocument").validate(model)
        assert "deployment_history" not in model
    beyond, body4 = await page_ids(client, offset=50)
    assert beyond == [] and body4["total"] == 7 and body4["next_offset"] is None


async def test_other_orders_are_stable_too(client) -> None:
    oldest_first, _ = await page_ids(client, sort="created_at")
    by_name, _ = await page_ids(client, sort="name")
    by_name_desc, _ = await page_ids(client, sort="-name")

    assert oldest_first == ["m0", "m1", "m2", "m3", "m4", "m5", "m6"]
    # name, then version: model-0 has versions 0, 3, 6; model-1 has 1, 4; model-2 has 2, 5.
    assert by_name == ["m0", "m3", "m6", "m1", "m4", "m2", "m5"]
    assert by_name_desc == ["m5", "m2", "m4", "m1", "m6", "m3", "m0"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"deployed": "true"}, ["m5", "m1"]),
        ({"deployed": "false"}, ["m4", "m6", "m3", "m2", "m0"]),
        ({"task_type": "embedding"}, ["m2", "m1", "m0"]),
        ({"model_format": "safetensors"}, ["m5", "m3", "m1"]),
        ({"name": "model-1"}, ["m4", "m1"]),
        ({"name": "model-1", "deployed": "true"}, ["m1"]),
        ({"task_type": "nothing-like-it"}, []),
    ],
)
async def test_filters_narrow_the_page_and_the_total(client, params, expected) -> None:
    ids, body = await page_ids(client, **params)

    assert ids == expected
    assert body["total"] == len(expected)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"model_format": "tensorflow"}, "model_format"),
        ({"sort": "size"}, "sort"),
        ({"deployed": "maybe"}, "deployed"),
    ],
)
async def test_invalid_query_parameters_are_a_seed_shaped_422(client, params, field) -> None:
    response = await client.get("/v1/namespaces/ns_a/models", params=params)

    assert response.status_code == 422
    body = response.json()
    seed_validator("HTTPValidationError").validate(body)
    assert body["detail"][0]["loc"] == ["query", field]


async def test_an_empty_namespace_lists_nothing(client) -> None:
    response = await client.get("/v1/namespaces/ns_empty/models")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "success": True,
        "models": [],
        "total": 0,
        "namespace_id": "ns_empty",
        "limit": 20,
        "offset": 0,
        "next_offset": None,
    }
