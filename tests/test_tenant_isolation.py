"""Tenant isolation, checked on every route that exists when the test runs.

Every rule of `app.url_map` with an integer argument (an object id) is requested, with each
of its methods, by a logged-in outsider using the ids of a victim project's real objects:
the answer must be 404 (401 without a token / 404 with the outsider's token on /api/v1).
A rule whose arguments this test cannot fill FAILS the test, so a new route is never
silently left unchecked: add its argument to ID_ARGS (or the tables below) and, for a new
model, a victim row in `victim`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from werkzeug.routing import Rule
from werkzeug.routing.converters import AnyConverter, IntegerConverter

from flautim import models as m
from tests.conftest import csrf_token_from, login

IGNORED_METHODS = {"HEAD", "OPTIONS"}

# Integer arguments that are not object ids: any small value will do.
NON_ID_INTS = {"round": 1, "attempt": 1, "page": 1, "n": 1}

# Argument name -> the model whose victim row fills it. `asset_id` depends on the route.
ID_ARGS: dict[str, type] = {
    "project_id": m.Project,
    "experiment_id": m.Experiment,
    "dataset_id": m.Dataset,
    "model_code_id": m.ModelCode,
    "model_id": m.ModelCode,
    "hyperparameter_file_id": m.HyperparameterFile,
    "hyperparameters_id": m.HyperparameterFile,
    "artifact_id": m.ModelArtifact,
    "model_artifact_id": m.ModelArtifact,
    "event_id": m.ExperimentEvent,
    "log_id": m.LogRecord,
    "metric_id": m.MetricRow,
    "invitation_id": m.Invitation,
    "membership_id": m.Membership,
    "member_id": m.Membership,
    "audit_event_id": m.AuditEvent,
    "ticket_id": m.SupportTicket,
    "message_id": m.SupportMessage,
    "token_id": m.ApiToken,
    "user_id": m.User,
}

# `asset_id`: which asset, by the route's `kind` value or by the path segment before it.
ASSET_KINDS: dict[str, type] = {
    "datasets": m.Dataset,
    "dataset": m.Dataset,
    "model-code": m.ModelCode,
    "models": m.ModelCode,
    "model": m.ModelCode,
    "hyperparameters": m.HyperparameterFile,
}


@dataclass
class Victim:
    owner_id: int
    project_id: int
    ids: dict[type, int] = field(default_factory=dict)


# Routes that answer an outsider with something other than 404 but provably change nothing
# (the victim's rows are compared before and after). Each entry says why; prefer fixing the
# route to answer 404.
HARMLESS_NON_404 = {
    # Revokes only the current user's own tokens and redirects whatever the id; should 404
    # when the token is not theirs (flautim/web/api/token_pages.py, engineer API).
    "api_tokens.revoke": (302,),
}


def _outsider_expectation(rule: Rule) -> tuple[int, ...]:
    """What an outsider (logged in, not a member, not an admin) must get."""
    return (404, *HARMLESS_NON_404.get(rule.endpoint, ()))


def _make_victim(app, make_user, make_project) -> Victim:
    owner = make_user("victim@example.org", name="Victim")
    colleague = make_user("colleague@example.org", name="Colleague")
    pid = make_project("Victim project", owner, editors=[colleague])
    with app.app_context():
        db = m.db
        now = m.utcnow()
        common = dict(project_id=pid, description="", content_hash="0" * 64, size_bytes=1)
        dataset = m.Dataset(name="d", storage_path=f"projects/{pid}/datasets/1", **common)
        code = m.ModelCode(name="c", filename="api.py", storage_path=f"projects/{pid}/models/1", **common)
        hp = m.HyperparameterFile(
            name="h", filename="hyperparameters.py", values={"num_rounds": 1},
            storage_path=f"projects/{pid}/hyperparameters/1", **common,
        )
        db.session.add_all([dataset, code, hp])
        db.session.flush()
        exp = m.Experiment(
            project_id=pid, name="e", dataset_id=dataset.id, model_code_id=code.id,
            hyperparameter_file_id=hp.id, created_by_id=owner,
        )
        db.session.add(exp)
        db.session.flush()
        rows = [
            m.ExperimentEvent(experiment_id=exp.id, type="run_started", payload={}),
            m.MetricRow(experiment_id=exp.id, round=1, phase="train", source="aggregate", name="loss", value=0.5),
            m.ClientResult(experiment_id=exp.id, round=1, phase="train", client=0, examples=10, loss=0.5),
            m.LogRecord(experiment_id=exp.id, source="server", line="hello"),
            m.ModelArtifact(
                experiment_id=exp.id, round=1, kind="final", format="safetensors",
                storage_path=f"projects/{pid}/experiments/{exp.id}/attempt-1/checkpoints/final.safetensors",
                sha256="0" * 64,
            ),
            m.Invitation(
                project_id=pid, email="pending@example.org", role=m.Role.VIEWER,
                token_hash=hashlib.sha256(b"victim-invite").hexdigest(), invited_by_id=owner,
                expires_at=now + timedelta(days=1),
            ),
            m.AuditEvent(project_id=pid, actor_id=owner, action="project.created", target="Victim project"),
            m.ApiToken(
                user_id=owner, name="t", prefix="flt_victim",
                token_hash=hashlib.sha256(b"victim-token").hexdigest(), expires_at=now + timedelta(days=1),
            ),
        ]
        rows += [
            m.QuotaOverride(project_id=pid, running=1),
            m.RunUsage(experiment_id=exp.id, attempt=1, project_id=pid, user_id=owner, containers=3,
                       wall_seconds=1.0, container_seconds=3.0, finished_at=now),
        ]
        ticket = m.SupportTicket(user_id=owner, subject="help")
        db.session.add_all([*rows, ticket])
        db.session.flush()
        message = m.SupportMessage(ticket_id=ticket.id, author_id=owner, body="hi")
        db.session.add(message)
        db.session.commit()
        victim = Victim(owner_id=owner, project_id=pid)
        for obj in [dataset, code, hp, exp, *rows, ticket, message]:
            victim.ids[type(obj)] = obj.id
        victim.ids[m.Project] = pid
        victim.ids[m.User] = owner
        victim.ids[m.Membership] = db.session.scalar(
            select(m.Membership.id).where(m.Membership.project_id == pid, m.Membership.user_id == colleague)
        )
    return victim


def _victim_snapshot(app, victim: Victim) -> dict:
    """Every column of every victim row, plus each table's row count."""
    with app.app_context():
        snapshot = {}
        for mapper in m.db.Model.registry.mappers:
            model = mapper.class_
            snapshot[model.__name__] = m.db.session.scalar(
                select(func.count()).select_from(model)
            )
            row = m.db.session.get(model, victim.ids[model]) if model in victim.ids else None
            snapshot[(model.__name__, "row")] = (
                None if row is None else {c.key: getattr(row, c.key) for c in mapper.column_attrs}
            )
        return snapshot


class UnfillableRule(Exception):
    pass


def _asset_model(rule: Rule, values: dict) -> type:
    if "kind" in values:
        model = ASSET_KINDS.get(values["kind"])
    else:
        before = rule.rule.split("<int:asset_id>")[0].rstrip("/").rsplit("/", 1)[-1]
        model = ASSET_KINDS.get(before)
    if model is None:
        raise UnfillableRule("asset_id: add the asset kind to ASSET_KINDS")
    return model


def _fillings(rule: Rule, victim: Victim) -> list[dict]:
    """Every set of argument values to try for `rule` (one per `any(...)` choice)."""
    variants: list[dict] = [{}]
    for name, conv in rule._converters.items():
        if isinstance(conv, AnyConverter):
            variants = [{**v, name: item} for v in variants for item in sorted(conv.items)]
        elif not isinstance(conv, IntegerConverter):
            raise UnfillableRule(f"{name}: a {type(conv).__name__} argument next to an object id")
    filled = []
    for values in variants:
        values = dict(values)
        for name, conv in rule._converters.items():
            if not isinstance(conv, IntegerConverter):
                continue
            if name in NON_ID_INTS:
                values[name] = NON_ID_INTS[name]
            elif name == "asset_id":
                values[name] = victim.ids[_asset_model(rule, values)]
            elif name in ID_ARGS:
                model = ID_ARGS[name]
                if model not in victim.ids:
                    raise UnfillableRule(f"{name}: no victim row of {model.__name__}")
                values[name] = victim.ids[model]
            else:
                raise UnfillableRule(f"{name}: unknown id argument")
        filled.append(values)
    return filled


def _id_rules(app) -> list[Rule]:
    return sorted(
        (
            r
            for r in app.url_map.iter_rules()
            if any(isinstance(c, IntegerConverter) for c in r._converters.values())
            or "project_id" in r.arguments
            # The admin panel answers 404 to anyone who is not an admin, ids or not.
            or r.rule.startswith("/admin")
        ),
        key=lambda r: (r.rule, r.endpoint),
    )


def _url(app, rule: Rule, values: dict) -> str:
    return app.url_map.bind("localhost").build(rule.endpoint, values, method=next(iter(rule.methods - IGNORED_METHODS)), force_external=False)


def _request(client, method: str, url: str, **kwargs) -> int:
    # Not buffered: a live stream that wrongly opened would otherwise block the test.
    response = client.open(url, method=method, buffered=False, **kwargs)
    try:
        return response.status_code
    finally:
        response.close()


@pytest.fixture
def victim(app, make_user, make_project):
    return _make_victim(app, make_user, make_project)


def test_every_model_has_a_victim_row(victim, app):
    """A new model needs a victim row here, or routes using its ids cannot be checked."""
    missing = [
        mapper.class_.__name__
        for mapper in m.db.Model.registry.mappers
        if mapper.class_ not in victim.ids
    ]
    assert not missing, (
        f"add a victim row of {missing} to _make_victim in tests/test_tenant_isolation.py "
        "(and its id argument name to ID_ARGS)"
    )


def _check_as_outsider(app, client, victim, api_secret: str, csrf: str):
    """(unfillable rules, failures, requests made) for every id route, as the outsider."""
    unfillable, failures, checked = [], [], 0

    def expect(method: str, url: str, rule: Rule, want: tuple[int, ...], what: str, **kwargs):
        nonlocal checked
        checked += 1
        got = _request(client, method, url, **kwargs)
        if got not in want:
            failures.append(f"{method} {url} ({rule.endpoint}) {what} -> {got}, expected {want}")

    for rule in _id_rules(app):
        try:
            fillings = _fillings(rule, victim)
        except UnfillableRule as exc:
            unfillable.append(f"{rule.rule} ({rule.endpoint}): {exc}")
            continue
        # Also an id past the 32-bit column range: it names nothing, so 404 (not a 500).
        huge = {
            k: (v if k in NON_ID_INTS or not isinstance(v, int) else 2**31) for k, v in fillings[0].items()
        }
        for values in [*fillings, huge]:
            url = _url(app, rule, values)
            for method in sorted(rule.methods - IGNORED_METHODS):
                if rule.rule.startswith("/api/"):
                    expect(method, url, rule, (401,), "without a token", json={})
                    expect(
                        method, url, rule, (404,), "with the outsider's token", json={},
                        headers={"Authorization": f"Bearer {api_secret}"},
                    )
                else:
                    data = {"csrf_token": csrf} if method != "GET" else None
                    expect(method, url, rule, _outsider_expectation(rule), "", data=data)
    return unfillable, failures, checked


def _outsider(app, client, make_user, make_project) -> tuple[str, str]:
    """Log in a user with a project of their own; returns (API token, CSRF token)."""
    outsider = make_user("outsider@example.org", name="Outsider")
    make_project("Outsider's own project", outsider)
    login(client, "outsider@example.org")
    csrf = csrf_token_from(client.get("/projects/").get_data(as_text=True))
    with app.app_context():
        from flautim.web.api.tokens import create_token

        _, api_secret = create_token(m.db.session.get(m.User, outsider), "outsider")
    return api_secret, csrf


def test_outsider_gets_404_on_every_object_route(app, client, victim, make_user, make_project):
    api_secret, csrf = _outsider(app, client, make_user, make_project)
    before = _victim_snapshot(app, victim)

    unfillable, failures, checked = _check_as_outsider(app, client, victim, api_secret, csrf)

    assert not unfillable, (
        "these routes take an id the tenant-isolation test cannot fill, so their scoping is "
        "unchecked; add the argument to ID_ARGS / NON_ID_INTS / ASSET_KINDS in "
        "tests/test_tenant_isolation.py:\n  " + "\n  ".join(unfillable)
    )
    assert not failures, "an outsider reached a victim's object:\n  " + "\n  ".join(failures)
    assert checked >= 20, f"only {checked} requests: did the routes disappear?"
    after = _victim_snapshot(app, victim)
    changed = [k for k in before if before[k] != after[k]]
    assert not changed, f"an outsider's requests changed the victim's data: {changed}"


def test_the_check_catches_an_unscoped_route_and_an_unknown_id(app, client, victim, make_user, make_project):
    """The test above can fail: a view that skips access.py, and an id it cannot fill."""

    def leaky(project_id: int):  # looks the project up without checking membership
        return m.db.session.get(m.Project, project_id).name

    app.add_url_rule("/projects/<int:project_id>/leaky-for-test", "leaky_for_test", leaky)
    app.add_url_rule("/widgets-for-test/<int:widget_id>", "widget_for_test", lambda widget_id: "")
    api_secret, csrf = _outsider(app, client, make_user, make_project)

    unfillable, failures, _ = _check_as_outsider(app, client, victim, api_secret, csrf)

    assert [u for u in unfillable if "widget_for_test" in u] == [
        "/widgets-for-test/<int:widget_id> (widget_for_test): widget_id: unknown id argument"
    ]
    assert any("leaky_for_test" in f and "-> 200" in f for f in failures), failures


def test_victim_reaches_their_own_project_pages(app, client, victim):
    """The positive control: the same ids work for the owner, so a 404 above means scoping."""
    login(client, "victim@example.org")
    failures, checked = [], 0
    for rule in _id_rules(app):
        if rule.rule.startswith(("/api/", "/admin/")) or "GET" not in rule.methods:
            continue
        if set(rule.arguments) - {"project_id", "kind"}:
            continue
        for values in _fillings(rule, victim):
            url = _url(app, rule, values)
            got = _request(client, "GET", url)
            checked += 1
            if got == 404 or got >= 500:
                failures.append(f"GET {url} ({rule.endpoint}) -> {got}")
    assert checked >= 4
    assert not failures, "the victim could not open their own pages:\n  " + "\n  ".join(failures)


def test_anonymous_is_sent_to_login_on_project_routes(app, client, victim):
    csrf = csrf_token_from(client.get("/").get_data(as_text=True))
    failures = []
    for rule in _id_rules(app):
        # The admin panel's own gate (404 to all but admins) is checked on its own.
        if "project_id" not in rule.arguments or rule.rule.startswith("/admin"):
            continue
        for values in _fillings(rule, victim)[:1]:
            url = _url(app, rule, values)
            for method in sorted(rule.methods - IGNORED_METHODS):
                if rule.rule.startswith("/api/"):
                    got = _request(client, method, url, json={})
                    if got != 401:
                        failures.append(f"{method} {url} -> {got}, expected 401")
                    continue
                data = {"csrf_token": csrf} if method != "GET" else None
                response = client.open(url, method=method, data=data)
                location = response.headers.get("Location", "")
                if response.status_code not in (302, 303) or "/auth/login" not in location:
                    failures.append(f"{method} {url} -> {response.status_code} {location}, expected a redirect to /auth/login")
    assert not failures, "\n  ".join(failures)
