"""The ``exprbench`` command line (typer). Exit codes: 0 success, 2 bad input or usage, 1 any other failure."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from .errors import TrainingDiverged, UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="exprbench: benchmark suite for facial-expression image generation.")
data_app = typer.Typer(no_args_is_help=True, help="Dataset commands.")
app.add_typer(data_app, name="data")
console = Console()


@app.command("models")
def models_cmd() -> None:
    """List the model plugins, their capabilities and named configs."""
    from .models import MODELS

    table = Table("model", "capabilities", "configs", "summary")
    for name in MODELS.names():
        cls = MODELS.get(name)
        doc = (sys.modules[cls.__module__].__doc__ or "").strip().split(" (")[0]
        table.add_row(name, ", ".join(sorted(cls.capabilities)), ", ".join(cls.named_configs), doc)
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


@app.command("train")
def train_cmd(
    model: str = typer.Argument(..., help="Model plugin name (see `exprbench models`)."),
    config: str = typer.Option("default", "--config", help="Named config: default, reference, ..."),
    set_: List[str] = typer.Option([], "--set", help="Override, e.g. --set model.z_dim=128 (repeatable)."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Training steps."),
    minutes: Optional[float] = typer.Option(None, "--minutes", min=0.0, help="Wall-clock budget in minutes."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset path (default: $EXPRBENCH_DATA, data/fer2013.*)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default results/runs/<model>-<config>-s<seed>)."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu or cuda."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run directory's newest checkpoint."),
) -> None:
    """Train MODEL on FER2013 and write a run directory."""
    from .config import resolve_config
    from .harness import Trainer, default_run_dir

    if steps is not None and minutes is not None:
        raise UserError("give either --steps or --minutes, not both")
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
        overrides.append(f"data.path={data}")
    cfg = resolve_config(model, config, overrides)
    run_dir = out or default_run_dir(cfg)
    result = Trainer(cfg, run_dir, resume=resume).run()
    console.print(
        f"[green]done[/green] {run_dir}: {result['step']} steps, {result['img_per_s']} img/s on "
        f"{result['device_name']}; samples in {run_dir}/samples/"
    )


@app.command("sample")
def sample_cmd(
    run_dir: Path = typer.Argument(..., help="A run directory with a checkpoint."),
    label: List[str] = typer.Option([], "--label", help="Emotion name per row (repeatable; default: all)."),
    n: int = typer.Option(8, "--n", min=1, help="Images per row."),
    out: Optional[Path] = typer.Option(None, "--out", help="PNG path (default RUN_DIR/samples/sample.png)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the latents."),
    device: str = typer.Option("cpu", "--device", help="auto, cpu or cuda."),
) -> None:
    """Write a grid of samples from a trained run: one row per emotion."""
    import torch

    from .data import to_uint8
    from .harness import load_trained
    from .images import grid_image, save_png

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
    path = save_png(grid_image(to_uint8(x), n, rows), out or Path(run_dir) / "samples" / "sample.png")
    console.print(f"wrote {path} ({len(labels)} images, checkpoint step {step})")


def _register_command_groups() -> None:
    """Command groups that live with their packages (metrics, benchmarks)."""
    from exprbench.benchmarks.cli import register as register_benchmarks
    from exprbench.metrics.cli import register as register_metrics

    register_metrics(app)
    register_benchmarks(app)
    from exprbench.cli_capabilities import register as register_capabilities; register_capabilities(app)  # noqa: E702


_register_command_groups()


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, map errors to exit codes (2 bad input/usage, 1 other failure)."""
    try:
        app(args=argv, prog_name="exprbench")  # typer/click handle usage errors themselves (exit 2)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # anything else is a failure, not bad input
        import traceback

        traceback.print_exc()
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
