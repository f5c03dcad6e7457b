"""The cases of the fault campaign: issue 33's findings (and the three fixed before them), each a command the user
would run on a damaged, edited, oversized or interrupted input, with the exit code and the words its one line
must have, and what must not be lost. A case builder gets the :class:`~.world.World` (None for the quick cases,
which need none) and a folder of its own, damages a copy of what it needs there, and returns a :class:`Spec`."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from . import tamper
from .world import TRAIN_SETS, World

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Spec:
    """One command of a case.

    Attributes:
        argv: the ``exprbench`` arguments.
        code: the exit code expected.
        match: words the last stderr line must hold (exit code 0: some stderr line).
        check: ``check() -> None`` when nothing was lost, else what was (a file changed, a temporary left).
        fault: injected in the child process: ``{"disk_full": [file name prefixes]}`` (writes of those files
            fail with ENOSPC) or ``{"sigint_at": protocol}`` (a real SIGINT when that protocol starts).
        around: a context manager the command runs inside (e.g. a first training holding the run).
    """

    argv: list[str]
    code: int
    match: tuple[str, ...] = ()
    check: Callable[[], str | None] | None = None
    fault: dict = field(default_factory=dict)
    around: Callable[[], contextlib.AbstractContextManager] | None = None


CASES: dict[str, tuple[str, bool, Callable[[World | None, Path], Spec]]] = {}


def case(name: str, finding: str, quick: bool = False):
    """Register a case builder ``build(world, folder) -> Spec`` under ``name`` (``quick``: needs no world)."""
    def deco(fn):
        CASES[name] = (finding, quick, fn)
        return fn
    return deco


def _temps(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*.tmp")) if folder.exists() else []


def unchanged(*paths: Path, absent: tuple[Path, ...] = ()) -> Callable[[], str | None]:
    """A check: ``paths`` keep their bytes, their folders hold no temporary file, ``absent`` stay absent."""
    before = {p: p.read_bytes() for p in paths}

    def check() -> str | None:
        for p, raw in before.items():
            if not p.exists() or p.read_bytes() != raw:
                return f"{p} changed"
            if _temps(p.parent):
                return f"temporary files left: {_temps(p.parent)}"
        made = [str(p) for p in absent if p.exists()]
        return f"written anyway: {made[0]}" if made else None
    return check


# -- finding 1: published weights -------------------------------------------------------------------

def _weights_case(w: World, d: Path, damage: Callable[[Path], None], *match: str, manifest: bool = False) -> Spec:
    """``sample`` from a published run whose weights ``damage`` edited; without ``manifest`` the run is alone (no
    MANIFEST.sha256 vouches for it), so the file's own signature and the spec checks must refuse it."""
    res = shutil.copytree(w.published, d / "results")
    run = res / "runs" / "cgan-default-s0"
    if not manifest:
        (res / "MANIFEST.sha256").unlink()
    damage(run / "weights.safetensors")
    return Spec(["sample", str(run), "--n", "1", "--out", str(d / "s.png")], 2, match,
                unchanged(run / "weights.safetensors", absent=(d / "s.png",)))


def _big(meta: dict) -> None:
    meta["spec"].update(height=4800, width=4800)


@case("weights-spec-4800", "1")
def _(w, d):
    return _weights_case(w, d, lambda f: tamper.edit_weights(f, _big), "metadata or tensors do not match the sha256")


@case("weights-spec-4800-resigned", "1")
def _(w, d):
    return _weights_case(w, d, lambda f: tamper.edit_weights(f, _big, resign=True), "height=4800", "1..1024")


@case("weights-spec-malformed", "1")
def _(w, d):
    return _weights_case(w, d, lambda f: tamper.edit_weights(f, lambda m: m.update(spec="oops"), resign=True),
                         "is not a DataSpec")


@case("weights-step-edited", "1")
def _(w, d):
    return _weights_case(w, d, lambda f: tamper.edit_weights(f, lambda m: m.update(step=999)), "do not match the sha256")


@case("weights-zeroed-tensor-vs-manifest", "1")
def _(w, d):
    def zero(f: Path) -> None:
        tamper.edit_weights(f, zero=tamper.first_tensor(f), resign=True)
    return _weights_case(w, d, zero, "does not match", "listed in", "MANIFEST.sha256", manifest=True)


@case("weights-old-format-no-manifest", "1")
def _(w, d):
    return _weights_case(w, d, tamper.as_old_format, "exprbench-weights/1", "publish it again")


@case("weights-committed-still-load", "1 (control)")
def _(w, d):
    src = REPO / "results" / "cpu"
    if not (src / "MANIFEST.sha256").is_file() or not (src / "runs" / "cgan-default-s0").is_dir():
        raise FileNotFoundError("no committed results/cpu in this checkout")
    (d / "cpu").mkdir()
    shutil.copy(src / "MANIFEST.sha256", d / "cpu" / "MANIFEST.sha256")
    run = shutil.copytree(src / "runs" / "cgan-default-s0", d / "cpu" / "runs" / "cgan-default-s0")
    return Spec(["sample", str(run), "--n", "1", "--out", str(d / "s.png")], 0, (),
                unchanged(run / "weights.safetensors"))


# -- finding 5: a full disk ------------------------------------------------------------------------

@case("disk-full-train-checkpoint", "5")
def _(w, d):
    run = d / "run"

    def check() -> str | None:
        status = json.loads((run / "status.json").read_text())
        steps = [json.loads(x)["step"] for x in (run / "train.jsonl").read_text().splitlines()]
        return (f"status.json says {status['status']!r}" if status["status"] != "failed" else
                f"train.jsonl steps {steps}" if steps != [1, 2] else
                f"temporary files left: {_temps(run)}" if _temps(run) else None)
    argv = ["train", "cgan", "--data", str(w.csv), "--out", str(run), "--steps", "2"]
    return Spec(argv + [x for s in TRAIN_SETS for x in ("--set", s)], 1,
                ("checkpoints/step_000002.pt: no space left on device",), check, {"disk_full": ["step_"]})


@case("disk-full-evaluate", "5")
def _(w, d):
    run = shutil.copytree(w.run, d / "run")
    return Spec(["evaluate", str(run), "--metrics", "acc_gen70", "--evaluator-weights", str(w.evaluator),
                 "--device", "cpu"], 1, ("eval.json: no space left on device",), unchanged(run / "eval.json"),
                {"disk_full": ["eval.json"]})


@case("disk-full-report", "5")
def _(w, d):
    res = shutil.copytree(w.results, d / "results")
    return Spec(["report", str(res), "--no-figures", "--no-html"], 1, ("baseline.json: no space left on device",),
                unchanged(res / "report" / "baseline.json"), {"disk_full": ["baseline.json"]})


# -- finding 6: evaluate --images, sizes from headers ------------------------------------------------

def _images_case(d: Path, src: Path, *match: str) -> Spec:
    out = d / "out"
    return Spec(["evaluate", "--images", str(src), "--out", str(out), "--device", "cpu"], 2, match,
                unchanged(absent=(out,)))


@case("images-png-15000x15000", "6", quick=True)
def _(w, d):
    (d / "pngs").mkdir()
    tamper.huge_png(d / "pngs" / "000.png", 15000)
    return _images_case(d, d / "pngs", "000.png", "at most 1024x1024")


@case("images-npy-claims-1e9", "6", quick=True)
def _(w, d):
    return _images_case(d, tamper.npy_claiming(d / "x.npy", (10**9, 48, 48)), "x.npy", "at most 200,000")


@case("images-npz-500000-tiny", "6")
def _(w, d):
    return _images_case(d, tamper.npz_of_many(d / "many.npz"), "many.npz", "500,000 images", "at most 200,000")


# -- finding 7: the smaller ones --------------------------------------------------------------------

@case("regress-baseline-200000-deep", "7", quick=True)
def _(w, d):
    deep = tamper.deep_json(d / "deep.json")
    return Spec(["regress", str(d), "--baseline", str(deep)], 2, ("deep.json", "nested too deeply"), unchanged(deep))


@case("regress-baseline-dev-zero", "7", quick=True)
def _(w, d):
    return Spec(["regress", str(d), "--baseline", "/dev/zero"], 2, ("/dev/zero", "over 64 MiB"))


@case("report-metrics-not-an-object", "7")
def _(w, d):
    res = shutil.copytree(w.results, d / "results")
    ev = res / "runs" / "gan-default-s1" / "eval.json"
    ev.write_text(json.dumps({"metrics": [1, 2]}))
    return Spec(["report", str(res), "--no-figures", "--no-html"], 0, (f"warning: {ev}: 'metrics' is list",),
                unchanged(ev))


@case("report-nan-and-string-values", "7")
def _(w, d):
    res = shutil.copytree(w.results, d / "results")
    ev = res / "runs" / "gan-default-s1" / "eval.json"
    ev.write_text(ev.read_text().replace('"value": 10.0', '"value": NaN').replace('"value": 0.4', '"value": "0.4"'))
    return Spec(["report", str(res), "--no-figures", "--no-html"], 0,
                (f"warning: {ev}: metrics.fid70_train.value is NaN", f"warning: {ev}: metrics.acc_gen70.value is \"0.4\""),
                unchanged(ev))


@case("bench-ray-address-nobody-listens", "7", quick=True)
def _(w, d):
    from .world import SUITE

    suite = d / "s.toml"
    suite.write_text(SUITE)
    return Spec(["bench", str(suite), "--out", str(d / "out"), "--executor", "ray", "--address", "127.0.0.1:1"], 2,
                ("no Ray cluster at --address 127.0.0.1:1",), unchanged(absent=(d / "out",)))


@case("suite-label-set-fer9", "7", quick=True)
def _(w, d):
    from .world import SUITE

    suite = d / "s.toml"
    suite.write_text(SUITE.replace("[train]", '[data]\nlabel_set = "fer9"\n[train]'))
    return Spec(["bench", str(suite), "--out", str(d / "out")], 2, ("s.toml", "'fer9' is not a known label set"),
                unchanged(absent=(d / "out",)))


@case("evaluate-sigint-keeps-finished", "7")
def _(w, d):
    run = shutil.copytree(w.run, d / "run")
    (run / "eval.json").unlink()

    def check() -> str | None:
        ev = json.loads((run / "eval.json").read_text()) if (run / "eval.json").exists() else {}
        kept = list(ev.get("metrics") or {})
        return (f"eval.json holds {kept}, expected ['acc_gen70']" if kept != ["acc_gen70"] else
                "the lock file .eval.json.lock stayed" if (run / ".eval.json.lock").exists() else None)
    return Spec(["evaluate", str(run), "--metrics", "acc_gen70,fid60_train", "--evaluator-weights", str(w.evaluator),
                 "--device", "cpu"], 130, ("interrupted during fid60_train", "(acc_gen70) were written to"), check,
                {"sigint_at": "fid60_train"})


@case("evaluate-leaves-no-lock-file", "7")
def _(w, d):
    run = shutil.copytree(w.run, d / "run")
    return Spec(["evaluate", str(run), "--metrics", "acc_gen70", "--evaluator-weights", str(w.evaluator),
                 "--device", "cpu"], 0, (),
                lambda: "the lock file .eval.json.lock stayed" if (run / ".eval.json.lock").exists() else None)


# -- fixed before: torn log line, report figures, concurrent train ------------------------------------

@case("train-resume-torn-log-line", "33 (fixed before)")
def _(w, d):
    run = shutil.copytree(w.run, d / "run")
    with open(run / "train.jsonl", "a") as fh:
        fh.write('{"step": 3, "loss_')

    def check() -> str | None:
        steps = [json.loads(x)["step"] for x in (run / "train.jsonl").read_text().splitlines()]
        return None if steps == [1, 2, 3] else f"train.jsonl steps {steps}, expected [1, 2, 3]"
    argv = ["train", "cgan", "--data", str(w.csv), "--out", str(run), "--steps", "3", "--resume"]
    return Spec(argv + [x for s in TRAIN_SETS for x in ("--set", s)], 0, ("dropped a torn last line",), check)


@case("report-figure-disk-full", "33 (fixed before)")
def _(w, d):
    res = shutil.copytree(w.results, d / "results")
    figs = sorted((res / "report" / "figures").glob("*.png"))
    if not figs:
        raise FileNotFoundError(f"no figure in {res / 'report' / 'figures'}")
    return Spec(["report", str(res), "--no-html"], 1, (f"{figs[0].name}: no space left on device",),
                unchanged(*figs), {"disk_full": [figs[0].name]})


@case("train-while-another-trains", "33 (fixed before)")
def _(w, d):
    run = d / "run"
    argv = ["train", "gan", "--data", str(w.csv), "--out", str(run), "--resume",
            *[x for s in TRAIN_SETS for x in ("--set", s)]]

    @contextlib.contextmanager
    def first() -> Iterator[None]:
        p = subprocess.Popen([sys.executable, "-m", "exprbench", *argv, "--steps", "1000000"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 120
            while not (run / "claim.json").exists() and time.time() < deadline and p.poll() is None:
                time.sleep(0.2)
            yield
        finally:
            p.send_signal(signal.SIGINT)  # the first stops at the end of its step and saves it
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()

    return Spec([*argv, "--steps", "10"], 2, ("is being trained by PID",),
                lambda: "claim.lock stayed after the first training ended" if (run / "claim.lock").exists() else None,
                around=first)


def child() -> None:
    """The campaign's child process: ``python -c 'from ...cases import child; child()' SPEC_JSON`` installs the
    case's fault and runs ``exprbench`` with its arguments (exit code as the CLI's)."""
    spec = json.loads(sys.argv[1])
    fault = spec.get("fault") or {}
    if fault.get("disk_full"):
        tamper.disk_full(fault["disk_full"])
    if fault.get("sigint_at"):
        import exprbench.metrics.run.references as refs

        orig = refs.run_protocol

        def run_protocol(s, ctx, real):
            if s.name == fault["sigint_at"]:
                os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, delivered at this protocol's start
            return orig(s, ctx, real)
        refs.run_protocol = run_protocol
    sys.exit(installed_cli()(spec["argv"]))


def installed_cli():
    """The installed ``exprbench`` console script's function (its entry point), run in-process as the user's
    command would run: the benchmarks layer reaches the CLI through the package metadata, not an import.

    Raises:
        RuntimeError: exprbench is not installed (``pip install -e .``), so there is no console script.
    """
    from importlib.metadata import entry_points

    found = list(entry_points(group="console_scripts", name="exprbench"))
    if not found:
        raise RuntimeError("no 'exprbench' console script: install the package (pip install -e .)")
    return found[0].load()
