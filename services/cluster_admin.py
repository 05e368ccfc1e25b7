"""Operator actions on named Ray clusters, used by `modelreg clusters add|list|remove` and `modelreg dev`."""

from __future__ import annotations

from typing import Annotated

import msgspec

from modelreg.shared.adapters import mongo
from modelreg.shared.adapters.mongo import ClusterStore, DuplicateClusterError
from modelreg.shared.contracts import ClusterName, EndpointUrl, Url
from modelreg.shared.documents import ClusterRecord
from modelreg.shared.settings import Settings

LabelText = Annotated[
    str, msgspec.Meta(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$")
]


class InvalidCluster(ValueError):
    """The registration is refused: a bad field, a taken name, or models still placed on the cluster."""


class ClusterRegistration(msgspec.Struct, kw_only=True, frozen=True):
    name: ClusterName
    ray_address: Annotated[Url, msgspec.Meta(min_length=1)]
    serve_url: EndpointUrl
    labels: dict[LabelText, LabelText] = msgspec.field(default_factory=dict)


def parse_labels(pairs: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InvalidCluster(f"a label is key=value, not {pair!r}")
        labels[key] = value
    return labels


def validated(name: str, ray_address: str, serve_url: str, labels: dict[str, str]) -> ClusterRegistration:
    try:
        return msgspec.convert(
            {"name": name, "ray_address": ray_address, "serve_url": serve_url, "labels": labels},
            ClusterRegistration,
        )
    except msgspec.ValidationError as exc:
        raise InvalidCluster(str(exc)) from None


async def add_cluster(
    settings: Settings,
    registration: ClusterRegistration,
    *,
    exist_ok: bool = False,
) -> ClusterRecord:
    """Register the cluster; with `exist_ok`, an existing registration of that name is kept (its labels, its
    observed health) and takes the new addresses: `modelreg dev` starts each Ray head on other ports."""
    client = await mongo.connect(settings)
    try:
        store = ClusterStore()
        record = ClusterRecord(**msgspec.to_builtins(registration))
        try:
            await store.add(record)
        except DuplicateClusterError:
            if not exist_ok:
                raise InvalidCluster(f"a cluster named {registration.name} is already registered") from None
            await store.set_addresses(registration.name, registration.ray_address, registration.serve_url)
            existing = await store.get(registration.name)
            assert existing is not None
            return existing
        return record
    finally:
        await client.close()


async def list_clusters(settings: Settings) -> list[tuple[ClusterRecord, int]]:
    client = await mongo.connect(settings)
    try:
        store = ClusterStore()
        counts = await store.models_placed()
        return [(record, counts.get(record.name, 0)) for record in await store.all()]
    finally:
        await client.close()


async def remove_cluster(settings: Settings, name: str) -> bool:
    """False when no such cluster; InvalidCluster while models are placed there."""
    client = await mongo.connect(settings)
    try:
        store = ClusterStore()
        placed = await store.count_placed(name)
        if placed:
            raise InvalidCluster(
                f"{placed} model(s) are placed on cluster {name}; undeploy or move them first"
            )
        return await store.remove(name)
    finally:
        await client.close()
