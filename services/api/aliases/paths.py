"""A model's name in the alias routes' path: one segment, whatever the name holds.

Names may contain `/` (Hugging Face style, "org/model"); a client sends it percent-encoded ("org%2Fmodel"),
but the server decodes the whole path before routing, which would split the name in two. So `EncodedNames`
re-derives the path the app routes on from the raw one, with the name's segment kept encoded (`%` as %25, `/`
as %2F, nothing else), and the routes decode it once (`name_from_segment`).
"""

from __future__ import annotations

from urllib.parse import unquote

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

# "/v1/namespaces/{namespace_id}/names/{name}/aliases...": positions after splitting on "/".
_PREFIX = ("", "v1", "namespaces")
_NAMES = 4
_NAME = 5


def _encode_segment(name: str) -> str:
    return name.replace("%", "%25").replace("/", "%2F")


def name_from_segment(segment: str) -> str:
    """The name a routed segment stands for (the inverse of the encoding `routing_path` keeps)."""
    return unquote(segment)


def routing_path(path: str, raw_path: bytes | None) -> str:
    """The path to route on: `path` (the server's decoded one), except under a name's aliases, where the
    name's segment stays encoded so that the name is one segment. Without a raw path (optional in ASGI) a `/`
    in the name cannot be told from a separator; its `%` is still encoded, so decoding it stays exact."""
    if "/names/" not in path:  # every other route: nothing to re-derive
        return path
    raw_segments: list[str] | None = None
    if raw_path is not None:
        try:
            # The query is not part of it (some clients' test transports leave it there).
            raw_segments = raw_path.partition(b"?")[0].decode("ascii").split("/")
        except UnicodeDecodeError:
            raw_segments = None
    segments = raw_segments if raw_segments is not None else path.split("/")
    if (
        len(segments) <= _NAME + 1
        or tuple(segments[: len(_PREFIX)]) != _PREFIX
        or segments[_NAMES] != "names"
    ):
        return path
    decode = unquote if raw_segments is not None else str
    routed = [decode(segment) for segment in segments]
    routed[_NAME] = _encode_segment(decode(segments[_NAME]))
    return "/".join(routed)


class EncodedNames:
    """Wraps the app's ASGI handler: the alias routes see a name with `/` as one path segment."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            scope["path"] = routing_path(scope["path"], scope.get("raw_path"))
        await self.app(scope, receive, send)
