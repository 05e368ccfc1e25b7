"""The webhook dispatcher's network: resolving hosts and POSTing signed deliveries (no redirects)."""

from __future__ import annotations

import asyncio
import socket

import httpx
import msgspec

MAX_ERROR_LENGTH = 500


RESOLVE_TIMEOUT_S = 5.0


async def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (empty if it does not, or not within RESOLVE_TIMEOUT_S)."""
    try:
        infos = await asyncio.wait_for(
            asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_S
        )
    except (OSError, TimeoutError, UnicodeError):
        return []
    return sorted({str(info[4][0]) for info in infos})


class SendResult(msgspec.Struct, frozen=True):
    status_code: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookSender:
    """POSTs deliveries with one pooled client; redirects count as failures (never followed)."""

    def __init__(self, timeout_s: float) -> None:
        self._client = httpx.AsyncClient(timeout=timeout_s, follow_redirects=False, trust_env=False)

    async def send(self, url: str, body: bytes, headers: dict[str, str]) -> SendResult:
        try:
            response = await self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return SendResult(None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_LENGTH])
        if 200 <= response.status_code < 300:
            return SendResult(response.status_code, None)
        if 300 <= response.status_code < 400:
            return SendResult(response.status_code, "redirects are not followed")
        return SendResult(response.status_code, response.text[:MAX_ERROR_LENGTH] or None)

    async def close(self) -> None:
        await self._client.aclose()
