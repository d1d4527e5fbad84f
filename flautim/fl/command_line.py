"""Run a click command as a function of its argv that answers with an exit code.

The entry points here are called with an argv by other code (the `flautim` group's
pass-through commands, tests, a pooled process becoming its role), so they must return a
code rather than raise SystemExit, and print usage errors where their caller says."""

from __future__ import annotations

import sys
from typing import IO, Any

import click

USAGE_ERROR = 2  # as click, argparse and the shell's builtins


def run(command: click.Command, argv: list[str] | None, err: IO[str] | None = None, obj: Any = None) -> int:
    """Parse `argv` and run the command's callback, which returns the exit code; a bad
    line prints the error and its usage to `err` and returns USAGE_ERROR, --help returns 0."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = command.main(args=args, prog_name=command.name, standalone_mode=False, obj=obj)
    except click.ClickException as error:
        error.show(file=err or sys.stderr)
        return USAGE_ERROR
    except click.Abort:
        return 130
    return int(code or 0)
