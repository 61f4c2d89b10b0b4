"""The agent loop and the model adapters."""
