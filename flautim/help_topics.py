"""The help pages' FAQ entries, named by stable slugs.

A slug is the anchor of its entry on the FAQ page (`/help/faq#<slug>`) in every language, and
what an event's `help` field carries so the page can link an error to the entry explaining it.
Slugs never change once published: links in old events and emails keep working. The web turns
a slug into a URL (`flautim.web.help.help_url`); this module imports nothing, so the worker
and the diagnosis code can name entries too.
"""

from __future__ import annotations

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
