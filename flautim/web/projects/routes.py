"""Project pages: list, create, show, settings (rename, describe, archive, delete), members
(invite, roles, remove, leave, transfer ownership) and the activity log.

Every project-scoped view goes through `require_role` (flautim/web/projects/access.py).
"""

from __future__ import annotations

import logging
import smtplib

from flask import flash, g, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import func, select

from flautim.models import AuditEvent, Experiment, Invitation, Membership, Project, Role, User, db
from flautim.models.base import utcnow
from flautim.storage import project_key
from flautim.web import audit
from flautim.web.stored_files import object_store

from . import bp
from . import invitations as inv
from .access import memberships_of, project_object_or_404, require_role
from .activity import describe_event
from .forms import (
    ConfirmForm,
    DeleteProjectForm,
    DescriptionForm,
    InviteForm,
    ProjectForm,
    RoleForm,
)
from .recent_runs import recent_finished_runs
from .roles import role_label, role_summary
from .team import TeamRuleError, change_role, leave, remove_member, transfer_ownership

log = logging.getLogger(__name__)

ACTIVITY_PAGE_SIZE = 200


@bp.app_context_processor
def _role_helpers():
    return {"role_label": role_label, "role_summary": role_summary}


# --- list and create --------------------------------------------------------------------

@bp.get("/")
@login_required
def list_projects():
    return render_template(
        "projects/list.html",
        memberships=memberships_of(),
        waiting=inv.waiting_for(current_user),
        recent_runs=recent_finished_runs(current_user.id),
    )


@bp.route("/new", methods=["GET", "POST"])
@login_required
def create():
    form = ProjectForm()
    if form.validate_on_submit():
        project = Project(name=form.name.data, description=form.description.data or "")
        db.session.add(project)
        db.session.flush()
        db.session.add(Membership(project_id=project.id, user_id=current_user.id, role=Role.OWNER))
        audit.record("project.created", project, target=project.name)
        db.session.commit()
        flash(_("Projeto “%(name)s” criado.", name=project.name), "success")
        return redirect(url_for("projects.show", project_id=project.id))
    status = 400 if form.is_submitted() else 200
    return render_template("projects/new.html", form=form), status


# --- one project --------------------------------------------------------------------------

def _members(project: Project) -> list[Membership]:
    rank = {Role.OWNER: 0, Role.EDITOR: 1, Role.VIEWER: 2}
    members = db.session.scalars(
        select(Membership).join(User).where(Membership.project_id == project.id)
    ).all()
    return sorted(members, key=lambda m: (rank[m.role], m.user.name.lower(), m.id))


@bp.get("/<int:project_id>")
@require_role(Role.VIEWER)
def show(project_id: int):
    return render_template(
        "projects/show.html",
        project=g.project,
        membership=g.membership,
        members=_members(g.project),
        leave_form=ConfirmForm(),
    )


# --- settings -----------------------------------------------------------------------------

def _render_settings(status: int = 200, **forms):
    project, membership = g.project, g.membership
    is_owner = membership.role == Role.OWNER
    if "details_form" not in forms:
        form_cls = ProjectForm if is_owner else DescriptionForm
        forms["details_form"] = form_cls(obj=project, formdata=None)
    forms.setdefault("delete_form", DeleteProjectForm(formdata=None))
    forms.setdefault("confirm_form", ConfirmForm(formdata=None))
    return (
        render_template(
            "projects/settings.html",
            project=project,
            membership=membership,
            is_owner=is_owner,
            **forms,
        ),
        status,
    )


@bp.get("/<int:project_id>/settings")
@require_role(Role.EDITOR)
def settings(project_id: int):
    return _render_settings()


@bp.post("/<int:project_id>/settings")
@require_role(Role.EDITOR)
def update_settings(project_id: int):
    project = g.project
    is_owner = g.membership.role == Role.OWNER
    form = ProjectForm() if is_owner else DescriptionForm()
    if not form.validate_on_submit():
        return _render_settings(400, details_form=form)
    changed = False
    if is_owner and form.name.data != project.name:
        audit.record("project.renamed", project, target=form.name.data, old=project.name, new=form.name.data)
        project.name = form.name.data
        changed = True
    description = form.description.data or ""
    if description != (project.description or ""):
        project.description = description
        audit.record("project.described", project, target=project.name)
        changed = True
    db.session.commit()
    if changed:
        flash(_("Alterações salvas."), "success")
    return redirect(url_for("projects.settings", project_id=project.id))


def _active_experiments(project: Project) -> int:
    return db.session.scalar(
        select(func.count())
        .select_from(Experiment)
        .where(
            Experiment.project_id == project.id,
            Experiment.state.in_(["queued", "preparing", "running"]),
        )
    )


@bp.post("/<int:project_id>/archive")
@require_role(Role.OWNER)
def archive(project_id: int):
    if not ConfirmForm().validate_on_submit():
        return _render_settings(400)
    project = g.project
    active = _active_experiments(project)
    if active:
        # An archived project is read-only, so nothing may still be running in it.
        flash(
            _("Há %(n)d experimento(s) em andamento. Cancele-os antes de arquivar o projeto.", n=active),
            "error",
        )
        return _render_settings(409)
    project.archived_at = utcnow()
    audit.record("project.archived", project, target=project.name)
    db.session.commit()
    flash(_("Projeto arquivado: agora ele é somente leitura."), "success")
    return redirect(url_for("projects.show", project_id=project.id))


@bp.post("/<int:project_id>/unarchive")
@require_role(Role.OWNER, allow_archived=True)
def unarchive(project_id: int):
    if not ConfirmForm().validate_on_submit():
        return _render_settings(400)
    project = g.project
    if project.archived_at is not None:
        project.archived_at = None
        audit.record("project.unarchived", project, target=project.name)
        db.session.commit()
        flash(_("Projeto desarquivado."), "success")
    return redirect(url_for("projects.show", project_id=project.id))


@bp.post("/<int:project_id>/delete")
@require_role(Role.OWNER, allow_archived=True)
def delete(project_id: int):
    project = g.project
    form = DeleteProjectForm()
    if not form.validate_on_submit():
        return _render_settings(400, delete_form=form)
    if form.confirm_name.data != project.name:
        form.confirm_name.errors.append(
            _("O nome digitado não confere com o nome do projeto (“%(name)s”).", name=project.name)
        )
        return _render_settings(400, delete_form=form)
    active = _active_experiments(project)
    if active:
        form.confirm_name.errors.append(
            _("Há %(n)d experimento(s) em andamento. Cancele-os antes de excluir o projeto.", n=active)
        )
        return _render_settings(409, delete_form=form)
    name, pid = project.name, project.id
    db.session.delete(project)
    # The project's own events go with it; this one stays so the deletion is traceable.
    audit.record("project.deleted", None, target=name, project_id=pid)
    db.session.commit()
    object_store().delete_tree(project_key(pid))
    flash(_("Projeto “%(name)s” excluído.", name=name), "success")
    return redirect(url_for("projects.list_projects"))


# --- members and invitations --------------------------------------------------------------

def _render_members(status: int = 200, invite_form: InviteForm | None = None):
    project, membership = g.project, g.membership
    return (
        render_template(
            "projects/members.html",
            project=project,
            membership=membership,
            members=_members(project),
            invitations=inv.pending_for_project(project) if membership.role == Role.OWNER else [],
            invite_form=invite_form or InviteForm(formdata=None),
            role_form=RoleForm(formdata=None),
            confirm_form=ConfirmForm(formdata=None),
            is_expired=inv.is_expired,
        ),
        status,
    )


@bp.get("/<int:project_id>/members")
@require_role(Role.VIEWER)
def members(project_id: int):
    return _render_members()


def _send(invitation: Invitation, token: str) -> bool:
    try:
        inv.send_invitation_email(invitation, token, current_user)
    except (OSError, smtplib.SMTPException):
        flash(
            _(
                "O convite foi salvo, mas o e-mail para %(email)s não pôde ser enviado. "
                "Tente “Reenviar” mais tarde.",
                email=invitation.email,
            ),
            "error",
        )
        return False
    return True


@bp.post("/<int:project_id>/members/invite")
@require_role(Role.OWNER, allow_archived=True)
def invite(project_id: int):
    project = g.project
    form = InviteForm()
    if not form.validate_on_submit():
        return _render_members(400, form)
    email = form.email.data
    if inv.member_with_email(project, email) is not None:
        form.email.errors.append(_("%(email)s já é membro deste projeto.", email=email))
        return _render_members(400, form)
    if inv.pending_with_email(project, email) is not None:
        form.email.errors.append(
            _(
                "Já existe um convite pendente para %(email)s. Use “Reenviar” na lista de "
                "convites.",
                email=email,
            )
        )
        return _render_members(400, form)
    invitation = Invitation(
        project_id=project.id, email=email, role=Role(form.role.data), invited_by_id=current_user.id
    )
    token = inv.new_token(invitation)
    db.session.add(invitation)
    audit.record("member.invited", project, target=email, role=invitation.role.value)
    db.session.commit()
    if _send(invitation, token):
        flash(_("Convite enviado para %(email)s.", email=email), "success")
    return redirect(url_for("projects.members", project_id=project.id))


@bp.post("/<int:project_id>/invitations/<int:invitation_id>/resend")
@require_role(Role.OWNER, allow_archived=True)
def resend_invitation(project_id: int, invitation_id: int):
    invitation = project_object_or_404(Invitation, invitation_id, g.project)
    if not ConfirmForm().validate_on_submit():
        return _render_members(400)
    if invitation.accepted_at is not None:
        flash(_("Este convite já foi aceito."), "info")
        return redirect(url_for("projects.members", project_id=g.project.id))
    token = inv.new_token(invitation)
    audit.record("invitation.resent", g.project, target=invitation.email)
    db.session.commit()
    if _send(invitation, token):
        flash(_("Convite reenviado para %(email)s.", email=invitation.email), "success")
    return redirect(url_for("projects.members", project_id=g.project.id))


@bp.post("/<int:project_id>/invitations/<int:invitation_id>/revoke")
@require_role(Role.OWNER, allow_archived=True)
def revoke_invitation(project_id: int, invitation_id: int):
    invitation = project_object_or_404(Invitation, invitation_id, g.project)
    if not ConfirmForm().validate_on_submit():
        return _render_members(400)
    if invitation.accepted_at is None:
        audit.record("invitation.revoked", g.project, target=invitation.email)
        db.session.delete(invitation)
        db.session.commit()
        flash(_("Convite para %(email)s cancelado.", email=invitation.email), "success")
    return redirect(url_for("projects.members", project_id=g.project.id))


def _team_change(action):
    """Run a team rule; on a broken rule, show the members page with the reason."""
    try:
        action()
    except TeamRuleError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return _render_members(409)
    return None


@bp.post("/<int:project_id>/members/<int:membership_id>/role")
@require_role(Role.OWNER, allow_archived=True)
def change_member_role(project_id: int, membership_id: int):
    member = project_object_or_404(Membership, membership_id, g.project)
    form = RoleForm()
    if not form.validate_on_submit():
        flash(_("Papel inválido: escolha dono, editor ou leitor."), "error")
        return _render_members(400)
    new = Role(form.role.data)
    old = member.role
    refused = _team_change(lambda: change_role(member, new))
    if refused is not None:
        return refused
    if new != old:
        audit.record("member.role_changed", g.project, target=member.user.email, old=old.value, new=new.value)
    db.session.commit()
    flash(_("%(name)s agora é %(role)s.", name=member.user.name, role=role_label(new)), "success")
    return redirect(url_for("projects.members", project_id=g.project.id))


@bp.post("/<int:project_id>/members/<int:membership_id>/remove")
@require_role(Role.OWNER, allow_archived=True)
def remove(project_id: int, membership_id: int):
    member = project_object_or_404(Membership, membership_id, g.project)
    if not ConfirmForm().validate_on_submit():
        return _render_members(400)
    email, name, is_self = member.user.email, member.user.name, member.user_id == current_user.id
    refused = _team_change(lambda: remove_member(member))
    if refused is not None:
        return refused
    audit.record("member.removed", g.project, target=email)
    db.session.commit()
    flash(_("%(name)s foi removido do projeto.", name=name), "success")
    if is_self:
        return redirect(url_for("projects.list_projects"))
    return redirect(url_for("projects.members", project_id=g.project.id))


@bp.post("/<int:project_id>/members/<int:membership_id>/transfer")
@require_role(Role.OWNER, allow_archived=True)
def transfer(project_id: int, membership_id: int):
    member = project_object_or_404(Membership, membership_id, g.project)
    if not ConfirmForm().validate_on_submit():
        return _render_members(400)
    refused = _team_change(lambda: transfer_ownership(g.membership, member))
    if refused is not None:
        return refused
    audit.record("project.ownership_transferred", g.project, target=member.user.email)
    db.session.commit()
    flash(
        _("%(name)s agora é dono do projeto; você passou a editor.", name=member.user.name),
        "success",
    )
    return redirect(url_for("projects.members", project_id=g.project.id))


@bp.post("/<int:project_id>/leave")
@require_role(Role.VIEWER, allow_archived=True)
def leave_project(project_id: int):
    if not ConfirmForm().validate_on_submit():
        return _render_members(400)
    project = g.project
    refused = _team_change(lambda: leave(g.membership))
    if refused is not None:
        return refused
    audit.record("member.left", project, target=current_user.email)
    db.session.commit()
    flash(_("Você saiu do projeto “%(name)s”.", name=project.name), "success")
    return redirect(url_for("projects.list_projects"))


# --- activity -----------------------------------------------------------------------------

@bp.get("/<int:project_id>/activity")
@require_role(Role.VIEWER)
def activity(project_id: int):
    events = db.session.scalars(
        select(AuditEvent)
        .where(AuditEvent.project_id == g.project.id)
        .order_by(AuditEvent.id.desc())
        .limit(ACTIVITY_PAGE_SIZE)
    ).all()
    return render_template(
        "projects/activity.html",
        project=g.project,
        membership=g.membership,
        events=[(e, describe_event(e)) for e in events],
    )
