"""`flautim baseline` against a live server over real HTTP, with the embedded worker running
the centralized training for real (local sandbox): it starts the child, follows it to the end
and prints the gap."""

from __future__ import annotations

import io
import re

import pytest

from flautim.api_client.cli import EXIT_API, EXIT_OK, baseline_main
from tests.experiments_support import feed_run, scripted_run_lines
from tests.worker.bundles import store_experiment, write_bundle

pytestmark = pytest.mark.slow


@pytest.fixture
def config_overrides():
    return {"SANDBOX_BACKEND": "local"}


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    return baseline_main(argv, out=out, err=err), out.getvalue(), err.getvalue()


def test_baseline_from_the_terminal(app, live_server, embedded_worker, make_user, make_project, make_token, tmp_path):
    from flautim.models import Experiment, ExperimentKind, ExperimentState, db

    owner = make_user("dona@example.org")
    project_id = make_project("CLI", owner)
    token = make_token(owner)
    parent_id = store_experiment(app, write_bundle(tmp_path / "bundle"), project_id, owner, name="federado")
    common = ["--project", str(project_id), "--url", live_server.url, "--token", token]

    # Not finished yet: the server's refusal, said plainly.
    code, out, err = _run(["federado", *common])
    assert code == EXIT_API and "concluído" in err, err

    with app.app_context():
        parent = db.session.get(Experiment, parent_id)
        for step in ("queued", "preparing", "running"):
            parent.transition(ExperimentState(step))
        db.session.commit()
    feed_run(app, parent_id, tmp_path / "out", scripted_run_lines(tmp_path / "out"))

    code, out, err = _run(["federado", *common, "--poll", "0.5", "--timeout", "400"])
    assert code == EXIT_OK, out + err
    assert re.search(r"treino centralizado \d+ \(federado · centralizado\): queued", out), out
    assert "succeeded, 3/3 rodadas" in out
    assert re.search(r"^federado atinge \d+% da acurácia centralizada$", out, re.M), out
    with app.app_context():
        child = db.session.query(Experiment).filter_by(parent_id=parent_id).one()
        assert child.kind == ExperimentKind.CENTRALIZED_BASELINE and child.state == ExperimentState.SUCCEEDED
