"""The contact form and the reply box."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, Regexp

SUBJECT_MAX = 200
NOT_ATTACHABLE = _l("O experimento indicado não existe ou você não tem acesso a ele.")
BODY_MAX = 20_000


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class TicketForm(FlaskForm):
    subject = StringField(
        _l("Assunto"),
        filters=[_strip],
        validators=[
            DataRequired(message=_l("Informe o assunto.")),
            Length(max=SUBJECT_MAX, message=_l("O assunto pode ter no máximo %(max)d caracteres.")),
        ],
    )
    message = TextAreaField(
        _l("Mensagem"),
        filters=[_strip],
        validators=[
            DataRequired(message=_l("Escreva a mensagem.")),
            Length(max=BODY_MAX, message=_l("A mensagem pode ter no máximo %(max)d caracteres.")),
        ],
    )
    # The experiment the ticket is about, when opened from its page. Hostile like any field:
    # the route attaches it only if the user can see it (access.visible_object_or_none).
    experiment = HiddenField(
        filters=[_strip],
        validators=[Optional(), Regexp(r"^[0-9]{1,10}$", message=NOT_ATTACHABLE)],
    )


class ReplyForm(FlaskForm):
    body = TextAreaField(
        _l("Resposta"),
        filters=[_strip],
        validators=[
            DataRequired(message=_l("Escreva a resposta.")),
            Length(max=BODY_MAX, message=_l("A resposta pode ter no máximo %(max)d caracteres.")),
        ],
    )
