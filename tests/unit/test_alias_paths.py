"""The path the alias routes are matched on: a model name holding "/" or "%" stays one path segment."""

from __future__ import annotations

from urllib.parse import quote, unquote

import pytest

from modelreg.services.api.aliases.paths import name_from_segment, routing_path


def as_server_sees(raw: str) -> tuple[str, bytes]:
    """`path` and `raw_path` as an ASGI server puts them in the scope for a request line's path."""
    return unquote(raw), raw.encode("ascii")


@pytest.mark.parametrize(
    "name",
    ["resnet", "org/bert-base", "a/b/c", "100%", "50%2F", "%2F/%25", "café/模型", " spaced name "],
)
@pytest.mark.parametrize(
    "tail", ["/aliases", "/aliases/prod", "/aliases/prod/rollback", "/aliases/prod/predict"]
)
def test_the_name_is_one_segment_and_decodes_back(name: str, tail: str) -> None:
    raw = f"/v1/namespaces/ns_a/names/{quote(name, safe='')}{tail}"
    routed = routing_path(*as_server_sees(raw))
    segments = routed.split("/")
    assert segments[:5] == ["", "v1", "namespaces", "ns_a", "names"]
    assert name_from_segment(segments[5]) == name
    assert "/".join(segments[6:]) == tail.lstrip("/")


def test_other_paths_route_as_the_server_decoded_them() -> None:
    for raw in [
        "/v1/namespaces/ns_a/models/m1",
        "/v1/namespaces/ns_a/models/a%2Fb",  # not a name's route: decoded as ever (and matches no route)
        "/v1/namespaces/ns_a/names",
        "/v1/namespaces/ns_a/names/org%2Fbert",  # nothing under the name
        "/health/live",
        "/",
    ]:
        path, raw_path = as_server_sees(raw)
        assert routing_path(path, raw_path) == path


def test_a_query_left_in_the_raw_path_is_not_part_of_the_name_route() -> None:
    path, raw_path = as_server_sees("/v1/namespaces/ns_a/names/org%2Fbert/aliases/prod")
    routed = routing_path(path, raw_path + b"?require_deployed=true")
    assert routed == "/v1/namespaces/ns_a/names/org%2Fbert/aliases/prod"


def test_without_a_raw_path_a_percent_in_the_name_still_decodes_exactly() -> None:
    routed = routing_path("/v1/namespaces/ns_a/names/100%41/aliases/prod", None)
    assert name_from_segment(routed.split("/")[5]) == "100%41"
    assert routing_path("/v1/namespaces/ns_a/names/resnet/aliases", None) == (
        "/v1/namespaces/ns_a/names/resnet/aliases"
    )
