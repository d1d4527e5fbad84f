import pytest

from flautim.models import Experiment, db
from flautim.worker.database import use_config


@pytest.fixture
def worker_config(app):
    """The worker in this process uses the test app's configuration."""
    config = app.extensions["flautim_config"]
    use_config(config)
    return config


@pytest.fixture
def owner(make_user, make_project):
    user_id = make_user("owner@example.com")
    return user_id, make_project("P", user_id)


@pytest.fixture
def experiment_id(app, owner):
    """An experiment of `owner`'s project at attempt 1, for the ingestor to write to."""
    user_id, project_id = owner
    with app.app_context():
        experiment = Experiment(project_id=project_id, name="e", created_by_id=user_id, attempt=1)
        db.session.add(experiment)
        db.session.commit()
        return experiment.id
