"""Who may create an account: a budget of new accounts per client address, and, where the
operator closed sign-up (FLAUTIM_SIGNUP_MODE=invitation), the project invitation that lets
a newcomer in.

The budget counts accounts actually created (failed attempts are limited with the logins),
so one address cannot mint accounts by the hundred to get around per-user quotas.
"""

from __future__ import annotations

import re

from flask_babel import gettext as _
from flask_limiter.util import get_remote_address
from limits import parse_many

from flautim.models import Invitation
from flautim.web import flautim_config
from flautim.web.extensions import limiter
from flautim.web.projects.invitations import find_by_token, is_pending

SCOPE = "signup-created"
INVITATION_PATH = re.compile(r"/invitations/([A-Za-z0-9_-]{1,200})")


def _limits():
    return parse_many(flautim_config().SIGNUP_LIMIT_PER_IP)


def signup_budget_spent() -> bool:
    """True when this client address has created as many accounts as the site allows for now."""
    address = get_remote_address()
    return any(not limiter.limiter.test(item, SCOPE, address) for item in _limits())


def count_signup() -> None:
    """Charge one created account to this client address."""
    address = get_remote_address()
    for item in _limits():
        limiter.limiter.hit(item, SCOPE, address)


def invitation_only() -> bool:
    return flautim_config().SIGNUP_MODE == "invitation"


def invitation_for_signup(next_path: str | None) -> tuple[Invitation | None, str | None]:
    """On a site with closed sign-up: (the pending invitation whose link brought the visitor
    here, None) or (None, why they may not sign up). The invitation page sends newcomers to
    sign up with `next` pointing back at its link."""
    match = INVITATION_PATH.fullmatch(next_path or "")
    if match is None:
        return None, _(
            "Neste Flautim, contas novas só são criadas por convite. Peça a quem coordena o "
            "projeto que convide você pelo seu email: o link do convite traz você de volta "
            "para criar a conta."
        )
    invitation = find_by_token(match.group(1))
    if invitation is None or not is_pending(invitation):
        return None, _(
            "O convite deste link não vale mais (expirou, foi cancelado ou já foi usado). "
            "Peça um novo a quem convidou você."
        )
    return invitation, None
