"""The Ray Serve bridge: runs deploy/undeploy commands on Ray Serve and publishes what really happens."""
