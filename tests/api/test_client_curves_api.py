"""The per-client curves through the API (issue 16 §1): the spread across clients per round
and chosen clients' curves, validated like every query, scoped like every experiment; and
the experiment's headline metric in its answer."""

from __future__ import annotations

import pytest

from tests.api.conftest import bearer


@pytest.fixture
def team(make_user, make_project, make_token):
    owner = make_user("dona@example.org")
    outsider = make_user("fora@example.org")
    project = make_project("Projeto", owner)
    make_project("Outro", outsider)
    return {"project": project, "owner": bearer(make_token(owner)), "outsider": bearer(make_token(outsider))}


def test_spread_and_client_curves(client, team, seed_experiment):
    exp = seed_experiment(team["project"], rounds=4)
    url = f"/api/v1/projects/{team['project']}/experiments/{exp}/client-curves"
    r = client.get(url, headers=team["owner"], query_string={"clients": "1"})
    assert r.status_code == 200, r.json
    body = r.json
    assert (body["name"], body["phase"], body["downsampled"]) == ("loss", "evaluate", False)
    # Two clients (client-0 and client-1) report 1/r each round; the aggregate is not a client.
    assert [(p["round"], p["clients"]) for p in body["spread"]] == [(r, 2) for r in (1, 2, 3, 4)]
    assert all(p["min"] == p["median"] == p["max"] == pytest.approx(1 / p["round"]) for p in body["spread"])
    assert body["clients"] == [{"client": 1, "rounds": [1, 2, 3, 4], "values": pytest.approx([1, 1 / 2, 1 / 3, 1 / 4])}]
    assert client.get(url, headers=team["owner"], query_string={"phase": "train"}).json["spread"] == []


@pytest.mark.parametrize(("params", "field"), [
    ({"clients": "0,1,2,3,4,5,6,7,8"}, "clients"), ({"clients": "0;1"}, "clients"), ({"clients": "9999999"}, "clients"),
    ({"phase": "central"}, "phase"), ({"name": "n" * 65}, "name"), ({"attempt": "-1"}, "attempt"),
])
def test_bad_parameters_name_their_field(client, team, seed_experiment, params, field):
    exp = seed_experiment(team["project"])
    r = client.get(f"/api/v1/projects/{team['project']}/experiments/{exp}/client-curves", headers=team["owner"],
                   query_string=params)
    assert r.status_code == 400 and r.json["error"]["field"] == field, r.json


def test_another_projects_experiment_is_404(client, team, seed_experiment):
    exp = seed_experiment(team["project"])
    r = client.get(f"/api/v1/projects/{team['project']}/experiments/{exp}/client-curves", headers=team["outsider"])
    assert r.status_code == 404


def test_the_experiment_answer_names_its_headline_metric(app, client, team, seed_experiment):
    from flautim.models import Experiment, db

    exp = seed_experiment(team["project"])
    url = f"/api/v1/projects/{team['project']}/experiments/{exp}"
    assert client.get(url, headers=team["owner"]).json["headline_metric"] is None  # nothing evaluated yet
    with app.app_context():
        db.session.get(Experiment, exp).summary = {"metric": "mae", "metric_mode": "min", "metric_value": 0.4}
        db.session.commit()
    assert client.get(url, headers=team["owner"]).json["headline_metric"] == {"name": "mae", "mode": "min"}
