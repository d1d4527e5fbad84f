"""The Logs tab's choice of source at any number of clients.

A run with virtual clients has up to 10,000 of them, so the page does not list a source per
client: it lists the other sources (server, prepare, platform, superlink, ...), "all the
clients", and takes one client by its number, checked here against the run's sources.

A client's lines are those of its own source `client-N` and, when a process hosted a group
of clients (a source `clients-A-B`), that group's lines tagged by the client library as
`[client N ...]` (flautim.fl.reporting). Untagged lines of a group (a traceback, a bare
print) stay with "all the clients".
"""

from __future__ import annotations

import re
from typing import NamedTuple

from sqlalchemy import ColumnElement, and_, or_

from flautim.models import LogRecord

from .results import source_order

# Up to this many clients, each is an option of its own: a click beats typing a number.
LISTED_CLIENTS = 20
# The longest number a client field takes (10,000 clients at most, with room to spare).
MAX_CLIENT_DIGITS = 6

GROUP_SOURCE = re.compile(r"clients-(\d+)-(\d+)")


class SourceSummary(NamedTuple):
    """What the picker shows, small whatever the number of clients (it is part of the
    cached panels' key)."""

    sources: tuple[str, ...]  # the sources that are not clients, in the page's order
    clients: int  # how many client numbers have lines (their own source or a group's range)
    first: int | None  # the lowest and highest of them
    last: int | None
    listed: tuple[str, ...]  # each client's source, at LISTED_CLIENTS clients or fewer
    groups: tuple[str, ...]  # the sources of processes hosting a group of clients


class BadLogSource(ValueError):
    """A source the run does not have. `reason`: "unknown_source", "not_a_number" or
    "no_such_client"; `value`: what was asked."""

    def __init__(self, reason: str, value: str) -> None:
        super().__init__(f"{reason}: {value!r}")
        self.reason = reason
        self.value = value


def _client_number(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() else None


def _client_numbers(sources) -> tuple[set[int], list[tuple[int, int, str]], list[str]]:
    """The numbers of clients with a source of their own, the groups' ranges, the rest
    (string tests, not a regex: a page view reads up to 10,000 sources)."""
    own: set[int] = set()
    groups: list[tuple[int, int, str]] = []
    others: list[str] = []
    for source in sources:
        if source.startswith("client-") and (number := _client_number(source[7:])) is not None:
            own.add(number)
        elif (m := GROUP_SOURCE.fullmatch(source)) is not None:
            groups.append((int(m[1]), int(m[2]), source))
        else:
            others.append(source)
    return own, sorted(groups), others


def summarize(sources) -> SourceSummary:
    """The picker of a run whose log has `sources` (results.log_sources, any order)."""
    own, groups, others = _client_numbers(sources)
    in_groups = sum(last - first + 1 for first, last, _name in groups if last >= first)
    ends = [n for n in (min(own, default=None), max(own, default=None)) if n is not None]
    ends += [n for first, last, _name in groups for n in (first, last)]
    count = len(own) + in_groups
    listed = tuple(f"client-{n}" for n in sorted(own)) if count <= LISTED_CLIENTS and not groups else ()
    return SourceSummary(tuple(source_order(others)), count, min(ends, default=None), max(ends, default=None),
                         listed, tuple(name for _first, _last, name in groups))


def chosen_lines(sources: set[str], *, source: str | None = None, client: str | None = None,
                 all_clients: bool = False) -> ColumnElement[bool] | None:
    """The condition on LogRecord for one choice of the picker (None: every line), checked
    against the run's `sources`: BadLogSource says what is wrong."""
    if client is not None:
        return _one_client(sources, client)
    if all_clients:
        return or_(LogRecord.source.startswith("client-"), LogRecord.source.startswith("clients-"))
    if not source:
        return None
    if source.startswith("client-") and _client_number(source[7:]) is not None:
        return _one_client(sources, source[7:])
    if source not in sources:
        raise BadLogSource("unknown_source", source)
    return LogRecord.source == source


def _one_client(sources: set[str], client: str) -> ColumnElement[bool]:
    text = client.strip()
    number = _client_number(text) if len(text) <= MAX_CLIENT_DIGITS else None
    if number is None:
        raise BadLogSource("not_a_number", client)
    own = f"client-{number}"
    if own in sources:
        return LogRecord.source == own
    group = next((m[0] for s in sources if (m := GROUP_SOURCE.fullmatch(s)) and int(m[1]) <= number <= int(m[2])),
                 None)
    if group is None:
        raise BadLogSource("no_such_client", text)
    tagged = and_(LogRecord.source == group, LogRecord.line.startswith(f"[client {number} ", autoescape=True))
    return or_(LogRecord.source == own, tagged)
