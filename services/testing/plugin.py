"""The `modelreg` pytest plugin: a real registry for the tests of the services around it.

Installed with the package (entry point `pytest11: modelreg`); `-p no:modelreg` turns it off. Loading it
imports nothing but pytest and starts nothing: the registry starts when a test first asks for `modelreg_stack`
(once per session, or per xdist worker) and stops at the end of the session, which fails if a process or a
port is left behind. See docs/testing.md.

Fixtures:
- `modelreg_stack` (session): a `services.testing.stack.RegistryStack`: `api_url`, `admin_key`,
  `namespace_key(*namespaces)`, `kafka_bootstrap_servers`, `topics`, `register_model(...)`,
  `publish_event(...)`, `wait_for_status(namespace, model_id, status, timeout)`, `producer()`.
- `modelreg_namespace` (function): a namespace of the test's own (`.id`, `.key`), used by no other test.

Options: `--modelreg-bridge` (or ini `modelreg_bridge = true`) also runs the Ray Serve bridge on a local Ray
(`MODELREG_RAY_ADDRESS` names an existing one), so deploy requests go through Ray Serve.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from modelreg.services.testing.stack import Namespace, RegistryStack

BRIDGE_OPTION = "modelreg_bridge"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("modelreg", "a modelreg registry for the tests (the modelreg plugin)")
    group.addoption(
        "--modelreg-bridge",
        action="store_true",
        default=None,
        dest=BRIDGE_OPTION,
        help="modelreg_stack also runs the Ray Serve bridge on a local Ray (slow: Ray starts in 10-20 s)",
    )
    parser.addini(BRIDGE_OPTION, type="bool", default=False, help="as --modelreg-bridge")


def _with_bridge(config: pytest.Config) -> bool:
    option = config.getoption(BRIDGE_OPTION, default=None)
    return bool(config.getini(BRIDGE_OPTION) if option is None else option)


@pytest.fixture(scope="session")
def modelreg_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryStack]:
    """The registry's API and worker (and with --modelreg-bridge the bridge) for this test session."""
    from modelreg.services.testing.stack import RegistryStack

    stack = RegistryStack(tmp_path_factory.mktemp("modelreg"), with_bridge=_with_bridge(request.config))
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def modelreg_namespace(modelreg_stack: RegistryStack) -> Namespace:
    """A namespace only this test uses, with an API key for it alone (`.id`, `.key`)."""
    return modelreg_stack.new_namespace()
