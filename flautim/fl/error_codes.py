"""The stable codes of the runtime's errors and warnings, and the FAQ entry each points to.

An `error` or `warning` event carries, beside its English text, a `code` from this list,
the `params` its message names (layer, sizes, round, key, ...) and, where the tutorial's
FAQ explains the trouble, a `help` slug. The platform translates a code with its params
(flautim/run_messages.py holds one pt-BR template per code); a code is never reused for
another meaning, so a new message gets a new code.
"""

from __future__ import annotations

from typing import Any

# The tutorial's FAQ entries (the help pages' slugs).
WEIGHT_SYNC = "sincronizacao-de-pesos"
HETEROGENEITY = "heterogeneidade-de-dados"
HYPERPARAMETER_SETTINGS = "configuracao-de-hiperparametros"
TENSOR_SIZE = "incompatibilidade-de-tamanho-de-tensor"

# code -> FAQ slug (None: no entry explains it).
CODES: dict[str, str | None] = {
    # the bundle's files (checked at upload and before a run)
    "bundle.missing_file": None,
    "bundle.syntax": None,
    "bundle.no_experiment_class": None,
    "bundle.missing_loop": None,
    "bundle.no_model": None,
    "bundle.no_dataset_class": None,
    "bundle.missing_split": None,
    "bundle.one_subclass": None,
    # user code that raised (the exception is the param `error`)
    "user_code.module_not_installed": None,
    "user_code.unreadable": None,
    "user_code.import_failed": None,
    "user_code.init_failed": None,
    "user_code.build_model_failed": None,
    "user_code.configure_optimizer_failed": None,
    "user_code.preflight_validation_failed": None,
    "user_code.training_loop_raised": None,
    "user_code.validation_loop_raised": None,
    "user_code.central_dataset_failed": None,
    "user_code.central_evaluation_raised": None,
    "user_code.build_strategy_failed": None,
    # the model against the first batch (preflight)
    "model.linear_input": TENSOR_SIZE,
    "model.conv_dimensions": TENSOR_SIZE,
    "model.conv_channels": TENSOR_SIZE,
    "model.batchnorm_features": TENSOR_SIZE,
    "model.rnn_input_size": TENSOR_SIZE,
    "model.layer_failed": TENSOR_SIZE,
    "model.forward_failed": TENSOR_SIZE,
    "model.output_not_tensor": TENSOR_SIZE,
    "model.output_rows": TENSOR_SIZE,
    "model.output_classes": TENSOR_SIZE,
    # weights that do not fit the global model
    "weights.missing_parameters": WEIGHT_SYNC,
    "weights.unexpected_parameters": WEIGHT_SYNC,
    "weights.shape": WEIGHT_SYNC,
    "weights.update_missing_parameter": WEIGHT_SYNC,
    "weights.update_unknown_parameter": WEIGHT_SYNC,
    "weights.update_shape": WEIGHT_SYNC,
    "weights.update_dtype": WEIGHT_SYNC,
    "weights.update_not_finite": HYPERPARAMETER_SETTINGS,
    # training that blew up
    "training.loss_not_finite": HYPERPARAMETER_SETTINGS,
    "training.weights_not_finite": HYPERPARAMETER_SETTINGS,
    # hyperparameters.py
    "hyperparameters.missing_file": HYPERPARAMETER_SETTINGS,
    "hyperparameters.syntax": HYPERPARAMETER_SETTINGS,
    "hyperparameters.not_literal": HYPERPARAMETER_SETTINGS,
    "hyperparameters.not_assignment": HYPERPARAMETER_SETTINGS,
    "hyperparameters.not_simple_name": HYPERPARAMETER_SETTINGS,
    "hyperparameters.alias_twice": HYPERPARAMETER_SETTINGS,
    "hyperparameters.unknown_options": HYPERPARAMETER_SETTINGS,
    "hyperparameters.missing_options": HYPERPARAMETER_SETTINGS,
    "hyperparameters.dp_more_than_clients": HYPERPARAMETER_SETTINGS,
    "hyperparameters.integer_range": HYPERPARAMETER_SETTINGS,
    "hyperparameters.number_range": HYPERPARAMETER_SETTINGS,
    "hyperparameters.number_above": HYPERPARAMETER_SETTINGS,
    "hyperparameters.choice": HYPERPARAMETER_SETTINGS,
    "hyperparameters.boolean": HYPERPARAMETER_SETTINGS,
    "hyperparameters.dictionary": HYPERPARAMETER_SETTINGS,
    "hyperparameters.unknown_key": HYPERPARAMETER_SETTINGS,
    "hyperparameters.ignored_key": HYPERPARAMETER_SETTINGS,
    "hyperparameters.unknown_strategy": HYPERPARAMETER_SETTINGS,
    "hyperparameters.no_gpu": HYPERPARAMETER_SETTINGS,
    # the partition
    "partition.unknown_option": HYPERPARAMETER_SETTINGS,
    "partition.option_range": HYPERPARAMETER_SETTINGS,
    "partition.too_few_examples": HYPERPARAMETER_SETTINGS,
    "partition.dirichlet_empty_client": HETEROGENEITY,
    "partition.too_many_classes_per_client": HYPERPARAMETER_SETTINGS,
    "partition.pathological_empty_client": HETEROGENEITY,
    "partition.too_many_shards": HYPERPARAMETER_SETTINGS,
    "data.single_class_client": HETEROGENEITY,
    "data.single_class_clients": HETEROGENEITY,
    "data.few_examples_client": HETEROGENEITY,
    "data.few_examples_clients": HETEROGENEITY,
    "data.smaller_than_batch": HYPERPARAMETER_SETTINGS,
    "data.smaller_than_batch_clients": HYPERPARAMETER_SETTINGS,
    # clients that did not answer
    "round.client_timeout": None,
    "round.deadline_missed": None,
    "round.client_dropped": None,
    "round.client_stopped": None,
}

# What a param may hold on the wire: short scalars or short lists of them (shapes).
MAX_PARAM_CHARS = 500


def help_for(code: str | None) -> str | None:
    """The FAQ slug of `code`, None when there is none (or no code)."""
    return CODES.get(code) if code else None


def coded_fields(code: str | None, params: dict[str, Any], help: str | None) -> dict[str, Any]:
    """The fields an event gains from a code: `code`, `params` and `help` (when set)."""
    if not code:
        return {}
    fields: dict[str, Any] = {"code": code, "params": {k: _plain(v) for k, v in params.items()}}
    if help:
        fields["help"] = help
    return fields


def _plain(value: Any) -> Any:
    """JSON-ready and short: numbers and strings stay, tuples become lists, others text."""
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value[:16]]
    text = str(value)
    return text if len(text) <= MAX_PARAM_CHARS else text[: MAX_PARAM_CHARS - 1] + "…"
