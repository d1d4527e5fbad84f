"""Admin forms. Toggles are plain CSRF-protected POSTs; the answer box is a real form."""

from __future__ import annotations

from flask_wtf import FlaskForm


class ActionForm(FlaskForm):
    """A button that changes something: only the CSRF token travels."""
