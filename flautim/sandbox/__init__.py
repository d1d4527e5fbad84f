"""Runners that execute an experiment: isolated Docker containers, or local processes."""
