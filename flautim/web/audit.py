"""The audit trail: who did what to which project, when."""

from __future__ import annotations

from flask_login import current_user

from flautim.models import AuditEvent, Project, db


def record(action: str, project: Project | None = None, target: str = "", **detail) -> None:
    """Add an audit event to the current session (committed with the change it records)."""
    actor_id = current_user.id if current_user and current_user.is_authenticated else None
    db.session.add(
        AuditEvent(
            project_id=project.id if project is not None else None,
            actor_id=actor_id,
            action=action,
            target=target[:200],
            detail=detail,
        )
    )
