"""What each live worker can hold, as it advertises it in Redis, and whether a run fits one.

Every worker writes its capacity (cores, memory, GPUs, warm pool, backend, queues) under
`flautim:worker-capacity:<name>` with a time to live its RQ heartbeat renews, and deletes
it when it stops: the keys present are the live workers. A set of the names advertised lets
the dispatcher read them in two commands, not a scan of the whole keyspace. The fair-share dispatcher
(queue.py) hands a run over only when some live worker serving its queue could ever hold
it; a run that fits a worker but must wait for that worker's memory to free is handed over
and waits there (flautim/sandbox/admission.py).

The worker also says what a run costs on it, in memory: its `prepare` and server
containers plus its client containers (one per client, or K groups), at its own limits (`run_base_mb`, `client_mb` by
transport, measured with the sandbox's own rule, `admission.run_memory_mb`), so workers
with different settings are judged by their own numbers. This module reads and writes
Redis only: the web (the dispatcher runs on submission, the admin's queue page) imports it
and must not import the sandbox.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field

import redis

from flautim.fl.virtual_clients import client_processes

log = logging.getLogger(__name__)

KEY_PREFIX = "flautim:worker-capacity:"
NAMES_KEY = "flautim:worker-capacity-names"


@dataclass(frozen=True)
class WorkerCapacity:
    name: str
    host: str
    backend: str  # "docker" or "local"
    queues: list[str]
    cores: int
    cpus_per_container: float
    memory_total_mb: int
    memory_for_runs_mb: int  # what the host gives sandboxes (admission.host_capacity_mb)
    run_base_mb: int  # `prepare` and the server
    client_mb: dict[str, int]  # one client container, by transport
    gpus: list[str] = field(default_factory=list)  # names, one per GPU the sandbox may use
    warm_pool: int = 0

    def run_memory_mb(self, needs: RunNeeds) -> int:
        per_client = self.client_mb.get(needs.transport, max(self.client_mb.values(), default=0))
        return self.run_base_mb + self.client_containers(needs) * per_client

    def client_containers(self, needs: RunNeeds) -> int:
        """K on this worker, as its sandbox plans it (admission.plan_client_containers)."""
        if needs.transport == "flower":
            return needs.clients
        per_client = self.client_mb.get(needs.transport, 0)
        room = max(0, self.memory_for_runs_mb - self.run_base_mb)
        return client_processes(needs.clients, self.cores, room * 2**20, max(1, per_client) * 2**20)

    def why_not(self, needs: RunNeeds) -> str | None:
        """Why this worker can never hold the run (English, for logs), or None."""
        if needs.queue not in self.queues:
            return f"does not serve {needs.queue}"
        if needs.gpu and not self.gpus:
            return "has no GPU"
        if self.cpus_per_container > self.cores:
            return f"gives each container {self.cpus_per_container:g} CPUs but has {self.cores} cores"
        if self.run_memory_mb(needs) > self.memory_for_runs_mb:
            return f"gives runs {self.memory_for_runs_mb} MB"
        return None


@dataclass(frozen=True)
class RunNeeds:
    """What one run asks of a worker, from its hyperparameters (quotas' rules)."""

    clients: int
    transport: str
    gpu: bool
    queue: str


def key_for(name: str) -> str:
    return KEY_PREFIX + name


def encode(capacity: WorkerCapacity) -> str:
    return json.dumps(asdict(capacity), sort_keys=True)


def advertise(connection, name: str, encoded: str, ttl_s: int) -> None:
    """Say (again) what worker `name` can hold, for `ttl_s` seconds; `connection` may be a
    pipeline."""
    connection.set(key_for(name), encoded, ex=int(ttl_s))
    connection.sadd(NAMES_KEY, name)


def withdraw(connection: redis.Redis, name: str) -> None:
    with connection.pipeline() as pipe:
        pipe.delete(key_for(name))
        pipe.srem(NAMES_KEY, name)
        pipe.execute()


def live_workers(connection: redis.Redis) -> list[WorkerCapacity]:
    """The capacity of every worker whose advertisement has not expired, by name."""
    names = sorted(n.decode() if isinstance(n, bytes) else n for n in connection.smembers(NAMES_KEY))
    workers, expired = [], []
    for name, raw in zip(names, connection.mget([key_for(n) for n in names]) if names else [], strict=True):
        if raw is None:  # it died without withdrawing: its advertisement expired
            expired.append(name)
            continue
        try:
            workers.append(WorkerCapacity(**json.loads(raw)))
        except (TypeError, ValueError):
            log.warning("ignoring the unreadable capacity of worker %r", name)
    if expired:
        connection.srem(NAMES_KEY, *expired)
    return workers


def unholdable_reason(needs: RunNeeds, workers: list[WorkerCapacity]) -> str | None:
    """The user-facing reason no live worker could ever hold this run, in pt-BR and English
    (it is stored with the run and every viewer reads the same text); None when one could,
    or when no worker advertises at all (none started yet: the run waits on its queue)."""
    if not workers or any(w.why_not(needs) is None for w in workers):
        return None
    serving = [w for w in workers if needs.queue in w.queues]
    if needs.gpu and not any(w.gpus for w in serving):
        return (
            "Nenhum worker ativo tem GPU, e os hiperparâmetros pedem device=\"cuda\". O experimento "
            "espera na fila até um worker com GPU se conectar; cancele-o ou use device=\"cpu\". / "
            "No live worker has a GPU, and the hyperparameters ask for device=\"cuda\". The run waits "
            "in the queue until a worker with a GPU connects; cancel it or use device=\"cpu\"."
        )
    fitting = [w for w in serving if not (needs.gpu and not w.gpus)]
    if fitting and all(w.cpus_per_container > w.cores for w in fitting):
        return (
            "Nenhum worker ativo tem núcleos para um contêiner desta execução. O experimento espera "
            "na fila; avise o administrador. / No live worker has the cores for one container of "
            "this run. The run waits in the queue; tell the administrator."
        )
    need = min((w.run_memory_mb(needs) for w in fitting), default=0)
    most = max((w.memory_for_runs_mb for w in fitting), default=0)
    return (
        f"Nenhum worker ativo comporta esta execução: ela precisa de {need} MB de memória "
        f"({needs.clients} clientes, o servidor e a preparação) e o maior worker oferece {most} MB. "
        "O experimento espera na fila até um worker maior se conectar; use menos clientes ou cancele-o. / "
        f"No live worker can hold this run: it needs {need} MB of memory ({needs.clients} clients, "
        f"the server and prepare) and the largest worker offers {most} MB. The run waits in the "
        "queue until a larger worker connects; use fewer clients or cancel it."
    )


__all__ = ["KEY_PREFIX", "NAMES_KEY", "RunNeeds", "WorkerCapacity", "advertise", "encode", "key_for",
           "live_workers", "unholdable_reason", "withdraw"]
