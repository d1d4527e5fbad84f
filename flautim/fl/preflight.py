"""Before round 1, run the model on one batch and explain what does not fit.

A size mismatch inside PyTorch reads like "mat1 and mat2 shapes cannot be multiplied
(32x400 and 256x64)". `forward_one_batch` watches which layer was running when the error
happened and rewrites it as "layer 'fc1' (Linear(...)) expected 256 input features, got
400", with the line of the user's forward() that called the layer.
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Any

import torch
from torch import nn

from flautim.fl.errors import FlautimError, describe_exception, user_location, user_traceback


def _shape(value: Any) -> list[int] | None:
    return list(value.shape) if isinstance(value, torch.Tensor) else None


def _expectation(module: nn.Module, shape: list[int] | None) -> tuple[str, str, dict[str, Any]] | None:
    """What `module` expects of its input, and what it got, when we know the layer type:
    (English text, code, params)."""
    if shape is None:
        return None
    if isinstance(module, nn.Linear) and shape[-1] != module.in_features:
        return (
            f"expected {module.in_features} input features (last dimension), got {shape[-1]} (input shape {shape})",
            "model.linear_input", {"expected": module.in_features, "got": shape[-1], "shape": shape},
        )
    if isinstance(module, nn.modules.conv._ConvNd):
        dims = {nn.Conv1d: 3, nn.Conv2d: 4, nn.Conv3d: 5}.get(type(module))
        if dims and len(shape) not in (dims, dims - 1):
            return (
                f"expected an input with {dims} dimensions (batch, channels, ...), got {len(shape)} (input shape {shape})",
                "model.conv_dimensions", {"expected": dims, "got": len(shape), "shape": shape},
            )
        channels = shape[1] if dims and len(shape) == dims else shape[0]
        if channels != module.in_channels:
            return (
                f"expected {module.in_channels} input channels, got {channels} (input shape {shape})",
                "model.conv_channels", {"expected": module.in_channels, "got": channels, "shape": shape},
            )
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and len(shape) > 1 and shape[1] != module.num_features:
        return (
            f"expected {module.num_features} features/channels (dimension 1), got {shape[1]} (input shape {shape})",
            "model.batchnorm_features", {"expected": module.num_features, "got": shape[1], "shape": shape},
        )
    if isinstance(module, nn.RNNBase) and shape[-1] != module.input_size:
        return (
            f"expected input_size {module.input_size} (last dimension), got {shape[-1]} (input shape {shape})",
            "model.rnn_input_size", {"expected": module.input_size, "got": shape[-1], "shape": shape},
        )
    return None


def _hint(module: nn.Module, shape: list[int] | None) -> str:
    if isinstance(module, nn.Linear) and shape:
        return (
            f"the layers before it produce {shape[-1]} features per example: set "
            f"in_features={shape[-1]} or change the earlier layers (or the input size)"
        )
    if isinstance(module, nn.modules.conv._ConvNd) and shape and len(shape) > 1:
        return "match in_channels to the data (e.g. 1 for grey-scale, 3 for colour images)"
    return "check the sizes of your layers against the shape of the data"


def definition_site(obj: Any, root: Path) -> str:
    """`file:line` where a class or function of the bundle is defined, or ""."""
    try:
        return _cached_definition_site(obj, root)
    except TypeError:  # unhashable
        return _definition_site(obj, root)


# Sessions name the user's methods on every fit and evaluate, in case they fail; reading the
# source each time was a third of a small client's evaluation (1,000 virtual clients a round).
@functools.lru_cache(maxsize=256)
def _cached_definition_site(obj: Any, root: Path) -> str:
    return _definition_site(obj, root)


def _definition_site(obj: Any, root: Path) -> str:
    try:
        path = Path(inspect.getsourcefile(obj) or "")
        _lines, line = inspect.getsourcelines(obj)
        return f"{path.resolve().relative_to(root.resolve())}:{line}"
    except (TypeError, OSError, ValueError):
        return ""


def forward_one_batch(
    model: nn.Module, inputs: Any, root: Path, client: int | None = None
) -> Any:
    """`model(inputs)` with no gradients; a failure becomes a FlautimError naming the layer
    that was running (and what it expected), and the user's file:line."""
    running: list[tuple[str, nn.Module, list[int] | None]] = []
    finished: set[int] = set()
    hooks = []

    def before(name: str):
        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            running.append((name, module, _shape(args[0]) if args else None))

        return hook

    def after(module: nn.Module, _args: Any, _output: Any) -> None:
        finished.add(id(module))

    for name, module in model.named_modules():
        if name and not list(module.children()):
            hooks.append(module.register_forward_pre_hook(before(name)))
            hooks.append(module.register_forward_hook(after))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(inputs)
    except Exception as exc:
        where = user_location(exc.__traceback__, root)
        detail = describe_exception(exc)
        if running and id(running[-1][1]) not in finished:
            name, module, shape = running[-1]
            expectation, code, params = _expectation(module, shape) or (
                f"failed on input shape {shape}: {detail}", "model.layer_failed", {"shape": shape, "error": detail}
            )
            raise FlautimError(
                f"the model failed on the first batch: layer '{name}' ({module}) {expectation}",
                where=where, hint=_hint(module, shape), client=client,
                traceback=user_traceback(exc, root), code=code, params={"layer": name, **params},
            ) from None
        after_layer = ""
        if running:
            after_layer = f" (after layer '{running[-1][0]}')"
        raise FlautimError(
            f"the model failed on the first batch{after_layer}: {detail}",
            where=where, hint=f"the input batch has shape {_shape(inputs)}; check your forward()",
            client=client, traceback=user_traceback(exc, root),
            code="model.forward_failed", params={"error": detail, "shape": _shape(inputs)},
        ) from None
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)


def check_output(
    output: Any, inputs: Any, labels: Any, all_labels: list[int], model: nn.Module, root: Path,
    client: int | None = None,
) -> None:
    """The model's output fits the batch and the classes: one row per example and, for class
    scores, at least one column per class seen in the labels."""
    where = definition_site(type(model), root)
    if not isinstance(output, torch.Tensor):
        raise FlautimError(
            f"the model returned a {type(output).__name__}, expected a tensor", where=where,
            hint="forward() must return a tensor of shape [batch, outputs]", client=client,
            code="model.output_not_tensor", params={"type": type(output).__name__},
        )
    batch = inputs.shape[0] if isinstance(inputs, torch.Tensor) else None
    if batch is not None and (output.dim() == 0 or output.shape[0] != batch):
        raise FlautimError(
            f"the model's output has shape {list(output.shape)} for a batch of {batch} examples: "
            f"expected {batch} rows, got {output.shape[0] if output.dim() else 0}",
            where=where, client=client,
            hint="do not flatten away the batch dimension: use torch.flatten(x, 1) or x.view(x.size(0), -1)",
            code="model.output_rows",
            params={"shape": list(output.shape), "batch": batch, "rows": output.shape[0] if output.dim() else 0},
        )
    integer_labels = isinstance(labels, torch.Tensor) and not labels.is_floating_point()
    if integer_labels and all_labels and output.dim() == 2 and output.shape[1] > 1:
        highest = max(all_labels)
        if highest >= output.shape[1]:
            raise FlautimError(
                f"the model's output has {output.shape[1]} columns (shape {list(output.shape)}) but the "
                f"labels go up to {highest}: expected at least {highest + 1} outputs, one per class",
                where=where, client=client,
                hint=f"set the last layer's out_features to {highest + 1}",
                code="model.output_classes",
                params={"columns": output.shape[1], "shape": list(output.shape), "highest": highest, "needed": highest + 1},
            )
