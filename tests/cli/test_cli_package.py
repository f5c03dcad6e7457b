"""exprbench.cli is one package whose modules declare their verbs the same way (``@command``)."""

from __future__ import annotations

import ast
from pathlib import Path

CLI = Path(__file__).resolve().parents[2] / "exprbench" / "cli"


def test_verbs_are_declared_with_the_shared_registrar():
    for f in sorted(CLI.glob("*.py")):
        if f.name == "app.py":
            continue
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr in ("command", "add_typer", "callback"):
                raise AssertionError(f"{f.name}:{node.lineno}: register verbs with exprbench.cli.app.command/group")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "Typer":
                raise AssertionError(f"{f.name}:{node.lineno}: make a verb group with exprbench.cli.app.group")


def test_every_verb_has_a_help_line():
    from exprbench.cli import cli_command

    def walk(cmd, path):
        yield path, cmd
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, [*path, name])

    verbs = {" ".join(p): c for p, c in walk(cli_command(), []) if p}
    assert {"models", "train", "sample", "data info", "config show", "evaluate", "metrics", "evaluator train",
            "evaluator info", "bench", "report", "regress", "publish", "translate", "encode", "edit"} <= set(verbs)
    assert all((c.help or "").strip() for c in verbs.values())
