"""The `recursa` command: parse, build settings, call the library. Nothing else lives here."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from pydantic import ValidationError

from recursa.config import validation_message
from recursa.errors import RecursaError

#: subcommand -> module under recursa.cli with `register(subparsers)` and `run(args) -> int`.
COMMANDS: dict[str, str] = {
    "solve": "recursa.cli.solve",
    "eval": "recursa.cli.eval",
    "report": "recursa.cli.report",
    "view": "recursa.cli.view",
    "serve": "recursa.cli.serve",
    "grade": "recursa.cli.grade",
    "rl": "recursa.cli.rl",
}


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one sentence (no usage dump) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="recursa",
        description="Recursive Self-Aggregation (RSA): a population of candidate answers that "
        "the model itself recombines over several steps (arXiv 2509.26626).",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMANDS.values():
        importlib.import_module(module_name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (2 usage error, 1 runtime failure, 130 Ctrl-C)."""
    logging.basicConfig(format="recursa: %(levelname)s: %(message)s", level=logging.WARNING)
    parser = build_parser()
    args = parser.parse_args(argv)
    warn_secret_flags(sys.argv[1:] if argv is None else list(argv))
    try:
        code: int = args.run(args)
        return code
    except RecursaError as exc:
        print(f"recursa: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ValidationError as exc:
        print(f"recursa: error: {validation_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("recursa: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`recursa report ... | head`): stop quietly, like other tools.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except OSError as exc:  # the user's files or disk: a full disk, a path not writable
        print(f"recursa: error: {os_error_message(exc)}", file=sys.stderr)
        return 1


#: Flags whose value is a secret: on a command line it is readable by every user of the machine
#: (`ps`, /proc/PID/cmdline), so recursa says once how to pass it instead.
SECRET_FLAGS = {
    "--api-key": "OPENAI_API_KEY (serve: RECURSA_API_KEY) or --api-key-file",
    "--upstream-api-key": "--upstream-api-key-file",
}


def warn_secret_flags(argv: Sequence[str]) -> None:
    """Warn (once per flag) when a secret was given on the command line (an empty one is
    refused elsewhere, and shows nothing)."""
    for flag, instead in SECRET_FLAGS.items():
        values = [b for a, b in zip(argv, [*argv[1:], ""], strict=True) if a == flag]
        values += [a.split("=", 1)[1] for a in argv if a.startswith(flag + "=")]
        if any(v.strip() for v in values):
            logging.getLogger("recursa").warning(
                "%s on the command line is visible to other users of this machine (ps, "
                "/proc); pass it with %s instead",
                flag,
                instead,
            )


def os_error_message(exc: OSError) -> str:
    """One sentence from an OSError: what failed, and on which file."""
    what = exc.strerror or str(exc) or type(exc).__name__
    return f"{what}: {exc.filename}" if exc.filename else what


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
