"""Watch routes: `text/event-stream` of a model or a whole namespace (docs/watch.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from litestar import Controller, get
from litestar.params import Parameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from modelreg.services.api.errors import ERROR_RESPONSES, error_spec
from modelreg.services.api.models.controller import ModelId, NamespaceId
from modelreg.services.api.watch.schemas import WatchMessage
from modelreg.services.api.watch.service import WatchService

LastEventId = Annotated[
    str | None,
    Parameter(
        header="Last-Event-ID",
        required=False,
        max_length=4096,
        description="The id of the last event received: the stream resumes right after it",
    ),
]
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def _encoded(messages: AsyncIterator[WatchMessage]) -> AsyncIterator[ServerSentEventMessage]:
    async for message in messages:
        yield ServerSentEventMessage(
            data=None if message.data is None else message.data.decode(),
            event=message.event,
            id=message.id,
            comment=message.comment,
        )


class WatchController(Controller):
    path = "/namespaces/{namespace_id:str}"
    tags = ["Watch"]

    @get(
        "/models/{model_id:str}/watch",
        operation_id="watch_model",
        summary="Watch a model (server-sent events)",
        description=(
            "`text/event-stream`: `event: snapshot` (the model as the details route answers it), then "
            "`event: change` for each committed change (the model after it and what happened). Every event "
            "has an `id`; reconnect with `Last-Event-ID` to resume without gap or duplicate. A client that "
            "falls behind gets `event: reset` and a fresh snapshot. Comment lines are heartbeats."
        ),
        responses={**ERROR_RESPONSES, 404: error_spec("Model not found")},
    )
    async def watch_model(
        self,
        namespace_id: NamespaceId,
        model_id: ModelId,
        watch: WatchService,
        last_event_id: LastEventId = None,
    ) -> ServerSentEvent:
        messages = await watch.open(namespace_id, model_id, last_event_id)
        return ServerSentEvent(_encoded(messages), headers=STREAM_HEADERS)

    @get(
        "/watch",
        operation_id="watch_namespace",
        summary="Watch every model of a namespace (server-sent events)",
        description=(
            "As the model's watch, for every model of the namespace: the snapshot lists the namespace's "
            "models (`models`, newest first)."
        ),
        responses={**ERROR_RESPONSES, 404: error_spec("Namespace not found")},
    )
    async def watch_namespace(
        self, namespace_id: NamespaceId, watch: WatchService, last_event_id: LastEventId = None
    ) -> ServerSentEvent:
        messages = await watch.open(namespace_id, None, last_event_id)
        return ServerSentEvent(_encoded(messages), headers=STREAM_HEADERS)
