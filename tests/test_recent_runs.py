"""The in-app list of recent finished runs on the projects page: only runs that ended,
newest first, and only of projects the user belongs to."""

from __future__ import annotations

import re
from datetime import timedelta

from flautim.models import Experiment, ExperimentState, Membership, db, utcnow
from tests.conftest import login


def _run(project_id: int, name: str, state: ExperimentState, minutes_ago: int | None) -> int:
    finished = None if minutes_ago is None else utcnow() - timedelta(minutes=minutes_ago)
    exp = Experiment(project_id=project_id, name=name, state=state, attempt=1, finished_at=finished)
    db.session.add(exp)
    db.session.commit()
    return exp.id


def test_recent_finished_runs_of_the_users_projects_only(app, client, db_session, make_user, make_project):
    me = make_user("eu@example.org")
    other = make_user("outra@example.org")
    mine = make_project("Meu", me)
    shared = make_project("Compartilhado", other, viewers=[me])
    theirs = make_project("Dela", other)
    ok = _run(mine, "<b>convergiu</b>", ExperimentState.SUCCEEDED, 30)
    failed = _run(shared, "quebrou", ExperimentState.FAILED, 5)
    late = _run(mine, "lento", ExperimentState.TIMED_OUT, 60)
    _run(mine, "rodando", ExperimentState.RUNNING, None)
    _run(theirs, "segredo dela", ExperimentState.SUCCEEDED, 1)

    login(client, "eu@example.org")
    html = client.get("/projects/").get_data(as_text=True)
    section = html.split('data-testid="recent-runs"', 1)[1].split("</section>", 1)[0]
    assert re.findall(r'data-experiment="(\d+)"', section) == [str(failed), str(ok), str(late)]
    assert "segredo dela" not in html and "rodando" not in section
    assert "&lt;b&gt;convergiu&lt;/b&gt;" in section  # the user's text, escaped
    assert f'href="/projects/{shared}/experiments/{failed}"' in section
    assert 'data-state="failed"' in section and "falhou" in section

    # Leaving a project takes its runs off the list.
    db_session.query(Membership).filter_by(user_id=me, project_id=shared).delete()
    db_session.commit()
    section = client.get("/projects/").get_data(as_text=True).split('data-testid="recent-runs"', 1)[1]
    assert f'data-experiment="{failed}"' not in section.split("</section>", 1)[0]


def test_no_finished_runs_yet(client, make_user, make_project):
    make_project("Vazio", make_user("eu@example.org"))
    login(client, "eu@example.org")
    assert "Nenhuma execução terminou ainda nos seus projetos." in client.get("/projects/").get_data(as_text=True)
