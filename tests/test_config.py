"""Configuration: defaults, FLAUTIM_* overrides read once, and production's refusals."""

import pytest

from flautim.config import Config


def test_environment_overrides_are_typed():
    config = Config.from_env(
        environ={"FLAUTIM_SMTP_PORT": "2525", "FLAUTIM_SMTP_STARTTLS": "true", "FLAUTIM_GPU_POLICY": "share",
                 "FLAUTIM_SANDBOX_BACKEND": "local"}
    )
    assert config.SMTP_PORT == 2525 and config.SMTP_STARTTLS is True and config.GPU_POLICY == "share"


def test_bad_values_name_the_variable():
    with pytest.raises(ValueError, match="FLAUTIM_SMTP_PORT"):
        Config.from_env(environ={"FLAUTIM_SMTP_PORT": "twenty"})
    with pytest.raises(ValueError, match="FLAUTIM_SANDBOX_BACKEND"):
        Config.from_env(environ={"FLAUTIM_SANDBOX_BACKEND": "chroot"})


@pytest.mark.parametrize(
    "environ, message",
    [
        ({}, "SECRET_KEY"),
        ({"FLAUTIM_SECRET_KEY": "s3cret", "FLAUTIM_SANDBOX_BACKEND": "local"}, "not isolated|isolation"),
        ({"FLAUTIM_SECRET_KEY": "s3cret", "FLAUTIM_SANDBOX_BACKEND": "docker"}, "REDIS_URL"),
    ],
)
def test_production_refuses_unsafe_defaults(environ, message):
    with pytest.raises(ValueError, match=message):
        Config.from_env(environ={"FLAUTIM_ENV": "production", **environ})


def test_production_with_real_settings():
    config = Config.from_env(
        environ={
            "FLAUTIM_ENV": "production",
            "FLAUTIM_SECRET_KEY": "s3cret",
            "FLAUTIM_SANDBOX_BACKEND": "docker",
            "FLAUTIM_REDIS_URL": "redis://127.0.0.1:6379/0",
            "FLAUTIM_DATABASE_URL": "postgresql+psycopg://127.0.0.1/flautim",
        }
    )
    assert config.database_url.startswith("postgresql")
