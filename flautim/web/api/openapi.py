"""The OpenAPI 3 document of /api/v1, written by hand next to the routes.

tests/api/test_openapi.py checks that every /api/v1 rule is described here and that
nothing here lacks a rule; schemathesis then checks the responses against these schemas.
"""

from __future__ import annotations

from copy import deepcopy

API_VERSION = "1.0.0"
STATES = ["draft", "queued", "preparing", "running", "succeeded", "failed", "cancelled", "timed_out"]


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _int_param(name: str, where: str = "query", description: str = "", minimum: int = 0,
               maximum: int | None = None, required: bool = False) -> dict:
    schema: dict = {"type": "integer", "minimum": minimum}
    if maximum is not None:
        schema["maximum"] = maximum
    return {"name": name, "in": where, "required": required or where == "path",
            "description": description, "schema": schema}


def _str_param(name: str, description: str = "", max_length: int = 100, enum: list[str] | None = None) -> dict:
    schema: dict = {"type": "string", "maxLength": max_length}
    if enum:
        schema = {"type": "string", "enum": enum}
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


PROJECT_ID = _int_param("project_id", "path", "Id do projeto", minimum=1, maximum=2**31 - 1)
EXPERIMENT_ID = _int_param("experiment_id", "path", "Id do experimento", minimum=1, maximum=2**31 - 1)
ARTIFACT_ID = _int_param("artifact_id", "path", "Id do modelo salvo", minimum=1, maximum=2**31 - 1)
LIMIT = _int_param("limit", description="Itens por página", minimum=1, maximum=500)
OFFSET = _int_param("offset", description="Itens a pular", minimum=0, maximum=2**31 - 1)


def _json(schema: dict, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict:
    descriptions = {
        400: "Entrada inválida (o campo em `field`)",
        401: "Token ausente, inválido ou revogado",
        403: "Papel insuficiente no projeto",
        404: "Não existe ou não pertence a um projeto seu",
        409: "Estado do experimento não permite a ação",
        413: "Envio grande demais",
        415: "Tipo de conteúdo não suportado",
    }
    return {str(c): _json(_ref("Error"), descriptions[c]) for c in codes}


def _page_of(item: str) -> dict:
    return {
        "type": "object",
        "required": ["items", "total", "limit", "offset"],
        "properties": {
            "items": {"type": "array", "items": _ref(item)},
            "total": {"type": "integer"},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
        },
    }


def _op(summary: str, tag: str, responses: dict, parameters: list | None = None,
        request_body: dict | None = None, security: bool = True) -> dict:
    op: dict = {"summary": summary, "tags": [tag], "responses": responses}
    if parameters:
        op["parameters"] = parameters
    if request_body:
        op["requestBody"] = request_body
    if not security:
        op["security"] = []
    return op


_NULLABLE_STR = {"type": "string", "nullable": True}
_NULLABLE_INT = {"type": "integer", "nullable": True}
_DATETIME = {"type": "string", "format": "date-time"}
_NULLABLE_DATETIME = {"type": "string", "format": "date-time", "nullable": True}

_ASSET_PROPS = {
    "id": {"type": "integer"},
    "project_id": {"type": "integer"},
    "name": {"type": "string"},
    "description": {"type": "string"},
    "content_hash": {"type": "string"},
    "size_bytes": {"type": "integer"},
    "created_at": _DATETIME,
}


def _object(props: dict, required: list[str] | None = None, closed: bool = False) -> dict:
    schema = {"type": "object", "required": list(props) if required is None else required, "properties": props}
    if not schema["required"]:
        del schema["required"]  # OpenAPI 3.0 (JSON Schema draft 4) wants a non-empty list
    if closed:
        schema["additionalProperties"] = False
    return schema


SCHEMAS: dict = {
    "Error": _object(
        {
            "error": _object(
                {
                    # Machine-readable word ("not_found", "validation_error", ...).
                    "code": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                    "message": {"type": "string"},
                    "field": _NULLABLE_STR,
                    "line": _NULLABLE_INT,
                    "hint": {"type": "string"},
                    "id": {"type": "string"},
                },
                required=["code", "message"],
            )
        }
    ),
    "User": _object({"id": {"type": "integer"}, "name": {"type": "string"}, "email": {"type": "string"}}),
    "Project": _object(
        {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "created_at": _DATETIME,
            "archived": {"type": "boolean"},
            "role": {"type": "string", "enum": ["owner", "editor", "viewer"]},
        },
        required=["id", "name", "description", "created_at", "archived"],
    ),
    "Dataset": _object(
        {
            **_ASSET_PROPS,
            "file_count": {"type": "integer"},
            "inspection_status": {"type": "string"},
            "inspection": {"type": "object"},
        }
    ),
    "ModelCode": _object({**_ASSET_PROPS, "filename": {"type": "string"}}),
    "HyperparameterFile": _object(
        {**_ASSET_PROPS, "filename": {"type": "string"}, "values": {"type": "object"}}
    ),
    "Experiment": _object(
        {
            "id": {"type": "integer"},
            "project_id": {"type": "integer"},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "state": {"type": "string", "enum": STATES},
            "attempt": {"type": "integer"},
            "dataset_id": _NULLABLE_INT,
            "model_code_id": _NULLABLE_INT,
            "hyperparameter_file_id": _NULLABLE_INT,
            "cloned_from_id": _NULLABLE_INT,
            "transport": {"type": "string"},
            "wants_gpu": {"type": "boolean"},
            "cancel_requested": {"type": "boolean"},
            "rounds_total": {"type": "integer"},
            "rounds_done": {"type": "integer"},
            "summary": {"type": "object"},
            "failure_kind": {"type": "string", "nullable": True},
            "failure_reason": _NULLABLE_STR,
            "created_at": _DATETIME,
            "queued_at": _NULLABLE_DATETIME,
            "started_at": _NULLABLE_DATETIME,
            "finished_at": _NULLABLE_DATETIME,
            "duration_s": {"type": "number", "nullable": True},
        }
    ),
    "NewExperiment": _object(
        {
            "name": {"type": "string", "minLength": 1, "maxLength": 100},
            "description": {"type": "string", "maxLength": 5000},
            "dataset_id": {"type": "integer", "minimum": 1},
            "model_code_id": {"type": "integer", "minimum": 1},
            "hyperparameter_file_id": {"type": "integer", "minimum": 1},
            "run": {"type": "boolean", "default": False},
        },
        required=["name", "dataset_id", "model_code_id", "hyperparameter_file_id"],
        closed=True,
    ),
    "CloneExperiment": _object(
        {
            "name": {"type": "string", "maxLength": 100},
            "description": {"type": "string", "maxLength": 5000},
            "dataset_id": {"type": "integer", "minimum": 1},
            "model_code_id": {"type": "integer", "minimum": 1},
            "hyperparameter_file_id": {"type": "integer", "minimum": 1},
            "run": {"type": "boolean", "default": False},
        },
        required=[],
        closed=True,
    ),
    "Metric": _object(
        {
            "id": {"type": "integer"},
            "attempt": {"type": "integer"},
            "round": {"type": "integer"},
            "phase": {"type": "string"},
            "source": {"type": "string"},
            "name": {"type": "string"},
            "value": {"type": "number"},
        }
    ),
    "MetricSeries": _object(
        {
            "phase": {"type": "string"},
            "source": {"type": "string"},
            "name": {"type": "string"},
            "rounds": {"type": "array", "items": {"type": "integer"}},
            "values": {"type": "array", "items": {"type": "number"}},
        }
    ),
    "LogLine": _object(
        {
            "id": {"type": "integer"},
            "attempt": {"type": "integer"},
            "source": {"type": "string"},
            "stream": {"type": "string"},
            "line": {"type": "string"},
            "created_at": _DATETIME,
        }
    ),
    "Event": _object(
        {
            "id": {"type": "integer"},
            "attempt": {"type": "integer"},
            "type": {"type": "string"},
            "payload": {"type": "object"},
            "created_at": _DATETIME,
        }
    ),
    "Artifact": _object(
        {
            "id": {"type": "integer"},
            "experiment_id": {"type": "integer"},
            "attempt": {"type": "integer"},
            "round": {"type": "integer"},
            "kind": {"type": "string"},
            "format": {"type": "string"},
            "size_bytes": {"type": "integer"},
            "sha256": {"type": "string"},
            "card": {"type": "object"},
            "created_at": _DATETIME,
        }
    ),
}

_E = "/projects/{project_id}/experiments/{experiment_id}"


def _json_body(schema: str) -> dict:
    return {"required": True, "content": {"application/json": {"schema": _ref(schema)}}}


def _multipart(props: dict, required: list[str]) -> dict:
    return {
        "required": True,
        "content": {"multipart/form-data": {"schema": {"type": "object", "required": required, "properties": props}}},
    }


_FILE = {"type": "string", "format": "binary"}
_TEXT_FIELDS = {"name": {"type": "string", "maxLength": 100}, "description": {"type": "string", "maxLength": 5000}}


def _asset_path(kind: str, schema: str, summary_list: str, summary_post: str, body: dict) -> dict:
    return {
        f"/projects/{{project_id}}/{kind}": {
            "get": _op(summary_list, "assets", {"200": _json(_page_of(schema)), **_errors(400, 401, 404)},
                       [PROJECT_ID, LIMIT, OFFSET]),
            "post": _op(summary_post, "assets",
                        {"201": _json(_ref(schema), "Guardado"), **_errors(400, 401, 403, 404, 409, 413, 415)},
                        [PROJECT_ID], body),
        }
    }


_ASSET_PATHS = {
    **_asset_path(
        "datasets", "Dataset", "Datasets do projeto",
        "Enviar um dataset: a classe Dataset (.py) e os dados (vários arquivos ou um .zip)",
        _multipart({**_TEXT_FIELDS, "dataset_file": _FILE,
                    "data_files": {"type": "array", "items": _FILE}}, ["dataset_file"]),
    ),
    **_asset_path(
        "models", "ModelCode", "Versões do código do modelo",
        "Enviar o código da API do modelo (.py), verificado no envio",
        _multipart({**_TEXT_FIELDS, "model_file": _FILE}, ["model_file"]),
    ),
    **_asset_path(
        "hyperparameters", "HyperparameterFile", "Arquivos de hiperparâmetros",
        "Enviar hiperparâmetros (.py só com literais; nunca executado)",
        _multipart({**_TEXT_FIELDS, "hyperparameters_file": _FILE}, ["hyperparameters_file"]),
    ),
}

PATHS: dict = {
    "/openapi.json": {
        "get": _op("Este documento OpenAPI", "meta", {"200": _json({"type": "object"})}, security=False)
    },
    "/me": {
        "get": _op("O usuário dono do token", "meta", {"200": _json(_ref("User")), **_errors(401)})
    },
    "/projects": {
        "get": _op(
            "Projetos de que você é membro",
            "projects",
            {"200": _json(_page_of("Project")), **_errors(400, 401)},
            [LIMIT, OFFSET],
        )
    },
    "/projects/{project_id}": {
        "get": _op(
            "Um projeto",
            "projects",
            {"200": _json(_ref("Project")), **_errors(401, 404)},
            [PROJECT_ID],
        )
    },
    **_ASSET_PATHS,
    "/projects/{project_id}/experiments": {
        "get": _op(
            "Experimentos do projeto, mais novos primeiro",
            "experiments",
            {"200": _json(_page_of("Experiment")), **_errors(400, 401, 404)},
            [PROJECT_ID, LIMIT, OFFSET, _str_param("name", "Nome exato"),
             _str_param("state", "Estado", enum=STATES)],
        ),
        "post": _op(
            "Criar um experimento (e, com run=true, executá-lo)",
            "experiments",
            {"201": _json(_ref("Experiment"), "Criado"), **_errors(400, 401, 403, 404, 409, 415)},
            [PROJECT_ID],
            _json_body("NewExperiment"),
        ),
    },
    _E: {
        "get": _op(
            "Um experimento",
            "experiments",
            {"200": _json(_ref("Experiment")), **_errors(401, 404)},
            [PROJECT_ID, EXPERIMENT_ID],
        )
    },
    _E + "/clone": {
        "post": _op(
            "Clonar com mudanças (os campos omitidos vêm do original)",
            "experiments",
            {"201": _json(_ref("Experiment"), "Criado"), **_errors(400, 401, 403, 404, 409, 415)},
            [PROJECT_ID, EXPERIMENT_ID],
            _json_body("CloneExperiment"),
        )
    },
    _E + "/run": {
        "post": _op(
            "Executar (uma nova tentativa)",
            "experiments",
            {"202": _json(_ref("Experiment"), "Na fila"), **_errors(401, 403, 404, 409)},
            [PROJECT_ID, EXPERIMENT_ID],
        )
    },
    _E + "/cancel": {
        "post": _op(
            "Cancelar (na fila: já; em execução: em segundos)",
            "experiments",
            {"202": _json(_ref("Experiment"), "Cancelamento pedido"), **_errors(401, 403, 404, 409)},
            [PROJECT_ID, EXPERIMENT_ID],
        )
    },
    _E + "/metrics": {
        "get": _op(
            "Métricas por rodada (filtre por fonte, fase, nome; format=series para gráficos)",
            "results",
            {
                "200": _json(
                    _object(
                        {
                            "experiment_id": {"type": "integer"},
                            "attempt": {"type": "integer"},
                            "format": {"type": "string", "enum": ["rows", "series"]},
                            "items": {"type": "array", "items": _ref("Metric")},
                            "series": {"type": "array", "items": _ref("MetricSeries")},
                            "next_after_round": {"type": "integer"},
                            "has_more": {"type": "boolean"},
                        },
                        required=["experiment_id", "attempt", "format"],
                    )
                ),
                "304": {"description": "Não mudou desde o ETag enviado em If-None-Match"},
                **_errors(400, 401, 404),
            },
            [PROJECT_ID, EXPERIMENT_ID,
             _int_param("attempt", description="Tentativa (padrão: a última)", maximum=2**31 - 1),
             _str_param("source", "aggregate, server ou client-N", 32),
             _str_param("phase", "train, evaluate ou central", 16),
             _str_param("name", "loss, accuracy, ...", 64),
             _int_param("round_min", maximum=2**31 - 1), _int_param("round_max", maximum=2**31 - 1),
             _int_param("after_round", description="Páginas por rodada: rodadas depois desta",
                        minimum=-1, maximum=2**31 - 1),
             _int_param("limit", description="Rodadas por página (com next_after_round e has_more)",
                        minimum=1, maximum=10_000),
             _str_param("format", "rows (padrão) ou series", enum=["rows", "series"])],
        )
    },
    _E + "/logs": {
        "get": _op(
            "Linhas de log com id maior que `after` (retomada)",
            "results",
            {
                "200": _json(
                    _object(
                        {
                            "items": {"type": "array", "items": _ref("LogLine")},
                            "next_after": {"type": "integer"},
                            "has_more": {"type": "boolean"},
                        }
                    )
                ),
                **_errors(400, 401, 404),
            },
            [PROJECT_ID, EXPERIMENT_ID, _int_param("after", maximum=2**63 - 1),
             _int_param("limit", minimum=1, maximum=5000),
             _str_param("source", "server, superlink, client-N ou platform", 32),
             _str_param("search", "Texto a procurar nas linhas", 200),
             _int_param("attempt", description="Tentativa (padrão: a última)", maximum=2**31 - 1)],
        )
    },
    _E + "/events": {
        "get": _op(
            "Eventos da execução com id maior que `after`",
            "results",
            {
                "200": _json(
                    _object(
                        {
                            "items": {"type": "array", "items": _ref("Event")},
                            "next_after": {"type": "integer"},
                            "has_more": {"type": "boolean"},
                            "experiment": _ref("Experiment"),
                        }
                    )
                ),
                **_errors(400, 401, 404),
            },
            [PROJECT_ID, EXPERIMENT_ID, _int_param("after", maximum=2**63 - 1),
             _int_param("limit", minimum=1, maximum=5000),
             _int_param("attempt", description="Tentativa (padrão: a última)", maximum=2**31 - 1)],
        )
    },
    _E + "/artifacts": {
        "get": _op(
            "Modelos salvos (por rodada, o melhor e o final)",
            "models",
            {"200": _json(_object({"items": {"type": "array", "items": _ref("Artifact")}})),
             **_errors(400, 401, 404)},
            [PROJECT_ID, EXPERIMENT_ID, _str_param("kind", "round, best ou final", 16),
             _str_param("format", "pytorch ou safetensors", 16),
             _int_param("attempt", maximum=2**31 - 1)],
        )
    },
    _E + "/artifacts/{artifact_id}/download": {
        "get": _op(
            "Baixar um modelo salvo",
            "models",
            {
                "200": {
                    "description": "O arquivo (PyTorch .pt ou .safetensors)",
                    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                },
                **_errors(401, 404),
            },
            [PROJECT_ID, EXPERIMENT_ID, ARTIFACT_ID],
        )
    },
}


def openapi_document() -> dict:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Flautim API",
            "version": API_VERSION,
            "description": (
                "API JSON do Flautim. Autentique com um token pessoal (crie em Minha conta): "
                "`Authorization: Bearer flt_...`."
            ),
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearerAuth": []}],
        "paths": deepcopy(PATHS),
        "components": {
            "schemas": deepcopy(SCHEMAS),
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
