"""Prometheus metrics of the bridge (served on MODELREG_BRIDGE_METRICS_PORT when set)."""

from prometheus_client import Counter, Gauge

COMMANDS = Counter(
    "modelreg_bridge_commands_total", "Deploy/undeploy commands handled", ["command_type", "outcome"]
)
EVENTS_PUBLISHED = Counter(
    "modelreg_bridge_events_published_total", "Deployment events published", ["event_type"]
)
RAY_RECONNECTS = Counter(
    "modelreg_bridge_ray_reconnects_total", "Reconnections to the Ray dashboard after it stopped answering"
)
APPLICATIONS = Gauge(
    "modelreg_bridge_applications", "Model applications on Ray Serve at the last poll", ["status"]
)
