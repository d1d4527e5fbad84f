import time

import docker
import pytest

from flautim.sandbox.container_spec import LABEL_EXPERIMENT
from flautim.sandbox.warm_pool import WarmPool
from flautim.worker.database import use_config

IMAGE = "flautim-sandbox:cpu"


@pytest.fixture(scope="session")
def docker_client():
    client = docker.from_env(timeout=120)
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"Docker is not reachable ({exc}); start dockerd (scripts/services)")
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"the sandbox image {IMAGE} is missing: run sandbox_images/build cpu")
    return client


@pytest.fixture
def config_overrides():
    return {
        "SANDBOX_BACKEND": "docker",
        "SANDBOX_CLIENT_MEMORY_MB": 768,
        "SANDBOX_SERVER_MEMORY_MB": 1024,
        "SANDBOX_LOG_LIMIT_BYTES": 1_000_000,
        "SANDBOX_OUTPUT_LIMIT_MB": 200,
        "SANDBOX_GPUS": "",
    }


@pytest.fixture
def worker_config(app, docker_client):
    config = app.extensions["flautim_config"]
    use_config(config)
    return config


@pytest.fixture
def pool(worker_config, docker_client):
    """This host's warm pool of SANDBOX_WARM_POOL containers, all done importing."""
    pool = WarmPool(worker_config, docker_client)
    pool.refill()
    deadline = time.monotonic() + 240
    while pool.ready()[0] < pool.size:
        assert time.monotonic() < deadline, "the warm pool never finished importing"
        time.sleep(0.5)
    yield pool
    pool.drain()


@pytest.fixture
def owner(make_user, make_project):
    user_id = make_user("owner@example.com")
    return user_id, make_project("P", user_id)


def leftovers(docker_client, experiment_id: int) -> list[str]:
    """The experiment's containers and networks still there (warm-pool containers a run
    claimed carry no run labels, only the run's names)."""
    containers = docker_client.containers.list(
        all=True, filters={"label": f"{LABEL_EXPERIMENT}={experiment_id}"})
    containers += [c for c in docker_client.containers.list(all=True)
                   if c.name.startswith(f"flautim-e{experiment_id}-") and c not in containers]
    networks = docker_client.networks.list(filters={"label": f"{LABEL_EXPERIMENT}={experiment_id}"})
    return [c.name for c in containers] + [n.name for n in networks]
