"""The runtime's errors and warnings in the user's language: one template per code.

An `error` or `warning` event from a run carries its English text (`what` / `message`,
`hint`) and, since the runtime names its failures (flautim/fl/error_codes.py), a `code`
with `params`. `render` turns such an event into what a page, the API or an email shows:
the code's pt-BR template (the catalog's msgid) translated by the `gettext` it is given and
filled with the params. The event comes from the sandbox and is hostile: a code that is
not listed here, params that do not fit the template, or a template left unfilled fall
back to the English text, cut to a bounded length. Params are substituted as text, once
(`%(name)s` only), never through a format language that could reach attributes.

Platform checks that emit their own events (the diagnoses) add their codes here too.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from babel.support import Translations

from flautim import translation
from flautim.fl import error_codes


def _l(message: str) -> str:
    """Marks a msgid for the catalog (scripts/i18n extracts it); translated when shown."""
    return message


@dataclass(frozen=True)
class Template:
    """A code's pt-BR texts; `hints` in order of preference: the first whose params are
    all present is shown. `help` is the FAQ slug of codes the runtime does not list."""

    what: str
    hints: tuple[str, ...] = ()
    help: str | None = None


_SAME_MODEL = _l(
    "todos os clientes e o servidor devem construir o mesmo modelo: build_model() não deve "
    "depender dos dados do cliente"
)
_SAME_UPDATE = _l(
    "todo cliente deve treinar o mesmo modelo: build_model() não deve depender dos dados do "
    "cliente, e training_loop não deve trocar nem redimensionar camadas"
)
_LAYER_SIZES = _l("confira os tamanhos das camadas contra o formato dos dados")
_LOWER_LR = _l("diminua learning_rate ou limite os gradientes (torch.nn.utils.clip_grad_norm_)")
_EXAMPLE = _l("por exemplo `%(key)s = %(example)s`")
_LITERALS = _l(
    "hyperparameters.py é lido, não executado: escreva só atribuições de valores literais "
    "(números, textos, True/False/None, listas, tuplas e dicts deles), por exemplo `rounds = 10`"
)

_DIVERGING = _l(
    "Diminua learning_rate (por exemplo pela metade ou por 10), normalize as entradas ou limite "
    "os gradientes (torch.nn.utils.clip_grad_norm_)."
)
_HETEROGENEOUS = _l(
    'Experimente a estratégia FedProx (strategy = "FedProx", strategy_options = '
    '{"proximal_mu": 0.1}) ou um alpha de Dirichlet maior (partitioning_options = '
    '{"alpha": 1.0}).'
)
_SINGLE_CLASS = _l(
    "o modelo local dele aprende a prever uma só classe; espere convergência lenta ou instável "
    "(tente FedProx, um alpha de Dirichlet maior ou mais classes por cliente)"
)
_FEW_EXAMPLES = _l("use menos clientes ou um particionamento com menos desequilíbrio de tamanho")
_SMALLER_THAN_BATCH = _l("cada época local é um só lote, menor; considere um batch_size menor")

TEMPLATES: dict[str, Template] = {
    "bundle.missing_file": Template(
        _l("o experimento não tem %(name)s"),
        (_l("um experimento precisa de dataset.py, api.py, hyperparameters.py e uma pasta data/"),),
    ),
    "bundle.syntax": Template(
        _l("erro de sintaxe: %(detail)s"), (_l("corrija a linha (confira parênteses, dois-pontos e indentação)"),)
    ),
    "bundle.no_experiment_class": Template(
        _l("api.py não define uma subclasse de Experiment"),
        (_l("adicione `from flautim.fl import Experiment` e `class MeuExperimento(Experiment): ...`"),),
    ),
    "bundle.missing_loop": Template(
        _l("a classe %(cls)s não tem o método %(method)s(self, data_loader)"),
        (_l("defina %(method)s(self, data_loader) devolvendo (loss, dicionário de métricas)"),),
    ),
    "bundle.no_model": Template(
        _l("api.py não define um modelo"),
        (_l("defina `class Model(torch.nn.Module)` ou um método build_model(self) no seu Experiment"),),
    ),
    "bundle.no_dataset_class": Template(
        _l("dataset.py não define uma subclasse de Dataset"),
        (_l("adicione `from flautim.fl import Dataset` e `class MeuDataset(Dataset): ...`"),),
    ),
    "bundle.missing_split": Template(
        _l("a classe %(cls)s não tem o método %(method)s(self)"),
        (_l("defina %(method)s(self) devolvendo um dataset do torch indexável (map-style)"),),
    ),
    "bundle.one_subclass": Template(
        _l("%(file)s deve definir exatamente uma subclasse de %(base)s (encontradas: %(found)s)"),
        (_l("mantenha uma só `class ...(%(base)s)` em %(file)s"),),
    ),
    "user_code.module_not_installed": Template(
        _l("%(file)s importa o módulo '%(module)s', que não está instalado: %(error)s"),
        (_l(
            "a imagem do sandbox tem %(packages)s; inclua seus próprios módulos na pasta do experimento "
            "ou peça a um administrador que adicione o pacote à imagem"
        ),),
    ),
    "user_code.unreadable": Template(
        _l("%(file)s não pôde ser lido: %(error)s"), (_l("corrija a linha (confira parênteses, dois-pontos e indentação)"),)
    ),
    "user_code.import_failed": Template(
        _l("importar %(file)s falhou: %(error)s"),
        (_l("o código no nível do módulo do seu arquivo roda quando ele é carregado; mova o trabalho para métodos"),),
    ),
    "user_code.init_failed": Template(_l("criar %(cls)s() falhou: %(error)s")),
    "user_code.build_model_failed": Template(_l("construir o modelo (build_model / Model()) falhou: %(error)s")),
    "user_code.configure_optimizer_failed": Template(_l("configure_optimizer(model) falhou: %(error)s")),
    "user_code.preflight_validation_failed": Template(
        _l("validation_loop falhou em um lote antes da rodada 1: %(error)s")
    ),
    "user_code.training_loop_raised": Template(
        _l("training_loop lançou um erro na rodada %(round)s, época local %(epoch)s: %(error)s")
    ),
    "user_code.validation_loop_raised": Template(_l("validation_loop lançou um erro na rodada %(round)s: %(error)s")),
    "user_code.central_dataset_failed": Template(_l("central_dataset() falhou: %(error)s")),
    "user_code.central_evaluation_raised": Template(
        _l("a avaliação central lançou um erro após a rodada %(round)s: %(error)s")
    ),
    "user_code.build_strategy_failed": Template(_l("build_strategy(defaults) falhou: %(error)s")),
    "model.linear_input": Template(
        _l("a camada '%(layer)s' esperava %(expected)s entradas e recebeu %(got)s"),
        (_l(
            "as camadas anteriores produzem %(got)s valores por exemplo (entrada de formato %(shape)s): "
            "defina in_features=%(got)s ou mude as camadas anteriores (ou o tamanho da entrada)"
        ),),
    ),
    "model.conv_dimensions": Template(
        _l(
            "a camada '%(layer)s' esperava uma entrada de %(expected)s dimensões (lote, canais, ...) "
            "e recebeu %(got)s (formato %(shape)s)"
        ),
        (_l("ajuste in_channels aos dados (por exemplo 1 para tons de cinza, 3 para imagens coloridas)"),),
    ),
    "model.conv_channels": Template(
        _l("a camada '%(layer)s' esperava %(expected)s canais de entrada e recebeu %(got)s (formato %(shape)s)"),
        (_l("ajuste in_channels aos dados (por exemplo 1 para tons de cinza, 3 para imagens coloridas)"),),
    ),
    "model.batchnorm_features": Template(
        _l(
            "a camada '%(layer)s' esperava %(expected)s atributos ou canais (dimensão 1) e recebeu "
            "%(got)s (formato %(shape)s)"
        ),
        (_LAYER_SIZES,),
    ),
    "model.rnn_input_size": Template(
        _l(
            "a camada '%(layer)s' esperava input_size %(expected)s (última dimensão) e recebeu "
            "%(got)s (formato %(shape)s)"
        ),
        (_LAYER_SIZES,),
    ),
    "model.layer_failed": Template(
        _l("o modelo falhou no primeiro lote: a camada '%(layer)s' falhou com a entrada de formato %(shape)s: %(error)s"),
        (_LAYER_SIZES,),
    ),
    "model.forward_failed": Template(
        _l("o modelo falhou no primeiro lote: %(error)s"),
        (_l("o lote de entrada tem formato %(shape)s; confira seu forward()"),),
    ),
    "model.output_not_tensor": Template(
        _l("o modelo devolveu um %(type)s, esperava um tensor"),
        (_l("forward() deve devolver um tensor de formato [lote, saídas]"),),
    ),
    "model.output_rows": Template(
        _l(
            "a saída do modelo tem formato %(shape)s para um lote de %(batch)s exemplos: esperava "
            "%(batch)s linhas, recebeu %(rows)s"
        ),
        (_l("não achate a dimensão do lote: use torch.flatten(x, 1) ou x.view(x.size(0), -1)"),),
    ),
    "model.output_classes": Template(
        _l(
            "a saída do modelo tem %(columns)s colunas (formato %(shape)s), mas os rótulos vão até "
            "%(highest)s: esperava ao menos %(needed)s saídas, uma por classe"
        ),
        (_l("defina out_features da última camada como %(needed)s"),),
    ),
    "weights.missing_parameters": Template(
        _l("os pesos globais não correspondem aos parâmetros deste modelo (faltam %(names)s)"), (_SAME_MODEL,)
    ),
    "weights.unexpected_parameters": Template(
        _l("os pesos globais não correspondem aos parâmetros deste modelo (inesperados: %(names)s)"), (_SAME_MODEL,)
    ),
    "weights.shape": Template(
        _l("o parâmetro '%(parameter)s' dos pesos globais tem formato %(got)s, o deste modelo tem %(expected)s"),
        (_SAME_MODEL,),
    ),
    "weights.update_missing_parameter": Template(
        _l("o cliente %(client)s enviou pesos sem o parâmetro '%(parameter)s'"), (_SAME_UPDATE,)
    ),
    "weights.update_unknown_parameter": Template(
        _l("o cliente %(client)s enviou um parâmetro desconhecido, '%(parameter)s', que não está no modelo global"),
        (_SAME_UPDATE,),
    ),
    "weights.update_shape": Template(
        _l("o cliente %(client)s enviou o parâmetro '%(parameter)s' com formato %(got)s; o modelo global tem %(expected)s"),
        (_SAME_UPDATE,),
    ),
    "weights.update_dtype": Template(
        _l("o cliente %(client)s enviou o parâmetro '%(parameter)s' como %(got)s; o modelo global tem %(expected)s"),
        (_l("não mude o dtype do modelo em training_loop (por exemplo model.double())"),),
    ),
    "weights.update_not_finite": Template(
        _l("o cliente %(client)s enviou o parâmetro '%(parameter)s' com valores NaN/inf"), (_LOWER_LR,)
    ),
    "training.loss_not_finite": Template(
        _l("a perda de treino virou %(loss)s na rodada %(round)s, época local %(epoch)s"),
        (_l(
            "diminua learning_rate, normalize as entradas, procure valores NaN nos dados ou limite "
            "os gradientes (torch.nn.utils.clip_grad_norm_)"
        ),),
    ),
    "training.weights_not_finite": Template(
        _l("o parâmetro '%(parameter)s' contém NaN/inf após o treino da rodada %(round)s"), (_LOWER_LR,)
    ),
    "hyperparameters.missing_file": Template(
        _l("o arquivo hyperparameters.py não existe"),
        (_l("adicione um hyperparameters.py com pelo menos `rounds = 10`"),),
    ),
    "hyperparameters.syntax": Template(_l("erro de sintaxe: %(detail)s"), (_LITERALS,)),
    "hyperparameters.not_literal": Template(
        _l("o valor de `%(key)s` não é um literal: `%(value)s`"), (_LITERALS,)
    ),
    "hyperparameters.not_assignment": Template(
        _l("`%(statement)s` não é uma atribuição de um literal (comandos %(kind)s não são permitidos)"), (_LITERALS,)
    ),
    "hyperparameters.not_simple_name": Template(
        _l("`%(statement)s`: só nomes simples podem receber valores"),
        (_l("escreva `nome = valor`, um nome por linha"),),
    ),
    "hyperparameters.alias_twice": Template(
        _l("`%(name)s` é outro nome para `%(key)s`, já definido na linha %(line)s"), (_l("defina uma vez só"),)
    ),
    "hyperparameters.unknown_options": Template(
        _l("`%(key)s` tem opções desconhecidas: %(options)s"), (_l("por exemplo `%(sample)s`"),)
    ),
    "hyperparameters.missing_options": Template(
        _l("faltam opções em `%(key)s`: %(options)s"), (_l("por exemplo `%(sample)s`"),)
    ),
    "hyperparameters.dp_more_than_clients": Template(
        _l("differential_privacy.num_sampled_clients (%(sampled)s) é maior que num_clients (%(clients)s)"),
        (_l("sorteie no máximo num_clients clientes por rodada"),),
    ),
    "hyperparameters.integer_range": Template(
        _l("`%(key)s` deve ser um número inteiro de %(low)s a %(high)s, recebeu %(got)s"), (_EXAMPLE,)
    ),
    "hyperparameters.number_range": Template(
        _l("`%(key)s` deve ser um número de no mínimo %(low)s e no máximo %(high)s, recebeu %(got)s"), (_EXAMPLE,)
    ),
    "hyperparameters.number_above": Template(
        _l("`%(key)s` deve ser um número maior que %(low)s e no máximo %(high)s, recebeu %(got)s"), (_EXAMPLE,)
    ),
    "hyperparameters.choice": Template(
        _l("`%(key)s` deve ser um de %(options)s, recebeu %(got)s"),
        (_l("você quis dizer %(suggestion)s?"), _l("escolha um de %(options)s")),
    ),
    "hyperparameters.boolean": Template(_l("`%(key)s` deve ser True ou False, recebeu %(got)s"), (_EXAMPLE,)),
    "hyperparameters.dictionary": Template(
        _l("`%(key)s` deve ser um dict com chaves de texto, recebeu %(got)s"),
        (_l("por exemplo `%(key)s = {\"nome\": 1}`"),),
    ),
    "hyperparameters.unknown_key": Template(
        _l("a chave desconhecida `%(key)s` é passada ao seu código como está; você quis dizer `%(suggestion)s`?")
    ),
    "hyperparameters.ignored_key": Template(
        _l("`%(key)s` não foi lido nem pela plataforma nem pelo seu código: a execução o ignorou"),
        (_l("você quis dizer `%(suggestion)s`?"),
         _l("confira o nome nos hiperparâmetros que a plataforma aceita, ou leia-o no seu código")),
    ),
    # The platform's diagnoses of a run's curves (flautim/diagnosis.py).
    "diagnosis.divergence.loss": Template(
        _l("A loss de treino chegou a %(loss)s na rodada %(round)s, %(factor)s vezes a melhor até "
           "então (%(best)s, rodada %(best_round)s)."),
        (_DIVERGING,), error_codes.HYPERPARAMETER_SETTINGS,
    ),
    "diagnosis.divergence.weights_norm": Template(
        _l("A norma dos pesos globais chegou a %(norm)s na rodada %(round)s, %(factor)s vezes a da "
           "rodada %(first_round)s (%(first)s)."),
        (_l("Diminua learning_rate ou limite os gradientes (torch.nn.utils.clip_grad_norm_); "
            "weight_decay também contém o crescimento dos pesos."),),
        error_codes.HYPERPARAMETER_SETTINGS,
    ),
    "diagnosis.stuck_at_chance": Template(
        _l("Desde a rodada %(round)s a acurácia (%(metric)s) fica em %(accuracy)s, perto de "
           "1/%(classes)s = %(chance)s, o que um palpite ao acaso acerta."),
        (_l("O modelo não está aprendendo: confira se os rótulos correspondem às entradas, se "
            "learning_rate não é alto ou baixo demais e se a loss de treino está caindo."),),
        error_codes.HYPERPARAMETER_SETTINGS,
    ),
    "diagnosis.overfitting": Template(
        _l("Desde a rodada %(round)s a loss de validação sobe (%(best)s → %(loss)s) enquanto a de "
           "treino cai (%(train_from)s → %(train_to)s)."),
        (_l("Use o modelo salvo da melhor rodada (aba Modelos), menos rodadas ou local_epochs, "
            "weight_decay, dropout ou mais dados."),),
        error_codes.HYPERPARAMETER_SETTINGS,
    ),
    "diagnosis.heterogeneity.partition": Template(
        _l("%(dominated)s de %(clients)s clientes têm %(share_percent)s%% ou mais dos exemplos numa só "
           "classe (%(single_class)s com uma classe apenas)."),
        (_HETEROGENEOUS,), error_codes.HETEROGENEITY,
    ),
    "diagnosis.heterogeneity.accuracy_spread": Template(
        _l("Desde a rodada %(round)s o mesmo modelo global acerta de %(low)s a %(high)s conforme "
           "o cliente (dispersão além do ruído: %(spread)s)."),
        (_HETEROGENEOUS,), error_codes.HETEROGENEITY,
    ),
    "diagnosis.heterogeneity.loss_spread": Template(
        _l("Desde a rodada %(round)s a loss do mesmo modelo global vai de %(low)s a %(high)s "
           "conforme o cliente."),
        (_HETEROGENEOUS,), error_codes.HETEROGENEITY,
    ),
    "hyperparameters.unknown_strategy": Template(
        _l("estratégia desconhecida: %(name)s"), (_l("use uma destas: %(known)s"),)
    ),
    "hyperparameters.no_gpu": Template(
        _l("device = 'cuda', mas esta máquina não tem GPU utilizável"),
        (_l("use device = \"auto\" para usar uma GPU quando houver uma"),),
    ),
    "data.single_class_client": Template(
        _l("o cliente %(client)s só tem a classe %(label)s (%(examples)s exemplos)"), (_SINGLE_CLASS,),
    ),
    "data.single_class_clients": Template(
        _l("%(count)s de %(clients)s clientes só têm uma classe (por exemplo os clientes %(first)s)"),
        (_SINGLE_CLASS,),
    ),
    "data.few_examples_client": Template(
        _l("o cliente %(client)s tem só %(examples)s exemplos de treino"), (_FEW_EXAMPLES,),
    ),
    "data.few_examples_clients": Template(
        _l("%(count)s de %(clients)s clientes têm menos de %(threshold)s exemplos de treino (o menor: "
           "%(low)s; por exemplo os clientes %(first)s)"),
        (_FEW_EXAMPLES,),
    ),
    "data.smaller_than_batch": Template(
        _l("o cliente %(client)s tem %(examples)s exemplos de treino, menos que batch_size (%(batch_size)s)"),
        (_SMALLER_THAN_BATCH,),
    ),
    "data.smaller_than_batch_clients": Template(
        _l("%(count)s de %(clients)s clientes têm menos exemplos de treino que batch_size (%(batch_size)s; "
           "o menor: %(low)s; por exemplo os clientes %(first)s)"),
        (_SMALLER_THAN_BATCH,),
    ),
    "partition.unknown_option": Template(
        _l("partitioning_options tem %(option)s, que %(method)s não aceita"),
        (_l("opções de %(method)s: %(allowed)s"),),
    ),
    "partition.option_range": Template(
        _l("partitioning_options[%(option)s] deve ser um número de %(low)s a %(high)s, recebeu %(got)s"),
        (_l("por exemplo partitioning_options = {%(option)s: %(example)s}"),),
    ),
    "partition.too_few_examples": Template(
        _l("a divisão de treino tem %(examples)s exemplos, menos que os %(clients)s clientes"),
        (_l("use menos clientes ou uma divisão de treino maior"),),
    ),
    "partition.dirichlet_empty_client": Template(
        _l("o particionamento Dirichlet com alpha=%(alpha)s deixa um cliente sem exemplos"),
        (_l("aumente alpha ou use menos clientes"),),
    ),
    "partition.too_many_classes_per_client": Template(
        _l("classes_per_client é %(k)s, mas a divisão de treino só tem %(classes)s classes"),
        (_l("use classes_per_client de no máximo %(classes)s"),),
    ),
    "partition.pathological_empty_client": Template(
        _l("o particionamento patológico deixa o cliente %(client)s sem exemplos"),
        (_l("use menos clientes ou mais classes por cliente"),),
    ),
    "partition.too_many_shards": Template(
        _l("%(clients)s clientes x %(per_client)s fragmentos = %(total)s fragmentos, mais que os %(examples)s exemplos"),
        (_l("use menos fragmentos por cliente ou menos clientes"),),
    ),
    "round.client_timeout": Template(
        _l("o cliente %(clients)s não respondeu na fase %(phase)s da rodada %(round)s em %(seconds)s s"),
        (_l("o processo do cliente pode ter morrido ou travado; veja o log dele"),),
    ),
    "round.deadline_missed": Template(
        _l("o cliente %(clients)s não respondeu na fase %(phase)s da rodada %(round)s em %(seconds)s s (o prazo da rodada)"),
        (_l(
            "veja o log desse cliente: um laço sem fim ou um processo travado aparece assim. round_deadline_s "
            "(ou round_deadline_multiple e round_deadline_floor_s) define o prazo; com fraction_fit e "
            "fraction_evaluate abaixo de 1, um cliente atrasado é descartado"
        ),),
    ),
    "round.client_dropped": Template(
        _l(
            "o cliente %(clients)s não respondeu na fase %(phase)s da rodada %(round)s em %(seconds)s s (o prazo "
            "da rodada); foi descartado e a execução segue com %(left)s clientes"
        ),
        (_l(
            "veja o log desse cliente: um laço sem fim ou um processo travado aparece assim; round_deadline_s, "
            "round_deadline_multiple e round_deadline_floor_s definem o prazo"
        ),),
    ),
    "round.client_stopped": Template(
        _l("o cliente %(clients)s parou: o processo terminou ou perdeu a conexão com o servidor"),
        (_l("veja o log desse cliente; um processo encerrado por falta de memória termina assim"),),
    ),
}

# Bounds on what a hostile event can make a page show.
MAX_PARAMS = 32
MAX_PARAM_CHARS = 500
MAX_TEXT_CHARS = 2000
MAX_WHERE_CHARS = 300
_PARAM_NAME = re.compile(r"[a-z_][a-z0-9_]{0,39}")
_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True)
class RunMessage:
    """An error or warning as shown: `translated` says whether the catalog's text was used
    (else the English text the event carried)."""

    what: str
    where: str
    hint: str
    help: str | None
    client: int | None
    code: str | None
    translated: bool

    def text(self) -> str:
        """`where: what`, the one line a list or an email shows."""
        return f"{self.where}: {self.what}" if self.where else self.what


def render(payload: Mapping[str, Any], gettext: Callable[[str], str] | None = None) -> RunMessage:
    """The error or warning event `payload` in the language of `gettext` (by default the
    core's: the request's language in the web, pt-BR elsewhere)."""
    gettext = gettext or translation.gettext
    code = payload.get("code") if isinstance(payload.get("code"), str) else None
    template = TEMPLATES.get(code) if code else None
    params = clean_params(payload.get("params"))
    what = hint = None
    if template is not None and params is not None:
        what = fill(gettext(template.what), params)
        hint = next(
            (text for text in (fill(gettext(h), params) for h in template.hints) if text is not None), ""
        ) if template.hints else ""
    translated = what is not None
    if not translated:
        what = _text(payload.get("what", payload.get("message")), MAX_TEXT_CHARS)
        hint = _text(payload.get("hint"), MAX_TEXT_CHARS)
    client = payload.get("client")
    return RunMessage(
        what=what,
        where=_text(payload.get("where"), MAX_WHERE_CHARS),
        hint=hint or "",
        help=help_slug(code) if translated else None,
        client=client if isinstance(client, int) and not isinstance(client, bool) else None,
        code=code if translated else None,
        translated=translated,
    )


# The site's catalog (scripts/i18n compiles it for the web): read here too, so what the
# worker sends (an email) speaks its reader's language without Flask.
TRANSLATIONS_DIR = Path(__file__).parent / "web" / "translations"


@functools.lru_cache(maxsize=8)
def gettext_for(locale: str) -> Callable[[str], str]:
    """The catalog's gettext for `locale` ("en", "pt_BR"); the source text (pt-BR) for a
    locale the site has no catalog of."""
    return Translations.load(str(TRANSLATIONS_DIR), [locale]).gettext


def help_slug(code: str | None) -> str | None:
    """The FAQ entry of a listed code (never the slug a hostile event names)."""
    template = TEMPLATES.get(code) if code else None
    if template is None:
        return None
    return template.help or error_codes.help_for(code)


def clean_params(params: Any) -> dict[str, str] | None:
    """`params` as short, printable text per name; None when they are not a small object of
    scalars and short lists of scalars (the English text is shown then)."""
    if params is None:
        return {}
    if not isinstance(params, dict) or len(params) > MAX_PARAMS:
        return None
    clean: dict[str, str] = {}
    for name, value in params.items():
        if not isinstance(name, str) or not _PARAM_NAME.fullmatch(name):
            return None
        if isinstance(value, list):
            if len(value) > 16 or not all(_scalar(v) for v in value):
                return None
            text = "[" + ", ".join(_scalar_text(v) for v in value) + "]"
        elif _scalar(value):
            text = _scalar_text(value)
        else:
            return None
        clean[name] = _text(text, MAX_PARAM_CHARS)
    return clean


def fill(template: str, params: Mapping[str, str]) -> str | None:
    """`template` with each `%(name)s` replaced by its param (once: a param's own text is
    not read again), `%%` as `%`; None when a name has no param."""
    missing = False

    def replace(match: re.Match) -> str:
        nonlocal missing
        name = match.group(1)
        if name is None:
            return "%"
        if name not in params:
            missing = True
            return ""
        return params[name]

    text = _PLACEHOLDER.sub(replace, template)
    return None if missing else text


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _scalar_text(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
        return str(int(value)) if abs(value) >= 1 else str(value)
    if isinstance(value, str):
        return _text(value, MAX_PARAM_CHARS)
    return str(value)


def _text(value: Any, limit: int) -> str:
    """Any value as one bounded, printable text (newlines kept, other controls dropped)."""
    if value is None:
        return ""
    text = _CONTROL.sub("", value if isinstance(value, str) else str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"
