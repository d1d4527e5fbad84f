"""The account emails (Portuguese first, in the recipient's language when we know it)."""

from __future__ import annotations

from flask import current_app, url_for
from flask_babel import force_locale
from flask_babel import gettext as _

from flautim.models import User
from flautim.web import flautim_config
from flautim.web.mail import send_mail


def absolute_url(endpoint: str, **values) -> str:
    """A link for an email: the site's BASE_URL plus the endpoint's path."""
    base = flautim_config().BASE_URL.rstrip("/")
    return base + url_for(endpoint, **values)


def _locale_of(user: User) -> str:
    return user.locale or current_app.config["BABEL_DEFAULT_LOCALE"]


def send_password_reset(user: User, token: str) -> None:
    link = absolute_url("auth.reset_password", token=token)
    hours = max(1, flautim_config().TOKEN_MAX_AGE_S // 3600)
    with force_locale(_locale_of(user)):
        send_mail(
            user.email,
            _("Flautim: redefinir a senha"),
            _(
                "Olá, %(name)s.\n\nPara escolher uma nova senha, abra o link abaixo "
                "(ele vale por %(hours)d horas e funciona uma única vez):\n\n%(link)s\n\n"
                "Se não foi você quem pediu, ignore este email: a senha atual continua valendo.",
                name=user.name,
                hours=hours,
                link=link,
            ),
        )


def send_email_change_confirmation(user: User, new_email: str, token: str) -> None:
    link = absolute_url("auth.confirm_email", token=token)
    with force_locale(_locale_of(user)):
        send_mail(
            new_email,
            _("Flautim: confirme o novo email"),
            _(
                "Olá, %(name)s.\n\nPara passar a usar este endereço na sua conta do Flautim, "
                "abra o link abaixo:\n\n%(link)s\n\nSe não foi você quem pediu, ignore este email.",
                name=user.name,
                link=link,
            ),
        )


def send_email_changed_notice(user: User, old_email: str) -> None:
    with force_locale(_locale_of(user)):
        send_mail(
            old_email,
            _("Flautim: o email da sua conta mudou"),
            _(
                "Olá, %(name)s.\n\nO email da sua conta do Flautim agora é %(email)s. "
                "Se não foi você, fale com o suporte imediatamente.",
                name=user.name,
                email=user.email,
            ),
        )
