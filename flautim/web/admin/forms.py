"""Admin forms. Toggles are plain CSRF-protected POSTs; the answer box and the quotas are
real forms."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import FloatField, IntegerField
from wtforms.validators import NumberRange, Optional


class ActionForm(FlaskForm):
    """A button that changes something: only the CSRF token travels."""


def _limit_field(kind, label):
    return kind(label, validators=[Optional(), NumberRange(min=-1, max=10**9)])


class QuotaForm(FlaskForm):
    """One user's or project's limits. Blank: the site's default; -1: no limit."""

    running = _limit_field(IntegerField, _l("Experimentos em execução ao mesmo tempo"))
    queued = _limit_field(IntegerField, _l("Experimentos na fila"))
    storage_mb = _limit_field(IntegerField, _l("Armazenamento (MB)"))
    cpu_hours = _limit_field(FloatField, _l("Horas de CPU por mês (tempo × contêineres)"))
    gpu_hours = _limit_field(FloatField, _l("Horas de GPU por mês (tempo × contêineres)"))
