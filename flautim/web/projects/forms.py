"""The forms of the project pages. Every one carries a CSRF token (Flask-WTF)."""

from __future__ import annotations

import unicodedata

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Email, Length, ValidationError

NAME_MAX = 100
DESCRIPTION_MAX = 2000


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _no_control_characters(form, field) -> None:
    # Names show up in lists, emails and page titles; a stray newline or a bidi override
    # would garble them. Letters from every script are welcome.
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in field.data or ""):
        raise ValidationError(_l("O nome não pode conter caracteres de controle."))


class ProjectForm(FlaskForm):
    name = StringField(
        _l("Nome"),
        filters=[_strip],
        validators=[
            DataRequired(_l("Dê um nome ao projeto.")),
            Length(max=NAME_MAX, message=_l("O nome pode ter no máximo %(max)d caracteres.", max=NAME_MAX)),
            _no_control_characters,
        ],
    )
    description = TextAreaField(
        _l("Descrição (opcional)"),
        filters=[_strip],
        validators=[
            Length(
                max=DESCRIPTION_MAX,
                message=_l("A descrição pode ter no máximo %(max)d caracteres.", max=DESCRIPTION_MAX),
            )
        ],
    )


class DescriptionForm(FlaskForm):
    """What an editor may change: the description only."""

    description = ProjectForm.description


ROLE_CHOICES = [("editor", _l("Editor")), ("viewer", _l("Leitor"))]


class InviteForm(FlaskForm):
    email = EmailField(
        _l("E-mail"),
        filters=[lambda v: v.strip().lower() if isinstance(v, str) else v],
        validators=[
            DataRequired(_l("Informe o e-mail da pessoa convidada.")),
            Length(max=254, message=_l("O e-mail pode ter no máximo 254 caracteres.")),
            Email(_l("Este e-mail não é válido."), check_deliverability=False),
        ],
    )
    role = SelectField(_l("Papel"), choices=ROLE_CHOICES, default="viewer")


class RoleForm(FlaskForm):
    role = SelectField(
        _l("Papel"), choices=[("owner", _l("Dono")), *ROLE_CHOICES], default="viewer"
    )


class DeleteProjectForm(FlaskForm):
    confirm_name = StringField(
        _l("Digite o nome do projeto para confirmar"),
        filters=[_strip],
        validators=[DataRequired(_l("Digite o nome do projeto para confirmar."))],
    )


class ConfirmForm(FlaskForm):
    """A button that changes something: only the CSRF token."""
