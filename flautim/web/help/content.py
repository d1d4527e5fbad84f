"""The help pages' text: the tutorial (Markdown) and the FAQ (TOML whose answers are Markdown),
one file per language under content/, rendered once per language and set of links.

The Markdown is ours, but it is rendered with raw HTML off (markdown-it escapes it) and
markdown-it's link check (no javascript: or data: links), so a slip in the text can never
become markup on a page served under a strict CSP.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from markdown_it import MarkdownIt
from markupsafe import Markup

from flautim.help_topics import FAQ_SLUGS

CONTENT_DIR = Path(__file__).with_name("content")
SOURCE_LOCALE = "pt_BR"

_markdown = MarkdownIt("commonmark", {"html": False})

# CommonMark's own email autolink syntax: an address outside it is written as plain text.
_AUTOLINK_EMAIL = re.compile(
    r"[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*"
)
_MARKDOWN_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


@dataclass(frozen=True)
class Links:
    """What the text points to that depends on the site: filled in for {name} placeholders."""

    support_email: str
    support_form_url: str
    faq_url: str


@dataclass(frozen=True)
class FaqEntry:
    slug: str
    question: str
    answer: Markup


@dataclass(frozen=True)
class FaqSection:
    title: str
    entries: tuple[FaqEntry, ...]


@dataclass(frozen=True)
class Faq:
    title: str
    sections: tuple[FaqSection, ...]

    @property
    def entries(self) -> tuple[FaqEntry, ...]:
        return tuple(entry for section in self.sections for entry in section.entries)


def content_locale(locale: str) -> str:
    """The language the help is written in closest to `locale` (the pt-BR source otherwise)."""
    return locale if (CONTENT_DIR / f"tutorial.{locale}.md").is_file() else SOURCE_LOCALE


@lru_cache(maxsize=32)
def tutorial_html(locale: str, links: Links) -> Markup:
    text = (CONTENT_DIR / f"tutorial.{content_locale(locale)}.md").read_text(encoding="utf-8")
    return _render(text, links)


@lru_cache(maxsize=32)
def faq(locale: str, links: Links) -> Faq:
    with open(CONTENT_DIR / f"faq.{content_locale(locale)}.toml", "rb") as f:
        data = tomllib.load(f)
    sections = tuple(
        FaqSection(
            title=section["title"],
            entries=tuple(
                FaqEntry(entry["slug"], entry["question"], _render(entry["answer"], links))
                for entry in section["entry"]
            ),
        )
        for section in data["section"]
    )
    result = Faq(title=data["title"], sections=sections)
    slugs = tuple(entry.slug for entry in result.entries)
    # Anchors are promised to events and emails: a language missing one is a bug in the text.
    if slugs != FAQ_SLUGS:
        raise ValueError(
            f"faq.{content_locale(locale)}.toml: slugs {slugs} differ from help_topics.FAQ_SLUGS"
        )
    return result


def _render(text: str, links: Links) -> Markup:
    email = links.support_email
    email_markdown = (
        f"<{email}>"
        if _AUTOLINK_EMAIL.fullmatch(email)
        else _MARKDOWN_PUNCTUATION.sub(r"\\\1", email)
    )
    for name, value in (
        ("{support_email}", email_markdown),
        ("{support_form_url}", links.support_form_url),
        ("{faq_url}", links.faq_url),
    ):
        text = text.replace(name, value)
    return Markup(_markdown.render(text))
