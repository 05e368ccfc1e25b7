"""In-memory fakes of the aliases' and the inference route's ports (`services/api/aliases/ports.py`,
`services/api/predict/ports.py`), keeping the real store's compare-and-set on the alias revision."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime

from modelreg.shared.adapters.inference import EndpointConnectionError, EndpointTimeoutError
from modelreg.shared.alias_rules import AliasHistoryKind, AliasState, aliases_by_model
from modelreg.shared.contracts import ModelKey


class FakeAliasStore:
    def __init__(self) -> None:
        self.aliases: dict[tuple[str, str, str], AliasState] = {}
        self.history: list[tuple[ModelKey, AliasHistoryKind, str]] = []
        # Runs inside write() before its compare: where a test lets another move win the race.
        self.before_write: Callable[[], Awaitable[None]] | None = None
        self.namespace_loads = 0

    @staticmethod
    def _key(state: AliasState) -> tuple[str, str, str]:
        return (state.namespace_id, state.name, state.alias)

    async def get(self, namespace_id: str, name: str, alias: str) -> AliasState | None:
        return self.aliases.get((namespace_id, name, alias))

    async def list_for_name(self, namespace_id: str, name: str) -> list[AliasState]:
        return sorted(
            (s for s in self.aliases.values() if (s.namespace_id, s.name) == (namespace_id, name)),
            key=lambda s: s.alias,
        )

    async def write(self, before: AliasState | None, after: AliasState) -> bool:
        if self.before_write is not None:
            await self.before_write()
        current = self.aliases.get(self._key(after))
        if (current.revision if current else None) != (before.revision if before else None):
            return False
        self.aliases[self._key(after)] = after
        return True

    async def remove(self, before: AliasState) -> bool:
        current = self.aliases.get(self._key(before))
        if current is None or current.revision != before.revision:
            return False
        del self.aliases[self._key(before)]
        return True

    async def add_history(
        self, key: ModelKey, kind: AliasHistoryKind, message: str, event_id: str, now: datetime
    ) -> None:
        self.history.append((key, kind, message))

    async def aliases_of(self, namespace_id: str, model_ids: Sequence[str]) -> dict[str, list[str]]:
        states = [
            s for s in self.aliases.values() if s.namespace_id == namespace_id and s.model_id in model_ids
        ]
        return aliases_by_model(states)

    async def in_namespace(self, namespace_id: str) -> list[AliasState]:
        self.namespace_loads += 1
        return [s for s in self.aliases.values() if s.namespace_id == namespace_id]

    async def models_with_aliases(self, namespace_id: str, aliases: Sequence[str]) -> list[str]:
        return sorted(
            {
                s.model_id
                for s in self.aliases.values()
                if s.namespace_id == namespace_id and s.alias in aliases
            }
        )


class FakeAnswer:
    def __init__(
        self, status_code: int, body: bytes, headers: list[tuple[str, str]], read_fails: bool = False
    ) -> None:
        self.status_code = status_code
        self.headers = headers
        self._body = body
        self.closed = False
        self.read_fails = read_fails

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self._body
        self.closed = True

    async def read(self) -> bytes:
        self.closed = True
        if self.read_fails:
            raise EndpointTimeoutError("the body stopped coming")
        return self._body

    async def aclose(self) -> None:
        self.closed = True


class FakeEndpoints:
    """Answers by URL: a FakeAnswer, or "timeout" / "unreachable"."""

    timeout_s = 2.5

    def __init__(self, answers: Mapping[str, FakeAnswer | str]) -> None:
        self.answers = dict(answers)
        self.sent: list[tuple[str, bytes, dict[str, str]]] = []

    async def open(self, url: str, body: bytes, headers: Mapping[str, str]) -> FakeAnswer:
        self.sent.append((url, body, dict(headers)))
        answer = self.answers[url]
        if answer == "timeout":
            raise EndpointTimeoutError("read timeout")
        if answer == "unreachable":
            raise EndpointConnectionError("connection refused")
        assert isinstance(answer, FakeAnswer)
        return answer
