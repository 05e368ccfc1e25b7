"""A service that reads models from the registry and publishes their deployment events, tested against a
real registry started by the `modelreg` pytest plugin (docs/testing.md shows this file verbatim)."""

import asyncio

import httpx

from modelreg.shared.adapters.event_producer import DeploymentEventProducer


def test_a_model_is_deployed_once_its_events_arrive(modelreg_stack, modelreg_namespace):
    registry, namespace = modelreg_stack, modelreg_namespace
    model = registry.register_model(namespace.id, name="sentiment", version="1.0.0")

    # The service reads the model with its namespace's own key, as in production.
    api = httpx.Client(base_url=registry.api_url, headers={"Authorization": f"Bearer {namespace.key}"})
    with api:
        details = api.get(f"/v1/namespaces/{namespace.id}/models/{model.model_id}").json()["model"]
        assert details["name"] == "sentiment"
        assert details["deployment_status"] == "not_deployed"

        # It runs the model somewhere, then tells the registry with the event producer client.
        async def announce() -> None:
            async with DeploymentEventProducer(
                registry.kafka_bootstrap_servers,
                registry.topics.events,
                idempotent=registry.kafka_idempotent,  # False on the embedded broker (tansu)
            ) as producer:
                await producer.started(namespace.id, model.model_id)
                await producer.ready(
                    namespace.id,
                    model.model_id,
                    endpoint=model.endpoint,
                    base_image="registry.example.com/serve-onnx:1",
                )

        asyncio.run(announce())
        deployed = registry.wait_for_status(namespace.id, model.model_id, "deployed", timeout=60)
        assert deployed["deployed"] is True
        assert deployed["deployment_info"]["endpoint"] == model.endpoint

        # Undeployed again: the plugin's own helper publishes with the same producer.
        registry.publish_event(namespace.id, model.model_id, "deleted", message="scaled to zero")
        gone = registry.wait_for_status(namespace.id, model.model_id, "not_deployed", timeout=60)
        assert gone["deployment_info"] is None and gone["deployment_message"] == "scaled to zero"


def test_each_test_gets_a_namespace_of_its_own(modelreg_stack, modelreg_namespace):
    other = modelreg_stack.new_namespace()
    model = modelreg_stack.register_model(other.id)
    # The key of this test's namespace does not reach the other one: 404, as for a model that is not there.
    with modelreg_stack.client(modelreg_namespace.key) as api:
        assert api.get(f"/v1/namespaces/{other.id}/models/{model.model_id}").status_code == 404
    assert modelreg_stack.get_model(other.id, model.model_id, key=other.key)["model_id"] == model.model_id
