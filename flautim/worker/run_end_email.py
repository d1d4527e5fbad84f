"""The email a user gets when a run they started ends: succeeded, failed (with its first
error) or timed out — not a cancel, which they did themselves. In the user's language,
from the app's catalog read without Flask (run_messages.gettext_for), the error rendered
from its code as the page shows it (run_messages.render).

Sent by the worker once the final state is committed: a mail server that is away costs
the user the email (logged), never the run its state. Only to the user who started the
attempt (else the experiment's author), while they are active, still members of the
project, and have not switched the emails off (User.notify_run_end, "Minha conta").
"""

from __future__ import annotations

import logging
import re

from sqlalchemy import func, select

from flautim import headline, help_topics, mail, run_messages
from flautim.config import Config
from flautim.models import (
    Experiment,
    ExperimentEvent,
    ExperimentState,
    Membership,
    Project,
    User,
    db,
)

from .database import session_scope

log = logging.getLogger(__name__)

NOTIFIED_STATES = frozenset({ExperimentState.SUCCEEDED, ExperimentState.FAILED, ExperimentState.TIMED_OUT})
# What the sandbox wrote goes into the email: one line each, bounded.
FIELD_CHARS = 500
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
# The pages the email links to (the web's URL rules, which the worker cannot ask).
EXPERIMENT_PATH = "/projects/{project_id}/experiments/{experiment_id}"
ACCOUNT_PATH = "/auth/account#perfil"


def _line(text: object, limit: int = FIELD_CHARS) -> str:
    """Hostile text as one bounded line (no header injection in a subject, no fake
    paragraphs in a body)."""
    text = _CONTROL.sub(" ", str(text or "")).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def compose(experiment: Experiment, project_name: str, user: User, first_error: dict | None,
            base_url: str, default_locale: str = "pt_BR") -> tuple[str, str]:
    """(subject, body) of the email about `experiment`'s end, in `user`'s language."""
    gettext = run_messages.gettext_for(user.locale or default_locale)

    def _(text: str, **values) -> str:
        translated = gettext(text)
        return translated % values if values else translated

    name = _line(experiment.name, 100)
    state = experiment.state
    if state == ExperimentState.SUCCEEDED:
        subject = _("Flautim: o experimento %(name)s terminou", name=name)
        outcome = _("terminou com sucesso")
    elif state == ExperimentState.TIMED_OUT:
        subject = _("Flautim: o experimento %(name)s passou do tempo limite", name=name)
        outcome = _("passou do tempo limite e foi interrompido")
    else:
        subject = _("Flautim: o experimento %(name)s falhou", name=name)
        outcome = _("falhou")
    base = base_url.rstrip("/")
    lines = [
        _("Olá, %(name)s.", name=_line(user.name, 100)),
        "",
        _("O experimento «%(name)s» do projeto «%(project)s» %(outcome)s.", name=name,
          project=_line(project_name, 100), outcome=outcome),
        _("Tentativa %(attempt)d: %(done)d de %(total)d rodadas, em %(duration)s.", attempt=experiment.attempt,
          done=experiment.rounds_done, total=experiment.rounds_total,
          duration=_duration((experiment.summary or {}).get("duration_s") or experiment.duration_s)),
    ]
    figures = _headline_figures(experiment.summary)
    if state == ExperimentState.SUCCEEDED and figures is not None:
        metric, final, best = figures
        lines += ["", _("%(metric)s: %(final)s no fim, %(best)s no melhor momento.", metric=metric,
                        final=final, best=best)]
    if state != ExperimentState.SUCCEEDED:
        error = run_messages.render(first_error or {}, gettext)
        what = _line(error.what or experiment.failure_reason or "")
        if what:
            lines += ["", _("Primeiro erro: %(what)s", what=what)]
        if error.where:
            lines.append(_("Onde: %(where)s", where=_line(error.where)))
        if error.hint:
            lines.append(_("Dica: %(hint)s", hint=_line(error.hint)))
        # A listed code's FAQ entry (never a slug the sandbox named).
        faq = help_topics.help_path(error.help)
        if faq:
            lines.append(_("No FAQ: %(link)s", link=base + faq))
    lines += [
        "",
        _("Veja os resultados: %(link)s", link=base + EXPERIMENT_PATH.format(
            project_id=experiment.project_id, experiment_id=experiment.id)),
        "",
        _("Para não receber mais estes avisos, desligue-os em Minha conta: %(link)s", link=base + ACCOUNT_PATH),
    ]
    return _line(subject, 200), "\n".join(lines) + "\n"


def _headline_figures(summary: dict | None) -> tuple[str, str, str] | None:
    """The run's headline metric (flautim.headline, as the page shows it) with its final and
    best values, as text; None where the worker kept no finite figures."""
    metric = headline.stored(summary)
    if metric is None:
        return None
    final = headline.number_or_none(summary.get("metric_value"))
    best = headline.number_or_none(summary.get("metric_best"))
    if final is None or best is None:
        return None
    return _line(metric.name, 64), f"{final:.4g}", f"{best:.4g}"


def _first_error(experiment: Experiment) -> dict | None:
    payload = db.session.scalar(
        select(ExperimentEvent.payload)
        .where(ExperimentEvent.experiment_id == experiment.id, ExperimentEvent.attempt == experiment.attempt,
               ExperimentEvent.type == "error")
        .order_by(ExperimentEvent.id)
        .limit(1)
    )
    return payload if isinstance(payload, dict) else None


def send_run_end_email(config: Config, experiment_id: int, attempt: int) -> bool:
    """Email the run's user about the end of `attempt`, if it ended as NOTIFIED_STATES say
    and they want it; True when an email went out. Never raises."""
    try:
        with session_scope(config):
            found = db.session.execute(
                select(Experiment, Project.name, User)
                .join(Project, Project.id == Experiment.project_id)
                .join(User, User.id == func.coalesce(Experiment.submitted_by_id, Experiment.created_by_id))
                .join(Membership, (Membership.project_id == Project.id) & (Membership.user_id == User.id))
                .where(Experiment.id == experiment_id, Experiment.attempt == attempt)
            ).first()
            if found is None:
                return False
            experiment, project_name, user = found
            if experiment.state not in NOTIFIED_STATES or not (user.active and user.notify_run_end):
                return False
            subject, body = compose(experiment, project_name, user, _first_error(experiment), config.BASE_URL,
                                    config.LANGUAGES[0])
            to = user.email
        mail.send_mail(config, to, subject, body)
        return True
    except Exception:
        log.exception("experiment %s attempt %s: the run-end email was not sent", experiment_id, attempt)
        return False
