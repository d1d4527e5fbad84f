"""Saving the global model: after each round (keeping the last K), the best one by a chosen
metric, and the final one.

Each checkpoint is written twice — a PyTorch `state_dict` (`.pt`, load with
`model.load_state_dict(torch.load(path))`) and safetensors (`.safetensors`, load with
`safetensors.torch.load_file(path)`) — plus a small JSON card (`.json`): round, kind,
metrics, hyperparameters and the hash of the code that produced it. Files are written to a
temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

Weights = dict[str, np.ndarray]


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


class CheckpointManager:
    """Writes checkpoints under `out_dir/checkpoints/` and tells what it wrote.

    `keep_last`: how many per-round checkpoints to keep (0: none); `best_metric`: the metric
    name that decides the best model (None: no best); `mode`: "min" or "max" for it;
    `card`: fields copied into every JSON card (hyperparameters, code_hash, ...).
    """

    def __init__(
        self,
        out_dir: str | Path,
        keep_last: int = 2,
        best_metric: str | None = "loss",
        mode: str = "min",
        card: dict[str, Any] | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.folder = self.out_dir / "checkpoints"
        self.keep_last = keep_last
        self.best_metric = best_metric
        self.mode = mode
        self.card = dict(card or {})
        self.best_value: float | None = None
        self.best_round: int | None = None
        self._rounds: list[int] = []

    def _write(self, stem: str, weights: Weights, round: int, kind: str, metrics: dict[str, Any]) -> dict[str, Any]:
        self.folder.mkdir(parents=True, exist_ok=True)
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)).clone() for k, v in weights.items()}
        files = {
            "pytorch": self.folder / f"{stem}.pt",
            "safetensors": self.folder / f"{stem}.safetensors",
            "card": self.folder / f"{stem}.json",
        }
        code_hash = str(self.card.get("code_hash", ""))
        _atomic(files["pytorch"], lambda p: torch.save(tensors, p))
        _atomic(
            files["safetensors"],
            lambda p: save_file(tensors, str(p), metadata={"round": str(round), "kind": kind, "code_hash": code_hash}),
        )
        relative = {fmt: str(path.relative_to(self.out_dir)) for fmt, path in files.items()}
        card = {
            **self.card,
            "round": round,
            "kind": kind,
            "metrics": {k: (v if not isinstance(v, float) or math.isfinite(v) else str(v)) for k, v in metrics.items()},
            "parameters": int(sum(int(np.prod(v.shape)) for v in weights.values())),
            "files": {k: Path(v).name for k, v in relative.items() if k != "card"},
            "created_at": time.time(),
        }
        _atomic(files["card"], lambda p: p.write_text(json.dumps(card, indent=1, default=str)))
        return {"round": round, "kind": kind, "files": relative, "metrics": dict(metrics)}

    def _is_better(self, value: float) -> bool:
        if self.best_value is None:
            return True
        return value < self.best_value if self.mode == "min" else value > self.best_value

    def save(self, weights: Weights, round: int, metrics: dict[str, Any], final: bool = False) -> list[dict[str, Any]]:
        """Save after `round`; returns the `checkpoint` events' fields for each file set written
        ("round", then "best" when `metrics[best_metric]` improved, then "final")."""
        written = []
        if self.keep_last > 0:
            written.append(self._write(f"round-{round:04d}", weights, round, "round", metrics))
            self._rounds.append(round)
            for old in self._rounds[: -self.keep_last]:
                for suffix in (".pt", ".safetensors", ".json"):
                    (self.folder / f"round-{old:04d}{suffix}").unlink(missing_ok=True)
            self._rounds = self._rounds[-self.keep_last :]
        value = metrics.get(self.best_metric) if self.best_metric else None
        if isinstance(value, (int, float)) and math.isfinite(value) and self._is_better(float(value)):
            self.best_value, self.best_round = float(value), round
            written.append(self._write("best", weights, round, "best", metrics))
        if final:
            written.append(self._write("final", weights, round, "final", metrics))
        return written
