"""Role names as people read them, and what each role may do (shown on the members page)."""

from __future__ import annotations

from flask_babel import gettext as _

from flautim.models import Role


def role_label(role: Role | str) -> str:
    return {
        "owner": _("dono"),
        "editor": _("editor"),
        "viewer": _("leitor"),
    }[Role(role).value]


def role_summary(role: Role | str) -> str:
    return {
        "owner": _("gerencia membros, renomeia, arquiva e exclui o projeto"),
        "editor": _("envia arquivos, cria e executa experimentos"),
        "viewer": _("vê o projeto, os experimentos e os resultados"),
    }[Role(role).value]
