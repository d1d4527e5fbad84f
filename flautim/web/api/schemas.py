"""Every request and response of /api/v1, declared once as pydantic models.

The served OpenAPI document is generated from these (openapi.py), requests are checked
against them (operations.py), and answers are built through them. A response model is the
allow-list of what a client may see: nothing dumps a row, so a new column stays private
(storage paths, token hashes, job ids) until someone adds a field here on purpose.

Two hot answers are not built through pydantic on each request: the metrics body
(`results.metric_rows`, cached by `response_cache`) and the log catch-up page (lines
encoded once by `log_pages`). Their models below describe them, and
tests/api/test_served_bodies.py checks that what is served validates against them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    StrictInt,
    StringConstraints,
    WithJsonSchema,
    computed_field,
)
from werkzeug.datastructures import FileStorage

from flautim import headline
from flautim import models as orm
from flautim.models import MAX_ID, ExperimentKind, ExperimentState, FailureKind, Role
from flautim.web.experiments import client_curves, client_results

MAX_BIGINT = 2**63 - 1
MAX_ROUNDS_PER_PAGE = 10_000


def _absent(schema: dict) -> None:
    schema.pop("default", None)


def omitted(**kwargs: Any) -> Any:
    """A field that is left out of the answer when it does not apply (never `null`)."""
    return Field(None, json_schema_extra=_absent, **kwargs)


# --- shapes shared by the responses -----------------------------------------------------

Timestamp = Annotated[
    datetime,
    # isoformat ("+00:00"), like the bodies orjson writes, rather than pydantic's "Z".
    PlainSerializer(lambda value: value.isoformat(), when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
Text = Annotated[str, BeforeValidator(lambda value: value or "")]
JsonObject = Annotated[dict[str, Any], BeforeValidator(lambda value: value or {})]
Size = Annotated[int, BeforeValidator(lambda value: int(value or 0))]


class Answer(BaseModel):
    """A response body; built from a row's attributes by `model_validate(row)`."""

    model_config = ConfigDict(from_attributes=True)


T = TypeVar("T")


class Page(Answer, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class ErrorBody(BaseModel):
    # An address no route matches is answered by the app's own handler (flautim/web/errors.py):
    # the HTTP status as `code`, without `field` or `line`.
    code: str | int = Field(description='Palavra estável para programas ("not_found", "validation_error", ...)')
    message: str = Field(description="Para pessoas, na língua pedida (português primeiro)")
    field: str | None = omitted(description="O campo da requisição com problema")
    line: int | None = omitted(description="A linha do arquivo enviado com problema")
    hint: str = omitted()
    id: str = omitted(description="Código do erro a informar ao suporte (erros nossos)")


class Error(BaseModel):
    error: ErrorBody


class User(Answer):
    id: int
    name: str
    email: str


class Project(Answer):
    id: int
    name: str
    description: Text
    created_at: Timestamp
    archived: bool
    role: Role = omitted(description="Seu papel no projeto")

    @classmethod
    def of(cls, project: orm.Project, membership: orm.Membership | None = None) -> Project:
        fields = {"role": membership.role} if membership is not None else {}
        return cls(id=project.id, name=project.name, description=project.description,
                   created_at=project.created_at, archived=project.archived_at is not None, **fields)


class Asset(Answer):
    id: int
    project_id: int
    name: str
    description: Text
    content_hash: str
    size_bytes: Size
    created_at: Timestamp


class Dataset(Asset):
    file_count: Size
    inspection_status: str
    inspection: JsonObject


class ModelCode(Asset):
    filename: str


class HyperparameterFile(Asset):
    filename: str
    values: JsonObject


class HeadlineMetric(Answer):
    """The metric a run leads with (flautim.headline) and which way is better."""

    name: str
    mode: Literal["min", "max"] = Field(description="min: menor é melhor (loss, MSE, MAE); max: maior é melhor")


class Experiment(Answer):
    id: int
    project_id: int
    name: str
    description: Text
    state: ExperimentState
    attempt: int
    dataset_id: int | None
    model_code_id: int | None
    hyperparameter_file_id: int | None
    cloned_from_id: int | None
    parent_id: int | None = Field(description="O experimento de que este deriva (ver kind)")
    kind: ExperimentKind = Field(description="federated, ou centralized_baseline: o treino centralizado "
                                             "de referência do experimento parent_id")
    transport: str
    wants_gpu: bool
    cancel_requested: bool
    rounds_total: int
    rounds_done: int
    summary: JsonObject
    failure_kind: FailureKind | None
    failure_reason: str | None
    created_at: Timestamp
    queued_at: Timestamp | None
    started_at: Timestamp | None
    finished_at: Timestamp | None
    duration_s: float | None

    @computed_field(description="A métrica principal da execução (a do checkpoint.best_metric, ou a "
                                "primeira que ela relata), quando já houve uma avaliação")
    @property
    def headline_metric(self) -> HeadlineMetric | None:
        found = headline.stored(self.summary)
        return HeadlineMetric(**found.as_dict()) if found else None


class Metric(Answer):
    id: int
    attempt: int
    round: int
    phase: str
    source: str
    name: str
    value: float


class MetricSeries(Answer):
    phase: str
    source: str
    name: str
    rounds: list[int]
    values: list[float]


class Metrics(Answer):
    experiment_id: int
    attempt: int
    format: Literal["rows", "series"]
    items: list[Metric] = omitted(description="Com format=rows")
    series: list[MetricSeries] = omitted(description="Com format=series")
    next_after_round: int = omitted(description="Com limit: passe de volta como after_round")
    has_more: bool = omitted(description="Com limit: há rodadas depois desta página")


class MetricsExport(Answer):
    """Every number of one attempt (each round, client and metric), unpaged and unbounded:
    streamed by exports.metrics_json, a page of rows at a time."""

    experiment_id: int
    attempt: int
    items: list[Metric]


class ClientSpread(Answer):
    round: int
    min: float
    median: float
    max: float
    clients: int = Field(description="Clientes que relataram a métrica nesta rodada")


class ClientCurve(Answer):
    client: int
    rounds: list[int]
    values: list[float]


class ClientCurves(Answer):
    experiment_id: int
    attempt: int
    name: str
    phase: Literal["train", "evaluate"]
    max_points: int
    downsampled: bool = Field(description="Rodadas demais: a última de cada grupo de rodadas, e a última")
    spread: list[ClientSpread]
    clients: list[ClientCurve]


class LogLine(Answer):
    id: int
    attempt: int
    source: str
    stream: str
    line: str
    created_at: Timestamp


def log_rows(rows: list[tuple]) -> list[dict]:
    """LogLine's fields as plain dicts, from tuples of results.LOG_COLUMNS (id, attempt,
    source, stream, line, created_at): a catch-up page is 1,000 lines, encoded by orjson
    (`response_cache.json_bytes`, which writes `created_at` as Timestamp does)."""
    return [
        {"id": id_, "attempt": attempt, "source": source, "stream": stream, "line": line,
         "created_at": created_at}
        for id_, attempt, source, stream, line, created_at in rows
    ]


class Logs(Answer):
    items: list[LogLine]
    next_after: int = Field(description="Passe de volta como after para continuar")
    has_more: bool


class EventMessage(Answer):
    """An error or warning as the reader sees it: the code's text in the language that
    Accept-Language picked, or the English text of the payload when the code is unknown."""

    language: str = Field(description="pt-BR ou en: a língua de what, where e hint")
    text: str = Field(description="where: what, numa linha")
    what: str
    where: str
    hint: str
    translated: bool = Field(description="false: o texto em inglês do evento (código desconhecido ou parâmetros inválidos)")
    code: str | None = omitted(description="O código estável do erro (payload.code), quando traduzido")
    help: str | None = omitted(description="A entrada do FAQ que explica o problema")
    help_url: str | None = omitted(description="O endereço dessa entrada")


class Event(Answer):
    id: int
    attempt: int
    type: str
    payload: JsonObject
    created_at: Timestamp
    message: EventMessage | None = omitted(
        description="Erros e avisos (type error ou warning) na língua pedida; o texto em inglês fica em payload"
    )


class Events(Answer):
    items: list[Event]
    next_after: int
    has_more: bool
    experiment: Experiment


class Diagnosis(Answer):
    """A problem the platform saw in the run's curves (flautim/diagnosis.py), in the
    request's language (Accept-Language)."""

    id: int
    attempt: int
    kind: Literal["divergence", "stuck_at_chance", "overfitting", "heterogeneity", "ignored_hyperparameter"]
    code: str = Field(description="O texto exato: divergence.loss, heterogeneity.partition, ...")
    round: int | None = Field(description="A rodada em que começou (null: antes das rodadas)")
    params: JsonObject
    help: str = Field(description="A entrada da ajuda (FAQ) que explica o problema")
    help_url: str | None = Field(description="O endereço dessa entrada")
    title: str
    message: str
    hint: str
    created_at: Timestamp


class Diagnoses(Answer):
    items: list[Diagnosis]


class Artifact(Answer):
    id: int
    experiment_id: int
    attempt: int
    round: int
    kind: str
    format: str
    size_bytes: Size
    sha256: str
    card: JsonObject
    created_at: Timestamp


class Artifacts(Answer):
    items: list[Artifact]


Point = Annotated[list[float], Field(min_length=2, max_length=2, description="[rodada, valor]")]


class BaselineCurves(Answer):
    series: Literal["central", "evaluate"] = Field(
        description="A avaliação comparada: central (dados de validação do servidor, os mesmos nos dois) "
                    "ou a federada")
    federated: list[Point]
    centralized: list[Point]


class BaselineGap(Answer):
    metric: str = Field(description="A métrica principal do experimento (flautim.headline)")
    federated: float = Field(description="Valor final do experimento federado")
    centralized: float = Field(description="Valor final do treino centralizado")
    ratio: float = Field(description="federated / centralized (uma métrica que cresce, como a acurácia: a fração "
                                     "atingida; uma que cai, como loss, MSE ou MAE: quantas vezes)")


class BaselineComparison(Answer):
    """An experiment beside its centralized baseline: the same Dataset and model on one client
    holding all the training data, with the same rounds and local epochs."""

    experiment_id: int
    can_start: bool = Field(description="O experimento permite iniciar o treino centralizado agora "
                                        "(concluído, nenhum em andamento); exige o papel de editor")
    baseline: Experiment | None = Field(description="O treino centralizado, se já foi criado")
    metric: str | None = Field(description="A métrica principal comparada (a do experimento: flautim.headline)")
    series: Literal["central", "evaluate"] | None
    curves: dict[str, BaselineCurves] = Field(description="A loss e a métrica principal, por nome")
    gap: BaselineGap | None = Field(description="Quando os dois concluíram")
    gap_text: str | None = Field(description="A diferença em palavras, na língua pedida")


# --- requests ---------------------------------------------------------------------------
# Query strings arrive as text: their models convert ("10" -> 10) and ignore unknown
# parameters. JSON bodies are strict (a "1" or a true is not an id) and closed (a misspelt
# field is an error, not silently dropped).

Id = Annotated[StrictInt, Field(ge=1, le=MAX_ID)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=5000)]


class Query(BaseModel):
    model_config = ConfigDict(extra="ignore")


class PageQuery(Query):
    limit: int = Field(50, ge=1, le=500, description="Itens por página")
    offset: int = Field(0, ge=0, le=MAX_ID, description="Itens a pular")


class ExperimentsQuery(PageQuery):
    name: str | None = Field(None, max_length=100, description="Nome exato")
    state: ExperimentState | None = Field(None, description="Estado")


class AttemptQuery(Query):
    attempt: int | None = Field(None, ge=0, le=MAX_ID, description="Tentativa (padrão: a última)")


class MetricsQuery(AttemptQuery):
    format: Literal["rows", "series"] = Field("rows", description="rows: um objeto por número; series: por gráfico")
    source: str | None = Field(None, max_length=32, description="aggregate, server ou client-N")
    phase: str | None = Field(None, max_length=16, description="train, evaluate ou central")
    name: str | None = Field(None, max_length=64, description="loss, accuracy, ...")
    round_min: int | None = Field(None, ge=0, le=MAX_ID)
    round_max: int | None = Field(None, ge=0, le=MAX_ID)
    after_round: int | None = Field(None, ge=-1, le=MAX_ID, description="Páginas por rodada: rodadas depois desta")
    limit: int | None = Field(None, ge=1, le=MAX_ROUNDS_PER_PAGE,
                              description="Rodadas por página (com next_after_round e has_more)")


class ClientCurvesQuery(AttemptQuery):
    name: str = Field("loss", min_length=1, max_length=client_curves.MAX_NAME_LENGTH,
                      description="A métrica: loss, accuracy, mse, mae, ...")
    phase: Literal["train", "evaluate"] = Field("evaluate", description="train ou evaluate (nos clientes)")
    clients: str | None = Field(None, pattern=client_curves.CLIENTS_PATTERN,
                                description=f"Até {client_curves.MAX_CLIENTS} clientes, separados por vírgula: 0,3,7")


class LogsQuery(AttemptQuery):
    after: int = Field(0, ge=0, le=MAX_BIGINT, description="Linhas com id maior que este")
    limit: int = Field(1000, ge=1, le=5000)
    source: str | None = Field(None, max_length=32, description="server, superlink, client-N ou platform")
    search: str | None = Field(None, max_length=200, description="Texto a procurar nas linhas")


class EventsQuery(AttemptQuery):
    after: int = Field(0, ge=0, le=MAX_BIGINT, description="Eventos com id maior que este")
    limit: int = Field(500, ge=1, le=5000)


class ArtifactsQuery(AttemptQuery):
    kind: str | None = Field(None, max_length=16, description="round, best ou final")
    format: str | None = Field(None, max_length=16, description="pytorch ou safetensors")


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class NewExperiment(Body):
    name: Annotated[Name, StringConstraints(min_length=1)]
    description: Description | None = None
    dataset_id: Id
    model_code_id: Id
    hyperparameter_file_id: Id
    run: StrictBool = Field(False, description="Executar logo depois de criar")


class CloneExperiment(Body):
    """Omitted fields come from the original."""

    name: Name | None = None
    description: Description | None = None
    dataset_id: Id | None = None
    model_code_id: Id | None = None
    hyperparameter_file_id: Id | None = None
    run: StrictBool = Field(False, description="Executar logo depois de criar")


UploadedFile = Annotated[FileStorage, WithJsonSchema({"type": "string", "format": "binary"})]


class Form(BaseModel):
    """A multipart form: text fields and files (checked by the asset services on upload)."""

    model_config = ConfigDict(extra="ignore", arbitrary_types_allowed=True)

    name: Annotated[str, StringConstraints(max_length=100)] = ""
    description: Annotated[str, StringConstraints(max_length=5000)] = ""


class DatasetUpload(Form):
    dataset_file: UploadedFile = Field(description="A classe Dataset (.py)")
    data_files: list[UploadedFile] = Field([], description="Os dados: vários arquivos ou um .zip")


class ModelUpload(Form):
    model_file: UploadedFile = Field(description="O código da API do modelo (.py)")


class HyperparametersUpload(Form):
    hyperparameters_file: UploadedFile = Field(description="Hiperparâmetros (.py só com literais)")


# --- what each client reported (experiments/client_results.py; bounded at any scale) -----

class Spread(Answer):
    """The distribution over the round's clients (quartiles interpolated between ranks)."""

    count: int = Field(description="Clientes com este valor")
    min: float | None
    q1: float | None
    median: float | None
    q3: float | None
    max: float | None


class ExampleSpread(Spread):
    total: int = Field(description="Soma dos exemplos dos clientes")


class RoundSpread(Answer):
    round: int
    clients: int = Field(description="Clientes que responderam nesta rodada e fase")
    loss: Spread
    examples: ExampleSpread


class ClientSummary(Answer):
    experiment_id: int
    attempt: int
    phase: Literal["train", "evaluate"]
    rounds: list[RoundSpread] = Field(description="As rodadas mais novas da página, da mais antiga à mais nova")
    next_round_max: int = Field(description="Passe de volta como round_max para rodadas mais antigas")
    has_more: bool


class ClientRow(Answer):
    client: int
    examples: int | None
    train_loss: float | None
    train_metric: float | None = Field(description="A métrica `metric` do cliente no treino")
    evaluate_loss: float | None
    evaluate_metric: float | None = Field(description="A métrica `metric` do cliente na avaliação")
    duration_s: float | None = Field(description="Duração do treino do cliente na rodada")


class ClientTable(Answer):
    experiment_id: int
    attempt: int
    round: int | None = Field(description="A rodada mostrada (padrão: a mais nova com resultados)")
    last_round: int | None
    metric: str = Field(description="A métrica das colunas train_metric e evaluate_metric")
    total: int = Field(description="Clientes da rodada")
    limit: int
    offset: int
    sort: Literal[client_results.SORTS]  # type: ignore[valid-type]
    order: Literal["asc", "desc"]
    items: list[ClientRow]


class LabelMixBar(Answer):
    client: int
    train_examples: int
    val_examples: int
    counts: list[int] = Field(description="Exemplos de treino por rótulo, na ordem de `labels`")
    other: int = Field(description="Exemplos dos rótulos fora de `labels`")


class LabelMix(Answer):
    experiment_id: int
    attempt: int
    method: str | None = Field(description="Método de particionamento (iid, dirichlet, ...)")
    clients_total: int
    sampled: bool = Field(description="Mais clientes que barras: clientes a intervalos iguais de id")
    labels: list[str]
    other_labels: int = Field(description="Rótulos somados em `other`")
    single_label_clients: int = Field(description="Clientes (de todos) com um só rótulo")
    bars: list[LabelMixBar]


class ClientSummaryQuery(AttemptQuery):
    phase: Literal["train", "evaluate"] = Field("train", description="train ou evaluate")
    round_max: int | None = Field(None, ge=0, le=client_results.MAX_ROUND,
                                  description="Só rodadas até esta (páginas para trás)")
    limit: int = Field(client_results.DEFAULT_SUMMARY_ROUNDS, ge=1, le=client_results.MAX_SUMMARY_ROUNDS,
                       description="Rodadas por página")


class ClientTableQuery(AttemptQuery):
    round: int | None = Field(None, ge=0, le=client_results.MAX_ROUND,
                              description="Rodada (padrão: a mais nova com resultados)")
    sort: Literal[client_results.SORTS] = Field("client", description="Coluna da ordem")  # type: ignore[valid-type]
    order: Literal["asc", "desc"] = "asc"
    limit: int = Field(client_results.DEFAULT_CLIENTS_PER_PAGE, ge=1, le=client_results.MAX_CLIENTS_PER_PAGE,
                       description="Clientes por página")
    offset: int = Field(0, ge=0, le=client_results.MAX_OFFSET, description="Clientes a pular")
    metric: str | None = Field(None, min_length=1, max_length=64,
                               description="Métrica das colunas *_metric (padrão: a acurácia)")


class LabelMixQuery(AttemptQuery):
    bars: int = Field(client_results.DEFAULT_BARS, ge=1, le=client_results.MAX_BARS,
                      description="Barras no máximo (além disso, uma amostra de clientes)")
    labels: int = Field(client_results.DEFAULT_LABELS, ge=1, le=client_results.MAX_LABELS,
                        description="Rótulos com parte própria; os outros somam em `other`")
