"""The aliases service, the delete guard and the prediction service on in-memory fakes of their ports.

Races a real server rarely shows (a move stored between another move's read and write) run here in
milliseconds; tests/integration/test_api_aliases.py and test_api_predict.py check the same over HTTP.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from modelreg.services.api.aliases.service import MAX_WRITE_ROUNDS, AliasService
from modelreg.services.api.domain_errors import (
    AliasNotFound,
    AliasWithoutPrevious,
    ConcurrentRequest,
    EndpointFailed,
    EndpointTimeout,
    EndpointUnreachable,
    ModelHasAliases,
    ModelNotDeployed,
    ModelNotFound,
)
from modelreg.services.api.models.reads import ModelReads
from modelreg.services.api.models.service import ModelService
from modelreg.services.api.predict.service import PredictionService
from modelreg.shared.adapters.mongo import ModelFilter
from modelreg.shared.alias_rules import AliasHistoryKind, move
from modelreg.shared.contracts import DeploymentStatus, ModelKey
from modelreg.shared.documents import DeploymentInfoFields, ModelDetails
from tests.alias_fakes import FakeAliasStore, FakeAnswer, FakeEndpoints
from tests.unit.test_model_service import T0, Clock, Registry


class Aliases:
    def __init__(self, tmp_path: Path) -> None:
        self.registry = Registry(tmp_path)
        self.store = FakeAliasStore()
        models = self.registry.store
        self.service = AliasService(self.store, models, ModelReads(models, self.store), Clock())
        self.models = ModelService(
            models,
            self.registry.storage,
            self.registry.publisher,
            self.registry.settings,
            self.registry.clock,
            aliases=self.store,
        )
        for version in ("1", "2", "3"):
            self.registry.model(ModelKey("ns", f"v{version}"), version=version)


@pytest.fixture
def aliases(tmp_path: Path) -> Aliases:
    return Aliases(tmp_path)


async def test_a_move_that_loses_the_race_is_retried_on_the_newest_state(aliases: Aliases) -> None:
    await aliases.service.set("ns", "resnet", "production", "v1", actor="k1")
    raced = False

    async def another_move_first() -> None:
        nonlocal raced
        if not raced:
            raced = True
            current = await aliases.store.get("ns", "resnet", "production")
            aliases.store.aliases[("ns", "resnet", "production")] = move(
                current,
                namespace_id="ns",
                name="resnet",
                alias="production",
                model_id="v2",
                now=T0,
                actor="k2",
            )

    aliases.store.before_write = another_move_first
    answer = await aliases.service.set("ns", "resnet", "production", "v3", actor="k1")
    # Neither move is lost: v3 replaced v2, which replaced v1.
    assert (answer.alias.model_id, answer.alias.previous_model_id) == ("v3", "v2")


async def test_a_move_that_always_loses_answers_concurrent_request(aliases: Aliases) -> None:
    await aliases.service.set("ns", "resnet", "production", "v1", actor=None)
    rounds = 0

    async def always_another_move() -> None:
        nonlocal rounds
        rounds += 1
        key = ("ns", "resnet", "production")
        current = aliases.store.aliases[key]
        aliases.store.aliases[key] = move(
            current, namespace_id="ns", name="resnet", alias="production", model_id="v1", now=T0, actor=None
        )

    aliases.store.before_write = always_another_move
    with pytest.raises(ConcurrentRequest):
        await aliases.service.set("ns", "resnet", "production", "v2", actor=None)
    assert rounds == MAX_WRITE_ROUNDS


async def test_history_notes_and_rollback(aliases: Aliases) -> None:
    await aliases.service.set("ns", "resnet", "production", "v1", actor=None)
    await aliases.service.set("ns", "resnet", "production", "v2", actor=None)
    rolled = await aliases.service.rollback("ns", "resnet", "production", actor="k")
    assert (rolled.alias.model_id, rolled.alias.previous_model_id, rolled.alias.updated_by) == (
        "v1",
        "v2",
        "k",
    )
    assert [(key.model_id, kind) for key, kind, _ in aliases.store.history] == [
        ("v1", AliasHistoryKind.ASSIGNED),
        ("v1", AliasHistoryKind.UNASSIGNED),
        ("v2", AliasHistoryKind.ASSIGNED),
        ("v2", AliasHistoryKind.UNASSIGNED),
        ("v1", AliasHistoryKind.ASSIGNED),
    ]
    await aliases.service.remove("ns", "resnet", "production")
    assert aliases.store.history[-1][:2] == (ModelKey("ns", "v1"), AliasHistoryKind.UNASSIGNED)
    with pytest.raises(AliasNotFound):
        await aliases.service.rollback("ns", "resnet", "production", actor=None)


@pytest.mark.parametrize("existing", [False, True], ids=["new alias", "moved alias"])
async def test_an_alias_written_while_its_target_is_deleted_is_taken_back(
    aliases: Aliases, existing: bool
) -> None:
    if existing:
        await aliases.service.set("ns", "resnet", "production", "v1", actor=None)
    before = await aliases.store.get("ns", "resnet", "production")

    async def target_deleted_meanwhile() -> None:
        # After the target check, before the write: the delete (model first, its aliases after) runs.
        aliases.store.before_write = None
        await aliases.models.deletion.delete(ModelKey("ns", "v2"))

    aliases.store.before_write = target_deleted_meanwhile
    with pytest.raises(ModelNotFound):
        await aliases.service.set("ns", "resnet", "production", "v2", actor=None)

    after = await aliases.store.get("ns", "resnet", "production")
    assert (after.model_id if after else None) == (before.model_id if before else None)
    assert after is None or after.revision > before.revision  # a write made from the taken-back one fails
    assert not any(key.model_id == "v2" for key, _, _ in aliases.store.history)


async def test_rollback_to_a_deleted_model_is_refused(aliases: Aliases) -> None:
    await aliases.service.set("ns", "resnet", "production", "v1", actor=None)
    await aliases.service.set("ns", "resnet", "production", "v2", actor=None)
    del aliases.registry.store.models[ModelKey("ns", "v1")]
    with pytest.raises(AliasWithoutPrevious):
        await aliases.service.rollback("ns", "resnet", "production", actor=None)


async def test_delete_guard_and_views(aliases: Aliases) -> None:
    await aliases.service.set("ns", "resnet", "production", "v1", actor=None)
    details = await aliases.models.reads.get_details(ModelKey("ns", "v1"))
    assert details.model.aliases == ["production"]
    listed = await aliases.models.reads.list_models("ns", ModelFilter(), "-created_at", 0, 10)
    assert {m.model_id: m.aliases for m in listed.models} == {"v1": ["production"], "v2": [], "v3": []}
    with pytest.raises(ModelHasAliases):
        await aliases.models.deletion.delete(ModelKey("ns", "v1"))
    assert ModelKey("ns", "v1") in aliases.registry.store.models
    forced = await aliases.models.deletion.delete(ModelKey("ns", "v1"), force=True)
    assert forced.deleted and ModelKey("ns", "v1") not in aliases.registry.store.models


# --- predictions ------------------------------------------------------------------------------------------


class RecordingCheck:
    def __init__(self) -> None:
        self.checked: list[tuple[str, bytes, str | None]] = []

    async def check(self, details: ModelDetails, body: bytes, content_type: str | None) -> None:
        self.checked.append((details.model_id, body, content_type))


def deploy(aliases: Aliases, model_id: str, endpoint: str) -> None:
    aliases.registry.store.models[ModelKey("ns", model_id)] = aliases.registry.store.models[
        ModelKey("ns", model_id)
    ].model_copy(
        update={
            "deployed": True,
            "deployment_status": DeploymentStatus.DEPLOYED,
            "deployment_info": DeploymentInfoFields(endpoint=endpoint, base_image="img"),
        }
    )


async def test_predictions_go_to_the_current_endpoint_through_the_request_check(aliases: Aliases) -> None:
    ok = FakeAnswer(
        200, b'{"y": 1}', [("content-type", "application/json"), ("transfer-encoding", "chunked")]
    )
    endpoints = FakeEndpoints(
        {
            "http://a/v1": ok,
            "http://a/v2": FakeAnswer(503, b"down", []),
            "http://a/v3": "timeout",
        }
    )
    check = RecordingCheck()
    predictions = PredictionService(aliases.registry.store, aliases.store, endpoints, check)
    deploy(aliases, "v1", "http://a/v1")
    headers = {"content-type": "application/json", "authorization": "Bearer secret", "x-request-id": "r1"}

    answer = await predictions.predict(ModelKey("ns", "v1"), b'{"x": 1}', headers)
    assert (answer.status_code, answer.media_type, answer.headers) == (200, "application/json", {})
    assert b"".join([chunk async for chunk in answer.body]) == b'{"y": 1}' and ok.closed
    assert endpoints.sent == [
        ("http://a/v1", b'{"x": 1}', {"content-type": "application/json", "x-request-id": "r1"})
    ]
    assert check.checked == [("v1", b'{"x": 1}', "application/json")]

    await aliases.service.set("ns", "resnet", "production", "v1", actor=None)
    via_alias = await predictions.predict_alias("ns", "resnet", "production", b"{}", {})
    assert via_alias.status_code == 200
    with pytest.raises(AliasNotFound):
        await predictions.predict_alias("ns", "resnet", "staging", b"{}", {})

    with pytest.raises(ModelNotDeployed):
        await predictions.predict(ModelKey("ns", "v2"), b"{}", {})
    deploy(aliases, "v2", "http://a/v2")
    with pytest.raises(EndpointFailed):
        await predictions.predict(ModelKey("ns", "v2"), b"{}", {})
    deploy(aliases, "v3", "http://a/v3")
    with pytest.raises(EndpointTimeout) as timed_out:
        await predictions.predict(ModelKey("ns", "v3"), b"{}", {})
    assert timed_out.value.details == {"model_id": "v3", "timeout_s": 2.5}
    endpoints.answers["http://a/v3"] = "unreachable"
    with pytest.raises(EndpointUnreachable):
        await predictions.predict(ModelKey("ns", "v3"), b"{}", {})


async def test_a_short_answer_comes_back_whole_and_a_body_that_stops_is_a_timeout(aliases: Aliases) -> None:
    whole = FakeAnswer(
        422, b'{"error": "x"}', [("content-length", "14"), ("content-type", "application/json")]
    )
    stalled = FakeAnswer(200, b"", [("content-length", "10")], read_fails=True)
    endpoints = FakeEndpoints({"http://a/v1": whole, "http://a/v2": stalled})
    predictions = PredictionService(aliases.registry.store, aliases.store, endpoints)
    deploy(aliases, "v1", "http://a/v1")
    deploy(aliases, "v2", "http://a/v2")
    answer = await predictions.predict(ModelKey("ns", "v1"), b"{}", {})
    assert (answer.status_code, answer.body, answer.media_type) == (
        422,
        b'{"error": "x"}',
        "application/json",
    )
    with pytest.raises(EndpointTimeout):
        await predictions.predict(ModelKey("ns", "v2"), b"{}", {})
