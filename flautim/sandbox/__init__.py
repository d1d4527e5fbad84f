"""Runners that execute an experiment: isolated Docker containers, or local processes.

Both backends take a `RunPlan` (what to run, where its files are, its limits), report every
line their processes print to a `RunSink`, obey a `RunControl` (cancel, deadline) and return
a `RunOutcome`. `sandbox_for(config)` picks the backend the site configured.
"""

from __future__ import annotations

from flautim.config import Config

from .plan import RunControl, RunOutcome, RunPlan, RunSink, SandboxRefused


def sandbox_for(config: Config):
    """The configured backend: DockerSandbox, or LocalSandbox (refused in production)."""
    if config.SANDBOX_BACKEND == "docker":
        from .docker_backend import DockerSandbox

        return DockerSandbox(config)
    from .local_backend import LocalSandbox

    return LocalSandbox(config)


__all__ = ["RunControl", "RunOutcome", "RunPlan", "RunSink", "SandboxRefused", "sandbox_for"]
