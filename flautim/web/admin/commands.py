"""`flautim create-admin`: make a site administrator from the terminal."""

from __future__ import annotations

import click
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select

from flautim.models import User, db
from flautim.web import flautim_config

from ..auth.accounts import create_account
from ..auth.forms import NAME_MAX
from ..auth.passwords import password_problem


class AdminCommandError(click.ClickException, ValueError):
    """Bad input for create-admin; the message names the field (click prints it, exit 1)."""


def create_admin(email: str, name: str, password: str, app=None) -> str:
    """Create an administrator, or promote the existing account with that email.

    Validates the email, the name and the password strength the same way as sign-up.
    Builds the app from FLAUTIM_* settings unless `app` is given. Returns what it did.
    """
    from flautim.web import create_app

    app = app or create_app()
    with app.app_context():
        try:
            email = validate_email(email.strip(), check_deliverability=False).normalized.lower()
        except EmailNotValidError as exc:
            raise AdminCommandError(f"email: {exc}") from exc
        existing = db.session.scalar(select(User).where(func.lower(User.email) == email))
        if existing is not None:
            existing.is_admin, existing.active = True, True
            db.session.commit()
            return f"{email} is now an administrator (existing account; name and password unchanged)"
        name = name.strip()
        if not name:
            raise AdminCommandError("name: must not be empty")
        if len(name) > NAME_MAX:
            raise AdminCommandError(f"name: at most {NAME_MAX} characters")
        problem = password_problem(password, flautim_config(app).PASSWORD_MIN_LENGTH, email, name)
        if problem:
            raise AdminCommandError(f"password: {problem}")
        create_account(name, email, password, is_admin=True)
        db.session.commit()
        return f"administrator {email} created"
