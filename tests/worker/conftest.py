import pytest

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
