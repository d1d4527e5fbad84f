"""Every metric a run reports, charted (issue 16 §1), through the real app and the worker's
real Ingestor: a regression run (MSE loss, MAE metric, no accuracy) leads with its own
metric in the summary, the curves, Compare, the Modelos table and the API; the per-client
spread and curves come from the database, bounded."""

from __future__ import annotations

import statistics

import pytest
from sqlalchemy import select

from tests.experiments_support import (
    event_line,
    feed_run,
    make_experiment,
    setup_project,
    switch_user,
    upload,
    upload_mnist_assets,
)

MSE = {1: 0.9, 2: 0.5, 3: 0.6}
MAE = {1: 0.7, 2: 0.4, 3: 0.45}


@pytest.fixture
def ctx(app, make_user, make_project, client, db_session):
    c = setup_project(make_user, make_project, client)
    c["ids"] = upload_mnist_assets(client, c["project_id"])
    return c


def regression_run_lines(rounds: int = 3, clients: int = 3):
    """What a regression federation prints: MSE as the loss, MAE (and MSE) as metrics."""
    yield "server", event_line("run_started", experiment="Reg", transport="fast", clients=clients, rounds=rounds,
                               strategy="FedAvg", hyperparameters={"rounds": rounds})
    for r in range(1, rounds + 1):
        yield "server", event_line("round_started", round=r)
        for c in range(clients):
            metrics = {"mse": MSE[r] + c, "mae": MAE[r] + c}
            yield "server", event_line("client_train", round=r, client=c, loss=MSE[r] + c, metrics=metrics,
                                       examples=100, duration_s=0.1)
            yield "server", event_line("client_evaluate", round=r, client=c, loss=MSE[r] + 10 * c, metrics=metrics,
                                       examples=10, duration_s=0.1)
        yield "server", event_line("aggregated", round=r, phase="train", loss=MSE[r], metrics={"mse": MSE[r], "mae": MAE[r]})
        yield "server", event_line("aggregated", round=r, phase="evaluate", loss=MSE[r],
                                   metrics={"mse": MSE[r], "mae": MAE[r]})
        yield "server", event_line("central_evaluate", round=r, loss=MSE[r], metrics={"mse": MSE[r], "mae": MAE[r]})
    yield "server", event_line("run_finished", status="completed", duration_s=2.0, rounds_completed=rounds)


def _hyperparameters(client, pid: int, source: bytes) -> int:
    from flautim.models import HyperparameterFile, db

    r = upload(client, pid, "hyperparameters", {"file": ("hyperparameters.py", source)})
    assert r.status_code == 302, r.get_data(as_text=True)[:2000]
    return db.session.scalar(select(HyperparameterFile.id).where(HyperparameterFile.project_id == pid)
                             .order_by(HyperparameterFile.id.desc()).limit(1))


def test_a_regression_run_leads_with_its_first_metric_everywhere(app, client, ctx, db_session, tmp_path):
    from flautim.models import Experiment, db

    pid = ctx["project_id"]
    exp_id = make_experiment(pid, ctx["ids"], name="Regressão", state="running")
    feed_run(app, exp_id, tmp_path, regression_run_lines())

    # The worker's running summary: the first metric reported (best_metric is the default loss).
    db.session.expire_all()
    summary = db.session.get(Experiment, exp_id).summary
    assert (summary["metric"], summary["metric_mode"]) == ("mse", "min")
    assert summary["metric_value"] == MSE[3] and summary["metric_best"] == min(MSE.values())
    assert "accuracy" not in summary and "best_accuracy" not in summary

    curves = client.get(f"/projects/{pid}/experiments/{exp_id}/curves.json").get_json()
    assert curves["headline"] == {"name": "mse", "mode": "min"}
    assert curves["names"] == ["loss", "mse", "mae"]  # the loss, the headline, then as reported
    for name, values in (("mse", MSE), ("mae", MAE)):
        for key in ("train", "evaluate", "central"):
            assert curves["metrics"][name][key] == [[r, pytest.approx(v)] for r, v in values.items()], (name, key)
    assert curves["best"]["mae"]["central"] == pytest.approx(min(MAE.values()))  # lower is better
    assert curves["modes"] == {"loss": "min", "mse": "min", "mae": "min"}
    assert "accuracy" not in curves["metrics"]


def test_the_checkpoints_best_metric_leads_the_cards_compare_and_the_models_table(app, client, ctx, db_session,
                                                                                   tmp_path):
    from flautim.models import Experiment, db

    pid = ctx["project_id"]
    hp_id = _hyperparameters(client, pid, b'rounds = 3\ncheckpoint = {"best_metric": "mae"}\n')
    a = make_experiment(pid, {**ctx["ids"], "hyperparameter_file_id": hp_id}, name="MAE", state="running")
    feed_run(app, a, tmp_path / "a", regression_run_lines())
    b = make_experiment(pid, ctx["ids"], name="MSE", state="running")
    feed_run(app, b, tmp_path / "b", regression_run_lines(rounds=2))

    db.session.expire_all()
    summary = db.session.get(Experiment, a).summary
    assert (summary["metric"], summary["metric_value"], summary["metric_best"]) == ("mae", MAE[3], MAE[2])
    assert client.get(f"/projects/{pid}/experiments/{a}/curves.json").get_json()["headline"] == {
        "name": "mae", "mode": "min"}

    html = client.get(f"/projects/{pid}/experiments/compare?ids={a}&ids={b}").get_data(as_text=True)
    table = html.split('data-testid="compare-table"', 1)[1]
    headlines = [cell.split("</td>", 1)[0] for cell in table.split('data-testid="compare-headline">')[1:]]
    assert [h.split("</code>")[0] for h in headlines] == ["<code>mae", "<code>mse"]
    assert "0.4500" in table and "0.4000" in table  # A: final and best MAE (the lowest)
    assert "0.5000" in table  # B: final MSE after 2 rounds (and its best)
    # The picker offers every metric, the first run's headline first.
    assert """data-metrics='["mae", "loss", "mse"]'""" in html
    assert "Acurácia" not in html

    # The Modelos table leads with the headline (the run's checkpoints carry metrics).
    from flautim.models import ModelArtifact

    db.session.add(ModelArtifact(experiment_id=a, attempt=1, round=3, kind="final", format="pytorch",
                                 storage_path="x", size_bytes=1, sha256="0" * 64,
                                 card={"metrics": {"mse": 0.6, "mae": 0.45}}))
    db.session.commit()
    models = client.get(f"/projects/{pid}/experiments/{a}/models").get_data(as_text=True)
    assert 'data-testid="models-headline">mae: 0.4500</strong>' in models


def test_the_experiment_page_has_a_metric_chart_picker_and_per_client_view(app, client, ctx, db_session, tmp_path):
    pid = ctx["project_id"]
    exp_id = make_experiment(pid, ctx["ids"], state="running")
    feed_run(app, exp_id, tmp_path, regression_run_lines())
    page = client.get(f"/projects/{pid}/experiments/{exp_id}").get_data(as_text=True)
    for marker in ('id="chart-metric"', 'id="metric-picker"', 'id="metric-current"', 'id="metric-best"',
                   'id="client-curves"', 'id="chart-clients"', "js/client_curves.js"):
        assert marker in page, marker
    assert 'id="chart-accuracy"' not in page and "Acurácia atual" not in page


def test_client_spread_and_curves_come_from_the_database(app, client, ctx, db_session, tmp_path):
    pid = ctx["project_id"]
    exp_id = make_experiment(pid, ctx["ids"], state="running")
    feed_run(app, exp_id, tmp_path, regression_run_lines())
    url = f"/projects/{pid}/experiments/{exp_id}/client-curves.json"

    body = client.get(url, query_string={"name": "loss", "phase": "evaluate", "clients": "2,0"}).get_json()
    assert [p["round"] for p in body["spread"]] == [1, 2, 3]
    for point in body["spread"]:
        values = [MSE[point["round"]] + 10 * c for c in range(3)]
        assert (point["min"], point["median"], point["max"], point["clients"]) == pytest.approx(
            (min(values), statistics.median(values), max(values), 3))
    assert [c["client"] for c in body["clients"]] == [2, 0]
    assert body["clients"][0]["values"] == pytest.approx([MSE[r] + 20 for r in (1, 2, 3)])
    assert body["clients"][1]["rounds"] == [1, 2, 3]

    mae = client.get(url, query_string={"name": "mae", "phase": "train"}).get_json()
    assert mae["clients"] == [] and mae["spread"][0]["median"] == pytest.approx(MAE[1] + 1)
    # Nothing reported under that name: an empty answer, not an error.
    assert client.get(url, query_string={"name": "accuracy"}).get_json()["spread"] == []

    for params, field in (({"clients": "1,2,3,4,5,6,7,8,9"}, "clients"), ({"clients": "a"}, "clients"),
                          ({"clients": "-1"}, "clients"), ({"phase": "central"}, "phase"),
                          ({"name": "x" * 65}, "name")):
        r = client.get(url, query_string=params)
        assert r.status_code == 400 and r.get_json()["field"] == field, params
        assert r.get_json()["error"]

    switch_user(client, "fora@example.org")
    assert client.get(url).status_code == 404


def test_an_even_number_of_clients_has_the_mean_of_the_middle_two_as_median(app, client, ctx, db_session, tmp_path):
    pid = ctx["project_id"]
    exp_id = make_experiment(pid, ctx["ids"], state="running")
    feed_run(app, exp_id, tmp_path, regression_run_lines(rounds=1, clients=4))
    body = client.get(f"/projects/{pid}/experiments/{exp_id}/client-curves.json",
                      query_string={"phase": "evaluate"}).get_json()
    values = [MSE[1] + 10 * c for c in range(4)]
    assert body["spread"] == [{"round": 1, "min": pytest.approx(values[0]), "median": pytest.approx(statistics.median(values)),
                               "max": pytest.approx(values[-1]), "clients": 4}]


def test_client_curves_of_a_long_run_are_bounded(app, client, ctx, db_session):
    from flautim.models import Experiment, MetricRow, db

    pid = ctx["project_id"]
    exp_id = make_experiment(pid, ctx["ids"], state="running")
    attempt = db.session.get(Experiment, exp_id).attempt
    rounds = 1_234
    db.session.add_all([MetricRow(experiment_id=exp_id, attempt=attempt, round=r, phase="evaluate", source=f"client-{c}",
                                  name="loss", value=r + c) for r in range(1, rounds + 1) for c in range(3)])
    db.session.commit()
    max_points = app.extensions["flautim_config"].CURVE_MAX_POINTS
    body = client.get(f"/projects/{pid}/experiments/{exp_id}/client-curves.json",
                      query_string={"clients": "1"}).get_json()
    spread_rounds = [p["round"] for p in body["spread"]]
    assert body["downsampled"] is True and len(spread_rounds) <= max_points + 1
    assert spread_rounds[-1] == rounds and spread_rounds == sorted(spread_rounds)
    assert body["clients"][0]["rounds"] == spread_rounds
    assert all(p["min"] == p["round"] and p["max"] == p["round"] + 2 for p in body["spread"])


def test_a_run_reporting_hundreds_of_metric_names_charts_a_bounded_few(app, client, ctx, db_session):
    """The loss, the checkpoint's metric (however late it came) and the first names
    reported, at most MAX_CURVE_METRICS of them."""
    from flautim.models import Experiment, MetricRow, db
    from flautim.web.experiments.results import MAX_CURVE_METRICS

    pid = ctx["project_id"]
    hp_id = _hyperparameters(client, pid, b'rounds = 3\ncheckpoint = {"best_metric": "late_f1"}\n')
    exp_id = make_experiment(pid, {**ctx["ids"], "hyperparameter_file_id": hp_id}, state="running")
    attempt = db.session.get(Experiment, exp_id).attempt
    rows = [MetricRow(experiment_id=exp_id, attempt=attempt, round=1, phase="evaluate", source="aggregate",
                      name=f"m{i:03d}", value=float(i)) for i in range(300)]
    rows += [MetricRow(experiment_id=exp_id, attempt=attempt, round=1, phase="evaluate", source="aggregate",
                       name=name, value=0.5) for name in ("late_f1", "loss")]
    db.session.add_all(rows)
    db.session.commit()
    curves = client.get(f"/projects/{pid}/experiments/{exp_id}/curves.json").get_json()
    assert curves["headline"] == {"name": "late_f1", "mode": "max"}
    assert len(curves["names"]) == MAX_CURVE_METRICS
    assert curves["names"][:4] == ["loss", "late_f1", "m000", "m001"]
    assert set(curves["metrics"]) == set(curves["names"]) and curves["metrics_left_out"] > 0
