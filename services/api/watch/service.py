"""The watch streams: a snapshot, then every change of the watched models, with resumable ids.

Ids are the change feed's tokens (MongoDB resume tokens), so a client reconnecting with `Last-Event-ID`
(even to a restarted API) gets exactly the changes after the last one it saw. A client that falls behind
its buffer gets `event: reset` and a fresh snapshot.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator

import msgspec
from pydantic import ValidationError

from modelreg.services.api.domain_errors import ModelNotFound
from modelreg.services.api.models.views import to_view
from modelreg.services.api.watch.ports import WatchReads
from modelreg.services.api.watch.schemas import (
    ChangeEvent,
    ChangeInfo,
    ModelSnapshot,
    NamespaceSnapshot,
    WatchMessage,
)
from modelreg.services.changefeed.hub import ChangeHub, SubscriberLagged, Subscription
from modelreg.shared.change_rules import ModelChangeSummary, matches, summarize
from modelreg.shared.changes import RegistryChange
from modelreg.shared.contracts import ModelKey
from modelreg.shared.documents import ModelDetails

SNAPSHOT_LIMIT = 1000


class WatchService:
    def __init__(self, hub: ChangeHub, reads: WatchReads, heartbeat_s: float) -> None:
        self.hub = hub
        self.reads = reads
        self.heartbeat_s = heartbeat_s

    async def open(
        self, namespace_id: str, model_id: str | None, last_event_id: str | None
    ) -> AsyncIterator[WatchMessage]:
        """Check the model exists (ModelNotFound), then the stream of messages."""
        subscription = self.hub.open_subscription(after=last_event_id or None)
        try:
            snapshot = None if last_event_id else await self._snapshot(namespace_id, model_id, subscription)
        except BaseException:
            subscription.close()
            raise
        return self._stream(namespace_id, model_id, subscription, snapshot)

    async def _snapshot(
        self, namespace_id: str, model_id: str | None, subscription: Subscription
    ) -> WatchMessage:
        body: ModelSnapshot | NamespaceSnapshot
        if model_id is not None:
            key = ModelKey(namespace_id, model_id)
            details = await self.reads.get_details(key)
            if details is None:
                raise ModelNotFound(key)
            body = ModelSnapshot(model=to_view(details))
        else:
            models = await self.reads.namespace_models(namespace_id, SNAPSHOT_LIMIT + 1)
            body = NamespaceSnapshot(
                namespace_id=namespace_id,
                models=[to_view(d) for d in models[:SNAPSHOT_LIMIT]],
                truncated=len(models) > SNAPSHOT_LIMIT,
            )
        return WatchMessage(event="snapshot", id=subscription.position, data=msgspec.json.encode(body))

    async def _stream(
        self,
        namespace_id: str,
        model_id: str | None,
        subscription: Subscription,
        snapshot: WatchMessage | None,
    ) -> AsyncIterator[WatchMessage]:
        try:
            if snapshot is not None:
                yield snapshot
            while True:
                try:
                    change = await subscription.next(self.heartbeat_s)
                except SubscriberLagged as exc:
                    subscription.close()
                    yield WatchMessage(event="reset", data=msgspec.json.encode({"reason": str(exc)}))
                    subscription = self.hub.open_subscription()
                    try:
                        yield await self._snapshot(namespace_id, model_id, subscription)
                    except ModelNotFound:
                        yield WatchMessage(event="snapshot", id=subscription.position, data=b'{"model":null}')
                    continue
                if change is None:
                    yield WatchMessage(comment="heartbeat")
                    continue
                message = change_message(change, namespace_id, model_id)
                if message is not None:
                    yield message
        finally:
            subscription.close()


def change_body(change: RegistryChange) -> tuple[ModelChangeSummary, ChangeEvent] | None:
    """What a change of a model says to watchers and webhooks: the model after it and what happened."""
    summary = summarize(change)
    if summary is None:
        return None
    model = None
    if change.document is not None:
        try:
            model = to_view(ModelDetails.model_validate(change.document))
        except ValidationError:
            model = None
    info = ChangeInfo(
        type=str(summary.kind),
        namespace_id=summary.namespace_id,
        model_id=summary.model_id,
        committed_at=change.committed_at,
        event_type=summary.event_type,
        sequence=summary.sequence,
        message=summary.message,
        endpoint=summary.endpoint,
        deployment_status=None if model is None else model.deployment_status,
        requested_by=summary.requested_by,
    )
    return summary, ChangeEvent(change=info, model=model)


class _Described(msgspec.Struct, frozen=True):
    summary: ModelChangeSummary | None
    data: bytes


# The last changes described, by token: every watcher of a change shares one description and encoding.
_DESCRIBED: OrderedDict[str, _Described] = OrderedDict()
DESCRIBED_CACHE_SIZE = 1024


def describe(change: RegistryChange) -> _Described:
    found = _DESCRIBED.get(change.token)
    if found is None:
        summary = summarize(change)
        described = change_body(change) if summary is not None else None
        data = b"" if described is None else msgspec.json.encode(described[1])
        found = _Described(summary, data)
        _DESCRIBED[change.token] = found
        if len(_DESCRIBED) > DESCRIBED_CACHE_SIZE:
            _DESCRIBED.popitem(last=False)
    return found


def change_message(change: RegistryChange, namespace_id: str, model_id: str | None) -> WatchMessage | None:
    if change.namespace_id is not None and change.namespace_id != namespace_id:
        return None  # another namespace's change: not even described
    described = describe(change)
    if described.summary is None or not matches(described.summary, namespace_id, model_id):
        return None
    return WatchMessage(event="change", id=change.token, data=described.data)
