"""Serving: the model bundle behind an HTTP API. Imports nothing from mlcd.modeling."""
