"""The account forms. Field errors are Portuguese sentences shown next to the field."""

from __future__ import annotations

import unicodedata

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, HiddenField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, Length, ValidationError

from flautim.web import flautim_config

from .passwords import password_problem

NAME_MAX = 100
EMAIL_MAX = 254


def normalise_email(value: str | None) -> str:
    return (value or "").strip().lower()


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def email_field(label) -> EmailField:
    return EmailField(
        label,
        filters=[normalise_email],
        validators=[
            DataRequired(message=_l("Informe o email.")),
            Length(max=EMAIL_MAX, message=_l("O email pode ter no máximo %(max)d caracteres.")),
            Email(message=_l("Este email não é válido (exemplo: nome@instituicao.br).")),
        ],
    )


def _no_control_characters(form, field) -> None:
    # Names appear in emails, lists and page titles: a newline or a bidi override would
    # garble them. Letters and symbols from every script are welcome.
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in field.data or ""):
        raise ValidationError(_l("O nome não pode conter caracteres de controle."))


def name_field() -> StringField:
    return StringField(
        _l("Nome"),
        filters=[_strip],
        validators=[
            DataRequired(message=_l("Informe o seu nome.")),
            Length(max=NAME_MAX, message=_l("O nome pode ter no máximo %(max)d caracteres.")),
            _no_control_characters,
        ],
    )


class _NewPasswordMixin:
    """Checks `password` against the minimum strength, knowing the email and name if any."""

    def _password_context(self) -> tuple[str, str]:
        return "", ""

    def validate_password(self, field) -> None:
        email, name = self._password_context()
        problem = password_problem(
            field.data or "", flautim_config().PASSWORD_MIN_LENGTH, email, name
        )
        if problem:
            raise ValidationError(problem)


class SignupForm(_NewPasswordMixin, FlaskForm):
    name = name_field()
    email = email_field(_l("Email"))
    password = PasswordField(_l("Senha"), validators=[DataRequired(message=_l("Escolha uma senha."))])
    next = HiddenField()

    def _password_context(self):
        return self.email.data or "", self.name.data or ""


class LoginForm(FlaskForm):
    email = EmailField(_l("Email"), filters=[normalise_email], validators=[DataRequired(message=_l("Informe o email."))])
    password = PasswordField(_l("Senha"), validators=[DataRequired(message=_l("Informe a senha."))])
    remember = BooleanField(_l("Lembrar de mim"))
    next = HiddenField()


class ForgotPasswordForm(FlaskForm):
    email = email_field(_l("Email da conta"))


def revoke_tokens_field() -> BooleanField:
    # On by default: a password changed because it may have leaked should take the API
    # tokens made with it along.
    return BooleanField(_l("Revogar também todos os meus tokens de acesso à API"), default=True)


class ResetPasswordForm(_NewPasswordMixin, FlaskForm):
    password = PasswordField(_l("Nova senha"), validators=[DataRequired(message=_l("Escolha uma senha."))])
    confirm = PasswordField(
        _l("Repita a nova senha"),
        validators=[EqualTo("password", message=_l("As duas senhas não são iguais."))],
    )
    revoke_tokens = revoke_tokens_field()

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._user = user

    def _password_context(self):
        return (self._user.email, self._user.name) if self._user else ("", "")


# Each language under its own name, so anyone can find theirs whatever the page's language.
LANGUAGE_NAMES = {"pt_BR": "Português (Brasil)", "en": "English"}


class ProfileForm(FlaskForm):
    name = name_field()
    locale = SelectField(_l("Idioma"))
    notify_run_end = BooleanField(_l("Avisar por email quando um experimento que eu executei terminar"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.locale.choices = [
            (code, LANGUAGE_NAMES.get(code, code)) for code in flautim_config().LANGUAGES
        ]


class EmailChangeForm(FlaskForm):
    new_email = email_field(_l("Novo email"))
    current_password = PasswordField(
        _l("Senha atual"), validators=[DataRequired(message=_l("Informe a senha atual."))]
    )


class PasswordChangeForm(_NewPasswordMixin, FlaskForm):
    current_password = PasswordField(
        _l("Senha atual"), validators=[DataRequired(message=_l("Informe a senha atual."))]
    )
    password = PasswordField(_l("Nova senha"), validators=[DataRequired(message=_l("Escolha uma senha."))])
    confirm = PasswordField(
        _l("Repita a nova senha"),
        validators=[EqualTo("password", message=_l("As duas senhas não são iguais."))],
    )
    revoke_tokens = revoke_tokens_field()

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._user = user

    def _password_context(self):
        return (self._user.email, self._user.name) if self._user else ("", "")


class DeleteAccountForm(FlaskForm):
    current_password = PasswordField(
        _l("Senha atual"), validators=[DataRequired(message=_l("Informe a senha para confirmar."))]
    )
    confirm = BooleanField(
        _l("Entendo que a conta e os projetos em que sou o único membro serão apagados"),
        validators=[DataRequired(message=_l("Marque a confirmação."))],
    )
