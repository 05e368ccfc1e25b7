"""What the inference route needs: the model (and alias) lookups, the endpoint forwarder, a request check."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Protocol

from modelreg.shared.alias_rules import AliasState
from modelreg.shared.contracts import ModelKey
from modelreg.shared.documents import ModelDetails


class ModelLookup(Protocol):
    async def get_details(self, key: ModelKey) -> ModelDetails | None: ...


class AliasLookup(Protocol):
    async def get(self, namespace_id: str, name: str, alias: str) -> AliasState | None: ...


class Forwarded(Protocol):
    """The endpoint's answer, body still to stream (`shared.adapters.inference.ForwardedResponse`)."""

    status_code: int
    headers: list[tuple[str, str]]

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def read(self) -> bytes: ...

    async def aclose(self) -> None: ...


class EndpointForwarder(Protocol):
    """`shared.adapters.inference.EndpointClient`: raises EndpointConnectionError / EndpointTimeoutError."""

    timeout_s: float

    async def open(self, url: str, body: bytes, headers: Mapping[str, str]) -> Forwarded: ...


class RequestCheck(Protocol):
    """Checks a prediction request before it is forwarded (e.g. against the model's `input_schema`);
    raises a domain error to refuse it."""

    async def check(self, details: ModelDetails, body: bytes, content_type: str | None) -> None: ...


class AcceptEveryRequest:
    """The default check: every request is forwarded as it is."""

    async def check(self, details: ModelDetails, body: bytes, content_type: str | None) -> None:
        return None
