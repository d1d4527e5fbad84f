"""The admin panel: users, projects (and their quotas), experiments, queues and the support
inbox."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, or_, select

from flautim import quotas
from flautim.models import Experiment, ExperimentState, Membership, Project, SupportTicket, User, db
from flautim.redis_connection import redis_url
from flautim.web import audit, flautim_config
from flautim.web.auth.accounts import is_last_admin
from flautim.web.support.forms import ReplyForm
from flautim.web.support.tickets import add_staff_answer, close_ticket

from . import bp
from .forms import ActionForm, QuotaForm
from .guard import admins_only
from .queues import overview

# Registered here, at import, so it covers every route of the blueprint (and runs once).
bp.before_request(admins_only)

PAGE_SIZE = 100


@bp.get("/")
def dashboard():
    counts = {
        "users": db.session.scalar(select(func.count(User.id))),
        "projects": db.session.scalar(select(func.count(Project.id))),
        "experiments": db.session.scalar(select(func.count(Experiment.id))),
        "open_tickets": db.session.scalar(
            select(func.count(SupportTicket.id)).where(SupportTicket.status == "open")
        ),
    }
    by_state = dict(
        db.session.execute(select(Experiment.state, func.count(Experiment.id)).group_by(Experiment.state)).all()
    )
    return render_template("admin/dashboard.html", counts=counts, by_state=by_state)


# --- users ------------------------------------------------------------------------------

@bp.get("/users")
def users():
    q = (request.args.get("q") or "").strip()[:100]
    query = select(User).order_by(User.created_at.desc()).limit(PAGE_SIZE)
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(or_(User.name.ilike(pattern, escape="\\"), User.email.ilike(pattern, escape="\\")))
    return render_template("admin/users.html", users=db.session.scalars(query).all(), q=q, action_form=ActionForm())


def _target_user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    if not ActionForm().validate_on_submit():
        abort(400)
    return user


@bp.post("/users/<int:user_id>/active")
def toggle_active(user_id: int):
    user = _target_user(user_id)
    if user.active and (user.id == current_user.id or is_last_admin(user)):
        flash(_("Você não pode desativar a própria conta nem o último administrador."), "error")
    else:
        user.active = not user.active
        audit.record("admin.user_reactivated" if user.active else "admin.user_deactivated", target=user.email)
        db.session.commit()
        flash(
            _("Conta de %(email)s reativada.", email=user.email)
            if user.active
            else _("Conta de %(email)s desativada.", email=user.email),
            "success",
        )
    return redirect(url_for("admin.users", q=request.args.get("q") or None))


@bp.post("/users/<int:user_id>/admin")
def toggle_admin(user_id: int):
    user = _target_user(user_id)
    if user.is_admin and is_last_admin(user):
        flash(_("O site precisa de pelo menos um administrador ativo: este direito não pode ser retirado."), "error")
    else:
        user.is_admin = not user.is_admin
        audit.record("admin.admin_granted" if user.is_admin else "admin.admin_revoked", target=user.email)
        db.session.commit()
        flash(
            _("%(email)s agora é administrador(a).", email=user.email)
            if user.is_admin
            else _("%(email)s não é mais administrador(a).", email=user.email),
            "success",
        )
    return redirect(url_for("admin.users", q=request.args.get("q") or None))


# --- projects and experiments -----------------------------------------------------------

@bp.get("/projects")
def projects():
    member_count = (
        select(func.count(Membership.id)).where(Membership.project_id == Project.id).scalar_subquery()
    )
    experiment_count = (
        select(func.count(Experiment.id)).where(Experiment.project_id == Project.id).scalar_subquery()
    )
    rows = db.session.execute(
        select(Project, member_count, experiment_count).order_by(Project.created_at.desc()).limit(PAGE_SIZE)
    ).all()
    return render_template("admin/projects.html", rows=rows)


@bp.get("/experiments")
def experiments():
    state = request.args.get("state") or ""
    query = select(Experiment, Project.name).join(Project, Project.id == Experiment.project_id)
    if state:
        try:
            query = query.where(Experiment.state == ExperimentState(state))
        except ValueError:
            abort(400)
    rows = db.session.execute(query.order_by(Experiment.created_at.desc()).limit(PAGE_SIZE)).all()
    return render_template("admin/experiments.html", rows=rows, state=state, states=list(ExperimentState))


@bp.get("/experiments/<int:experiment_id>")
def show_experiment(experiment_id: int):
    """One experiment's facts for staff (a support ticket links here): admins are usually no
    member of its project, so its own page would answer 404."""
    experiment = db.session.get(Experiment, experiment_id) or abort(404)
    tickets = db.session.scalars(
        select(SupportTicket)
        .where(SupportTicket.experiment_id == experiment.id)
        .order_by(SupportTicket.created_at.desc())
        .limit(PAGE_SIZE)
    ).all()
    return render_template("admin/experiment.html", e=experiment, tickets=tickets)


@bp.get("/queues")
def queues():
    try:
        queue_rows, workers = overview(redis_url(flautim_config()))
        error = None
    except Exception as exc:  # Redis down: show it on the page instead of a 500
        current_app.logger.exception("reading the RQ queues failed")
        queue_rows, workers, error = [], [], str(exc)
    return render_template("admin/queues.html", queues=queue_rows, workers=workers, error=error)


# --- quotas -----------------------------------------------------------------------------

@bp.route("/users/<int:user_id>/quotas", methods=["GET", "POST"])
def user_quotas(user_id: int):
    user = db.session.get(User, user_id) or abort(404)
    return _quota_page(quotas.USER, user.id, user.email, None)


@bp.route("/projects/<int:project_id>/quotas", methods=["GET", "POST"])
def project_quotas(project_id: int):
    project = db.session.get(Project, project_id) or abort(404)
    return _quota_page(quotas.PROJECT, project.id, project.name, project)


def _quota_page(scope: str, subject_id: int, label: str, project: Project | None):
    config = flautim_config()
    override = quotas.override_for(scope, subject_id)
    form = QuotaForm(obj=override)
    if form.validate_on_submit():
        values = {name: getattr(form, name).data for name in quotas.SETTINGS}
        quotas.save_override(scope, subject_id, values, current_user.id)
        audit.record("admin.quotas_changed", project=project, target=f"{scope}:{label}",
                     **{k: v for k, v in values.items() if v is not None})
        db.session.commit()
        flash(_("Limites de %(who)s salvos.", who=label), "success")
        endpoint = "admin.user_quotas" if scope == quotas.USER else "admin.project_quotas"
        return redirect(url_for(endpoint, **{f"{scope}_id": subject_id}))
    limits = quotas.limits_for(scope, subject_id, config)
    return (
        render_template(
            "admin/quotas.html",
            form=form,
            scope=scope,
            label=label,
            defaults=quotas.default_settings(scope, config),
            lines=quotas.usage_lines(limits, quotas.usage_for(scope, subject_id)),
        ),
        400 if form.errors else 200,
    )


# --- support inbox ----------------------------------------------------------------------

@bp.get("/support")
def support_inbox():
    status = request.args.get("status") or ""
    query = select(SupportTicket).order_by(SupportTicket.updated_at.desc()).limit(PAGE_SIZE)
    if status in ("open", "answered", "closed"):
        query = query.where(SupportTicket.status == status)
    return render_template("admin/support_inbox.html", tickets=db.session.scalars(query).all(), status=status)


def _ticket(ticket_id: int) -> SupportTicket:
    ticket = db.session.get(SupportTicket, ticket_id)
    if ticket is None:
        abort(404)
    return ticket


@bp.route("/support/<int:ticket_id>", methods=["GET", "POST"])
def show_ticket(ticket_id: int):
    ticket = _ticket(ticket_id)
    form = ReplyForm()
    if form.validate_on_submit():
        sent = add_staff_answer(ticket, current_user, form.body.data)
        if sent:
            flash(_("Resposta enviada a %(email)s.", email=ticket.user.email), "success")
        else:
            flash(_("Resposta guardada, mas o email ao usuário falhou; ele a verá no app."), "warning")
        return redirect(url_for("admin.show_ticket", ticket_id=ticket.id))
    return (
        render_template("admin/ticket.html", ticket=ticket, form=form, action_form=ActionForm()),
        400 if form.errors else 200,
    )


@bp.post("/support/<int:ticket_id>/close")
def close(ticket_id: int):
    ticket = _ticket(ticket_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    close_ticket(ticket)
    flash(_("Chamado encerrado."), "success")
    return redirect(url_for("admin.support_inbox"))
