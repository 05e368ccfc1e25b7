"""The web console under /ui: a static page shell and its script, calling the /v1 API with the user's key."""
