"""Console printing of eval.json content (rich): the table of values beside their real-data references,
then one details line per protocol, as its declaration prints it."""

from __future__ import annotations

from typing import Sequence

from exprbench.core.errors import RegistryError

from exprbench.metrics.run.evaljson import references_of
from exprbench.metrics.protocols.presentation import fmt
from exprbench.metrics.protocols.spec import REFERENCE_LABEL
from exprbench.metrics.protocols.catalog import resolve_metric


def details_line(name: str, entry: dict, reference: dict) -> str:
    """The details line of an ok entry of protocol ``name`` (its declaration's ``details``; "" for a protocol
    not registered here or details it cannot read)."""
    try:
        spec = resolve_metric(name)
    except RegistryError:
        return ""
    try:
        return spec.show.details(entry, reference or {})
    except (KeyError, TypeError, IndexError):  # an entry written by another version of the protocol
        return ""


def reference_text(ref: dict) -> str:
    """A reference cell: ``0.0122 (N=7,178)``, its value beside the count of real images it used (``-`` when it
    has none)."""
    if ref.get("status") != "ok":
        return "-"
    n = ref.get("n_samples")
    return fmt(ref.get("value")) + (f" (N={n:,})" if isinstance(n, int) else "")


def print_eval(result: dict, console=None, only: Sequence[str] | None = None) -> None:
    """Print eval.json content: a table of value (± std), real-data reference, n, seed and time, then details.

    Args:
        result: eval.json content.
        console: a rich Console (default: stdout).
        only: print these protocols only (e.g. those of the last evaluation); a line counts the others.
    """
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    r = result["run"]
    src = result.get("source") or {}
    if src.get("kind") == "images":
        title = f"{r['model']}: {src['images']['n']:,} images from {src['images']['path']} ({result['device']})"
    else:
        title = f"{r['model']}/{r['config']} seed {r['seed']} step {r['step']} ({result['device']})"
    t = Table("protocol", "value", REFERENCE_LABEL.replace(")", ", N)"), "n", "seed", "s", title=title)
    refs = references_of(result)
    notes = []
    shown = [n for n in result["metrics"] if only is None or n in only]
    others = [n for n in result["metrics"] if n not in shown]
    for name in shown:
        e = result["metrics"][name]
        ref = refs.get(name, {})
        ref_text = reference_text(ref)
        if e["status"] != "ok":
            t.add_row(name, e["status"], ref_text, str(e["n_samples"]), str(e["seed"]), f"{e['wall_s']:.1f}")
            notes.append(f"{name}: {e['status']}: {e.get('reason', '')}")
            continue
        val = fmt(e["value"]) + (f" ± {fmt(e['std'], 2)}" if e.get("std") is not None else "")
        if e.get("ci95"):
            val += f" [{fmt(e['ci95'][0], 3)}, {fmt(e['ci95'][1], 3)}]"
        t.add_row(name, val, ref_text, str(e["n_samples"]), str(e["seed"]), f"{e['wall_s']:.1f}")
        line = details_line(name, e, ref)
        if line:
            notes.append(f"{name}: {line}")
    console.print(t)
    for w in result.get("warnings") or []:
        console.print(w, highlight=False, soft_wrap=True)
    for line in notes:
        console.print(line, highlight=False, soft_wrap=True)
    if others:
        console.print(f"eval.json also keeps {len(others)} earlier result{'s' if len(others) != 1 else ''}: "
                      f"{', '.join(others)}", highlight=False, soft_wrap=True)
    steps = sorted({e.get("step") for e in result["metrics"].values() if e.get("step") is not None})
    if len(steps) > 1:
        console.print(f"note: the entries come from checkpoints at steps {', '.join(map(str, steps))} "
                      "(each entry records its step)", highlight=False, soft_wrap=True)
    ev = result.get("evaluator", {})
    console.print(f"features: fer-evaluator sha256 {str(ev.get('sha256'))[:12]} (test accuracy "
                  f"{fmt(ev.get('test_accuracy'))}); {REFERENCE_LABEL} = real test data in place of generated, "
                  "N real images (PrivateTest, + PublicTest where the protocol's count needs more); "
                  f"protocol {result['protocol_version']}", highlight=False, soft_wrap=True)
