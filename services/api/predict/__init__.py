"""The inference route: a prediction forwarded to the model's current endpoint and streamed back."""
