"""Flautim's federated runtime and user library.

What user code imports: `from flautim.fl import Dataset, Experiment, log, metric`.
Everything here imports without the web stack (Flask, SQLAlchemy, Redis): it runs inside
the sandbox image.
"""

from flautim.fl.api import Dataset, Experiment, log, metric
from flautim.fl.errors import FlautimError

__all__ = ["Dataset", "Experiment", "FlautimError", "log", "metric"]
