"""The one table from domain errors to HTTP answers, and the bodies it produces."""

from __future__ import annotations

import msgspec
from litestar.exceptions import ValidationException

from modelreg.services.api.domain_errors import DomainError, InvalidField, ModelNotFound, VersionExists
from modelreg.services.api.errors import (
    DOMAIN_ERROR_STATUS,
    HTTP_ERROR_TYPES,
    handle_domain_error,
    handle_invalid_field,
    handle_validation_error,
)
from modelreg.shared.contracts import ModelKey


def _subclasses(cls: type) -> set[type]:
    return {sub for direct in cls.__subclasses__() for sub in {direct, *_subclasses(direct)}}


def test_every_domain_error_has_a_status_with_a_seed_type() -> None:
    assert set(DOMAIN_ERROR_STATUS) == _subclasses(DomainError) - {InvalidField}
    assert all(status in HTTP_ERROR_TYPES for status in DOMAIN_ERROR_STATUS.values())


def test_a_domain_error_becomes_the_seed_error_response() -> None:
    response = handle_domain_error(None, VersionExists("resnet", "1", "model_1"))  # type: ignore[arg-type]

    assert response.status_code == 409
    assert msgspec.to_builtins(response.content) == {
        "success": False,
        "status": 409,
        "error": {
            "message": "A model with this name and version already exists in the namespace",
            "type": "ConflictError",
            "code": "model_version_exists",
            "details": {"name": "resnet", "version": "1", "model_id": "model_1"},
        },
    }
    not_found = handle_domain_error(None, ModelNotFound(ModelKey("ns", "m")))  # type: ignore[arg-type]
    assert not_found.status_code == 404 and not_found.content.error.type == "NotFoundError"


def test_an_invalid_field_answers_like_request_validation() -> None:
    message = "Expected `str`, got `int` - at `$.name`"
    from_service = handle_invalid_field(None, InvalidField(message, "name"))  # type: ignore[arg-type]
    from_litestar = handle_validation_error(
        None,  # type: ignore[arg-type]
        ValidationException(detail=message, extra=[{"source": "body", "key": "name", "message": message}]),
    )

    assert from_service.status_code == from_litestar.status_code == 422
    assert msgspec.to_builtins(from_service.content) == msgspec.to_builtins(from_litestar.content)
    assert msgspec.to_builtins(from_service.content) == {
        "detail": [{"loc": ["body", "name"], "msg": message, "type": "value_error"}]
    }
    unnamed = handle_invalid_field(None, InvalidField("the model archive is missing"))  # type: ignore[arg-type]
    assert msgspec.to_builtins(unnamed.content)["detail"][0]["loc"] == ["body"]
