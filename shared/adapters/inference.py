"""Forwarding predictions to a model's endpoint (Ray Serve, wherever it runs) over pooled HTTP connections.

One `EndpointClient` per API process (opened and closed by the app's lifespan): one httpx.AsyncClient whose
connection pool (MODELREG_PREDICT_MAX_CONNECTIONS, ..._MAX_KEEPALIVE_CONNECTIONS) every request shares.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import httpx

from modelreg.shared.settings import Settings


class EndpointConnectionError(Exception):
    """The endpoint could not be reached (refused, reset, DNS, protocol error)."""


class EndpointTimeoutError(Exception):
    """The endpoint did not answer (status line and headers) in time."""


class ForwardedResponse:
    """The endpoint's answer: status and headers read, body still streaming (close it when done)."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status_code = response.status_code
        self.headers: list[tuple[str, str]] = list(response.headers.multi_items())

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.aiter_bytes():
                yield chunk
        finally:
            await self._response.aclose()

    async def read(self) -> bytes:
        """The whole body; raises EndpointTimeoutError / EndpointConnectionError when it stops coming."""
        try:
            return await self._response.aread()
        except httpx.TimeoutException as exc:
            raise EndpointTimeoutError(repr(exc)[:300]) from None
        except httpx.HTTPError as exc:
            raise EndpointConnectionError(repr(exc)[:300]) from None
        finally:
            await self._response.aclose()

    async def aclose(self) -> None:
        await self._response.aclose()


class EndpointClient:
    def __init__(self, settings: Settings) -> None:
        self.timeout_s = settings.predict_timeout_s
        limits = httpx.Limits(
            max_connections=settings.predict_max_connections,
            max_keepalive_connections=settings.predict_max_keepalive_connections,
        )
        self._client = httpx.AsyncClient(
            # retries=1: connection attempts only (httpx never resends a request that reached the endpoint).
            transport=httpx.AsyncHTTPTransport(limits=limits, retries=1),
            timeout=httpx.Timeout(settings.predict_timeout_s, connect=settings.predict_connect_timeout_s),
            follow_redirects=False,
            trust_env=False,
        )

    async def open(self, url: str, body: bytes, headers: Mapping[str, str]) -> ForwardedResponse:
        """POST `body` to `url`; returns once the status line and headers arrived."""
        request = self._client.build_request("POST", url, content=body, headers=dict(headers))
        try:
            response = await asyncio.wait_for(self._client.send(request, stream=True), self.timeout_s)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise EndpointTimeoutError(repr(exc)[:300]) from None
        except httpx.HTTPError as exc:
            raise EndpointConnectionError(repr(exc)[:300]) from None
        return ForwardedResponse(response)

    async def close(self) -> None:
        await self._client.aclose()
