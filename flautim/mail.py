"""Outgoing email over SMTP, for the web and the worker alike. With no SMTP host
configured, messages go to the log."""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage

from flautim.config import Config

log = logging.getLogger(__name__)


def send_mail(config: Config, to: str, subject: str, body: str, reply_to: str | None = None) -> None:
    """Send a plain-text email. Failures are logged with context and re-raised."""
    message = EmailMessage()
    message["From"] = config.MAIL_FROM
    message["To"] = to
    message["Subject"] = subject
    if reply_to:
        message["Reply-To"] = reply_to
    message.set_content(body)

    if not config.SMTP_HOST:
        log.info("mail (no SMTP host set) to=%s subject=%s\n%s", to, subject, body)
        return
    try:
        with smtplib.SMTP(config.SMTP_HOST, config.SMTP_PORT, timeout=10) as smtp:
            if config.SMTP_STARTTLS:
                smtp.starttls()
            if config.SMTP_USER:
                smtp.login(config.SMTP_USER, config.SMTP_PASSWORD)
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException):
        log.exception("sending mail to %s (%s) failed", to, subject)
        raise
