"""How a subcommand plugs into ``dagcast``: each command group's module adds its subparser with a
``Handler`` as its default, and ``entry.main`` calls that handler.

Commands that call the API print every failure as one line (``dagcast: …``), never a stack trace:
``guarded`` turns a CliError into exit code 2, Ctrl-C into 130 and a reader that went away
(``… | head``) into a quiet 1.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable
from typing import Final, TypeAlias

from ..client import CliError

EXIT_ERROR: Final = 2  # something the user can fix (a CliError)
EXIT_INTERRUPTED: Final = 130
# A subcommand's handler gets the top-level parser (``parser.error`` prints its usage, as for a
# bad flag) and the parsed arguments, and answers the exit code.
Handler = Callable[[argparse.ArgumentParser, argparse.Namespace], int]
# What a command group's module adds its subparsers to (argparse's type is private and, on 3.11,
# not subscriptable at run time: hence the string).
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``command`` with its failures as one line on stderr and an exit code (see the docstring)."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except CliError as exc:
            print(f"dagcast: {exc}", file=sys.stderr)
            return EXIT_ERROR
        except KeyboardInterrupt:
            print("dagcast: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except BrokenPipeError:
            # `dagcast trace … | head`: the reader has gone; so do we, quietly (as rich does).
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1

    return run
