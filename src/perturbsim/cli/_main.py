"""``perturbsim`` command: parse arguments, dispatch, turn bad input into one-line errors.

Bad input raises :class:`~perturbsim.PerturbsimError` (its message worded with the CLI's
options where it names a Python argument); an output path the operating system refuses (a
folder where a file goes, an unwritable place) raises :class:`OSError`. Both end in one line
on standard error and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from .. import __version__
from .._errors import PerturbsimError
from .._settings import settings
from . import _commands
from ._parser import check_counts, common_options
from ._screen import cli_wording

PROG = "perturbsim"
"""The command's name."""


class _UsageError(Exception):
    """An argument argparse refuses: the refusing parser's ``prog`` and its message."""

    def __init__(self, prog: str, message: str, commands: Sequence[str] = ()) -> None:
        super().__init__(prog, message)
        self.prog, self.message, self.commands = prog, message, commands

    def line(self, argv: Sequence[str]) -> str:
        """The one line to print, naming the ``--help`` that lists the options in question.

        argparse reports a command's unknown options from the top parser, whose ``--help``
        does not list them: the command (found in ``argv``) is named instead, as its own
        errors name it.
        """
        prog = self.prog
        if self.message.startswith("unrecognized arguments"):
            command = next((a for a in argv if a in self.commands), None)
            prog = f"{prog} {command}" if command else prog
        return f"{prog}: error: {self.message} (see {prog} --help)"


class _OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line naming where ``--help`` says more.

    argparse prints the whole usage block before its error; the subcommands' parsers are
    of the same class (``add_subparsers`` makes them so). Options are matched in full,
    never by a prefix: ``evaluate --seed 2`` would otherwise run ``--seeds 2``, seeds 1
    and 2, where ``train --seed 2`` means seed 2.
    """

    commands: argparse._SubParsersAction | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{**kwargs, "allow_abbrev": False})

    def add_subparsers(self, **kwargs: Any) -> argparse._SubParsersAction:
        self.commands = super().add_subparsers(**kwargs)
        return self.commands

    def error(self, message: str) -> NoReturn:
        names = tuple(self.commands.choices) if self.commands is not None else ()
        raise _UsageError(self.prog, message, names)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of the ``perturbsim`` command."""
    parser = _OneLineParser(
        prog=PROG,
        description="Predict transcriptional outcomes of genetic perturbations (the default "
        "model, GEARS and simple baselines), score genetic interactions, design screens.",
        parents=[common_options(suppress=False)],
    )
    parser.add_argument("--version", action="version", version=f"perturbsim {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for register in _commands.REGISTRARS:
        register(commands)
    return parser


def _is_perturbsim(record: logging.LogRecord) -> bool:
    """Whether a log record is perturbsim's own (its logger ``perturbsim`` or below)."""
    return record.name == "perturbsim" or record.name.startswith("perturbsim.")


class _CliWording(logging.Filter):
    """Words perturbsim's messages logged while a command runs with the CLI's options."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _is_perturbsim(record):
            try:
                record.msg, record.args = cli_wording(record.getMessage()), None
            except (TypeError, ValueError):  # a malformed record: logging reports it
                pass
        return True


def _double_dash_value(argv: Sequence[str]) -> str:
    """The error for an ``--option=--`` in ``argv``, whose value argparse drops; else ``""``.

    argparse reads ``--`` as the end of the options, so that a command would run on a value
    other than the one given.
    """
    for token in argv:
        if token == "--":  # what follows is positional
            return ""
        option, _, value = token.partition("=")
        if token.startswith("--") and value == "--":
            hint = (
                "; relabel the screen with another separator, or read it in Python "
                "(perturbsim.ds.read(..., sep='--'))"
                if option == "--sep"
                else ""
            )
            return (
                f"{option}: '--' cannot be given as a value on the command line (it ends the "
                f"options){hint}"
            )
    return ""


class _CliFormatter(logging.Formatter):
    """perturbsim's log records as the command's own notes read: ``warning: ...``.

    Other libraries' records (anndata's, scanpy's, a host program's) keep their level and
    logger's name: ``WARNING anndata: ...``.
    """

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if _is_perturbsim(record):
            return f"{record.levelname.lower()}: {text}"
        return f"{record.levelname} {record.name}: {text}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``perturbsim`` command; return its exit status."""
    refused = _double_dash_value(sys.argv[1:] if argv is None else argv)
    if refused:
        print(f"perturbsim: error: {refused}", file=sys.stderr)
        return 2
    try:
        args = build_parser().parse_args(argv)
    except _UsageError as err:
        print(err.line(sys.argv[1:] if argv is None else argv), file=sys.stderr)
        return 2
    handler = logging.StreamHandler()
    handler.setFormatter(_CliFormatter())
    logging.basicConfig(handlers=[handler])  # none when logging is set up already (a host)
    settings.verbosity = "INFO" if args.verbose else "WARNING"
    settings.progress = not args.no_progress
    wording, handlers = _CliWording(), list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(wording)
    try:
        return _run(args)
    finally:
        for handler in handlers:
            handler.removeFilter(wording)


def _run(args: argparse.Namespace) -> int:
    """Run the parsed command; errors become one line on standard error and status 2.

    An interrupt (Ctrl-C) is one line too, with the status a shell gives it (130).
    """
    try:
        check_counts(args)
        args.run(args)
        sys.stdout.flush()  # a reader gone (`| head`) shows here, not at exit
    except PerturbsimError as err:
        print(f"perturbsim {args.command}: error: {cli_wording(str(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: every write is atomic, so a file is whole or absent
        print(
            f"perturbsim {args.command}: interrupted (a file it writes is written whole or not "
            "at all)",
            file=sys.stderr,
        )
        return 130
    except BrokenPipeError:  # the reader stopped early (`| head`): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 1
    except OSError as err:  # an output path the system refuses: a folder, /proc, a busy '.'
        where = f": {str(err.filename)!r}" if err.filename else ""
        print(f"perturbsim {args.command}: error: {err.strerror or err}{where}", file=sys.stderr)
        return 2
    return 0
