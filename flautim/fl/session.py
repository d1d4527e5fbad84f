"""Client and server sessions: the platform side of running user code in a federated round.

The transports (see docs/runtime-internals.md) never touch user code directly: a client
process holds a `ClientSession` and calls `preflight()` once, then `fit()` / `evaluate()`
for each message; the server holds a `ServerSession` for the initial model, the check of
every client update, central evaluation, checkpoints and an optional user strategy.

Weights travel as `dict[str, numpy.ndarray]` keyed by the model's `state_dict()` names
(buffers included, e.g. BatchNorm running statistics). Every failure inside user code
becomes a FlautimError naming the user's file:line, the client and the round.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import numbers
import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from flautim.fl.api import Experiment, label_of
from flautim.fl.bundle import Bundle, load_user_code
from flautim.fl.checkpoints import CheckpointManager
from flautim.fl.errors import HYPERPARAMETERS, USER_CODE, FlautimError, user_code_error
from flautim.fl.hyperparameter_reads import tracked
from flautim.fl.hyperparameters import Hyperparameters
from flautim.fl.preflight import check_output, definition_site, forward_one_batch
from flautim.fl.prepare import StoredSamples, load_partition
from flautim.fl.reporting import log, reporting_scope

Weights = dict[str, np.ndarray]


def resolve_device(name: str) -> torch.device:
    """"cpu", "cuda" or "auto" (cuda when available) as a torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise FlautimError(
            "device = 'cuda' but this machine has no usable GPU", where="hyperparameters.py",
            hint='use device = "auto" to take a GPU when there is one', kind=HYPERPARAMETERS,
            code="hyperparameters.no_gpu",
        )
    return torch.device(name)


def get_weights(model: torch.nn.Module) -> Weights:
    """The model's state_dict as numpy arrays (copies)."""
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def set_weights(model: torch.nn.Module, weights: Weights, client: int | None = None) -> None:
    """Load `weights` into `model`; a missing/extra key or a shape mismatch is a FlautimError
    naming the parameter (values are cast to the model's dtypes)."""
    model.load_state_dict(checked_state(model, weights, client), strict=True)


def checked_state(model: torch.nn.Module, weights: Weights, client: int | None = None) -> dict[str, torch.Tensor]:
    """`weights` as a state_dict for `model` (tensors sharing the arrays' memory where the
    dtype already matches); FlautimError naming the parameter when they do not fit."""
    state = model.state_dict()
    missing = [k for k in state if k not in weights]
    extra = [k for k in weights if k not in state]
    if missing or extra:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        raise FlautimError(
            f"the global weights do not match this model's parameters ({detail})", client=client,
            hint="every client and the server must build the same model: build_model() must not "
            "depend on the client's data",
            code="weights.missing_parameters" if missing else "weights.unexpected_parameters",
            params={"names": ", ".join((missing or extra)[:3])},
        )
    new_state = {}
    for key, current in state.items():
        array = np.asarray(weights[key])
        if tuple(array.shape) != tuple(current.shape):
            raise FlautimError(
                f"parameter {key!r} of the global weights has shape {list(array.shape)}, this "
                f"model's has {list(current.shape)}", client=client,
                hint="every client and the server must build the same model",
                code="weights.shape",
                params={"parameter": key, "got": list(array.shape), "expected": list(current.shape)},
            )
        # ascontiguousarray makes a 0-d array (BatchNorm's step counter) 1-d; keep its shape.
        contiguous = np.ascontiguousarray(array).reshape(array.shape)
        new_state[key] = torch.from_numpy(contiguous).to(dtype=current.dtype)
    return new_state


def _as_float(value: Any) -> float | None:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.item())
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, np.ndarray) and value.size == 1:
        return float(value.reshape(()))
    return None


class _Session:
    """What both sides share: the bundle, the user's Experiment and model."""

    def __init__(
        self,
        bundle: Bundle | str | Path,
        hyperparameters: Hyperparameters | None,
        client_id: int | None,
        device: str,
    ) -> None:
        self.bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
        self.hp = hyperparameters or self.bundle.hyperparameters()
        self.client_id = client_id
        self.device = resolve_device(device)
        self.code = load_user_code(self.bundle)
        cls = self.code.experiment_class
        experiment: Experiment = cls.__new__(cls)
        # Set before the user's __init__ runs so it can use them.
        experiment.hyperparameters = tracked(self.hp.to_dict())
        experiment.device = self.device
        experiment.client_id = client_id
        experiment.round = 0
        experiment.epoch = 0
        experiment.epochs = self.hp.local_epochs  # type: ignore[attr-defined]
        experiment.batch_size = self.hp.batch_size  # type: ignore[attr-defined]
        experiment.learning_rate = self.hp.learning_rate  # type: ignore[attr-defined]
        experiment.model = None
        experiment.optimizer = None
        self.experiment = experiment
        with self.user_call(f"creating {cls.__name__}() failed", code="user_code.init_failed", cls=cls.__name__):
            experiment.__init__()
        torch.manual_seed(self.hp.seed)
        with self.user_call("building the model (build_model / Model()) failed", code="user_code.build_model_failed"):
            model = experiment.build_model()
        if not isinstance(model, torch.nn.Module):
            raise FlautimError(
                f"build_model() returned a {type(model).__name__}, not a torch.nn.Module",
                where=definition_site(type(experiment).build_model, self.bundle.root) or "api.py",
                hint="return an instance of your nn.Module subclass", client=client_id,
            )
        self.model = model.to(self.device)
        experiment.model = self.model

    @contextlib.contextmanager
    def user_call(self, what: str, hint: str = "", code: str | None = None, **params: Any) -> Iterator[None]:
        """Run user code; any exception becomes a FlautimError with the user's file:line
        (`code` and `params` name what was running, for the platform's translation)."""
        try:
            yield
        except FlautimError as exc:
            raise exc.with_client(self.client_id) from None
        except Exception as exc:
            kind = "out_of_memory" if isinstance(exc, torch.OutOfMemoryError | MemoryError) else USER_CODE
            raise user_code_error(
                exc, self.bundle.root, what, hint=hint, kind=kind, client=self.client_id, code=code, params=params,
            ) from None

    def _loader(self, data: Any, shuffle: bool, round: int = 0, batch_size: int | None = None) -> DataLoader:
        generator = torch.Generator()
        generator.manual_seed(self.hp.seed * 1_000_003 + (self.client_id or 0) * 1009 + round)
        return DataLoader(data, batch_size=batch_size or self.hp.batch_size, shuffle=shuffle, generator=generator)

    def _result(self, result: Any, method: str, round: int) -> tuple[float, dict[str, float]]:
        """Check what training_loop / validation_loop returned: (loss, {name: number})."""
        where = definition_site(getattr(type(self.experiment), method), self.bundle.root) or "api.py"
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise FlautimError(
                f"{method} returned {type(result).__name__} {_short(result)}, expected (loss, metrics)",
                where=where, client=self.client_id,
                hint=f'end {method} with `return loss, {{"accuracy": accuracy}}`',
            )
        loss = _as_float(result[0])
        if loss is None:
            raise FlautimError(
                f"{method} returned a loss of type {type(result[0]).__name__}, expected a number",
                where=where, client=self.client_id, hint="return the mean loss as a float (loss.item())",
            )
        raw = result[1] if result[1] is not None else {}
        if not isinstance(raw, dict):
            raise FlautimError(
                f"{method} returned metrics of type {type(raw).__name__} ({_short(raw)}), expected a dict",
                where=where, client=self.client_id,
                hint='return the metrics as a dict, e.g. `return loss, {"accuracy": acc}`',
            )
        metrics = {}
        for name, value in raw.items():
            number = _as_float(value)
            if number is None:
                raise FlautimError(
                    f"{method} returned metric {name!r} of type {type(value).__name__}, expected a number",
                    where=where, client=self.client_id, hint="metrics must be single numbers",
                )
            metrics[str(name)] = number
        return loss, metrics


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# What a client process keeps of the partitions it read (virtual clients read one per
# message otherwise): the whole MNIST-5k of 1,000 clients is 16 MB; beyond the budget the
# least recently used go first.
PARTITION_CACHE_BYTES = 64 * 1024**2


class PartitionCache:
    """`load_partition` that keeps what it read, up to `budget` bytes of tensors."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self._held: OrderedDict[str, tuple[tuple[StoredSamples, StoredSamples], int]] = OrderedDict()

    def load(self, data_dir: str | Path) -> tuple[StoredSamples, StoredSamples]:
        key = str(data_dir)
        if key in self._held:
            self._held.move_to_end(key)
            return self._held[key][0]
        partition = load_partition(data_dir)
        size = sum(_nbytes(part.columns) for part in partition)
        if size <= self.budget:
            while self.used + size > self.budget:
                self.used -= self._held.popitem(last=False)[1][1]
            self._held[key] = (partition, size)
            self.used += size
        return partition


def _nbytes(columns: list[Any]) -> int:
    return sum(
        c.nbytes if isinstance(c, torch.Tensor) else sum(t.nbytes for t in c if isinstance(t, torch.Tensor))
        for c in columns
    )


class _LoadedWeights:
    """The global weights last loaded into a model, and where each went.

    `load_state_dict` walks every module and checks every key for each load; a client
    process hosting virtual clients loads the same weights hundreds of times a round. While
    the model's `state_dict` still holds the very tensors they went into, with the same
    shapes, a plain copy into them (what `load_state_dict` does in the end) loads them
    again: whatever the user's loop did to the values (training, BatchNorm statistics) is
    overwritten, and a replaced layer or parameter sends the caller back to the full path.
    """

    def __init__(self, weights: Weights, state: dict[str, torch.Tensor], targets: list[torch.Tensor] | None) -> None:
        self.weights = weights
        self.state = state
        self.targets = targets
        self.sources = list(state.values())

    @classmethod
    def of(cls, model: torch.nn.Module, weights: Weights, state: dict[str, torch.Tensor]) -> _LoadedWeights:
        """No copy targets when a module loads in a way of its own (a `_load_from_state_dict`
        outside torch, load hooks): only `load_state_dict` does that right."""
        live = model.state_dict(keep_vars=True)
        for module in model.modules():
            loader = type(module)._load_from_state_dict
            if not getattr(loader, "__module__", "").startswith("torch.") or (
                module._load_state_dict_pre_hooks or module._load_state_dict_post_hooks
            ):
                return cls(weights, state, None)
        return cls(weights, {k: state[k] for k in live}, list(live.values()))

    def copy_into(self, model: torch.nn.Module) -> bool:
        """Load the weights into `model` again; False when it no longer fits them (the
        caller's full path then names the problem)."""
        try:
            if self.targets is None:
                model.load_state_dict(self.state, strict=True)
                return True
            live = model.state_dict(keep_vars=True)
            if len(live) != len(self.targets) or any(
                now is not then or now.shape != source.shape
                for now, then, source in zip(live.values(), self.targets, self.sources, strict=True)
            ):
                return False
            with torch.no_grad():
                for target, source in zip(self.targets, self.sources, strict=True):
                    target.copy_(source)
            return True
        except RuntimeError:
            return False


class ClientSession(_Session):
    """One federated client: the user's Experiment, model, optimizer and this client's data.

    `bundle` is a Bundle or a path; `hyperparameters` None reads the bundle's; `data_dir` is
    the `client-<i>/` folder written by `prepare`.
    """

    def __init__(
        self,
        bundle: Bundle | str | Path,
        hyperparameters: Hyperparameters | None,
        data_dir: str | Path,
        client_id: int,
        device: str = "cpu",
    ) -> None:
        super().__init__(bundle, hyperparameters, client_id, device)
        self._partitions = PartitionCache(PARTITION_CACHE_BYTES)
        self._global: _LoadedWeights | None = None
        self._load_data(data_dir)
        with self.user_call("configure_optimizer(model) failed", code="user_code.configure_optimizer_failed"):
            self.experiment.optimizer = self.experiment.configure_optimizer(self.model)
        self.preflight_done = False

    def _load_data(self, data_dir: str | Path) -> None:
        self.train_data, self.val_data = self._partitions.load(data_dir)
        if len(self.train_data) == 0:
            raise FlautimError(
                f"client {self.client_id} has no training examples", where=str(data_dir),
                hint="use fewer clients or a partitioning with less skew", kind="data", client=self.client_id,
            )

    def become(self, client_id: int, data_dir: str | Path) -> None:
        """Act as another client of the run from now on (virtual clients): its id in the
        user's Experiment, its logs and errors, and its partition, read now in place of the
        previous one. The model and the Experiment are reused: fit and evaluate load the
        server's weights first, and fit makes a fresh optimizer."""
        if client_id == self.client_id:
            return
        self.client_id = client_id
        self.experiment.client_id = client_id
        # Drop the previous partition before reading (the cache may still hold it).
        self.train_data = self.val_data = None
        try:
            self._load_data(data_dir)
        except BaseException:
            self.client_id = None  # no partition held: the next call for any client reads one
            raise

    def _load_global(self, weights: Weights) -> None:
        """`set_weights` for the round's global model, which every message of a round
        carries again (hundreds of times in a process hosting virtual clients): weights
        already checked against this model (the same arrays) are copied straight into the
        model's tensors, without converting and checking them again."""
        cached = self._global
        if cached is not None and cached.weights.keys() == weights.keys() and all(
            cached.weights[k] is weights[k] for k in weights
        ):
            if cached.copy_into(self.model):
                return
            self._global = None  # the model changed since: the full path names any problem
        state = checked_state(self.model, weights, self.client_id)
        self.model.load_state_dict(state, strict=True)
        # Kept only when every tensor is a view of its array, so an array changed in place
        # since is still loaded as it is now.
        if all(isinstance(weights[k], np.ndarray) and state[k].data_ptr() == weights[k].ctypes.data for k in state):
            self._global = _LoadedWeights.of(self.model, dict(weights), state)

    def preflight(self) -> None:
        """Run the model on one batch before round 1; FlautimError "expected … got …" naming
        the layer and the user's file:line on a size mismatch, or a wrong output shape; then
        the user's validation_loop on that batch, so its errors show before training starts."""
        batch_size = min(self.hp.batch_size, len(self.train_data))
        one_batch = Subset(self.train_data, list(range(batch_size)))
        inputs, labels = next(iter(DataLoader(one_batch, batch_size=batch_size)))[:2]
        inputs = inputs.to(self.device) if isinstance(inputs, torch.Tensor) else inputs
        output = forward_one_batch(self.model, inputs, self.bundle.root, self.client_id)
        all_labels = self.train_data.labels() if isinstance(self.train_data, StoredSamples) else [
            label_of(self.train_data[i]) for i in range(len(self.train_data))
        ]
        check_output(output, inputs, labels, all_labels, self.model, self.bundle.root, self.client_id)
        was_training = self.model.training
        with reporting_scope(self.client_id, 0, "preflight"):
            with self.user_call("validation_loop failed on one batch before round 1",
                                code="user_code.preflight_validation_failed"):
                result = self.experiment.validation_loop(self._loader(one_batch, shuffle=False))
            self._result(result, "validation_loop", 0)
        self.model.train(was_training)
        self.preflight_done = True

    def fit(self, weights: Weights, round: int, config: dict[str, Any]) -> dict[str, Any]:
        """Load `weights`, run `local_epochs` epochs of the user's training_loop, return
        {"weights", "num_examples" (examples, not batches), "loss", "metrics", "duration_s",
        "epochs": [{"epoch", "loss", "metrics"}]}. FlautimError naming round and client on
        an exception in user code or a NaN/inf loss. `config` may override "local_epochs",
        "learning_rate" and "batch_size" for this round (Flower-style "local-epochs" too);
        The optimizer is created afresh (configure_optimizer) at the start of every round.
        "proximal_mu" > 0 (FedProx) adds mu·(w − w_global) to every gradient before the
        optimizer steps, so the user's loop needs no change."""
        start = time.perf_counter()
        # Flower-style keys ("local-epochs") and Python-style ("local_epochs") both work.
        config = {str(k).replace("-", "_"): v for k, v in (config or {}).items()}
        self._load_global(weights)
        experiment = self.experiment
        experiment.round = round
        # A fresh optimizer each round: every round starts from the global model, so state
        # such as momentum from this client's previous local model would point elsewhere.
        with self.user_call("configure_optimizer(model) failed", code="user_code.configure_optimizer_failed"):
            experiment.optimizer = experiment.configure_optimizer(self.model)
        proximal = self._proximal_hook(float(config.get("proximal_mu", 0.0) or 0.0))
        try:
            return self._fit(round, config, start)
        finally:
            if proximal is not None:
                proximal.remove()

    def _proximal_hook(self, mu: float) -> Any:
        """FedProx without changing the user's loop: before every optimizer step, add the
        gradient of the proximal term mu/2·||w − w_global||², i.e. mu·(w − w_global)."""
        optimizer = self.experiment.optimizer
        self.experiment.proximal_mu = mu  # type: ignore[attr-defined]
        if mu <= 0 or optimizer is None or not hasattr(optimizer, "register_step_pre_hook"):
            return None
        anchors = {id(p): p.detach().clone() for p in self.model.parameters()}

        def add_proximal_gradient(_optimizer: Any, _args: Any, _kwargs: Any) -> None:
            with torch.no_grad():
                for p in self.model.parameters():
                    if p.grad is not None and id(p) in anchors:
                        p.grad.add_(p - anchors[id(p)], alpha=mu)

        return optimizer.register_step_pre_hook(add_proximal_gradient)

    def _fit(self, round: int, config: dict[str, Any], start: float) -> dict[str, Any]:
        experiment = self.experiment
        epochs = int(config.get("local_epochs", self.hp.local_epochs))
        if "learning_rate" in config and experiment.optimizer is not None:
            for group in experiment.optimizer.param_groups:
                group["lr"] = float(config["learning_rate"])
        loader = self._loader(self.train_data, True, round, int(config.get("batch_size", self.hp.batch_size)))
        history = []
        where = definition_site(type(experiment).training_loop, self.bundle.root) or "api.py"
        with reporting_scope(self.client_id, round, "train") as scope:
            for epoch in range(1, epochs + 1):
                experiment.epoch = epoch
                with self.user_call(f"training_loop raised in round {round}, local epoch {epoch}",
                                    code="user_code.training_loop_raised", round=round, epoch=epoch):
                    result = experiment.training_loop(loader)
                loss, metrics = self._result(result, "training_loop", round)
                if not math.isfinite(loss):
                    raise FlautimError(
                        f"the training loss became {loss} in round {round}, local epoch {epoch}",
                        where=where, client=self.client_id,
                        hint="lower learning_rate, normalise the inputs, check the data for NaN "
                        "values, or clip gradients (torch.nn.utils.clip_grad_norm_)",
                        code="training.loss_not_finite", params={"loss": str(loss), "round": round, "epoch": epoch},
                    )
                log(f"epoch {epoch}/{epochs} loss {loss:.4f}" + "".join(
                    f" {k} {v:.4f}" for k, v in metrics.items()))
                history.append({"epoch": epoch, "loss": loss, "metrics": metrics})
            merged = {**history[-1]["metrics"], **scope.metrics}
        new_weights = get_weights(self.model)
        for key, array in new_weights.items():
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise FlautimError(
                    f"parameter {key!r} holds NaN/inf after training in round {round}",
                    where=where, client=self.client_id,
                    hint="lower learning_rate or clip gradients (torch.nn.utils.clip_grad_norm_)",
                    code="training.weights_not_finite", params={"parameter": key, "round": round},
                )
        return {
            "weights": new_weights,
            "num_examples": len(self.train_data),
            "loss": history[-1]["loss"],
            "metrics": merged,
            "duration_s": time.perf_counter() - start,
            "epochs": history,
        }

    def evaluate(self, weights: Weights, round: int, config: dict[str, Any]) -> dict[str, Any]:
        """Load `weights`, run validation_loop on the local validation share (the training
        share when the client has no validation share), return {"num_examples", "loss",
        "metrics", "duration_s"}."""
        start = time.perf_counter()
        config = {str(k).replace("-", "_"): v for k, v in (config or {}).items()}
        self._load_global(weights)
        self.experiment.round = round
        data = self.val_data if len(self.val_data) else self.train_data
        with reporting_scope(self.client_id, round, "evaluate") as scope:
            with self.user_call(f"validation_loop raised in round {round}", code="user_code.validation_loop_raised",
                                round=round):
                loader = self._loader(data, False, round, int(config.get("batch_size", self.hp.batch_size)))
                result = self.experiment.validation_loop(loader)
            loss, metrics = self._result(result, "validation_loop", round)
            metrics.update(scope.metrics)
        return {
            "num_examples": len(data),
            "loss": loss,
            "metrics": metrics,
            "duration_s": time.perf_counter() - start,
        }


class ServerSession(_Session):
    """The server's view of user code: the initial model, update checks, central
    evaluation, checkpoints and an optional user strategy. `data_dir` is the `server/`
    folder written by `prepare` (None: no central evaluation unless the Experiment has a
    central_dataset()); checkpoints go under `out_dir/checkpoints/`."""

    def __init__(
        self,
        bundle: Bundle | str | Path,
        hyperparameters: Hyperparameters | None,
        data_dir: str | Path | None,
        out_dir: str | Path,
        device: str = "cpu",
    ) -> None:
        super().__init__(bundle, hyperparameters, None, device)
        self.out_dir = Path(out_dir)
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self._initial = get_weights(self.model)
        self._reference = {k: (v.shape, v.dtype) for k, v in self._initial.items()}
        self.central_data: Any = None
        with self.user_call("central_dataset() failed", code="user_code.central_dataset_failed"):
            self.central_data = self.experiment.central_dataset()
        if self.central_data is None and data_dir is not None and Path(data_dir).is_dir():
            _train, self.central_data = load_partition(data_dir)
        options = self.hp.checkpoint
        self.checkpoints = CheckpointManager(
            self.out_dir,
            keep_last=options.get("keep_last", 2),
            best_metric=options.get("best_metric", "loss"),
            mode=options.get("mode", "min"),
            card={"hyperparameters": self.hp.to_dict(), "code_hash": self.bundle.code_hash()},
        )

    def initial_weights(self) -> Weights:
        """The global model's starting weights (seeded by the hyperparameters' seed)."""
        return {k: v.copy() for k, v in self._initial.items()}

    def check_update(self, weights: Weights, client_id: int | None) -> None:
        """FlautimError naming the client and the parameter when a client's weights differ
        from the global model in keys, shapes or dtypes, or hold NaN/inf."""
        who = "the server" if client_id is None else f"client {client_id}"
        hint = ("every client must train the same model: build_model() must not depend on the "
                "client's data, and training_loop must not replace or resize layers")
        # Coded (translated by the platform) when a client sent them, as it always does.
        coded = {"client": client_id} if client_id is not None else None

        def code(name: str) -> str | None:
            return name if coded is not None else None

        for key in self._reference:
            if key not in weights:
                raise FlautimError(f"{who} sent weights without parameter {key!r}",
                                   where=f"client {client_id}", hint=hint, client=client_id,
                                   code=code("weights.update_missing_parameter"), params={**(coded or {}), "parameter": key})
        for key in weights:
            if key not in self._reference:
                raise FlautimError(f"{who} sent an unknown parameter {key!r}, not in the global model",
                                   where=f"client {client_id}", hint=hint, client=client_id,
                                   code=code("weights.update_unknown_parameter"), params={**(coded or {}), "parameter": key})
        for key, (shape, dtype) in self._reference.items():
            array = np.asarray(weights[key])
            if array.shape != shape:
                raise FlautimError(
                    f"{who} sent parameter {key!r} with shape {list(array.shape)}, the global "
                    f"model has {list(shape)}", where=f"client {client_id}", hint=hint, client=client_id,
                    code=code("weights.update_shape"),
                    params={**(coded or {}), "parameter": key, "got": list(array.shape), "expected": list(shape)})
            if array.dtype != dtype:
                raise FlautimError(
                    f"{who} sent parameter {key!r} as {array.dtype}, the global model has {dtype}",
                    where=f"client {client_id}", client=client_id,
                    hint="do not change the model's dtype in training_loop (e.g. model.double())",
                    code=code("weights.update_dtype"),
                    params={**(coded or {}), "parameter": key, "got": str(array.dtype), "expected": str(dtype)})
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise FlautimError(
                    f"{who} sent parameter {key!r} with NaN/inf values", where=f"client {client_id}",
                    client=client_id, hint="lower learning_rate or clip gradients",
                    code=code("weights.update_not_finite"), params={**(coded or {}), "parameter": key})

    def central_evaluate(self, weights: Weights, round: int) -> tuple[float, dict[str, float]] | None:
        """(loss, metrics) of the global model on the server's data (the Dataset's validation
        split, or Experiment.central_dataset()), None when there is none."""
        if self.central_data is None or len(self.central_data) == 0:
            return None
        set_weights(self.model, weights)
        self.experiment.round = round
        with reporting_scope(None, round, "central") as scope:
            with self.user_call(f"central evaluation raised after round {round}",
                                code="user_code.central_evaluation_raised", round=round):
                result = self.experiment.central_evaluation(self._loader(self.central_data, False, round))
            method = "central_evaluation" if "central_evaluation" in vars(type(self.experiment)) else "validation_loop"
            loss, metrics = self._result(result, method, round)
            metrics.update(scope.metrics)
        return loss, metrics

    def checkpoint(
        self, weights: Weights, round: int, metrics: dict[str, float], final: bool = False
    ) -> list[dict[str, Any]]:
        """Save the global model; returns the `checkpoint` events' fields (round, kind,
        files, metrics) for what was written (the round's, a new best, the final one).
        `metrics` should hold "loss" and the other metrics of the round (central evaluation
        when there is one, else the aggregated evaluation) — the best is chosen by the
        hyperparameter `checkpoint["best_metric"]`."""
        return self.checkpoints.save(weights, round, metrics, final=final)

    def custom_strategy(self, defaults: dict[str, Any]) -> Any | None:
        """The user's Experiment.build_strategy(defaults), or None."""
        if "build_strategy" not in _overridden(type(self.experiment)):
            return None
        with self.user_call("build_strategy(defaults) failed", code="user_code.build_strategy_failed"):
            return self.experiment.build_strategy(dict(defaults))


def _overridden(cls: type) -> set[str]:
    names = set()
    for klass in inspect.getmro(cls):
        if klass is Experiment:
            break
        names.update(vars(klass))
    return names
