"""The ``exprbench`` command line (typer), in one package.

Each module declares its verbs with the one registrar of :mod:`.app` (``@command(name)``,
``@command(name, group)``, ``group(name, help)``); importing the module registers them:

* :mod:`.core`: ``models``, ``data info``, ``train``, ``config show``, ``sample``;
* :mod:`.evaluate`: ``evaluate``, ``metrics``, ``evaluator train|info``;
* :mod:`.validity`: ``metrics validate``;
* :mod:`.bench`: ``bench``, ``report``, ``regress``, ``publish``;
* :mod:`.capabilities`: ``translate``, ``encode``, ``edit``.

Exit codes (:func:`main`): 0 success, 2 bad input or usage, 1 any other failure, 130 interrupted,
141 stdout closed by its reader (`exprbench -h | head`).
"""

from __future__ import annotations

import sys

from exprbench.cli.app import CONTEXT, DEVICE_HELP, app, cli_command, command, console, group, main

# the verb modules, in the order their verbs are listed
from exprbench.cli import run_commands, eval_commands, validity_commands, bench_commands, capability_commands  # noqa: E402,F401

__all__ = ["CONTEXT", "DEVICE_HELP", "app", "cli_command", "command", "console", "group", "main"]

if __name__ == "__main__":
    sys.exit(main())
