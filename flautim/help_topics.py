"""The help pages' FAQ entries, named by stable slugs.

A slug is the anchor of its entry on the FAQ page (`/help/faq#<slug>`) in every language, and
what an event's `help` field carries so the page can link an error to the entry explaining it.
Slugs never change once published: links in old events and emails keep working. Pages turn
a slug into a URL with `flautim.web.help.help_url`; this module imports nothing, so the worker
and the diagnosis code can name entries too, and code without Flask (an email the worker
sends) joins `help_path(slug)` to the site's BASE_URL.
"""

from __future__ import annotations

# Where the FAQ page is served (flautim/web/help/routes.py routes it from here).
FAQ_PATH = "/help/faq"

WHAT_IS_FLAUTIM = "o-que-e-a-flautim"
BENEFITS = "beneficios"
SUPPORT_CONTACT = "contato-suporte"
WEIGHT_SYNC = "sincronizacao-de-pesos"
DATA_HETEROGENEITY = "heterogeneidade-de-dados"
HYPERPARAMETERS = "configuracao-de-hiperparametros"
TENSOR_SIZE_MISMATCH = "incompatibilidade-de-tamanho-de-tensor"

# In the order the FAQ page shows them.
FAQ_SLUGS: tuple[str, ...] = (
    WHAT_IS_FLAUTIM,
    BENEFITS,
    SUPPORT_CONTACT,
    WEIGHT_SYNC,
    DATA_HETEROGENEITY,
    HYPERPARAMETERS,
    TENSOR_SIZE_MISMATCH,
)


def is_help_topic(slug: object) -> bool:
    """True only for a published slug: an event's `help` field comes from sandbox output."""
    return isinstance(slug, str) and slug in FAQ_SLUGS


def help_path(slug: object) -> str | None:
    """The entry's path on the site (`/help/faq#<slug>`), None for an unpublished slug."""
    return f"{FAQ_PATH}#{slug}" if is_help_topic(slug) else None
