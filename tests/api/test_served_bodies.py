"""What the API serves is what schemas.py declares, and bad input is refused from the same
declarations with an error naming the field and the value received.

The metrics and log catch-up bodies are not built through pydantic on each request (they
come from response_cache and log_pages): these tests are what ties them to their models."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from flautim.web.api import schemas as s

from .conftest import bearer
from .test_experiments_api import upload_bundle


def _conforms(model: type[BaseModel], body: bytes) -> dict:
    """The body validates against `model` and shows no field the model does not name."""
    model.model_validate_json(body)
    data = json.loads(body)
    declared = set(model.model_fields) | set(model.model_computed_fields)
    assert set(data) <= declared, (model.__name__, set(data) - declared)
    return data


def _conforms_items(item_model: type[BaseModel], items: list[dict]) -> None:
    for item in items:
        assert set(item) <= set(item_model.model_fields), (item_model.__name__, item)


@pytest.fixture
def owner_project(make_user, make_project, make_token):
    owner = make_user("dona@example.org")
    return make_project("Projeto", owner), bearer(make_token(owner))


def test_served_bodies_validate_against_their_models(client, owner_project, seed_experiment):
    p, owner = owner_project
    upload_bundle(client, p, owner)
    exp = seed_experiment(p, rounds=4, logs=30, artifact_bytes=b"w")
    base = f"/api/v1/projects/{p}/experiments/{exp}"

    def get(url: str) -> bytes:
        response = client.get(url, headers=owner)
        assert response.status_code == 200, (url, response.json)
        assert response.mimetype == "application/json"
        return response.data

    # Served from response_cache and log_pages, never through pydantic: the cached body too.
    for query in ("", "?format=series", "?limit=2", "?format=series&after_round=1&limit=2&name=loss"):
        for _twice in range(2):
            body = _conforms(s.Metrics, get(base + "/metrics" + query))
        _conforms_items(s.MetricSeries if "series" in query else s.Metric, body.get("series") or body["items"])
    for query in ("", "?limit=7&after=3", "?source=server", "?search=line%201"):
        body = _conforms(s.Logs, get(base + "/logs" + query))
        assert body["items"]
        _conforms_items(s.LogLine, body["items"])

    # Built through their models.
    _conforms(s.Events, get(base + "/events"))
    _conforms(s.Artifacts, get(base + "/artifacts"))
    _conforms(s.Experiment, get(base))
    _conforms(s.Page[s.Experiment], get(f"/api/v1/projects/{p}/experiments"))
    _conforms(s.Page[s.Dataset], get(f"/api/v1/projects/{p}/datasets"))
    _conforms(s.Page[s.ModelCode], get(f"/api/v1/projects/{p}/models"))
    _conforms(s.Page[s.HyperparameterFile], get(f"/api/v1/projects/{p}/hyperparameters"))
    projects = _conforms(s.Page[s.Project], get("/api/v1/projects"))
    assert projects["items"][0]["role"] == "owner"
    _conforms(s.User, get("/api/v1/me"))


def test_bad_input_names_the_field_and_the_value(client, owner_project):
    p, owner = owner_project
    url = f"/api/v1/projects/{p}/experiments"
    cases = [
        (client.get(url + "?state=paused", headers=owner), "state", '"paused"'),
        (client.get(url + "?limit=abc", headers=owner), "limit", '"abc"'),
        (client.get(url + "?offset=-1", headers=owner), "offset", '"-1"'),
        (client.post(url, headers=owner, json={"name": "x", "dataset_id": "1", "model_code_id": 1,
                                                "hyperparameter_file_id": 1}), "dataset_id", '"1"'),
    ]
    for response, field, shown in cases:
        error = response.json["error"]
        assert response.status_code == 400 and error["code"] == "validation_error", error
        assert error["field"] == field and field in error["message"], error
        assert error["message"].endswith(f"Recebido: {shown}."), error
    english = client.get(url + "?state=paused", headers={**owner, "Accept-Language": "en"}).json["error"]
    assert english["message"] == 'state must be one of: draft, queued, preparing, running, succeeded, failed, ' \
        'cancelled, timed_out. Received: "paused".', english
    # A misspelt field is named before the field it leaves missing, with the accepted ones.
    misspelt = client.post(url, headers=owner, json={"name": "x", "datset_id": 1}).json["error"]
    assert misspelt["field"] == "datset_id" and "dataset_id" in misspelt["message"]


def test_uploads_read_their_declared_form(client, owner_project):
    p, owner = owner_project
    url = f"/api/v1/projects/{p}/models"
    as_json = client.post(url, headers=owner, json={"model_file": "x"})
    assert as_json.status_code == 415 and as_json.json["error"]["field"] == "body"
    long_name = client.post(url, headers=owner, content_type="multipart/form-data", data={"name": "n" * 101})
    assert long_name.status_code == 400 and long_name.json["error"]["field"] == "name"
    not_a_file = client.post(url, headers=owner, content_type="multipart/form-data", data={"model_file": "text"})
    assert not_a_file.status_code == 400 and not_a_file.json["error"]["field"] == "model_file"


def test_document_is_generated_from_the_declarations(client):
    doc = client.get("/api/v1/openapi.json").json
    metrics = doc["paths"]["/projects/{project_id}/experiments/{experiment_id}/metrics"]["get"]
    query = {p["name"]: p["schema"] for p in metrics["parameters"] if p["in"] == "query"}
    assert set(query) == set(s.MetricsQuery.model_fields)
    assert query["limit"]["maximum"] == s.MAX_ROUNDS_PER_PAGE and query["after_round"]["minimum"] == -1
    assert metrics["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Metrics")
    create = doc["paths"]["/projects/{project_id}/experiments"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/NewExperiment")
    new = doc["components"]["schemas"]["NewExperiment"]
    assert new["additionalProperties"] is False and set(new["properties"]) == set(s.NewExperiment.model_fields)
    # Only auth.PUBLIC_ENDPOINTS' operations are open; the rest take the global bearer scheme.
    assert doc["paths"]["/openapi.json"]["get"]["security"] == [] and "security" not in metrics
    states = doc["components"]["schemas"]["ExperimentState"]["enum"]
    assert "running" in states and "timed_out" in states
