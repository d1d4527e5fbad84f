"""Forms of the experiment and asset pages. Every one carries a CSRF token (Flask-WTF).

File checks beyond "a file was chosen" live in `flautim.web.uploads` (shared with the API),
so the forms stay thin.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, MultipleFileField
from wtforms import SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

NAME_MAX = 100
DESCRIPTION_MAX = 2000


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class DatasetUploadForm(FlaskForm):
    name = StringField(_l("Nome"), filters=[_strip], validators=[Optional(), Length(max=NAME_MAX)])
    description = TextAreaField(
        _l("Descrição (opcional)"), filters=[_strip], validators=[Optional(), Length(max=DESCRIPTION_MAX)]
    )
    dataset_file = FileField(_l("Classe Dataset (.py)"))
    data_files = MultipleFileField(_l("Arquivos de dados (vários arquivos ou um .zip)"))


class SourceUploadForm(FlaskForm):
    """Model (API) code or a hyperparameter file: one `.py`."""

    name = StringField(_l("Nome (opcional)"), filters=[_strip], validators=[Optional(), Length(max=NAME_MAX)])
    file = FileField(_l("Arquivo .py"))


class ExperimentForm(FlaskForm):
    """The "Adicionar experimento" form; each asset can be picked or uploaded inline."""

    name = StringField(
        _l("Nome do experimento"),
        filters=[_strip],
        validators=[DataRequired(_l("Dê um nome ao experimento.")), Length(max=NAME_MAX)],
    )
    description = TextAreaField(
        _l("Descrição (opcional)"), filters=[_strip], validators=[Optional(), Length(max=DESCRIPTION_MAX)]
    )
    dataset_id = SelectField(_l("Dataset"), coerce=str, validate_choice=False)
    model_code_id = SelectField(_l("Código da API do modelo"), coerce=str, validate_choice=False)
    model_file = FileField(_l("…ou envie um novo código (.py)"))
    hyperparameter_file_id = SelectField(_l("Hiperparâmetros"), coerce=str, validate_choice=False)
    hyperparameters_file = FileField(_l("…ou adicione um novo arquivo (.py)"))


class ConfirmForm(FlaskForm):
    """A bare POST (run, cancel, delete): only the CSRF token."""
