"""Uploads and experiments through the API, on the real service layer, PostgreSQL and Redis."""

from __future__ import annotations

import hashlib
import io
import zipfile
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update

from .conftest import bearer

ROOT = Path(__file__).resolve().parents[2]
MNIST = ROOT / "examples" / "mnist"


@pytest.fixture
def team(make_user, make_project, make_token):
    """An owner, a viewer, an outsider with their own project, and everyone's tokens."""
    owner = make_user("dona@example.org")
    viewer = make_user("leitor@example.org")
    outsider = make_user("fora@example.org")
    project = make_project("Projeto", owner, viewers=[viewer])
    other_project = make_project("Outro", outsider)
    return {
        "project": project,
        "other_project": other_project,
        "owner": bearer(make_token(owner)),
        "viewer": bearer(make_token(viewer)),
        "outsider": bearer(make_token(outsider)),
    }


def _file(path: Path, name: str | None = None):
    return (io.BytesIO(path.read_bytes()), name or path.name)


def upload_bundle(client, project: int, headers: dict) -> dict:
    """Upload examples/mnist's dataset, model code and hyperparameters; return their ids."""
    ds = client.post(
        f"/api/v1/projects/{project}/datasets",
        headers=headers,
        data={"name": "mnist", "dataset_file": _file(MNIST / "dataset.py")},
        content_type="multipart/form-data",
    )
    assert ds.status_code == 201, ds.json
    model = client.post(
        f"/api/v1/projects/{project}/models",
        headers=headers,
        data={"name": "cnn", "model_file": _file(MNIST / "api.py")},
        content_type="multipart/form-data",
    )
    assert model.status_code == 201, model.json
    hp = client.post(
        f"/api/v1/projects/{project}/hyperparameters",
        headers=headers,
        data={"hyperparameters_file": _file(MNIST / "hyperparameters.py")},
        content_type="multipart/form-data",
    )
    assert hp.status_code == 201, hp.json
    return {"dataset_id": ds.json["id"], "model_code_id": model.json["id"], "hyperparameter_file_id": hp.json["id"]}


def test_upload_create_run_cancel_clone(client, team):
    p, owner = team["project"], team["owner"]
    ids = upload_bundle(client, p, owner)
    hp = client.get(f"/api/v1/projects/{p}/hyperparameters", headers=owner).json["items"][0]
    assert hp["values"]["rounds"] == 10 and "storage_path" not in hp

    created = client.post(f"/api/v1/projects/{p}/experiments", headers=owner, json={"name": "mnist-1", **ids})
    assert created.status_code == 201, created.json
    exp = created.json
    assert exp["state"] == "draft" and exp["rounds_total"] == 10 and exp["dataset_id"] == ids["dataset_id"]

    run = client.post(f"/api/v1/projects/{p}/experiments/{exp['id']}/run", headers=owner)
    assert run.status_code == 202 and run.json["state"] == "queued" and run.json["attempt"] == 1
    again = client.post(f"/api/v1/projects/{p}/experiments/{exp['id']}/run", headers=owner)
    assert again.status_code == 409 and again.json["error"]["message"]

    cancelled = client.post(f"/api/v1/projects/{p}/experiments/{exp['id']}/cancel", headers=owner)
    assert cancelled.status_code == 202 and cancelled.json["state"] == "cancelled"
    assert client.post(f"/api/v1/projects/{p}/experiments/{exp['id']}/cancel", headers=owner).status_code == 409

    clone = client.post(
        f"/api/v1/projects/{p}/experiments/{exp['id']}/clone", headers=owner,
        json={"name": "mnist-2", "description": "menos rodadas"},
    )
    assert clone.status_code == 201, clone.json
    assert clone.json["cloned_from_id"] == exp["id"] and clone.json["model_code_id"] == ids["model_code_id"]
    assert clone.json["description"] == "menos rodadas" and clone.json["state"] == "draft"

    listing = client.get(f"/api/v1/projects/{p}/experiments?name=mnist-2", headers=owner).json
    assert [e["id"] for e in listing["items"]] == [clone.json["id"]] and listing["total"] == 1
    assert client.get(f"/api/v1/projects/{p}/experiments?state=cancelled", headers=owner).json["total"] == 1

    started = client.post(f"/api/v1/projects/{p}/experiments", headers=owner, json={"name": "mnist-3", "run": True, **ids})
    assert started.status_code == 201 and started.json["state"] == "queued"


def test_viewer_reads_but_cannot_write(client, team):
    p = team["project"]
    ids = upload_bundle(client, p, team["owner"])
    assert client.get(f"/api/v1/projects/{p}/datasets", headers=team["viewer"]).json["total"] == 1
    refused = client.post(f"/api/v1/projects/{p}/experiments", headers=team["viewer"], json={"name": "x", **ids})
    assert refused.status_code == 403 and refused.json["error"]["code"] == "forbidden"
    # An experiment's write: the role is refused before the experiment is looked up.
    exp = client.post(f"/api/v1/projects/{p}/experiments", headers=team["owner"], json={"name": "x", **ids}).json["id"]
    for experiment_id in (exp, exp + 1000, 2**40):
        answer = client.post(f"/api/v1/projects/{p}/experiments/{experiment_id}/run", headers=team["viewer"])
        assert answer.status_code == 403, experiment_id
        missing = client.get(f"/api/v1/projects/{p}/experiments/{experiment_id}", headers=team["viewer"])
        assert missing.status_code == (200 if experiment_id == exp else 404)


def test_another_projects_objects_are_404(client, team, seed_experiment):
    p, other = team["project"], team["other_project"]
    ids = upload_bundle(client, p, team["owner"])
    exp = seed_experiment(p, artifact_bytes=b"weights")
    outsider = team["outsider"]
    base = f"/api/v1/projects/{p}/experiments/{exp}"
    for url in (f"/api/v1/projects/{p}", f"/api/v1/projects/{p}/datasets", base, base + "/metrics",
                base + "/logs", base + "/events", base + "/artifacts"):
        assert client.get(url, headers=outsider).status_code == 404, url
    assert client.post(base + "/run", headers=outsider).status_code == 404
    # The experiment through the outsider's own project id: still 404.
    assert client.get(f"/api/v1/projects/{other}/experiments/{exp}", headers=outsider).status_code == 404
    # The owner cannot attach the other project's assets either: the field is named.
    mixed = client.post(f"/api/v1/projects/{other}/experiments", headers=outsider, json={"name": "x", **ids})
    assert mixed.status_code == 400 and mixed.json["error"]["field"] == "dataset_id"


def test_malformed_json_and_fields_are_400_with_the_field(client, team):
    p, owner = team["project"], team["owner"]
    url = f"/api/v1/projects/{p}/experiments"
    broken = client.post(url, headers={**owner, "Content-Type": "application/json"}, data="{not json")
    assert broken.status_code == 400 and broken.json["error"]["field"] == "body"
    not_object = client.post(url, headers=owner, json=[1, 2])
    assert not_object.status_code == 400 and not_object.json["error"]["field"] == "body"
    form = client.post(url, headers=owner, data={"name": "x"})
    assert form.status_code == 415
    cases = [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": 5}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "x"}, "dataset_id"),
        ({"name": "x", "dataset_id": "1", "model_code_id": 1, "hyperparameter_file_id": 1}, "dataset_id"),
        ({"name": "x", "dataset_id": True, "model_code_id": 1, "hyperparameter_file_id": 1}, "dataset_id"),
        ({"name": "x", "dataset_id": 1, "model_code_id": -3, "hyperparameter_file_id": 1}, "model_code_id"),
        ({"name": "x", "dataset_id": 1, "model_code_id": 1, "hyperparameter_file_id": 1, "run": "yes"}, "run"),
        ({"name": "x", "datset_id": 1, "model_code_id": 1, "hyperparameter_file_id": 1}, "datset_id"),
    ]
    for body, field in cases:
        response = client.post(url, headers=owner, json=body)
        assert response.status_code == 400, body
        assert response.json["error"]["field"] == field, (body, response.json)


def test_bad_uploads_name_field_and_line(client, team):
    p, owner = team["project"], team["owner"]
    bad_hp = client.post(
        f"/api/v1/projects/{p}/hyperparameters", headers=owner,
        data={"hyperparameters_file": (io.BytesIO(b"rounds = 3\nlr = compute()\n"), "hp.py")},
        content_type="multipart/form-data",
    )
    assert bad_hp.status_code == 400
    error = bad_hp.json["error"]
    assert error["field"] == "hyperparameters_file" and error["line"] == 2, error

    syntax = client.post(
        f"/api/v1/projects/{p}/models", headers=owner,
        data={"model_file": (io.BytesIO(b"import torch\ndef broken(:\n"), "api.py")},
        content_type="multipart/form-data",
    )
    assert syntax.status_code == 400 and syntax.json["error"]["field"] == "model_file"
    assert syntax.json["error"]["line"] == 2

    missing = client.post(f"/api/v1/projects/{p}/datasets", headers=owner, data={"name": "x"},
                          content_type="multipart/form-data")
    assert missing.status_code == 400 and missing.json["error"]["field"] == "dataset_file"

    slip = io.BytesIO()
    with zipfile.ZipFile(slip, "w") as z:
        z.writestr("../../evil.txt", "x")
    slip.seek(0)
    zipped = client.post(
        f"/api/v1/projects/{p}/datasets", headers=owner,
        data={"dataset_file": _file(MNIST / "dataset.py"), "data_files": (slip, "data.zip")},
        content_type="multipart/form-data",
    )
    assert zipped.status_code == 400 and zipped.json["error"]["field"] == "data_files"
    assert client.get(f"/api/v1/projects/{p}/datasets", headers=owner).json["total"] == 0


@pytest.fixture
def config_overrides():
    return {"MAX_UPLOAD_MB": 1}


def test_oversized_upload_is_413_json(client, team):
    p, owner = team["project"], team["owner"]
    big = io.BytesIO(b"0" * (1024 * 1024 + 10))
    response = client.post(
        f"/api/v1/projects/{p}/datasets", headers=owner,
        data={"dataset_file": _file(MNIST / "dataset.py"), "data_files": (big, "big.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 413
    assert response.json["error"]["code"] == "payload_too_large"


def test_results_metrics_logs_events_artifacts(client, team, seed_experiment):
    p, owner = team["project"], team["owner"]
    exp = seed_experiment(p, rounds=4, logs=25, artifact_bytes=b"final-weights")
    base = f"/api/v1/projects/{p}/experiments/{exp}"

    metrics = client.get(base + "/metrics", headers=owner).json["items"]
    assert len(metrics) == 4 * 4
    aggregate = client.get(base + "/metrics?source=aggregate&name=loss", headers=owner).json["items"]
    assert [m["round"] for m in aggregate] == [1, 2, 3, 4]
    assert aggregate[1]["value"] == pytest.approx(0.5)
    some = client.get(base + "/metrics?round_min=2&round_max=3&phase=central", headers=owner).json["items"]
    assert [m["round"] for m in some] == [2, 3] and all(m["source"] == "server" for m in some)
    series = client.get(base + "/metrics?format=series&name=loss", headers=owner).json["series"]
    by_source = {s["source"]: s for s in series}
    assert set(by_source) == {"aggregate", "client-0", "client-1"}
    assert by_source["client-1"]["rounds"] == [1, 2, 3, 4]
    assert by_source["client-1"]["values"] == pytest.approx([1.0, 0.5, 1 / 3, 0.25])
    bad = client.get(base + "/metrics?format=csv", headers=owner)
    assert bad.status_code == 400 and bad.json["error"]["field"] == "format"

    # Catch-up in pages of 10 sees every line once, in order.
    seen, after = [], 0
    while True:
        page = client.get(base + f"/logs?after={after}&limit=10", headers=owner).json
        seen += [r["line"] for r in page["items"]]
        after = page["next_after"]
        if not page["has_more"]:
            break
    assert seen == [f"line {i}" for i in range(25)]
    server = client.get(base + "/logs?source=server&limit=100", headers=owner).json["items"]
    assert len(server) == 12 and {r["source"] for r in server} == {"server"}
    assert set(server[0]) == {"id", "attempt", "source", "stream", "line", "created_at"}
    assert datetime.fromisoformat(server[0]["created_at"]).utcoffset() is not None

    events = client.get(base + "/events?after=0", headers=owner).json
    assert [e["payload"]["round"] for e in events["items"]] == [1, 2, 3, 4]
    assert events["experiment"]["state"] == "succeeded"
    later = client.get(base + f"/events?after={events['items'][1]['id']}", headers=owner).json
    assert [e["payload"]["round"] for e in later["items"]] == [3, 4]

    artifacts = client.get(base + "/artifacts", headers=owner).json["items"]
    assert len(artifacts) == 1 and artifacts[0]["kind"] == "final" and "storage_path" not in artifacts[0]
    download = client.get(base + f"/artifacts/{artifacts[0]['id']}/download", headers=owner)
    assert download.status_code == 200 and download.data == b"final-weights"
    assert download.headers["X-Checksum-SHA256"] == hashlib.sha256(b"final-weights").hexdigest()
    assert "attachment" in download.headers["Content-Disposition"]


def test_metrics_paged_by_round(client, team, seed_experiment):
    p, owner = team["project"], team["owner"]
    base = f"/api/v1/projects/{p}/experiments/{seed_experiment(p, rounds=5)}/metrics"
    first = client.get(base + "?limit=2", headers=owner).json
    assert sorted({m["round"] for m in first["items"]}) == [1, 2] and len(first["items"]) == 8
    assert first["has_more"] is True and first["next_after_round"] == 2
    rounds, after = [], -1
    while True:
        page = client.get(base + f"?format=series&name=loss&source=client-0&after_round={after}&limit=2",
                          headers=owner).json
        rounds += page["series"][0]["rounds"] if page["series"] else []
        after = page["next_after_round"]
        if not page["has_more"]:
            break
    assert rounds == [1, 2, 3, 4, 5]
    empty = client.get(base + "?after_round=5&limit=2", headers=owner).json
    assert empty["items"] == [] and empty["has_more"] is False and empty["next_after_round"] == 5
    unpaged = client.get(base, headers=owner).json
    assert "has_more" not in unpaged and len(unpaged["items"]) == 5 * 4
    for bad in ("limit=0", "after_round=-2", "limit=x"):
        answer = client.get(base + "?" + bad, headers=owner)
        assert answer.status_code == 400 and answer.json["error"]["field"] == bad.split("=")[0]


def test_metrics_etag_304_and_new_rows(app, client, team, seed_experiment):
    from flautim.models import MetricRow, db

    p, owner, viewer = team["project"], team["owner"], team["viewer"]
    exp = seed_experiment(p, rounds=3)
    url = f"/api/v1/projects/{p}/experiments/{exp}/metrics?format=series"
    first = client.get(url, headers=owner)
    etag = first.headers["ETag"]
    assert first.status_code == 200 and "no-cache" in first.headers["Cache-Control"]
    assert "private" in first.headers["Cache-Control"]
    again = client.get(url, headers={**owner, "If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    # The same body for every member; the access check still runs before any cache.
    assert client.get(url, headers=viewer).json == first.json
    assert client.get(url, headers={**team["outsider"], "If-None-Match": etag}).status_code == 404
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 401
    other = f"/api/v1/projects/{team['other_project']}/experiments/{exp}/metrics?format=series"
    assert client.get(other, headers={**team["outsider"], "If-None-Match": etag}).status_code == 404

    # The worker stores round 4: the next answer has it, under a new ETag.
    with app.app_context():
        db.session.add(MetricRow(experiment_id=exp, attempt=1, round=4, phase="central",
                                 source="server", name="accuracy", value=0.99))
        db.session.commit()
    fresh = client.get(url, headers={**owner, "If-None-Match": etag})
    assert fresh.status_code == 200 and fresh.headers["ETag"] != etag
    central = next(s for s in fresh.json["series"] if s["phase"] == "central")
    assert central["rounds"] == [1, 2, 3, 4] and central["values"][-1] == pytest.approx(0.99)
    # Another format or filter is another body, never the cached one.
    rows = client.get(url.replace("format=series", "format=rows"), headers=owner)
    assert rows.headers["ETag"] != fresh.headers["ETag"] and len(rows.json["items"]) == 3 * 4 + 1


def test_metrics_go_gzip_compressed_to_clients_that_accept_it(client, team, seed_experiment):
    import gzip

    p, owner = team["project"], team["owner"]
    exp = seed_experiment(p, rounds=20)
    url = f"/api/v1/projects/{p}/experiments/{exp}/metrics"
    plain = client.get(url, headers=owner)
    assert plain.status_code == 200 and "Content-Encoding" not in plain.headers
    packed = client.get(url, headers={**owner, "Accept-Encoding": "gzip, deflate, br"})
    assert packed.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in packed.headers["Vary"]
    assert gzip.decompress(packed.data) == plain.data and len(packed.data) < len(plain.data)
    # Each encoding is its own representation: its own ETag, and a 304 for either.
    assert packed.headers["ETag"] != plain.headers["ETag"]
    for tag in (packed.headers["ETag"], plain.headers["ETag"]):
        again = client.get(url, headers={**owner, "Accept-Encoding": "gzip", "If-None-Match": tag})
        assert again.status_code == 304 and again.headers["ETag"] == tag
    # A client that refuses gzip, or a body too small to gain, gets it plain.
    refused = client.get(url, headers={**owner, "Accept-Encoding": "gzip;q=0, identity"})
    assert "Content-Encoding" not in refused.headers and refused.data == plain.data
    tiny = client.get(url + "?round_min=99", headers={**owner, "Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in tiny.headers and tiny.json["items"] == []


def test_artifact_of_another_experiment_is_404(client, team, seed_experiment):
    p, owner = team["project"], team["owner"]
    a = seed_experiment(p, name="a", artifact_bytes=b"a")
    b = seed_experiment(p, name="b")
    art = client.get(f"/api/v1/projects/{p}/experiments/{a}/artifacts", headers=owner).json["items"][0]
    wrong = client.get(f"/api/v1/projects/{p}/experiments/{b}/artifacts/{art['id']}/download", headers=owner)
    assert wrong.status_code == 404


def test_archived_project_refuses_writes_with_409(app, client, team):
    p, owner = team["project"], team["owner"]
    ids = upload_bundle(client, p, owner)
    with app.app_context():
        from flautim.models import Project, db, utcnow

        db.session.get(Project, p).archived_at = utcnow()
        db.session.commit()
    refused = client.post(f"/api/v1/projects/{p}/experiments", headers=owner, json={"name": "x", **ids})
    assert refused.status_code == 409 and "arquivado" in refused.json["error"]["message"]
    assert client.get(f"/api/v1/projects/{p}/datasets", headers=owner).status_code == 200


def test_an_experiments_url_checks_the_token_as_every_call_does(app, client, team, seed_experiment):
    """The token, the membership and the experiment come from one query on an experiment's
    URL: a revoked token or a deactivated user is still 401 there, before any 404 or 403,
    and the token's use is still recorded."""
    from flautim.models import ApiToken, User, db

    p = team["project"]
    exp = seed_experiment(p)
    base = f"/api/v1/projects/{p}/experiments/{exp}"
    with app.app_context():
        db.session.execute(update(ApiToken).values(last_used_at=None))
        db.session.commit()
    assert client.get(base, headers=team["viewer"]).json["id"] == exp
    with app.app_context():
        viewer_token = db.session.scalars(select(ApiToken).join(User).where(User.email == "leitor@example.org")).one()
        assert viewer_token.last_used_at is not None
        viewer_token.revoked_at = viewer_token.last_used_at
        db.session.scalars(select(User).where(User.email == "fora@example.org")).one().active = False
        db.session.commit()
    for headers in (team["viewer"], team["outsider"]):
        for url in (base, base + "/metrics", f"/api/v1/projects/{p}/experiments/{exp + 1}"):
            refused = client.get(url, headers=headers)
            assert refused.status_code == 401 and refused.json["error"]["code"] == "invalid_token", url
        assert client.post(base + "/run", headers=headers).status_code == 401
    # The owner's token on the same URLs: the experiment, a missing one, and its role.
    assert client.get(base + "/metrics", headers=team["owner"]).status_code == 200
    assert client.get(f"/api/v1/projects/{p}/experiments/{exp + 1}", headers=team["owner"]).status_code == 404
