"""The email when a run ends, sent by the worker over real SMTP (aiosmtpd): in the user's
language, with the first error of a failed run; not sent when the user switched it off on
the account page, for a cancel, or to a user no longer in the project."""

from __future__ import annotations

import re

import pytest

from flautim.models import (
    Experiment,
    ExperimentEvent,
    ExperimentState,
    FailureKind,
    Membership,
    User,
    db,
)
from flautim.worker import job
from flautim.worker.run_end_email import send_run_end_email
from tests.conftest import login, submit_form

from .bundles import store_experiment, write_bundle
from .test_local_runs import BROKEN_API, _enqueue

EMAIL = "owner@example.com"


def _body(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")


def _ended(app, project_id: int, user_id: int, state: ExperimentState, name: str = "Rede <MNIST>\nX",
           errors: tuple[dict, ...] = (), summary: dict | None = None) -> int:
    """An experiment whose attempt 1 ended in `state`, as the worker leaves it."""
    with app.app_context():
        exp = Experiment(project_id=project_id, name=name, created_by_id=user_id, submitted_by_id=user_id,
                         state=state, attempt=1, rounds_total=5, rounds_done=3,
                         summary={"duration_s": 75.2, **(summary or {})})
        if state != ExperimentState.SUCCEEDED:
            exp.failure_kind, exp.failure_reason = FailureKind.USER_CODE, "the last error"
        db.session.add(exp)
        db.session.flush()
        for payload in errors:
            db.session.add(ExperimentEvent(experiment_id=exp.id, attempt=1, type="error", payload=payload))
        db.session.commit()
        return exp.id


def _set_user(app, user_id: int, **fields) -> None:
    with app.app_context():
        user = db.session.get(User, user_id)
        for key, value in fields.items():
            setattr(user, key, value)
        db.session.commit()


def test_a_failed_run_emails_its_user_with_the_first_error(app, worker_config, owner, smtp_server, tmp_path):
    user_id, project_id = owner
    experiment_id = store_experiment(app, write_bundle(tmp_path / "b", api=BROKEN_API), project_id, user_id,
                                     name="quebrado")
    attempt = _enqueue(app, experiment_id)
    assert job.run_experiment(experiment_id, attempt) == "failed"
    [message] = smtp_server.to(EMAIL)
    body = _body(message)
    assert message["Subject"] == "Flautim: o experimento quebrado falhou"
    assert "O experimento «quebrado» do projeto «P» falhou." in body
    assert re.search(r"Primeiro erro: .*deliberate failure in training", body), body
    link = smtp_server.first_link(message)
    assert link == f"{worker_config.BASE_URL}/projects/{project_id}/experiments/{experiment_id}"
    # The link is the experiment's page.
    login(client := app.test_client(), EMAIL)
    assert client.get(link.removeprefix(worker_config.BASE_URL)).status_code == 200


def test_an_experiment_that_cannot_start_fails_and_emails(app, worker_config, owner, smtp_server):
    user_id, project_id = owner
    with app.app_context():
        exp = Experiment(project_id=project_id, name="sem arquivos", created_by_id=user_id,
                         submitted_by_id=user_id, state=ExperimentState.QUEUED, attempt=1)
        db.session.add(exp)
        db.session.commit()
        experiment_id = exp.id
    assert job.run_experiment(experiment_id, 1) == "failed"
    [message] = smtp_server.to(EMAIL)
    assert "a dataset, the model's code and a hyperparameter file are required" in _body(message)


def test_each_ending_in_the_users_language(app, worker_config, owner, smtp_server):
    user_id, project_id = owner
    first = {"what": "layer 'fc1' expected 784 inputs, got 28", "where": "api.py:19", "hint": "flatten\nthe input"}
    failed = _ended(app, project_id, user_id, ExperimentState.FAILED,
                    errors=(first, {"what": "a later error", "where": "api.py:40"}))
    assert send_run_end_email(worker_config, failed, 1)
    [message] = smtp_server.messages
    body = _body(message)
    # The experiment's name is the user's text: one line in the subject, no header injected.
    assert message["Subject"] == "Flautim: o experimento Rede <MNIST> X falhou"
    assert "Primeiro erro: layer 'fc1' expected 784 inputs, got 28\nOnde: api.py:19\nDica: flatten the input" in body
    assert "a later error" not in body and "the last error" not in body
    assert "Tentativa 1: 3 de 5 rodadas, em 1 min 15 s." in body
    assert f"{worker_config.BASE_URL}/auth/account#perfil" in body

    _set_user(app, user_id, locale="en")
    # A regression run's headline (flautim.headline, kept by the worker): lower is better.
    succeeded = _ended(app, project_id, user_id, ExperimentState.SUCCEEDED, name="mnist",
                       summary={"metric": "mae", "metric_mode": "min", "metric_value": 0.31234, "metric_best": 0.29})
    timed_out = _ended(app, project_id, user_id, ExperimentState.TIMED_OUT, name="slow")
    assert send_run_end_email(worker_config, succeeded, 1) and send_run_end_email(worker_config, timed_out, 1)
    ok, late = smtp_server.messages[1:]
    assert ok["Subject"] == "Flautim: experiment mnist finished"
    assert "Experiment «mnist» of project «P» finished successfully." in _body(ok)
    assert "Primeiro erro" not in _body(ok) and "First error" not in _body(ok)
    assert "mae: 0.3123 at the end, 0.29 at its best." in _body(ok)
    # No figures where the worker kept none (or a hostile one).
    assert "at its best" not in _body(late)
    bare = _ended(app, project_id, user_id, ExperimentState.SUCCEEDED, name="bare",
                  summary={"metric": "mae", "metric_mode": "min", "metric_value": "0.1; drop table", "metric_best": 0.2})
    assert send_run_end_email(worker_config, bare, 1)
    assert "at its best" not in _body(smtp_server.messages[-1])
    assert late["Subject"] == "Flautim: experiment slow ran out of time"
    assert "To stop these emails, switch them off in My account" in _body(late)


def test_no_email_when_switched_off_cancelled_or_no_longer_a_member(app, worker_config, owner, smtp_server,
                                                                     make_user):
    user_id, project_id = owner
    cancelled = _ended(app, project_id, user_id, ExperimentState.CANCELLED)
    assert not send_run_end_email(worker_config, cancelled, 1)
    # The account page's switch, through the real form.
    client = app.test_client()
    login(client, EMAIL)
    page = client.get("/auth/account").get_data(as_text=True)
    assert re.search(r'<input checked id="profile-notify_run_end"[^>]*type="checkbox"', page)
    r = submit_form(client, "/auth/account/profile", {"profile-name": "Dona", "profile-locale": "pt_BR"},
                    page="/auth/account")
    assert r.status_code == 302
    with app.app_context():
        assert db.session.get(User, user_id).notify_run_end is False
    failed = _ended(app, project_id, user_id, ExperimentState.FAILED)
    assert not send_run_end_email(worker_config, failed, 1)
    submit_form(client, "/auth/account/profile",
                {"profile-name": "Dona", "profile-locale": "pt_BR", "profile-notify_run_end": "y"},
                page="/auth/account")
    assert send_run_end_email(worker_config, failed, 1)
    # Removed from the project: no word about its runs.
    with app.app_context():
        db.session.query(Membership).filter_by(user_id=user_id).delete()
        db.session.commit()
    assert not send_run_end_email(worker_config, failed, 1)
    assert len(smtp_server.messages) == 1


@pytest.mark.parametrize("smtp_host", ["127.0.0.1"])
def test_a_mail_server_that_is_away_costs_the_email_not_the_run(app, worker_config, owner, smtp_host):
    from dataclasses import replace

    from tests.conftest import free_port

    user_id, project_id = owner
    failed = _ended(app, project_id, user_id, ExperimentState.FAILED)
    away = replace(worker_config, SMTP_HOST=smtp_host, SMTP_PORT=free_port())
    assert send_run_end_email(away, failed, 1) is False


def test_a_run_failed_by_the_reaper_emails_too(app, worker_config, owner, smtp_server):
    import redis

    from flautim.worker.main import reap_run
    from tests.conftest import REDIS_URL

    user_id, project_id = owner
    running = _ended(app, project_id, user_id, ExperimentState.RUNNING, name="órfão")
    assert reap_run(worker_config, redis.Redis.from_url(REDIS_URL), running, 1, "the worker running it died")
    [message] = smtp_server.to(EMAIL)
    assert message["Subject"] == "Flautim: o experimento órfão falhou"
    assert "Primeiro erro: the worker running it died" in _body(message)


def test_a_coded_first_error_reads_in_the_users_language_with_its_faq_entry(app, worker_config, owner, smtp_server):
    user_id, project_id = owner
    coded = {"what": "layer 'fc1' expected 784 inputs, got 28", "where": "api.py:19", "code": "model.linear_input",
             "params": {"layer": "fc1", "expected": 784, "got": 28, "shape": "(32, 28)"},
             "help": "contato-suporte"}
    failed = _ended(app, project_id, user_id, ExperimentState.FAILED, name="forma", errors=(coded,))
    assert send_run_end_email(worker_config, failed, 1)
    body = _body(smtp_server.messages[-1])
    assert "Primeiro erro: a camada 'fc1' esperava 784 entradas e recebeu 28\nOnde: api.py:19\n" in body
    assert "Dica: as camadas anteriores produzem 28 valores por exemplo" in body
    # The entry is the code's, not the one the (hostile) event named.
    assert f"No FAQ: {worker_config.BASE_URL}/help/faq#incompatibilidade-de-tamanho-de-tensor" in body
    _set_user(app, user_id, locale="en")
    assert send_run_end_email(worker_config, failed, 1)
    body = _body(smtp_server.messages[-1])
    assert "First error: layer 'fc1' expected 784 inputs" in body and "In the FAQ: " in body


def test_a_run_the_worker_gives_up_starting_emails_too(app, worker_config, owner, smtp_server):
    import redis

    from flautim.worker.database import session_scope
    from flautim.worker.main import MAX_REQUEUES, _may_requeue
    from tests.conftest import REDIS_URL

    user_id, project_id = owner
    queued = _ended(app, project_id, user_id, ExperimentState.QUEUED, name="na fila")
    connection = redis.Redis.from_url(REDIS_URL)
    connection.set(f"flautim:requeues:{queued}:1", MAX_REQUEUES)
    with session_scope(worker_config):
        assert _may_requeue(db.session.get(Experiment, queued), connection, worker_config) is False
    [message] = smtp_server.to(EMAIL)
    assert message["Subject"] == "Flautim: o experimento na fila falhou"
    assert "could not start this run" in _body(message)
