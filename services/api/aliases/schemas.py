"""Bodies of the aliases area."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from modelreg.services.api.models.schemas import CustomModelDocument
from modelreg.shared.identifiers import ResourceId


def _meta(title: str, description: str) -> msgspec.Meta:
    return msgspec.Meta(title=title, description=description)


class SetAliasRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Point the alias at a model of the name."""

    model_id: ResourceId


class AliasView(msgspec.Struct, kw_only=True):
    """An alias: a stable name for one version (model) of a model name."""

    name: Annotated[str, _meta("Name", "The model name the alias belongs to")]
    alias: Annotated[str, _meta("Alias", "The alias (e.g. production)")]
    model_id: Annotated[str, _meta("Model Id", "The model the alias points at")]
    previous_model_id: Annotated[
        str | None, _meta("Previous Model Id", "Where it pointed before its last move: the rollback target")
    ] = None
    updated_at: Annotated[datetime, _meta("Updated At", "When it last moved")]
    updated_by: Annotated[str | None, _meta("Updated By", "Prefix of the API key that moved it")] = None


class AliasResponse(msgspec.Struct, kw_only=True):
    success: Annotated[bool, msgspec.Meta(title="Success")] = True
    alias: AliasView


class AliasDetailResponse(msgspec.Struct, kw_only=True):
    """The alias and its target's details."""

    success: Annotated[bool, msgspec.Meta(title="Success")] = True
    alias: AliasView
    model: Annotated[
        CustomModelDocument | None, _meta("Model", "The target's details (null if it was just deleted)")
    ] = None


class AliasListResponse(msgspec.Struct, kw_only=True):
    success: Annotated[bool, msgspec.Meta(title="Success")] = True
    namespace_id: Annotated[str, msgspec.Meta(title="Namespace Id")]
    name: Annotated[str, msgspec.Meta(title="Name")]
    aliases: Annotated[list[AliasView], msgspec.Meta(title="Aliases")]


class AliasDeleteResponse(msgspec.Struct, kw_only=True):
    success: Annotated[bool, msgspec.Meta(title="Success")] = True
    name: Annotated[str, msgspec.Meta(title="Name")]
    alias: Annotated[str, msgspec.Meta(title="Alias")]
    model_id: Annotated[str, _meta("Model Id", "The model it pointed at")]
    deleted: Annotated[bool, msgspec.Meta(title="Deleted")] = True
