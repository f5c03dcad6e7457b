"""The ``exprbench`` command line (typer). Exit codes: 0 success, 2 bad input or usage, 1 any other
failure, 130 interrupted (Ctrl-C).

Every error a user can cause is one line on stderr: :class:`~exprbench.errors.UserError` messages,
click/typer usage errors (an unknown option, a value out of range), and permission errors on the
paths given. Every command takes ``-h``/``--help`` and ``--version``. Listing commands (``models``,
``--help``) import no torch.
"""

from __future__ import annotations

import errno
import functools
import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from . import __version__
from .errors import TrainingDiverged, TrainingInterrupted, UserError

CONTEXT = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  context_settings=CONTEXT,
                  help="exprbench: benchmark suite for facial-expression image generation.")
data_app = typer.Typer(no_args_is_help=True, help="Dataset commands.")
app.add_typer(data_app, name="data")
config_app = typer.Typer(no_args_is_help=True, help="Configuration commands.")
app.add_typer(config_app, name="config")
console = Console()
DEVICE_HELP = "auto (CUDA when available, else CPU), cpu or cuda[:i]."


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"exprbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """exprbench: benchmark suite for facial-expression image generation."""


@app.command("models")
def models_cmd() -> None:
    """List the model plugins, their capabilities and named configs."""
    from .models import MODELS, plugin_info

    table = Table("model", "capabilities", "configs", "summary")
    for name in MODELS.names():
        info = plugin_info(name)
        table.add_row(name, ", ".join(info["capabilities"]), ", ".join(info["configs"]), info["summary"])
    console.print(table)


@data_app.command("info")
def data_info(
    data: Optional[str] = typer.Option(None, "--data", help="FER2013 zip, csv or folder, or a CelebA folder (default: $EXPRBENCH_DATA)."),
    label_set: Optional[str] = typer.Option(None, "--label-set", help="fer7 or fer6 (FER2013; default fer7), celeba or celeba-<Attribute> (CelebA; default celeba)."),
) -> None:
    """Print image counts per split and emotion, and the dataset fingerprint."""
    from .data import SPLITS, load_dataset

    ds = load_dataset(data, label_set)
    counts = ds.counts()
    table = Table("split", *ds.class_names, "total", title=f"{ds.source} ({ds.label_set})")
    for s in SPLITS:
        row = counts[s]
        table.add_row(s, *[str(row[n]) for n in ds.class_names], str(sum(row.values())))
    totals = [sum(counts[s][n] for s in SPLITS) for n in ds.class_names]
    table.add_row("all", *map(str, totals), str(sum(totals)))
    console.print(table)
    console.print(f"images: {len(ds)} x {tuple(ds.images.shape[1:])} uint8   sha256: {ds.fingerprint}")


def _overrides(set_: List[str], steps: Optional[int] = None, minutes: Optional[float] = None,
               seed: Optional[int] = None, device: Optional[str] = None, data: Optional[str] = None) -> list[str]:
    """The ``--set`` overrides plus those the named options stand for (later ones win)."""
    if steps is not None and minutes is not None:
        raise UserError("give either --steps or --minutes, not both")
    if minutes is not None and not minutes > 0:  # also NaN
        raise UserError(f"--minutes {minutes:g}: the budget must be more than 0 minutes")
    overrides = list(set_)
    if steps is not None:
        overrides.append(f"train.steps={steps}")
    if minutes is not None:
        overrides += [f"train.minutes={minutes}", "train.steps=1000000000"]
    if seed is not None:
        overrides.append(f"train.seed={seed}")
    if device is not None:
        overrides.append(f"train.device={device}")
    if data is not None:
        overrides.append(f"data.path={json.dumps(data)}")
    return overrides


SET_HELP = "Override a config value, e.g. --set model.z_dim=128 (repeatable; see `exprbench config show MODEL`)."


@app.command("train")
def train_cmd(
    model: str = typer.Argument(..., help="Model plugin name (see `exprbench models`)."),
    config: str = typer.Option("default", "--config", help="Named config: default, reference, ..."),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP),
    steps: Optional[int] = typer.Option(
        None, "--steps", min=1, show_default=False,
        help="Training steps. Default: the named config's train.steps, 20,000 for every model's `default` "
             "(InterFaceGAN: 1, its boundary fit) at the config's width (model.ch, 64 for the GANs); "
             "`exprbench config show MODEL` prints the whole resolved config."),
    minutes: Optional[float] = typer.Option(None, "--minutes", show_default=False,
                                            help="Wall-clock budget in minutes (> 0), instead of --steps."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, show_default=False,
                                       help="Random seed. Default: the config's train.seed, 0."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset path (default: $EXPRBENCH_DATA, data/fer2013.*)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default results/runs/<model>-<config>-s<seed>)."),
    device: Optional[str] = typer.Option(None, "--device", show_default=False,
                                         help="Default: the config's train.device, auto. " + DEVICE_HELP),
    resume: bool = typer.Option(False, "--resume", help="Continue the run directory's newest checkpoint."),
) -> None:
    """Train MODEL on FER2013 and write a run directory (Ctrl-C saves a checkpoint; --resume continues)."""
    from .config import resolve_config
    from .harness import Trainer, default_run_dir
    from .io import check_writable_dir

    cfg = resolve_config(model, config, _overrides(set_, steps, minutes, seed, device, data))
    run_dir = out or default_run_dir(cfg)
    check_writable_dir(run_dir, "--out" if out else "run directory")
    tc = cfg.train
    budget = f"{tc.minutes:g} min (at most {tc.steps:,} steps)" if tc.minutes else f"{tc.steps:,} steps"
    width = getattr(cfg.model_cfg, "ch", None)
    print(f"{cfg.model}/{cfg.config_name}: {budget} x {tc.batch_size} images, seed {tc.seed}, device {tc.device}"
          + (f", width {width}" if width else "") + f" -> {run_dir}" + (" (resume)" if resume else ""))
    result = Trainer(cfg, run_dir, resume=resume).run()
    console.print(
        f"[green]done[/green] {run_dir}: {result['step']} steps, {result['img_per_s']} img/s on "
        f"{result['device_name']}; samples in {run_dir}/samples/"
    )


@config_app.command("show")
def config_show(
    model: str = typer.Argument(..., help="Model plugin name (see `exprbench models`)."),
    config: str = typer.Option("default", "--config", help="Named config: default, reference, ..."),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Print the resolved config of MODEL (JSON, as a run's config.json would hold it) without training."""
    from .config import resolve_config

    cfg = resolve_config(model, config, _overrides(set_))
    typer.echo(json.dumps(cfg.to_dict(), indent=2))


@app.command("sample")
def sample_cmd(
    run_dir: Path = typer.Argument(..., help="A run directory with a checkpoint."),
    label: List[str] = typer.Option([], "--label", help="Emotion name per row (repeatable; default: all)."),
    n: int = typer.Option(8, "--n", min=1, help="Images per row."),
    out: Optional[Path] = typer.Option(None, "--out", help="PNG path (default RUN_DIR/samples/sample.png)."),
    scale: int = typer.Option(1, "--scale", min=1, max=16, help="Upscale the image N x (nearest neighbour) for print; a .pdf --out writes a PDF."),
    seed: int = typer.Option(0, "--seed", help="Seed of the latents."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
) -> None:
    """Write a grid of samples from a trained run: one row per emotion."""
    import torch

    from .data import to_uint8
    from .harness import load_trained
    from .images import grid_image, save_png
    from .cli_capabilities import out_path

    dest = out_path(out, Path(run_dir) / "samples" / "sample.png", run_dir)
    _, model, spec, step = load_trained(run_dir, device)
    names = label or list(spec.class_names)
    unknown = [x for x in names if x not in spec.class_names]
    if unknown:
        raise UserError(f"unknown emotion {unknown[0]!r} (known: {', '.join(spec.class_names)})")
    if label and "conditional" not in model.capabilities:
        raise UserError(f"model {model.name!r} is unconditional: --label is not supported")
    labels = torch.tensor([spec.class_names.index(x) for x in names]).repeat_interleave(n)
    x = model.sample(len(labels), labels=labels, generator=torch.Generator().manual_seed(seed))
    rows = names if "conditional" in model.capabilities else None
    path = save_png(grid_image(to_uint8(x), n, rows), dest, scale=scale)
    console.print(f"wrote {path} ({len(labels)} images, checkpoint step {step})")


def _register_command_groups() -> None:
    """Command groups that live with their packages (metrics, benchmarks)."""
    from exprbench.benchmarks.cli import register as register_benchmarks
    from exprbench.metrics.cli import register as register_metrics

    register_metrics(app)
    register_benchmarks(app)
    from exprbench.cli_capabilities import register as register_capabilities; register_capabilities(app)  # noqa: E702


_register_command_groups()


def _walk(cmd):
    yield cmd
    for sub in getattr(cmd, "commands", {}).values():
        yield from _walk(sub)


@functools.lru_cache(maxsize=None)
def cli_command():
    """The click command of :data:`app` with ``--version`` on every subcommand and group (built once)."""
    root = typer.main.get_command(app)
    version = next(p for p in root.params if p.name == "version")
    version.expose_value = False
    for cmd in _walk(root):
        if cmd is not root and all(p.name != "version" for p in cmd.params):
            cmd.params.append(version)
    return root


_PATH_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.EISDIR, errno.ENOTDIR}


def _one_line(text: str) -> str:
    return "; ".join(x.strip() for x in str(text).splitlines() if x.strip())


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, map errors to exit codes (2 bad input/usage, 1 other failure, 130 Ctrl-C).

    Errors a user causes print one line on stderr: usage errors of click/typer (an unknown option, a
    value out of its range) as ``error: <command>: <message> (see '<command> -h')``, a
    :class:`~exprbench.errors.UserError` as ``error: <message>``.
    """
    from typer._click.exceptions import NoArgsIsHelpError  # typer's vendored click (typer pinned in constraints.txt)

    args = sys.argv[1:] if argv is None else list(argv)
    cmd = cli_command()
    try:
        with cmd.make_context("exprbench", args) as ctx:
            cmd.invoke(ctx)
    except typer.Exit as e:
        return e.exit_code
    except NoArgsIsHelpError as e:  # a group without its subcommand: its help
        e.show()
        return int(e.exit_code)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 1
    except typer.TyperException as e:  # click's ClickException / UsageError / BadParameter
        ctx_ = getattr(e, "ctx", None)
        where = f"{ctx_.command_path}: " if ctx_ is not None else ""
        hint = f" (see '{ctx_.command_path} -h')" if ctx_ is not None else ""
        print(f"error: {where}{_one_line(e.format_message())}{hint}", file=sys.stderr)
        return int(getattr(e, "exit_code", 2))
    except UserError as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except TrainingInterrupted as e:
        print(str(e), file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        if e.errno in _PATH_ERRNOS and e.filename is not None:  # a path the user gave: bad input
            print(f"error: {e.filename}: {e.strerror}", file=sys.stderr)
            return 2
        import traceback

        traceback.print_exc()
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # anything else is a failure, not bad input
        import traceback

        traceback.print_exc()
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
