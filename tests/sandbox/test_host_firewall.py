"""The rule keeping sandbox networks off the host's own services fails closed: a worker that
cannot install it (iptables missing, not root) refuses runs unless the operator opted out."""

from __future__ import annotations

import pytest

from flautim.sandbox import host_firewall
from flautim.sandbox.docker_backend import DockerSandbox
from flautim.sandbox.plan import RunControl, RunPlan, SandboxRefused

pytestmark = pytest.mark.docker


class _Lines:
    def __init__(self):
        self.lines = []

    def line(self, source, stream, text):
        self.lines.append(text)

    def phase(self, name):
        pass


@pytest.fixture
def without_iptables(monkeypatch, tmp_path):
    """A worker whose PATH has no iptables (as on a host without it)."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setattr(host_firewall, "_ok", None)
    yield
    host_firewall._ok = None  # the next run checks (and installs) the rule again


def _plan(config):
    base = config.data_path / "attempt-1"
    return RunPlan(experiment_id=990001, attempt=1, code_dir=base / "code", data_dir=base / "missing",
                   work_dir=base / "work", out_dir=base / "output", clients=1)


def test_a_worker_that_cannot_install_the_rule_refuses_the_run(worker_config, docker_client, tmp_path,
                                                              without_iptables):
    sink = _Lines()
    with pytest.raises(SandboxRefused, match="iptables is not installed.*not started"):
        DockerSandbox(worker_config, docker_client).run(_plan(worker_config), sink, RunControl(60))
    assert not (worker_config.data_path / "attempt-1" / "work").exists()  # nothing of the run was made


def test_an_operator_may_opt_out_and_the_run_says_so(worker_config, docker_client, tmp_path, without_iptables):
    worker_config.SANDBOX_ALLOW_OPEN_HOST = True
    sink = _Lines()
    sandbox = DockerSandbox(worker_config, docker_client)
    outcome = sandbox.run(_plan(worker_config), sink, RunControl(60))
    sandbox.wait_for_removals()
    assert any("warning: the host's services may be reachable" in line for line in sink.lines), sink.lines
    # It went past the firewall (and failed later on the missing dataset folder).
    assert outcome.status == "failed" and "missing" in outcome.reason
