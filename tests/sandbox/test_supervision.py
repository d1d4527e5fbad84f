"""The backends' shared wait loop (flautim/sandbox/supervision.py), on a stand-in run."""

from __future__ import annotations

import flautim.sandbox.supervision as supervision
from flautim.sandbox.plan import ProcessExit


class _BareSink:
    """A RunSink with only what the protocol requires."""

    def line(self, source, stream, text):
        pass


class _Sink(_BareSink):
    run_finished = None


class _Run(supervision.Supervision):
    """A federation of a server and one client whose exits a script decides, poll by poll."""

    def __init__(self, script, sink=None):
        self.sink = sink or _Sink()
        self.plan = type("Plan", (), {"transport": "fast"})()
        self.exits = {}
        self.script = list(script)

    def check_limits(self):
        return None

    def poll(self):
        step = self.script.pop(0) if self.script else {}
        if step.get("run_finished"):
            self.sink.run_finished = {"type": "run_finished"}
        for role in step.get("exit", ()):
            self.exits[role] = ProcessExit(role, 0)

    def kill(self, roles=None):
        pass

    def drain(self, roles=None):
        pass


def test_the_wait_polls_fast_once_the_run_reported_its_end(monkeypatch):
    naps = []
    monkeypatch.setattr(supervision.time, "sleep", naps.append)
    run = _Run([{}, {}, {"run_finished": True}, {}, {}, {"exit": ["server", "client-0"]}])
    outcome = run.supervise_federation(["client-0"], poll_s=0.5, after_server_poll_s=0.1)
    assert outcome.status == "succeeded"
    # Two slow polls while the rounds run; fast ones from the poll that saw run_finished.
    assert naps == [0.5, 0.5, 0.1, 0.1, 0.1]


def test_a_sink_without_the_attribute_keeps_the_slow_poll(monkeypatch):
    naps = []
    monkeypatch.setattr(supervision.time, "sleep", naps.append)
    run = _Run([{}, {"exit": ["server"]}, {"exit": ["client-0"]}], sink=_BareSink())
    assert run.supervise_federation(["client-0"], poll_s=0.5, after_server_poll_s=0.1).status == "succeeded"
    assert naps == [0.5, 0.1]  # slow until the server's exit, fast after it
