"""`scripts/demo`'s seed: the demo account, its project and the MNIST example, ready to run."""

from __future__ import annotations

from sqlalchemy import select

from flautim.models import Dataset, Experiment, ExperimentState, Membership, Project, User, db
from flautim.web.demo import DEMO_EMAIL, DEMO_PROJECT, seed_demo


def test_seed_demo_creates_the_mnist_example_once(app):
    login = seed_demo(app, start_run=False)
    again = seed_demo(app, start_run=False)  # a second start of the demo reuses everything
    assert login.email == DEMO_EMAIL and again.password == login.password
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == DEMO_EMAIL))
        project = db.session.scalar(select(Project).where(Project.name == DEMO_PROJECT))
        assert db.session.scalar(select(Membership).where(
            Membership.project_id == project.id, Membership.user_id == user.id)) is not None
        experiments = db.session.scalars(select(Experiment).where(Experiment.project_id == project.id)).all()
        assert len(experiments) == 1 and experiments[0].state == ExperimentState.DRAFT
        assert login.path.endswith(f"/experiments/{experiments[0].id}")
        # The example's digits travel as its data files (4 gzipped IDX files).
        dataset = db.session.get(Dataset, experiments[0].dataset_id)
        assert dataset.file_count == 4
