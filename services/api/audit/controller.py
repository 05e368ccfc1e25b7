"""GET /v1/namespaces/{namespace_id}/audit: the namespace's audit trail (its keys and admin keys)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from litestar import Controller, get
from litestar.params import Parameter

from modelreg.services.api.audit.schemas import AuditActionName, AuditPageResponse
from modelreg.services.api.audit.service import AuditReads
from modelreg.services.api.errors import ERROR_RESPONSES, error_spec
from modelreg.services.api.models.controller import Limit, ModelId, NamespaceId, Offset
from modelreg.shared.audit import AuditAction, AuditQuery


class AuditController(Controller):
    path = "/namespaces/{namespace_id:str}/audit"
    tags = ["Audit"]

    @get(
        "/",
        summary="Audit trail of a namespace",
        description=(
            "Every write in the namespace (upload, tag change, deploy and undeploy requests, delete, key "
            "create and revoke), newest first, with time, action, key prefix, request id, target and "
            "outcome. Filters: model_id, action, since (inclusive), until (exclusive)."
        ),
        operation_id="list_audit_v1_namespaces__namespace_id__audit_get",
        responses={**ERROR_RESPONSES, 404: error_spec("Namespace not found (or not readable with this key)")},
    )
    async def list_audit(
        self,
        namespace_id: NamespaceId,
        audit_reads: AuditReads,
        limit: Limit = 20,
        offset: Offset = 0,
        model_id: ModelId | None = None,
        action: AuditActionName | None = None,
        since: Annotated[datetime | None, Parameter(description="Entries at or after this time")] = None,
        until: Annotated[datetime | None, Parameter(description="Entries before this time")] = None,
    ) -> AuditPageResponse:
        query = AuditQuery(
            model_id=model_id,
            action=None if action is None else AuditAction(action),
            since=since,
            until=until,
        )
        return await audit_reads.page(namespace_id, query, offset, limit)
