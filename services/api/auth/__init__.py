"""Authentication (Bearer API keys) and namespace authorization of the /v1 routes."""
