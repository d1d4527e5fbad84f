"""The runtime's coded errors and warnings rendered through the catalog (flautim.run_messages):
every code has its texts in both languages, and what the sandbox sends cannot break out."""

from __future__ import annotations

import re

import pytest

from flautim import help_topics, run_messages
from flautim.fl import error_codes
from flautim.fl.errors import FlautimError
from flautim.fl.events import EventWriter, parse_line

ENGLISH = run_messages.gettext_for("en")

LINEAR = {
    "what": "the model failed on the first batch: layer 'fc1' (Linear(...)) expected 784 input features "
    "(last dimension), got 28 (input shape [32, 28])",
    "where": "api.py:19",
    "hint": "the layers before it produce 28 features per example: ...",
    "kind": "user_code",
    "code": "model.linear_input",
    "params": {"layer": "fc1", "expected": 784, "got": 28, "shape": [32, 28]},
    "help": "incompatibilidade-de-tamanho-de-tensor",
}


def test_the_issue_example_reads_in_portuguese_and_in_english():
    message = run_messages.render(LINEAR)
    assert message.text() == "api.py:19: a camada 'fc1' esperava 784 entradas e recebeu 28"
    assert message.hint.startswith("as camadas anteriores produzem 28 valores por exemplo (entrada de formato [32, 28])")
    assert message.help == "incompatibilidade-de-tamanho-de-tensor" and message.translated
    english = run_messages.render(LINEAR, ENGLISH)
    assert english.text() == "api.py:19: layer 'fc1' expected 784 inputs, got 28"
    assert "set in_features=28" in english.hint


def test_every_runtime_code_has_a_template_and_an_english_translation():
    assert set(error_codes.CODES) <= set(run_messages.TEMPLATES)
    placeholder = re.compile(r"%\((\w+)\)s")
    for code, template in run_messages.TEMPLATES.items():
        for text in (template.what, *template.hints):
            english = ENGLISH(text)
            assert english != text, f"{code}: {text!r} has no English translation"
            # The translation names the same params (python-format, checked by msgfmt too).
            assert set(placeholder.findall(english)) <= set(placeholder.findall(text)) | set(
                placeholder.findall(template.what)), code
    # The runtime cannot import the help pages' list: its slugs must be published ones.
    assert set(filter(None, error_codes.CODES.values())) <= set(help_topics.FAQ_SLUGS)


def test_a_coded_error_travels_through_the_event_stream(tmp_path):
    error = FlautimError("english what", where="api.py:3", hint="english hint", code="training.loss_not_finite",
                         params={"loss": "nan", "round": 2, "epoch": 1}, client=1)
    with (tmp_path / "events").open("w+") as stream:
        EventWriter(stream).emit("error", **error.event_fields())
        stream.seek(0)
        event = parse_line(stream.readline())
    assert event["v"] == 1 and event["what"] == "english what" and event["hint"] == "english hint"
    assert event["code"] == "training.loss_not_finite" and event["help"] == "configuracao-de-hiperparametros"
    # A client's error re-raised on the server keeps its code.
    again = FlautimError.from_fields(error.event_fields())
    assert (again.code, again.params, again.help, again.client) == (error.code, error.params, error.help, 1)
    message = run_messages.render(event)
    assert message.what == "a perda de treino virou nan na rodada 2, época local 1" and message.client == 1


def test_hints_take_the_first_whose_params_are_there():
    event = {"what": "x", "code": "hyperparameters.choice",
             "params": {"key": "strategy", "options": "'FedAvg', 'FedProx'", "got": "'FedAvq'"}}
    assert run_messages.render(event).hint == "escolha um de 'FedAvg', 'FedProx'"
    event["params"]["suggestion"] = "'FedAvg'"
    assert run_messages.render(event).hint == "você quis dizer 'FedAvg'?"


@pytest.mark.parametrize(
    "change",
    [
        {"code": "no.such_code"},
        {"code": ["model.linear_input"]},
        {"params": "layer=fc1"},
        {"params": {"layer": "fc1", "expected": 784}},  # "got" missing
        {"params": {**LINEAR["params"], "Bad-Name": 1}},
        {"params": {**LINEAR["params"], "layer": {"nested": "object"}}},
        {"params": {**LINEAR["params"], "shape": [[1, 2], [3]]}},
        {"params": {**LINEAR["params"], "shape": list(range(17))}},
        {"params": {f"p{i}": i for i in range(33)}},
    ],
)
def test_unknown_codes_and_bad_params_fall_back_to_the_english_text(change):
    message = run_messages.render({**LINEAR, **change})
    assert not message.translated and message.code is None and message.help is None
    assert message.what == LINEAR["what"] and message.hint == LINEAR["hint"]


def test_params_are_text_substituted_once_and_cut():
    hostile = {
        **LINEAR,
        "params": {"layer": "%(got)s {0.__class__} %s %%", "expected": "x" * 5000, "got": "\x1b[31mred\u2028",
                   "shape": [1, None, True, 2.5]},
    }
    message = run_messages.render(hostile)
    assert message.translated
    # Neither the placeholders nor a format language inside a param are read again.
    assert message.what.startswith("a camada '%(got)s {0.__class__} %s %%' esperava xxx")
    assert len(message.what) < 2 * run_messages.MAX_PARAM_CHARS + 100
    assert "[31mred" in message.what and "\x1b" not in message.what and "\u2028" not in message.what
    assert "[1, None, True, 2.5]" in message.hint


def test_the_english_fallback_is_bounded_and_printable():
    message = run_messages.render({"what": "w" * 100_000 + "\x00", "where": "x" * 10_000, "hint": ["a", 1],
                                   "client": "3"})
    assert len(message.what) == run_messages.MAX_TEXT_CHARS and message.what.endswith("…")
    assert len(message.where) == run_messages.MAX_WHERE_CHARS
    assert message.hint == "['a', 1]" and message.client is None
    assert run_messages.render({"message": "a warning", "hint": None}).what == "a warning"


def test_a_slug_the_event_names_is_not_trusted():
    message = run_messages.render({**LINEAR, "code": "hyperparameters.unknown_key", "help": "javascript:alert(1)",
                                   "params": {"key": "lr2", "suggestion": "lr"}})
    assert message.help == "configuracao-de-hiperparametros"
    assert run_messages.render({"what": "x", "help": "contato-suporte"}).help is None


def test_user_code_that_raises_names_the_round_in_the_readers_language(tmp_path):
    """The worker (no Flask) renders for an email in its reader's language."""
    from flautim.fl.errors import user_code_error

    (tmp_path / "api.py").write_text("def training_loop():\n    raise ValueError('bad batch')\n")
    namespace: dict = {}
    exec(compile((tmp_path / "api.py").read_text(), str(tmp_path / "api.py"), "exec"), namespace)
    try:
        namespace["training_loop"]()
    except ValueError as exc:
        error = user_code_error(exc, tmp_path, "training_loop raised in round 3, local epoch 1",
                                code="user_code.training_loop_raised", params={"round": 3, "epoch": 1})
    fields = error.event_fields()
    assert fields["what"] == "training_loop raised in round 3, local epoch 1: ValueError: bad batch"
    assert fields["where"] == "api.py:2"
    assert run_messages.render(fields, run_messages.gettext_for("pt_BR")).text() == (
        "api.py:2: training_loop lançou um erro na rodada 3, época local 1: ValueError: bad batch")
    assert run_messages.render(fields, run_messages.gettext_for("en")).what == fields["what"]
    assert run_messages.render(fields, run_messages.gettext_for("xx")).translated  # no catalog: pt-BR


def test_partitioning_options_out_of_range_are_coded_at_the_line():
    from flautim.fl.hyperparameters import HyperparameterError, parse_hyperparameters

    with pytest.raises(HyperparameterError) as caught:
        parse_hyperparameters("rounds = 2\npartitioning = 'dirichlet'\npartitioning_options = {'alpha': 0.0}\n")
    fields = caught.value.event_fields()
    assert fields["where"] == "hyperparameters.py:3" and fields["code"] == "partition.option_range"
    message = run_messages.render(fields)
    assert message.what == "partitioning_options['alpha'] deve ser um número de 0.001 a 10000, recebeu 0.0"
    assert message.hint == "por exemplo partitioning_options = {'alpha': 0.5}"


@pytest.mark.parametrize(
    ("source", "code", "portuguese"),
    [
        ("rounds = 0\n", "hyperparameters.integer_range", "`rounds` deve ser um número inteiro de 1 a 10000, recebeu 0"),
        ("import os\n", "hyperparameters.not_assignment",
         "`import os` não é uma atribuição de um literal (comandos Import não são permitidos)"),
        ("learning_rate = 0.2\nlr = 0.1\n", "hyperparameters.alias_twice",
         "`lr` é outro nome para `learning_rate`, já definido na linha 1"),
        ("checkpoint = {'keep': 1}\n", "hyperparameters.unknown_options", "`checkpoint` tem opções desconhecidas: keep"),
        ("num_clients = 2\ndifferential_privacy = {'noise_multiplier': 1.0, 'clipping_norm': 1.0, "
         "'num_sampled_clients': 5}\n", "hyperparameters.dp_more_than_clients",
         "differential_privacy.num_sampled_clients (5) é maior que num_clients (2)"),
    ],
)
def test_hyperparameter_errors_are_coded(source, code, portuguese):
    from flautim.fl.hyperparameters import HyperparameterError, parse_hyperparameters

    with pytest.raises(HyperparameterError) as caught:
        parse_hyperparameters(source)
    fields = caught.value.event_fields()
    assert fields["code"] == code and fields["help"] == "configuracao-de-hiperparametros"
    message = run_messages.render(fields)
    assert message.what == portuguese and message.hint
    assert run_messages.render(fields, ENGLISH).what == caught.value.what  # the same words in English
