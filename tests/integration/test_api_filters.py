"""The list route's filter language through the real app and database: every operator, composition with
the other filters and pages, the reported deployment status, refusals with their position, and injection
attempts that match nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from modelreg.shared.documents import LIST_INDEXES
from tests.api_support import SharedApi, api_client, shared_api
from tests.factories import BASE_TIME, seed_model_document


def model(model_id: str, minutes: int, **fields) -> dict:
    created = BASE_TIME + timedelta(minutes=minutes)
    return seed_model_document("ns_a", model_id, created_at=created, updated_at=created, **fields)


def seed_models() -> list[dict]:
    return [
        model("resnet-1", 0, name="resnet", version="1.0", tags={"team": "vision", "stage": "prod"}),
        model("resnet-2", 1, name="resnet", version="2.0", tags={"team": "vision", "stage": "canary"}),
        model(
            "bert",
            2,
            name="BERT.base",
            version="1.0",
            model_format="safetensors",
            task_type="embedding",
            tags={"team": "nlp"},
            deployed=True,
            deployment_status="deployed",
        ),
        model("bertxbase", 3, name="BERTxbase", version="1.0", framework="it's"),
        # Asked to deploy, not yet observed: reported as pending.
        model("waiting", 4, name="waiting", version="0.1", desired_state="deployed", desired_at=BASE_TIME),
        seed_model_document("ns_other", "elsewhere", name="resnet", tags={"team": "vision"}),
    ]


@pytest.fixture(scope="module")
async def shared(infra, tmp_path_factory) -> AsyncIterator[SharedApi]:
    """One app and database, seeded once, for the tests that only read (most of this module)."""
    async with shared_api(infra, tmp_path_factory.mktemp("filters"), "ns_a") as api:
        await api.db.custom_models.insert_many(seed_models())
        yield api


@pytest.fixture
async def client(shared: SharedApi):
    """The shared app's client, for tests that only read: the seeded models, nothing else."""
    return await shared.client()


@pytest.fixture
async def own_client(topics, db, make_key):
    """A client of the test's own app and database, for tests that write."""
    async with api_client(topics, await make_key("ns_a")) as client:
        yield client


@pytest.fixture
async def models(db) -> None:
    await db.custom_models.insert_many(seed_models())


async def ids(client, text: str, **params) -> list[str]:
    response = await client.get("/v1/namespaces/ns_a/models", params={"filter": text, **params})
    assert response.status_code == 200, response.text
    return sorted(m["model_id"] for m in response.json()["models"])


async def refusal(client, text: str) -> dict:
    response = await client.get("/v1/namespaces/ns_a/models", params={"filter": text})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["success"] is False and body["status"] == 422
    assert body["error"]["type"] == "UnprocessableEntityError"
    assert body["error"]["details"]["filter"] == text
    return body["error"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name = 'resnet'", ["resnet-1", "resnet-2"]),
        ("name != 'resnet'", ["bert", "bertxbase", "waiting"]),
        ("version > '1.0'", ["resnet-2"]),
        ("version < '2.0' AND name = 'resnet'", ["resnet-1"]),
        ("name IN ('waiting', 'BERTxbase', 'nothing')", ["bertxbase", "waiting"]),
        ("name LIKE 'res%'", ["resnet-1", "resnet-2"]),
        ("name LIKE 'bert%'", []),
        ("name ILIKE 'bert%'", ["bert", "bertxbase"]),
        ("name ILIKE 'bert.base'", ["bert"]),  # '.' is literal, not "any character"
        ("name ILIKE 'bert_base'", ["bert", "bertxbase"]),
        ("model_format = 'safetensors'", ["bert"]),
        ("task_type = 'embedding' OR tags.stage = 'canary'", ["bert", "resnet-2"]),
        ("tags.team = 'vision' AND (tags.stage = 'prod' OR version = '3')", ["resnet-1"]),
        ("tags.team IN ('nlp', 'vision') and tags.stage != 'prod'", ["bert", "resnet-2"]),
        ("deployed = TRUE", ["bert"]),
        ("deployment_status = 'pending'", ["waiting"]),
        ("deployment_status IN ('deployed', 'pending')", ["bert", "waiting"]),
        ("deployment_status != 'not_deployed'", ["bert", "waiting"]),
        ("framework = 'it''s'", ["bertxbase"]),
    ],
)
async def test_each_operator_and_field(client, text, expected) -> None:
    assert await ids(client, text) == expected


async def test_times_compare_as_times(client) -> None:
    third = (BASE_TIME + timedelta(minutes=2)).isoformat()
    assert await ids(client, f"created_at >= '{third}'") == ["bert", "bertxbase", "waiting"]
    assert await ids(client, f"updated_at < '{third}'") == ["resnet-1", "resnet-2"]
    assert await ids(client, f"updated_at >= '{third}'") == ["bert", "bertxbase", "waiting"]
    assert await ids(client, f"created_at <= '{third}'") == ["bert", "resnet-1", "resnet-2"]
    # A time without a zone is UTC.
    naive = (BASE_TIME + timedelta(minutes=2)).replace(tzinfo=None).isoformat()
    assert await ids(client, f"created_at = '{naive}'") == ["bert"]


async def test_the_filter_composes_with_the_other_filters_and_pages(client) -> None:
    assert await ids(client, "tags.team = 'vision'", name="resnet") == ["resnet-1", "resnet-2"]
    assert await ids(client, "tags.team IN ('vision', 'nlp')", deployed="true") == ["bert"]
    first = await client.get(
        "/v1/namespaces/ns_a/models", params={"filter": "version = '1.0'", "limit": 2, "sort": "created_at"}
    )
    body = first.json()
    assert [m["model_id"] for m in body["models"]] == ["resnet-1", "bert"]
    assert body["total"] == 3 and body["next_offset"] == 2
    rest = await client.get(
        "/v1/namespaces/ns_a/models",
        params={"filter": "version = '1.0'", "limit": 2, "offset": 2, "sort": "created_at"},
    )
    assert [m["model_id"] for m in rest.json()["models"]] == ["bertxbase"]


@pytest.mark.parametrize(
    "text",
    [
        "name = '{\"$ne\": null}'",
        "name = '$ne'",
        'tags.team = \'{"$gt": ""}\'',
        "name LIKE '.*'",
        "name LIKE '^res'",
        "name ILIKE '(?i)RESNET|bert'",
        "name IN ('$where', '{\"$regex\": \".*\"}')",
        "name LIKE '%\\%'",
    ],
)
async def test_injection_attempts_match_nothing(client, text) -> None:
    assert await ids(client, text) == []


@pytest.mark.parametrize(
    ("text", "position", "code"),
    [
        ("name = 'x' OR '1'='1'", 14, "invalid_filter"),
        ("name = 'unterminated", 7, "invalid_filter"),
        ('name = "double"', 7, "invalid_filter"),
        ("(name = 'x'", 11, "invalid_filter"),
        ("name == 'x'", 6, "invalid_filter"),
        ("name = 'x'; drop", 10, "invalid_filter"),
        ("$where = 'x'", 0, "invalid_filter"),
        ("tags.$where = 'x'", 4, "invalid_filter"),
        ("name.$ne = 'x'", 4, "invalid_filter"),
        ("name.x = 'x'", 0, "invalid_filter_field"),
        ("owner = 'x'", 0, "invalid_filter_field"),
        ("deployed = 'true'", 0, "invalid_filter_value"),
        ("created_at > 'yesterday'", 0, "invalid_filter_value"),
        ("model_format = 'tensorflow'", 0, "invalid_filter_value"),
        ("deployed LIKE 'x'", 0, "invalid_filter_operator"),
        ("version = 1", 0, "invalid_filter_value"),
        ("alias LIKE 'prod%'", 0, "invalid_filter_operator"),
        ("name LIKE 'a\x00'", 12, "invalid_filter"),  # MongoDB refuses NUL in a regex: never sent
        ("created_at > '0001-01-01T00:00:00+01:00'", 0, "invalid_filter_value"),
    ],
)
async def test_refusals_are_seed_shaped_422_with_position(client, text, position, code) -> None:
    error = await refusal(client, text)
    assert error["code"] == code
    assert error["details"]["position"] == position
    assert f"position {position}" in error["message"]


async def test_an_empty_or_overlong_filter_is_a_validation_error(client) -> None:
    empty = await client.get("/v1/namespaces/ns_a/models", params={"filter": ""})
    long = await client.get("/v1/namespaces/ns_a/models", params={"filter": "name = 'x' OR " * 200})
    for response in (empty, long):
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"][-1] == "filter"


async def test_the_documented_indexes_answer_a_filtered_page(shared, client) -> None:
    response = await client.get("/v1/namespaces/ns_a/models", params={"filter": "name = 'x'"})
    assert response.status_code == 200  # the app created its indexes
    names = {index["name"] async for index in await shared.db.custom_models.list_indexes()}
    assert {"namespace_name_version_unique", "namespace_created", "namespace_tags"} <= names
    # Every listing order's index, also those differing from another only in a direction.
    assert {index.document["name"] for index in LIST_INDEXES} <= names


async def test_deployment_status_filters_on_the_status_the_api_reports(own_client, db) -> None:
    """Every combination of observed and requested state: the filter agrees with the listed status."""
    earlier, later = BASE_TIME, BASE_TIME + timedelta(minutes=5)
    documents = []
    for observed in (None, "not_deployed", "deployed", "failed", "deleting", "unhealthy"):
        for desired in (None, "deployed", "not_deployed"):
            for observed_at in (None, earlier, later):
                n = len(documents)
                documents.append(
                    seed_model_document(
                        "ns_a",
                        f"m{n}",
                        deployed=observed in ("deployed", "unhealthy"),
                        deployment_status=observed,
                        desired_state=desired,
                        desired_at=None if desired is None else BASE_TIME + timedelta(minutes=2),
                        observed_at=observed_at,
                    )
                )
    await db.custom_models.insert_many(documents)
    listed = await own_client.get("/v1/namespaces/ns_a/models", params={"limit": 100})
    reported = {m["model_id"]: m["deployment_status"] for m in listed.json()["models"]}
    assert len(reported) == len(documents)

    for status in ("not_deployed", "pending", "deployed", "unhealthy", "failed", "deleting"):
        expected = sorted(model_id for model_id, shown in reported.items() if shown == status)
        assert await ids(own_client, f"deployment_status = '{status}'", limit=100) == expected, status
        others = sorted(model_id for model_id, shown in reported.items() if shown != status)
        assert await ids(own_client, f"deployment_status != '{status}'", limit=100) == others, status


async def test_the_alias_field_finds_the_models_aliases_point_at(own_client, models) -> None:
    aliases = "/v1/namespaces/ns_a/names/resnet/aliases"
    for alias, target in (("production", "resnet-1"), ("canary", "resnet-2")):
        response = await own_client.put(f"{aliases}/{alias}", json={"model_id": target})
        assert response.status_code == 200, response.text
    bert = await own_client.put(
        "/v1/namespaces/ns_a/names/BERT.base/aliases/production", json={"model_id": "bert"}
    )
    assert bert.status_code == 200, bert.text

    assert await ids(own_client, "alias = 'production'") == ["bert", "resnet-1"]
    assert await ids(own_client, "alias IN ('canary', 'nowhere')") == ["resnet-2"]
    assert await ids(own_client, "alias = 'production' AND name = 'resnet'") == ["resnet-1"]
    assert await ids(own_client, "alias = 'canary' OR deployed = TRUE") == ["bert", "resnet-2"]
    assert await ids(own_client, "alias = 'nowhere'") == []

    # A move shows in the next filtered list.
    assert (await own_client.put(f"{aliases}/production", json={"model_id": "resnet-2"})).status_code == 200
    assert await ids(own_client, "alias = 'production' AND name = 'resnet'") == ["resnet-2"]
