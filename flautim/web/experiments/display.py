"""What templates need to show experiments and datasets: labels in the user's language and
a normalised view of a dataset's inspection report."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, render_template, request
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup

from flautim.models import Dataset, Experiment, Project, Role, db
from flautim.web.projects.access import scoped
from flautim.web.response_cache import cached_fragment

from . import run_messages

# Lazy: a page shows one state, so only that one is translated per view.
_STATE_LABELS = {
    "draft": _l("rascunho"),
    "queued": _l("na fila"),
    "preparing": _l("preparando"),
    "running": _l("executando"),
    "succeeded": _l("concluído"),
    "failed": _l("falhou"),
    "cancelled": _l("cancelado"),
    "timed_out": _l("tempo esgotado"),
}


def state_label(state: str) -> str:
    label = _STATE_LABELS.get(state)
    return str(label) if label is not None else state


def project_nav(project_id: int, project_name: str, active: str) -> Markup:
    """The project's section links (experiments/_nav.html), rendered once per language,
    project name and active section and shared by every page and viewer: they show nothing
    about who asks. The key holds the script root, which every link starts with."""
    key = ("project-nav", str(get_locale()), request.script_root, project_id, project_name, active)
    return Markup(cached_fragment(key, lambda: render_template(
        "experiments/_nav.html", project_id=project_id, project_name=project_name, active=active)))


def inspection_label(status: str) -> str:
    return {"pending": _("em análise"), "ok": _("ok"), "error": _("erro")}.get(status, status)


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, dict):
        for key in ("examples", "count", "size", "n"):
            if isinstance(value.get(key), int):
                return value[key]
    return None


def inspection_view(dataset: Dataset) -> dict[str, Any]:
    """{"splits": [(label, count)], "histogram": [(label, count)], "peak", "facts": [(k, v)]}
    from whatever the sandboxed inspection stored (tolerant of missing keys)."""
    info = dataset.inspection if isinstance(dataset.inspection, dict) else {}
    splits_src = info.get("splits") if isinstance(info.get("splits"), dict) else info
    splits = []
    for key, label in (("train", _("Treino")), ("validation", _("Validação"))):
        n = _count(splits_src.get(key))
        if n is None:
            n = _count(info.get(f"{key}_examples"))
        if n is None and key == "validation":
            n = _count(info.get("val_examples"))
        if n is not None:
            splits.append((label, n))
    hist_src = info.get("label_histogram") or info.get("label_counts")
    if hist_src is None and isinstance(info.get("train"), dict):
        hist_src = info["train"].get("label_counts") or info["train"].get("label_histogram")
    histogram: list[tuple[str, int]] = []
    if isinstance(hist_src, dict):
        histogram = [(str(k), v) for k, v in hist_src.items() if isinstance(v, int)]
    elif isinstance(hist_src, list):
        histogram = [(str(i), v) for i, v in enumerate(hist_src) if isinstance(v, int)]
    facts = [
        (key, info[key])
        for key in ("num_classes", "input_shape", "dtype", "classes")
        if key in info and not isinstance(info[key], dict)
    ]
    # The worker stores a failed inspection as {"error": the runtime's error fields}: shown
    # in the reader's language when the runtime named it, bounded either way.
    error = info.get("error") if isinstance(info.get("error"), dict) else info
    shown = run_messages.render(error) if error.get("what") or error.get("message") else None
    return {
        "splits": splits,
        "histogram": histogram,
        "peak": max((v for _k, v in histogram), default=0) or 1,
        "facts": facts,
        "what": shown.what if shown else None,
        "where": shown.where if shown else None,
        "hint": shown.hint if shown else None,
    }


def recent_experiments(project: Project, limit: int = 5) -> list[Experiment]:
    return list(
        db.session.scalars(
            scoped(Experiment, project).order_by(Experiment.created_at.desc(), Experiment.id.desc()).limit(limit)
        )
    )


def init_app(app: Flask) -> None:
    # Globals, not a context processor: plain functions, which macros imported without the
    # caller's context can call too, and no dict built per render.
    for function in (
        state_label, project_nav, inspection_label, inspection_view, recent_experiments, artifact_groups,
        can_edit_project,
    ):
        app.jinja_env.globals[function.__name__] = function


def can_edit_project(membership) -> bool:
    """Whether a membership may upload, run and edit (the pages' action buttons)."""
    return membership is not None and membership.role.allows(Role.EDITOR)


KIND_ORDER = {"final": 0, "best": 1, "round": 2}


def artifact_download_name(artifact, template: str) -> str:
    """The file name a checkpoint downloads as: `template` filled with the artifact's
    ids, round and kind, and the suffix of its format. A stored kind is not trusted (rows
    written before the worker checked kinds may hold CR/LF, quotes, `/` or non-ASCII, and
    the name goes into a header): a kind the runtime does not write becomes "checkpoint"."""
    kind = artifact.kind if artifact.kind in KIND_ORDER else "checkpoint"
    suffix = ".safetensors" if artifact.format == "safetensors" else ".pt"
    return template.format(kind=kind, round=int(artifact.round), attempt=int(artifact.attempt)) + suffix


def artifact_groups(artifacts: list) -> list[dict[str, Any]]:
    """One entry per (kind, round) with its formats: the final and the best first, then
    every round in order."""
    groups: dict[tuple[str, int], dict[str, Any]] = {}
    for a in artifacts:
        group = groups.setdefault(
            (a.kind, a.round), {"kind": a.kind, "round": a.round, "metrics": {}, "formats": {}}
        )
        group["formats"][a.format] = a
        metrics = (a.card or {}).get("metrics") if isinstance(a.card, dict) else None
        if isinstance(metrics, dict) and metrics:
            group["metrics"] = metrics
    # "best" is re-saved whenever the best improves: only the latest one is the best.
    best_rounds = [r for kind, r in groups if kind == "best"]
    for r in best_rounds:
        if r != max(best_rounds):
            del groups[("best", r)]
    return sorted(groups.values(), key=lambda g: (KIND_ORDER.get(g["kind"], 3), g["round"]))


def js_labels() -> Markup:
    """The words experiment.js writes into the page, in the user's language, as JSON for
    an HTML attribute (the same for every view in a language: translated and encoded once)."""
    locale = str(get_locale())
    labels = _JS_LABELS.get(locale)
    if labels is None:
        labels = _JS_LABELS[locale] = htmlsafe_json_dumps(_translate_js_labels(), dumps=current_app.json.dumps)
    return labels


_JS_LABELS: dict[str, Markup] = {}


def _translate_js_labels() -> dict[str, str]:
    labels = {
        "train": _("treino nos clientes"),
        "evaluate": _("avaliação federada"),
        "central": _("avaliação central"),
        "round": _("rodada"),
        "metric_per_round": _("{name} por rodada"),
        "metric_current": _("{name} atual"),
        "metric_best": _("melhor {name}"),
        "metric_current_none": _("métrica atual"),
        "metric_best_none": _("melhor métrica"),
        "client_metric_train": _("{name} (treino)"),
        "client_metric_evaluate": _("{name} (avaliação)"),
        "client_spread": _("mín.–máx. dos clientes"),
        "client_median": _("mediana dos clientes"),
        "client_caption": _("{name} por cliente"),
        "client_no_data": _("Nenhum cliente relatou {name} nesta fase."),
        "client_failed": _("Não foi possível carregar as curvas por cliente."),
        "waiting": _("aguardando dados"),
        "client": _("cliente"),
        "train_examples": _("exemplos de treino"),
        "val_examples": _("exemplos de validação"),
        "label": _("rótulo"),
        "method": _("método"),
        "lines": _("linhas"),
        "log_older_lines": _("As {n} linhas mais recentes desta escolha; as anteriores estão no log completo (Baixar o log completo)."),
        "log_load_failed": _("Não foi possível carregar as linhas desta origem. Tente de novo."),
        "log_client_missing": _("Digite o número de um cliente."),
        "reconnecting": _("conexão perdida, reconectando…"),
        "downsampled": _("Curvas longas aparecem reduzidas a {n} pontos cada (o último valor de cada grupo de rodadas)."),
        "skipped_events": _(
            "{n} eventos mais antigos não foram enviados a esta página: as curvas acima os resumem, e a API "
            "de eventos traz todos."
        ),
        "revoked": _("Você não tem mais acesso a este projeto: a atualização ao vivo foi encerrada."),
        "closed": _("Atualização ao vivo encerrada (abas demais abertas, ou o acesso mudou). Recarregue a página."),
    }
    for state in ("draft", "queued", "preparing", "running", "succeeded", "failed", "cancelled", "timed_out"):
        labels[f"state_{state}"] = state_label(state)
    return labels
