"""Outgoing email from the web: flautim.mail with the app's settings."""

from __future__ import annotations

from flautim import mail
from flautim.web import flautim_config


def send_mail(to: str, subject: str, body: str, reply_to: str | None = None) -> None:
    """Send a plain-text email. Failures are logged with context and re-raised."""
    mail.send_mail(flautim_config(), to, subject, body, reply_to=reply_to)
