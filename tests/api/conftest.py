"""Fixtures of the API tests: tokens made through the real token code, and helpers to seed
an experiment's rows directly in the database (what the worker would have written)."""

from __future__ import annotations

import pytest


@pytest.fixture
def make_token(app):
    """make_token(user_id, name="t") -> the secret of a new personal access token."""
    from flautim.models import User, db
    from flautim.web.api.tokens import create_token

    def factory(user_id: int, name: str = "t") -> str:
        with app.app_context():
            _token, secret = create_token(db.session.get(User, user_id), name)
            return secret

    return factory


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def seed_experiment(app):
    """seed_experiment(project_id, rounds=3, logs=5, state="succeeded") -> experiment id,
    with metric rows per round, log lines, events and (optionally) an artifact file."""
    from flautim import storage
    from flautim.models import (
        Experiment,
        ExperimentEvent,
        ExperimentState,
        LogRecord,
        MetricRow,
        ModelArtifact,
        db,
    )

    def factory(project_id: int, name: str = "exp", rounds: int = 3, logs: int = 5,
                state: str = "succeeded", artifact_bytes: bytes | None = None) -> int:
        with app.app_context():
            exp = Experiment(project_id=project_id, name=name, state=ExperimentState(state),
                             attempt=1, rounds_total=rounds, rounds_done=rounds)
            db.session.add(exp)
            db.session.flush()
            for r in range(1, rounds + 1):
                for source in ("aggregate", "client-0", "client-1"):
                    db.session.add(MetricRow(experiment_id=exp.id, attempt=1, round=r,
                                             phase="evaluate", source=source, name="loss",
                                             value=1.0 / r))
                db.session.add(MetricRow(experiment_id=exp.id, attempt=1, round=r, phase="central",
                                         source="server", name="accuracy", value=0.5 + r / 100))
                db.session.add(ExperimentEvent(experiment_id=exp.id, attempt=1, type="round_end",
                                               payload={"round": r, "rounds": rounds}))
            for i in range(logs):
                db.session.add(LogRecord(experiment_id=exp.id, attempt=1,
                                         source="server" if i % 2 else "client-0",
                                         line=f"line {i}"))
            if artifact_bytes is not None:
                import hashlib

                folder = storage.attempt_dir(app.extensions["flautim_config"].data_path,
                                             project_id, exp.id, 1) / "checkpoints"
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / "final.pt"
                path.write_bytes(artifact_bytes)
                db.session.add(ModelArtifact(
                    experiment_id=exp.id, attempt=1, round=rounds, kind="final", format="pytorch",
                    storage_path=storage.relative(app.extensions["flautim_config"].data_path, path),
                    size_bytes=len(artifact_bytes), sha256=hashlib.sha256(artifact_bytes).hexdigest(),
                    card={"accuracy": 0.9}))
            db.session.commit()
            return exp.id

    return factory
