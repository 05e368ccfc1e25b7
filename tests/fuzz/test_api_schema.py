"""Schemathesis against the app's own OpenAPI document, in process (ASGI), over a real database.

Generated requests are mixed with the ids of seeded models, so GETs hit real documents of every shape
(seed-only, deployed, pending, with naive datetimes) and not only 404s.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pymongo import MongoClient
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from modelreg.services.api.app import create_app
from modelreg.shared.api_keys import generate_key
from modelreg.shared.documents import ApiKeyDocument
from modelreg.shared.settings import Settings
from tests.factories import seed_model_document

pytestmark = pytest.mark.timeout(300)
DETAILS_PATH = "/v1/namespaces/{namespace_id}/models/{model_id}"

SEEDED: list[dict[str, Any]] = [
    seed_model_document("ns_fuzz", "plain"),
    seed_model_document(
        "ns_fuzz",
        "deployed",
        deployed=True,
        deployment_status="deployed",
        last_event_sequence=3,
        observed_at=datetime(2026, 1, 2),
        deployment_info={
            "ray_cluster_url": "ray://head:10001",
            "ray_deployment_name": "ns_fuzz--deployed",
            "endpoint": "http://serve:8000/ns_fuzz/deployed",
            "base_image": "modelreg/serve-onnx:latest",
            "deployed_at": datetime(2026, 1, 2),  # naive, as another writer might store it
        },
    ),
    seed_model_document(
        "ns_fuzz",
        "pending",
        desired_state="deployed",
        desired_at=datetime(2026, 1, 3),
        model_format="safetensors",
        framework="sentence-transformers",
        output_schema={"y": "float[]"},
    ),
    seed_model_document("ns-other.2", "failed", deployment_status="failed", deployment_message="boom " * 50),
]


@pytest.fixture
def seeded_app(settings: Settings) -> Any:
    client: MongoClient = MongoClient(settings.mongodb_url)
    try:
        database = client[settings.mongodb_database]
        database.custom_models.insert_many([dict(doc) for doc in SEEDED])
        key = generate_key(settings.api_key_pepper)
        database[ApiKeyDocument.Settings.name].insert_one(
            {
                "prefix": key.prefix,
                "key_hash": key.key_hash,
                "namespaces": [],
                "admin": True,
                "created_at": datetime.now(UTC),
                "revoked": False,
            }
        )
        app = create_app(settings)
        app.state.fuzz_headers = {"Authorization": f"Bearer {key.key}"}
        yield app
    finally:
        client.drop_database(settings.mongodb_database)
        client.close()


def test_every_documented_operation_answers_within_its_schema_and_never_5xx(seeded_app: Any) -> None:
    # The watch routes stream until the client leaves (tests/integration/test_watch.py covers them).
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", seeded_app).exclude(path_regex=r"/watch$")
    details = schema[DETAILS_PATH]["GET"]
    generated = [
        schema.as_strategy(GenerationMode.POSITIVE),
        schema.as_strategy(GenerationMode.NEGATIVE),
        *(
            details.as_strategy(
                path_parameters={"namespace_id": d["namespace_id"], "model_id": d["model_id"]}
            )
            for d in SEEDED
        ),
    ]
    statuses: Counter[int] = Counter()

    @given(case=st.one_of(generated))
    @hypothesis_settings(
        max_examples=300,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=True,  # the same cases every run: CI stays reproducible
    )
    def check(case: Any) -> None:
        # The default checks: no 5xx, documented status codes, content types, headers and body schemas.
        # Left out: positive-data acceptance (a schema-valid upload of bytes that are not a .tar.gz is
        # rightly refused with 400, a rule the schema cannot express) and negative-data rejection (negative
        # cases drop the Authorization header, which is put back here, and unknown query parameters are
        # ignored by design).
        response = case.call_and_validate(
            headers=seeded_app.state.fuzz_headers,
            excluded_checks=[positive_data_acceptance, negative_data_rejection],
        )
        statuses[response.status_code] += 1

    check()
    # The run reached real documents, missing ones and rejected input, not just one of them.
    assert {200, 404} <= set(statuses), statuses
    assert all(status < 500 for status in statuses), statuses
