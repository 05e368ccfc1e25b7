"""The testing kit's model documents read as the registry reads its own (docs/testing.md)."""

from __future__ import annotations

from modelreg.services.testing.documents import BASE_TIME, seed_model_document
from modelreg.shared.documents import ModelDetails


def test_a_seeded_document_is_a_model_the_registry_reads_not_deployed() -> None:
    details = ModelDetails.model_validate(seed_model_document("team-a", "model_7"))
    assert (details.namespace_id, details.model_id, details.name) == ("team-a", "model_7", "name-model_7")
    assert details.deployed is False and details.created_at == BASE_TIME


def test_overrides_replace_fields_and_each_default_id_is_new() -> None:
    first, second = seed_model_document(task_type="embedding"), seed_model_document()
    assert first["task_type"] == "embedding" and second["task_type"] == "classification"
    assert first["model_id"] != second["model_id"]
