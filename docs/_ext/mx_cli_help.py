"""Sphinx extension: ``.. mx-cli-help:: report`` shows ``mxarray report --help``.

The text is produced by running the installed command line when the page is built, so
the documented options are always those of the code.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive

__all__ = ["cli_help", "setup"]

_WIDTH = "64"  # argparse wraps to $COLUMNS; fixed so the page does not depend on a terminal


def cli_help(*command: str) -> str:
    """Return the ``--help`` text of ``mxarray <command...>``.

    Raises
    ------
    RuntimeError
        If the command line exits with an error.
    """
    env = {**os.environ, "COLUMNS": _WIDTH}
    done = subprocess.run([sys.executable, "-m", "mxarray", *command, "--help"],
                          capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"mxarray {' '.join(command)} --help failed: {done.stderr.strip()}")
    return done.stdout.rstrip()


class CliHelp(Directive):
    """``.. mx-cli-help:: <subcommand>``: a literal block with the help text."""

    optional_arguments = 1

    def run(self) -> list[nodes.Node]:
        try:
            text = cli_help(*self.arguments)
        except RuntimeError as exc:
            raise self.error(str(exc)) from None
        block = nodes.literal_block(text, text)
        block["language"] = "text"
        return [block]


def setup(app: Any) -> dict[str, Any]:
    """Register the directive."""
    app.add_directive("mx-cli-help", CliHelp)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
