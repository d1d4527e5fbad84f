"""Flautim: a web platform for federated-learning experiments."""

__version__ = "0.1.0"
