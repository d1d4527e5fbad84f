"""`flautim submit`, `flautim download` and `flautim baseline`: the API from the terminal.

Exit codes (scripts rely on them):
    0  the experiment (baseline: the centralized run) succeeded / the file was saved (download)
    1  the experiment failed
    2  bad usage or a local problem (missing files, no token)
    3  the experiment hit its time limit
    4  the experiment was cancelled
    5  the server refused a request or could not be reached
    130 interrupted (Ctrl-C); the experiment keeps running on the server
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import click

from flautim.fl.command_line import run

from .bundle import BundleError, read_bundle
from .http import ApiClient, ApiClientError, FilePart
from .progress import ProgressView

DEFAULT_URL = "http://127.0.0.1:5000"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TIMED_OUT, EXIT_CANCELLED, EXIT_API = 0, 1, 2, 3, 4, 5
EXIT_INTERRUPTED = 130
EXIT_BY_STATE = {"succeeded": EXIT_OK, "failed": EXIT_FAILED, "timed_out": EXIT_TIMED_OUT,
                 "cancelled": EXIT_CANCELLED}
TERMINAL_STATES = frozenset(EXIT_BY_STATE)


def _common(command: click.Command) -> click.Command:
    for option in reversed((
        click.option("--project", required=True, type=int, help="id do projeto"),
        click.option("--url", default=lambda: os.environ.get("FLAUTIM_URL", DEFAULT_URL),
                     help=f"endereço do Flautim (padrão: $FLAUTIM_URL ou {DEFAULT_URL})"),
        click.option("--token", default=None, help="token de acesso pessoal (padrão: $FLAUTIM_TOKEN)"),
    )):
        command = option(command)
    return command


def _client(args, err) -> ApiClient | None:
    token = args.token or os.environ.get("FLAUTIM_TOKEN", "")
    if not token:
        err.write("flautim: informe o token com --token ou a variável FLAUTIM_TOKEN "
                  "(crie um em Minha conta > Tokens de acesso pessoal)\n")
        return None
    return ApiClient(args.url, token)


# --- submit -----------------------------------------------------------------------------

@click.command(
    "flautim submit",
    help="Envia uma pasta de experimento (dataset.py, data/, api.py, hyperparameters.py), "
         "cria e executa o experimento e acompanha o progresso.",
)
@click.argument("folder", metavar="EXPERIMENT_DIR")
@_common
@click.option("--name", help="nome do experimento (padrão: o nome da pasta)")
@click.option("--description", default="")
@click.option("--no-follow", is_flag=True, help="só enviar e iniciar; não acompanhar até o fim")
@click.option("--poll", type=float, default=1.0, show_default=True, help="segundos entre consultas")
@click.option("--timeout", type=float, default=0, help="parar de acompanhar após N segundos (0: sem limite)")
@click.pass_obj
def submit_command(streams, **params) -> int:
    return _submit(SimpleNamespace(**params), *streams)


def submit_main(argv: list[str], out=None, err=None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    return run(submit_command, argv, err, obj=(out, err))


def _submit(args: SimpleNamespace, out, err) -> int:
    try:
        bundle = read_bundle(args.folder)
    except BundleError as exc:
        err.write(f"flautim: {exc}\n")
        return EXIT_USAGE
    client = _client(args, err)
    if client is None:
        return EXIT_USAGE
    base = f"/projects/{args.project}"
    name = (args.name or bundle.root.resolve().name)[:100]
    files = [FilePart("dataset_file", "dataset.py", open(bundle.path("dataset.py"), "rb"))]
    try:
        data = bundle.data_zip()
        if data is not None:
            files.append(FilePart("data_files", "data.zip", data))
        err.write(f"enviando o dataset ({len(bundle.data_files)} arquivos de dados)...\n")
        dataset = client.post_multipart(base + "/datasets", {"name": name}, files)
        with open(bundle.path("api.py"), "rb") as f:
            model = client.post_multipart(base + "/models", {"name": name}, [FilePart("model_file", "api.py", f)])
        with open(bundle.path("hyperparameters.py"), "rb") as f:
            hyper = client.post_multipart(
                base + "/hyperparameters", {"name": name}, [FilePart("hyperparameters_file", "hyperparameters.py", f)]
            )
        experiment = client.post_json(
            base + "/experiments",
            {
                "name": name,
                "description": args.description,
                "dataset_id": dataset["id"],
                "model_code_id": model["id"],
                "hyperparameter_file_id": hyper["id"],
                "run": True,
            },
        )
    except ApiClientError as exc:
        err.write(f"flautim: {exc}\n")
        return EXIT_API
    finally:
        for part in files:
            part.stream.close()
    out.write(f"experimento {experiment['id']} ({experiment['name']}) criado: {experiment['state']}\n")
    out.flush()
    if args.no_follow:
        return EXIT_OK
    return follow(client, args.project, experiment["id"], args.poll, args.timeout, out, err)


def follow(client: ApiClient, project: int, experiment_id: int, poll: float, timeout: float,
           out, err) -> int:
    """Poll the experiment's events until it ends; exit code by its final state."""
    view = ProgressView(err)
    path = f"/projects/{project}/experiments/{experiment_id}/events"
    after = 0
    started = time.monotonic()
    try:
        while True:
            page = client.get(path, after=after, limit=1000)
            for event in page["items"]:
                view.feed(event)
            after = page["next_after"]
            experiment = page["experiment"]
            view.update_experiment(experiment)
            view.render()
            if page["has_more"]:
                continue
            if experiment["state"] in TERMINAL_STATES:
                break
            if timeout and time.monotonic() - started > timeout:
                view.finish()
                err.write(f"flautim: parei de acompanhar após {timeout:g} s; o experimento continua.\n")
                return EXIT_FAILED
            time.sleep(poll)
    except ApiClientError as exc:
        view.finish()
        err.write(f"flautim: {exc}\n")
        return EXIT_API
    except KeyboardInterrupt:
        view.finish()
        err.write(f"\nflautim: parei de acompanhar; o experimento {experiment_id} continua no servidor.\n")
        return EXIT_INTERRUPTED
    view.finish()
    state = experiment["state"]
    summary = f"experimento {experiment_id}: {state}, {experiment['rounds_done']}/{experiment['rounds_total']} rodadas"
    if experiment.get("duration_s") is not None:
        summary += f" em {experiment['duration_s']:.1f} s"
    out.write(summary + "\n")
    if experiment.get("failure_reason"):
        out.write(f"motivo: {experiment['failure_reason']}\n")
    return EXIT_BY_STATE.get(state, EXIT_FAILED)


# --- download ---------------------------------------------------------------------------

@click.command("flautim download", help="Baixa um modelo treinado (checkpoint) de um experimento.")
@click.argument("experiment", metavar="EXPERIMENT")
@_common
@click.option("--kind", type=click.Choice(("final", "best")), default="final", show_default=True)
@click.option("--format", "file_format", type=click.Choice(("pytorch", "safetensors")), default="pytorch", show_default=True)
@click.option("-o", "--output", help="arquivo de saída (padrão: o nome dado pelo servidor)")
@click.pass_obj
def download_command(streams, **params) -> int:
    return _download(SimpleNamespace(**params), *streams)


def _find_experiment(client: ApiClient, project: int, ref: str) -> dict:
    if ref.isdigit():
        return client.get(f"/projects/{project}/experiments/{int(ref)}")
    found = client.get(f"/projects/{project}/experiments", name=ref, limit=1)["items"]
    if not found:
        raise ApiClientError(404, f"nenhum experimento chamado {ref!r} no projeto {project}")
    return found[0]  # newest first


def download_main(argv: list[str], out=None, err=None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    return run(download_command, argv, err, obj=(out, err))


def _download(args: SimpleNamespace, out, err) -> int:
    client = _client(args, err)
    if client is None:
        return EXIT_USAGE
    try:
        experiment = _find_experiment(client, args.project, args.experiment)
        base = f"/projects/{args.project}/experiments/{experiment['id']}"
        artifacts = client.get(base + "/artifacts", kind=args.kind, format=args.file_format)["items"]
        if not artifacts:
            err.write(
                f"flautim: o experimento {experiment['id']} ({experiment['state']}) não tem modelo "
                f"{args.kind} em {args.file_format}\n"
            )
            return EXIT_FAILED
        artifact = max(artifacts, key=lambda a: (a["round"], a["id"]))
        suffix = ".safetensors" if args.file_format == "safetensors" else ".pt"
        target = Path(args.output or f"experiment-{experiment['id']}-{args.kind}{suffix}")
        partial = target.with_name(target.name + ".part")
        digest = hashlib.sha256()
        with open(partial, "wb") as raw:
            writer = _HashingWriter(raw, digest)
            client.download(base + f"/artifacts/{artifact['id']}/download", writer)
        if digest.hexdigest() != artifact["sha256"]:
            partial.unlink(missing_ok=True)
            err.write("flautim: o arquivo baixado não confere com o SHA-256 do servidor; tente de novo\n")
            return EXIT_API
        partial.replace(target)
    except ApiClientError as exc:
        err.write(f"flautim: {exc}\n")
        return EXIT_API
    except OSError as exc:
        err.write(f"flautim: não foi possível gravar: {exc}\n")
        return EXIT_USAGE
    out.write(f"{target} ({artifact['size_bytes']} bytes, rodada {artifact['round']}, {args.kind}, {args.file_format})\n")
    return EXIT_OK


class _HashingWriter:
    def __init__(self, raw, digest) -> None:
        self.raw, self.digest = raw, digest

    def write(self, block: bytes) -> int:
        self.digest.update(block)
        return self.raw.write(block)


# --- baseline ---------------------------------------------------------------------------

@click.command(
    "flautim baseline",
    help="Compara um experimento concluído com o treino centralizado: o mesmo dataset e modelo "
         "em um único cliente com todos os dados de treino, as mesmas rodadas e épocas locais. "
         "Inicia o treino centralizado, acompanha-o e mostra a diferença.",
)
@click.argument("experiment", metavar="EXPERIMENT")
@_common
@click.option("--no-follow", is_flag=True, help="só iniciar; não acompanhar até o fim")
@click.option("--poll", type=float, default=1.0, show_default=True, help="segundos entre consultas")
@click.option("--timeout", type=float, default=0, help="parar de acompanhar após N segundos (0: sem limite)")
@click.pass_obj
def baseline_command(streams, **params) -> int:
    return _baseline(SimpleNamespace(**params), *streams)


def baseline_main(argv: list[str], out=None, err=None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    return run(baseline_command, argv, err, obj=(out, err))


def _baseline(args: SimpleNamespace, out, err) -> int:
    client = _client(args, err)
    if client is None:
        return EXIT_USAGE
    try:
        experiment = _find_experiment(client, args.project, args.experiment)
        path = f"/projects/{args.project}/experiments/{experiment['id']}/baseline"
        started = client.post_json(path, {})
    except ApiClientError as exc:
        err.write(f"flautim: {exc}\n")
        return EXIT_API
    child = started["baseline"]
    out.write(f"treino centralizado {child['id']} ({child['name']}): {child['state']}\n")
    out.flush()
    if args.no_follow:
        return EXIT_OK
    code = follow(client, args.project, child["id"], args.poll, args.timeout, out, err)
    try:
        comparison = client.get(path)
    except ApiClientError as exc:
        err.write(f"flautim: {exc}\n")
        return EXIT_API
    if comparison.get("gap_text"):
        out.write(comparison["gap_text"] + "\n")
    return code
