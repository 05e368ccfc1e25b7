"""Placement, pure: by name, by labels, by free capacity; every cluster's reason when none fits."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from modelreg.shared.contracts import ClusterResources
from modelreg.shared.placement import (
    ClusterCandidate,
    PlacementRequest,
    Requirements,
    choose_cluster,
    refusal,
    requirements_from,
)

GIB = 1024**3
SMALL = Requirements(num_cpus=1, num_gpus=0, memory=GIB)


def cluster(name: str, cpus: float = 4, gpus: float = 0, memory: int = 8 * GIB, **fields) -> ClusterCandidate:
    resources = ClusterResources(
        cpu_total=cpus,
        cpu_free=cpus,
        gpu_total=gpus,
        gpu_free=gpus,
        memory_total_bytes=memory,
        memory_free_bytes=memory,
    )
    return ClusterCandidate(name=name, healthy=fields.pop("healthy", True), resources=resources, **fields)


def test_without_a_wish_the_most_free_capacity_wins() -> None:
    choice = choose_cluster([cluster("a", cpus=2), cluster("b", cpus=6)], PlacementRequest(), SMALL)
    assert choice.cluster == "b"


def test_gpu_models_go_where_gpus_are_free() -> None:
    needs = Requirements(num_cpus=1, num_gpus=1, memory=GIB)
    choice = choose_cluster(
        [cluster("cpu", cpus=32), cluster("gpu", cpus=2, gpus=1)], PlacementRequest(), needs
    )
    assert choice.cluster == "gpu"


def test_by_name_only_that_cluster_and_unknown_names_say_so() -> None:
    clusters = [cluster("a", cpus=2), cluster("b", cpus=6)]
    assert choose_cluster(clusters, PlacementRequest(cluster="a"), SMALL).cluster == "a"
    missing = choose_cluster(clusters, PlacementRequest(cluster="zz"), SMALL)
    assert missing.cluster is None and missing.reasons == {"zz": "not registered"}


def test_by_labels_all_must_match() -> None:
    clusters = [cluster("a", labels={"region": "eu", "pool": "cpu"}), cluster("b", labels={"region": "us"})]
    assert choose_cluster(clusters, PlacementRequest(labels={"region": "eu"}), SMALL).cluster == "a"
    none = choose_cluster(clusters, PlacementRequest(labels={"region": "eu", "pool": "gpu"}), SMALL)
    assert none.cluster is None
    assert none.reasons == {
        "a": "labels do not match: pool=gpu",
        "b": "labels do not match: pool=gpu, region=eu",
    }


def test_nothing_fits_gives_each_clusters_reason() -> None:
    clusters = [
        cluster("down", healthy=False),
        cluster("small", cpus=0.5),
        cluster("tight", memory=GIB // 2),
        ClusterCandidate(name="new", healthy=True),
    ]
    choice = choose_cluster(clusters, PlacementRequest(), Requirements(num_cpus=1, num_gpus=1, memory=GIB))
    assert choice.cluster is None
    assert set(choice.reasons) == {"down", "small", "tight", "new"}
    assert choice.reasons["down"].startswith("unhealthy")
    assert choice.reasons["new"] == "no health report yet"
    assert choice.reasons["small"] == "needs 1 free GPUs, has 0"


def test_excluded_clusters_are_refused() -> None:
    choice = choose_cluster([cluster("a"), cluster("b", cpus=1)], PlacementRequest(), SMALL, exclude=["a"])
    assert choice.cluster == "b"


def test_requirements_from_a_stored_document() -> None:
    assert requirements_from({"num_cpus": 0.5, "num_gpus": 1, "memory": 10}) == Requirements(
        num_cpus=0.5, num_gpus=1, memory=10
    )
    assert requirements_from(None) == Requirements()


candidates = st.lists(
    st.builds(
        cluster,
        name=st.sampled_from(["a", "b", "c", "d"]),
        cpus=st.floats(0, 16),
        gpus=st.sampled_from([0, 1, 2]),
        memory=st.integers(0, 16 * GIB),
        healthy=st.booleans(),
        labels=st.dictionaries(
            st.sampled_from(["region", "pool"]), st.sampled_from(["eu", "us"]), max_size=2
        ),
    ),
    max_size=5,
    unique_by=lambda c: c.name,
)
requests = st.builds(
    PlacementRequest,
    cluster=st.none() | st.sampled_from(["a", "b", "x"]),
    labels=st.none()
    | st.dictionaries(st.sampled_from(["region"]), st.sampled_from(["eu", "us"]), max_size=1),
)
needs_st = st.builds(
    Requirements, num_cpus=st.floats(0.1, 8), num_gpus=st.integers(0, 2), memory=st.integers(0, 8 * GIB)
)


@settings(deadline=None)
@given(candidates, requests, needs_st)
def test_the_choice_fits_and_has_the_most_room_or_every_cluster_says_why(clusters, request, needs) -> None:
    choice = choose_cluster(clusters, request, needs)
    fitting = [c for c in clusters if refusal(c, request, needs) is None]
    if choice.cluster is None:
        assert not fitting
        considered = [c.name for c in clusters if request.cluster is None or c.name == request.cluster]
        assert set(considered) <= set(choice.reasons)
        assert all(choice.reasons.values())
    else:
        chosen = next(c for c in clusters if c.name == choice.cluster)
        assert chosen in fitting
        assert chosen.resources is not None
        for other in fitting:
            assert other.resources is not None
            if needs.num_gpus > 0:
                assert chosen.resources.gpu_free >= other.resources.gpu_free
            else:
                assert chosen.resources.cpu_free >= other.resources.cpu_free
