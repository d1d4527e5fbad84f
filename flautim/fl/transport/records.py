"""How the platform's values ride inside Flower records, on every transport.

A client's reply to a train/evaluate message carries, next to Flower's usual ArrayRecord
("arrays") and MetricRecord ("metrics", numbers only, with "num-examples" as the weight),
a ConfigRecord "flautim" with the client id, the duration and all user metrics as JSON
(MetricRecords hold only numbers). A failed client replies with a Flower `Error` whose
`reason` is the JSON of a Flautim `error` event, so the server can report the user's file,
line and hint instead of Flower's bare "1 failures".
"""

from __future__ import annotations

import json
import math
from typing import Any, TypeVar

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Error, Message, MetricRecord, RecordDict

FLAUTIM_RECORD = "flautim"
ERROR_MARKER = "flautim-error:"
# Flower's ErrorCode.CLIENT_APP_RAISED_EXCEPTION; kept literal so the value is visible here.
CLIENT_APP_RAISED_EXCEPTION = 2
R = TypeVar("R", ArrayRecord, ConfigRecord, MetricRecord)


def weights_to_arrays(weights: dict[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord({name: Array(np.ascontiguousarray(value)) for name, value in weights.items()})


def records_of(content: RecordDict, kind: type[R]) -> list[R]:
    """The records of one kind in `content`, in order: what `content.metric_records` and
    its siblings hold, without the type-checked copy of the RecordDict they build (every
    reply passes here, a thousand a round with virtual clients)."""
    return [record for record in content.values() if isinstance(record, kind)]


def record_named(content: RecordDict, name: str, kind: type[R]) -> R | None:
    """`content[name]` if it is a record of that kind, else None."""
    record = content.get(name)
    return record if isinstance(record, kind) else None


def arrays_to_weights(arrays: ArrayRecord) -> dict[str, np.ndarray]:
    return {name: array.numpy() for name, array in arrays.items()}


class WeightsDecoder:
    """`arrays_to_weights` that hands back the same dict while the arrays stay the same.

    Every message of a round carries the same global model, and a process hosting virtual
    clients answers hundreds of them: comparing the bytes costs far less than decoding
    them (numpy parses each array's header) and lets the session skip its own checks of
    weights it already loaded once. The dict returned must not be modified.
    """

    def __init__(self) -> None:
        self._key: list[tuple[str, str, tuple[int, ...], str, bytes]] | None = None
        self._weights: dict[str, np.ndarray] = {}

    def __call__(self, arrays: ArrayRecord) -> dict[str, np.ndarray]:
        key = [(name, a.dtype, tuple(a.shape), a.stype, a.data) for name, a in arrays.items()]
        if key != self._key:
            self._weights = arrays_to_weights(arrays)
            self._key = key
        return self._weights


def numeric_metrics(metrics: dict[str, Any]) -> dict[str, float | int]:
    """The entries of `metrics` a MetricRecord can hold (finite ints and floats)."""
    out: dict[str, float | int] = {}
    for key, value in (metrics or {}).items():
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, (int, float)) and math.isfinite(value):
            out[str(key)] = value
    return out


def metric_record(loss: float | None, num_examples: int, metrics: dict[str, Any]) -> MetricRecord:
    values: dict[str, Any] = dict(numeric_metrics(metrics))
    values["num-examples"] = int(num_examples)
    if loss is not None and math.isfinite(float(loss)):
        values["loss"] = float(loss)
    return MetricRecord(values)


def flautim_record(
    client_id: int, duration_s: float, loss: float | None, metrics: dict[str, Any], keys_read: list[str] | None = None
) -> ConfigRecord:
    return ConfigRecord(
        {
            "client-id": int(client_id),
            "duration-s": float(duration_s),
            "loss-json": json.dumps(loss if loss is None or math.isfinite(loss) else str(loss)),
            "metrics-json": json.dumps(metrics or {}, default=str),
            # The run's own hyperparameters this client process read (hyperparameter_reads).
            "keys-read-json": json.dumps(keys_read or []),
        }
    )


def read_flautim_record(content: Any) -> dict[str, Any]:
    """client, duration_s, loss, metrics, keys_read of a reply (missing fields are None,
    {} or [])."""
    record = record_named(content, FLAUTIM_RECORD, ConfigRecord) if content is not None else None
    if record is None:
        return {"client": None, "duration_s": None, "loss": None, "metrics": {}, "keys_read": []}
    try:
        metrics = json.loads(str(record.get("metrics-json", "{}")))
    except ValueError:
        metrics = {}
    try:
        loss = json.loads(str(record.get("loss-json", "null")))
    except ValueError:
        loss = None
    try:
        keys_read = json.loads(str(record.get("keys-read-json", "[]")))
    except ValueError:
        keys_read = []
    return {
        "client": record.get("client-id"),
        "duration_s": record.get("duration-s"),
        "loss": loss,
        "metrics": metrics if isinstance(metrics, dict) else {},
        "keys_read": keys_read if isinstance(keys_read, list) else [],
    }


def error_reply(message: Message, fields: dict[str, Any]) -> Message:
    reason = ERROR_MARKER + json.dumps(fields, default=str)
    return Message(Error(code=CLIENT_APP_RAISED_EXCEPTION, reason=reason), reply_to=message)


def read_error_reply(message: Message) -> dict[str, Any]:
    """The Flautim error fields carried by an error reply (Flower's own errors included)."""
    reason = message.error.reason or ""
    if reason.startswith(ERROR_MARKER):
        try:
            fields = json.loads(reason[len(ERROR_MARKER) :])
            if isinstance(fields, dict):
                return fields
        except ValueError:
            pass
    return {
        "what": f"the client app failed: {reason or 'no reason given'}",
        "where": f"node {message.metadata.src_node_id}",
        "hint": "see that client's log",
        "kind": "infrastructure",
    }
