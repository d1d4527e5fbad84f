"""A real run's coded error and warnings, stored by the real ingestor, read in the user's
language: the API by Accept-Language (the English text still there), the experiment page
in Debian's chromium in pt-BR and in English; hostile events fall back to their text."""

from __future__ import annotations

import io
import json
import re
import time

import pytest

from flautim.fl.events import EVENT_PREFIX, event_line
from tests.api.conftest import bearer
from tests.conftest import PASSWORD, csrf_token_from, login
from tests.fl.runs import copy_bundle, edit, flautim_run

PT_ERROR = "a camada 'net.0' esperava 60 entradas e recebeu 64"
EN_ERROR = "layer 'net.0' expected 60 inputs, got 64"
HOSTILE_MESSAGE = "<img src=x id=planted> unknown code"


@pytest.fixture(scope="module")
def run_events(tmp_path_factory):
    """What `flautim run` printed for a model whose first layer takes 60 features of the
    data's 64, with a misspelt hyperparameter."""
    bundle = copy_bundle(tmp_path_factory.mktemp("shape"))
    edit(bundle / "api.py", "nn.Linear(64, 32)", "nn.Linear(60, 32)")
    edit(bundle / "hyperparameters.py", "learning_rate = 0.1\n", "learning_rate = 0.1\nlearnin_rate = 0.05\n")
    code, events, stderr = flautim_run(bundle)
    assert code == 1, stderr[-2000:]
    return events


def _hostile_lines() -> list[str]:
    now = time.time()
    return [
        # An unknown code: the English text, as text.
        EVENT_PREFIX + json.dumps({"v": 1, "type": "warning", "ts": now, "message": HOSTILE_MESSAGE, "hint": "",
                                   "code": "no.such_code", "params": {}, "help": "javascript:alert(1)"}),
        # A known code whose params carry markup and placeholders: substituted once, as text.
        EVENT_PREFIX + json.dumps({"v": 1, "type": "warning", "ts": now + 1, "message": "english", "hint": "",
                                   "code": "hyperparameters.unknown_key",
                                   "params": {"key": "<b id=bold>k</b>", "suggestion": "%(key)s"}}),
    ]


@pytest.fixture
def failed_run(app, run_events, make_user, make_project, tmp_path):
    """A failed experiment holding the run's events, stored through the worker's ingestor."""
    from flautim.models import Experiment, ExperimentState, db
    from flautim.worker.ingest import Ingestor

    owner = make_user("dona@example.org")
    project = make_project("Projeto", owner)
    with app.app_context():
        experiment = Experiment(project_id=project, name="forma errada", created_by_id=owner, attempt=1,
                                state=ExperimentState.FAILED, rounds_total=1)
        db.session.add(experiment)
        db.session.commit()
        experiment_id = experiment.id
    ingest = Ingestor(app.extensions["flautim_config"], experiment_id, 1, tmp_path, redis_client=None)
    for event in run_events:
        if event["type"] != "run_finished":
            ingest.line("server", "stdout", event_line(event))
    for line in _hostile_lines():
        ingest.line("server", "stdout", line)
    ingest.close()
    return {"owner": owner, "project": project, "experiment": experiment_id}


def test_a_shape_mismatch_is_emitted_as_a_code_with_params(run_events):
    (error,) = [e for e in run_events if e["type"] == "error"]
    assert error["code"] == "model.linear_input"
    assert error["help"] == "incompatibilidade-de-tamanho-de-tensor"
    params = error["params"]
    assert (params["layer"], params["expected"], params["got"]) == ("net.0", 60, 64)
    assert params["shape"][-1] == 64
    assert error["where"] == "api.py:15"
    # The English text stays for `flautim run` and the logs.
    assert "expected 60 input features" in error["what"] and error["hint"]
    (warning,) = [e for e in run_events if e["type"] == "warning"]
    assert warning["code"] == "hyperparameters.unknown_key"
    assert warning["params"] == {"key": "learnin_rate", "suggestion": "learning_rate"}
    assert "did you mean `learning_rate`" in warning["message"]


def _events(client, failed_run, language: str | None, token: str) -> tuple[dict, list[dict]]:
    url = f"/api/v1/projects/{failed_run['project']}/experiments/{failed_run['experiment']}/events"
    headers = bearer(token) | ({"Accept-Language": language} if language else {})
    response = client.get(url, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.headers, response.json["items"]


def _token(app, user_id: int) -> str:
    from flautim.models import User, db
    from flautim.web.api.tokens import create_token

    with app.app_context():
        return create_token(db.session.get(User, user_id), "t")[1]


def test_the_api_answers_in_the_accepted_language(app, client, failed_run):
    token = _token(app, failed_run["owner"])
    headers, items = _events(client, failed_run, "pt-BR,pt;q=0.9", token)
    assert headers["Content-Language"] == "pt-BR" and "Accept-Language" in headers["Vary"]
    (error,) = [i for i in items if i["type"] == "error"]
    message = error["message"]
    assert message["text"] == f"api.py:15: {PT_ERROR}"
    assert message["hint"].startswith("as camadas anteriores produzem 64 valores por exemplo")
    assert message["language"] == "pt-BR" and message["translated"] is True
    assert message["code"] == "model.linear_input" and message["help"] == "incompatibilidade-de-tamanho-de-tensor"
    assert "expected 60 input features" in error["payload"]["what"]  # the English text is still there

    _headers, items = _events(client, failed_run, "en-US,en;q=0.8", token)
    (error,) = [i for i in items if i["type"] == "error"]
    assert error["message"]["text"] == f"api.py:15: {EN_ERROR}" and error["message"]["language"] == "en"
    warnings = [i["message"] for i in items if i["type"] == "warning"]
    assert warnings[0]["what"] == "unknown key `learnin_rate` is passed to your code as is; did you mean `learning_rate`?"
    assert warnings[0]["where"] == "hyperparameters.py:6"
    # Hostile events: the unknown code's own text, no help link; markup in params stays text.
    assert warnings[1] == {"language": "en", "text": HOSTILE_MESSAGE, "what": HOSTILE_MESSAGE, "where": "",
                           "hint": "", "translated": False}
    assert warnings[2]["what"] == ("unknown key `<b id=bold>k</b>` is passed to your code as is; "
                                   "did you mean `%(key)s`?")
    # Events that are not messages get none.
    assert all("message" not in i for i in items if i["type"] not in ("error", "warning"))


def _catalog_of(client, page: str) -> tuple[dict, object]:
    """The page's catalog script (its own versioned URL), and the response that served it."""
    src = re.search(r'<script src="(/projects/run-messages/[^"]+\.js)"', page).group(1)
    response = client.get(src)
    body = response.get_data(as_text=True)
    prefix = "window.FlautimRunMessagesCatalog = "
    assert body.startswith(prefix) and body.rstrip().endswith(";")
    return json.loads(body[len(prefix):].rstrip().rstrip(";")), response


def test_the_page_carries_each_codes_text_in_its_language(client, failed_run):
    login(client, "dona@example.org")
    url = f"/projects/{failed_run['project']}/experiments/{failed_run['experiment']}"
    page = client.get(url).get_data(as_text=True)
    catalog, response = _catalog_of(client, page)
    assert catalog["model.linear_input"]["what"] == "a camada '%(layer)s' esperava %(expected)s entradas e recebeu %(got)s"
    # An ignored key is a diagnosis's banner, not also a line in the run's warnings.
    assert catalog["hyperparameters.ignored_key"]["as_diagnosis"] is True
    assert "as_diagnosis" not in catalog["hyperparameters.unknown_key"]
    # Kept by the browser: the texts are not part of each view of the page.
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert "a camada" not in page and "Avisos da execução" in page
    token = csrf_token_from(page)
    client.post("/language", data={"csrf_token": token, "locale": "en", "next": url})
    page = client.get(url).get_data(as_text=True)
    catalog, _ = _catalog_of(client, page)
    assert catalog["model.linear_input"]["what"] == "layer '%(layer)s' expected %(expected)s inputs, got %(got)s"


def test_the_catalog_script_answers_only_the_sites_languages(client):
    assert client.get("/projects/run-messages/xx.0123456789abcdef.js").status_code == 404
    stale = client.get("/projects/run-messages/en.0000000000000000.js")
    assert stale.status_code == 200 and stale.headers["Cache-Control"] == "no-cache"


@pytest.mark.browser
def test_saidas_shows_the_error_and_warnings_in_portuguese_then_english(live_server, page, failed_run):
    from playwright.sync_api import expect

    console_errors: list[str] = []
    page.on("console", lambda msg: msg.type == "error" and console_errors.append(msg.text))
    base = live_server.url
    page.goto(f"{base}/auth/login")
    page.fill("input[name=email]", "dona@example.org")
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]:not(.link)")
    url = f"{base}/projects/{failed_run['project']}/experiments/{failed_run['experiment']}"
    page.goto(url)
    expect(page.locator("#error-what")).to_have_text(PT_ERROR)
    assert page.inner_text("#error-where").startswith("api.py:15")
    assert "in_features=64" in page.inner_text("#error-hint")
    assert page.get_attribute("#error-help", "href").endswith("#incompatibilidade-de-tamanho-de-tensor")
    page.wait_for_selector("#run-warnings-list li >> nth=2")
    warnings = page.locator("#run-warnings-list li").all_inner_texts()
    assert warnings[0].startswith("hyperparameters.py:6: a chave desconhecida `learnin_rate` é passada ao seu código")
    assert warnings[1].startswith(HOSTILE_MESSAGE)
    assert "a chave desconhecida `<b id=bold>k</b>`" in warnings[2] and "`%(key)s`?" in warnings[2]
    # Markup from the sandbox was written as text, never parsed.
    assert page.locator("#planted").count() == 0 and page.locator("#bold").count() == 0
    warning_links = page.locator("#run-warnings-list li")
    assert warning_links.nth(0).locator("a").get_attribute("href").endswith("#configuracao-de-hiperparametros")
    assert warning_links.nth(1).locator("a").count() == 0

    page.click("form.lang button[value=en]")  # back on the same page, in English
    expect(page.locator("#error-what")).to_have_text(EN_ERROR)
    assert console_errors == []


def test_uploads_name_the_runtimes_errors_in_the_users_language(app, client, make_user, make_project):
    """The same checks at upload time: the form in pt-BR, the API by Accept-Language."""
    import html as html_module

    from tests.experiments_support import setup_project, upload

    ctx = setup_project(make_user, make_project, client)
    r = upload(client, ctx["project_id"], "hyperparameters", {"file": ("hyperparameters.py", b"rounds = 0\n")})
    page = html_module.unescape(r.get_data(as_text=True))
    assert r.status_code == 400
    assert "`rounds` deve ser um número inteiro de 1 a 10000, recebeu 0" in page
    assert "por exemplo `rounds = 10`" in page
    r = upload(client, ctx["project_id"], "model-code", {"file": ("api.py", b"import torch\nx = 1\n")})
    assert "api.py não define uma subclasse de Experiment" in html_module.unescape(r.get_data(as_text=True))

    url = f"/api/v1/projects/{ctx['project_id']}/hyperparameters"
    headers = bearer(_token(app, ctx["owner"])) | {"Accept-Language": "en"}
    bad = client.post(url, headers=headers, content_type="multipart/form-data",
                      data={"hyperparameters_file": (io.BytesIO(b"rounds = 3\nstrategy = 'FedAvq'\n"), "hp.py")})
    assert bad.status_code == 400
    error = bad.json["error"]
    assert error["line"] == 2 and "`strategy` must be one of" in error["message"], error
    assert "did you mean 'FedAvg'?" in json.dumps(error)


def test_flautim_submit_prints_the_apis_message(app, client, failed_run):
    """The terminal client (flautim submit) shows what the API rendered, in pt-BR by
    default, and never a control character from the sandbox."""
    from flautim.api_client.progress import ProgressView

    _headers, items = _events(client, failed_run, None, _token(app, failed_run["owner"]))
    out = io.StringIO()
    view = ProgressView(out)
    for item in items:
        view.feed(item)
    view.feed({"type": "error", "payload": {"what": "\x1b[2Jboom", "where": "api.py:1", "hint": ""}})
    text = out.getvalue()
    assert f"erro: {PT_ERROR} (api.py:15)" in text
    assert "  dica: as camadas anteriores produzem 64 valores" in text
    assert "aviso: hyperparameters.py:6: a chave desconhecida `learnin_rate`" in text
    assert "erro: [2Jboom (api.py:1)" in text and "\x1b" not in text


def test_a_failed_dataset_inspection_reads_in_the_users_language(app, client, make_user, make_project, db_session):
    """The worker stores a failed inspection as {"error": the runtime's fields}: the dataset's
    page shows its text (translated when coded), never the stored dict."""
    import html as html_module

    from flautim.fl.errors import FlautimError
    from flautim.models import Dataset
    from tests.experiments_support import setup_project, upload_mnist_assets

    ctx = setup_project(make_user, make_project, client)
    dataset_id = upload_mnist_assets(client, ctx["project_id"])["dataset_id"]
    error = FlautimError("dataset.py must define exactly one subclass of Dataset (found: A, B)", where="dataset.py",
                         hint="keep one", code="bundle.one_subclass",
                         params={"file": "dataset.py", "base": "Dataset", "found": "A, B"})
    url = f"/projects/{ctx['project_id']}/datasets/{dataset_id}"
    for stored, shown in [
        ({"error": error.event_fields()}, "dataset.py deve definir exatamente uma subclasse de Dataset (encontradas: A, B)"),
        ({"error": {"what": "cannot read the files", "where": "dataset.py:3", "hint": "", "code": "no.such"}},
         "cannot read the files"),
    ]:
        dataset = db_session.get(Dataset, dataset_id)
        dataset.inspection_status, dataset.inspection = "error", stored
        db_session.commit()
        page = html_module.unescape(client.get(url).get_data(as_text=True))
        assert f"<strong>{shown}</strong>" in page
        assert "{'what'" not in page
