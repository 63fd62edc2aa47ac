"""Engines: the model specification and fit result, one module per mixed-model engine."""
