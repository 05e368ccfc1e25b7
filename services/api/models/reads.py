"""Registry reads: a model's details (and their ETag), a page of a namespace's models, a model's history."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from modelreg.services.api.caching.bounded import read_through
from modelreg.services.api.caching.details import DetailsCache, EncodedDetails
from modelreg.services.api.domain_errors import InvalidFilter, ModelNotFound
from modelreg.services.api.models.ports import AliasIndex, ModelRepository
from modelreg.services.api.models.schemas import (
    DeploymentHistoryResponse,
    ModelDetailResponse,
    ModelListResponse,
)
from modelreg.services.api.models.views import (
    history_event_view,
    next_offset,
    strong_etag,
    to_list_item,
    to_view,
)
from modelreg.services.audit.ports import AuditLog
from modelreg.shared.adapters.mongo import ModelFilter
from modelreg.shared.audit_rules import SentRequest, requested_by
from modelreg.shared.contracts import ModelKey
from modelreg.shared.conversions import aware_utc
from modelreg.shared.filter_language import FilterError
from modelreg.shared.model_filters import compile_filter, lookup_terms

# Requests read from the audit trail to attribute one page of history (the newest ones).
ATTRIBUTED_REQUESTS = 1000


class ModelReads:
    def __init__(
        self,
        store: ModelRepository,
        details_cache: DetailsCache | None = None,
        aliases: AliasIndex | None = None,
        audit_log: AuditLog | None = None,
    ) -> None:
        self.store = store
        self.details_cache = details_cache
        self.aliases = aliases
        self.audit_log = audit_log

    async def aliases_of(self, namespace_id: str, model_ids: list[str]) -> dict[str, list[str]]:
        if self.aliases is None or not model_ids:
            return {}
        return await self.aliases.aliases_of(namespace_id, model_ids)

    async def models_with_aliases(self, namespace_id: str, aliases: Sequence[str]) -> list[str]:
        """The filter's `alias` comparisons (the only lookup field) as model ids."""
        if self.aliases is None:
            return []
        return await self.aliases.models_with_aliases(namespace_id, aliases)

    async def _find(self, key: ModelKey) -> ModelDetailResponse | None:
        details = await self.store.get_details(key)
        if details is None:
            return None
        aliases = await self.aliases_of(key.namespace_id, [key.model_id])
        return ModelDetailResponse(model=to_view(details, aliases.get(key.model_id, ())))

    async def get_details(self, key: ModelKey) -> ModelDetailResponse:
        found = await self._find(key)
        if found is None:
            raise ModelNotFound(key)
        return found

    async def _encoded(self, key: ModelKey) -> EncodedDetails | None:
        found = await self._find(key)
        if found is None:
            return None
        body = msgspec.json.encode(found)
        return EncodedDetails(body, strong_etag(body))

    async def get_details_encoded(self, key: ModelKey) -> tuple[bytes, str]:
        """The details body as sent, and its strong ETag; from the details cache when it holds them."""
        if self.details_cache is None:
            entry = await self._encoded(key)
        else:
            entry = await read_through(self.details_cache, key, lambda: self._encoded(key))
        if entry is None:
            raise ModelNotFound(key)
        return entry.body, entry.etag

    async def list_models(
        self,
        namespace_id: str,
        where: ModelFilter,
        sort: str,
        offset: int,
        limit: int,
        filter_text: str | None = None,
    ) -> ModelListResponse:
        """A page of the namespace's models matching `where` and, when given, the filter language's text."""
        if filter_text is not None:
            try:
                expression = compile_filter(filter_text)
            except FilterError as exc:
                raise InvalidFilter(exc.message, exc.code, filter_text, exc.position) from None
            lookups = {
                term: tuple(await self.models_with_aliases(namespace_id, term.values))
                for term in lookup_terms(expression)
            }
            where = msgspec.structs.replace(where, expression=expression, lookups=lookups)
        total, page = await self.store.list_models(namespace_id, where, sort, offset, limit)
        aliases = await self.aliases_of(namespace_id, [details.model_id for details in page])
        return ModelListResponse(
            models=[to_list_item(details, aliases.get(details.model_id, ())) for details in page],
            total=total,
            namespace_id=namespace_id,
            limit=limit,
            offset=offset,
            next_offset=next_offset(offset, len(page), total),
        )

    async def history(self, key: ModelKey, offset: int, limit: int) -> DeploymentHistoryResponse:
        found = await self.store.history_page(key, offset, limit)
        if found is None:
            raise ModelNotFound(key)
        total, entries = found
        events = [history_event_view(entry) for entry in entries]
        if self.audit_log is not None and events:
            sent = await self.audit_log.sent_deployment_requests(
                key.namespace_id, key.model_id, ATTRIBUTED_REQUESTS
            )
            requests = [
                SentRequest(at=aware_utc(r.at) or r.at, action=r.action, requested_by=r.key_prefix)
                for r in reversed(sent)
            ]
            events = [
                msgspec.structs.replace(
                    event, requested_by=requested_by(event.event_type, event.applied_at, requests)
                )
                for event in events
            ]
        return DeploymentHistoryResponse(
            model_id=key.model_id,
            events=events,
            total=total,
            limit=limit,
            offset=offset,
            next_offset=next_offset(offset, len(events), total),
        )
