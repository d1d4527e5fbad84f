from flask import render_template
from flask_login import login_required

from . import bp
from .access import projects_of


@bp.get("/")
@login_required
def list_projects():
    return render_template("projects/list.html", projects=projects_of())
