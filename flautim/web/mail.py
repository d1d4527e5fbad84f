"""Outgoing email over SMTP. With no SMTP host configured, messages go to the log."""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage

from flautim.web import flautim_config

log = logging.getLogger(__name__)


def send_mail(to: str, subject: str, body: str, reply_to: str | None = None) -> None:
    """Send a plain-text email. Failures are logged with context and re-raised."""
    cfg = flautim_config()
    message = EmailMessage()
    message["From"] = cfg.MAIL_FROM
    message["To"] = to
    message["Subject"] = subject
    if reply_to:
        message["Reply-To"] = reply_to
    message.set_content(body)

    if not cfg.SMTP_HOST:
        log.info("mail (no SMTP host set) to=%s subject=%s\n%s", to, subject, body)
        return
    try:
        with smtplib.SMTP(cfg.SMTP_HOST, cfg.SMTP_PORT, timeout=10) as smtp:
            if cfg.SMTP_STARTTLS:
                smtp.starttls()
            if cfg.SMTP_USER:
                smtp.login(cfg.SMTP_USER, cfg.SMTP_PASSWORD)
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException):
        log.exception("sending mail to %s (%s) failed", to, subject)
        raise
