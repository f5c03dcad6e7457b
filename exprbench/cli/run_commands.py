"""Core verbs: ``exprbench models``, ``data info``, ``train``, ``config show``, ``sample``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from exprbench.core.errors import UserError
from exprbench.cli.app import DEVICE_HELP, command, console, group

data_app = group("data", "Dataset commands.")
config_app = group("config", "Configuration commands.")


@command("models")
def models_cmd() -> None:
    """List the model plugins, their capabilities and named configs."""
    from exprbench.models import MODELS, plugin_info

    table = Table("model", "capabilities", "configs", "summary")
    for name in MODELS.names():
        info = plugin_info(name)
        table.add_row(name, ", ".join(info["capabilities"]), ", ".join(info["configs"]), info["summary"])
    console.print(table)


@command("info", data_app)
def data_info(
    data: Optional[str] = typer.Option(None, "--data", help="FER2013 zip, csv or folder, or a CelebA folder (default: $EXPRBENCH_DATA)."),
    label_set: Optional[str] = typer.Option(None, "--label-set", help="fer7 or fer6 (FER2013; default fer7), celeba or celeba-<Attribute> (CelebA; default celeba)."),
) -> None:
    """Print image counts per split and emotion, and the dataset fingerprint."""
    from exprbench.data import SPLITS, load_dataset

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
        from exprbench.runs.config import NO_STEP_BUDGET

        overrides += [f"train.minutes={minutes}", NO_STEP_BUDGET]
    if seed is not None:
        overrides.append(f"train.seed={seed}")
    if device is not None:
        overrides.append(f"train.device={device}")
    if data is not None:
        overrides.append(f"data.path={json.dumps(data)}")
    return overrides


SET_HELP = "Override a config value, e.g. --set model.z_dim=128 (repeatable; see `exprbench config show MODEL`)."


@command("train")
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
    from exprbench.runs.config import resolve_config
    from exprbench.runs.harness import Trainer
    from exprbench.runs.layout import default_run_dir
    from exprbench.core.io import check_writable_dir

    cfg = resolve_config(model, config, _overrides(set_, steps, minutes, seed, device, data))
    run_dir = out or default_run_dir(cfg)
    check_writable_dir(run_dir, "--out" if out else "run directory")
    tc = cfg.train
    if tc.minutes is None:
        budget = f"{tc.steps:,} steps"
    else:
        budget = f"{tc.minutes:g} min" + (f" (at most {tc.steps:,} steps)" if tc.steps is not None else "")
    width = getattr(cfg.model_cfg, "ch", None)
    print(f"{cfg.model}/{cfg.config_name}: {budget} x {tc.batch_size} images, seed {tc.seed}, device {tc.device}"
          + (f", width {width}" if width else "") + f" -> {run_dir}" + _resume_note(run_dir, resume))
    from exprbench.metrics.extractors.evaluator import plugin_resources

    result = _claimed(run_dir, lambda: Trainer(cfg, run_dir, resume=resume, resources=plugin_resources()).run())
    console.print(
        f"[green]done[/green] {run_dir}: {result['step']} steps, {result['img_per_s']} img/s on "
        f"{result['device_name']}; samples in {run_dir}/samples/"
    )


def _resume_note(run_dir: Path, resume: bool) -> str:
    """`` (resume from step N)`` when ``--resume`` finds a checkpoint, else "" (a fresh run says nothing)."""
    from exprbench.runs.layout import list_checkpoints

    ckpts = list_checkpoints(run_dir) if resume else []
    return f" (resume from step {int(ckpts[-1].stem.split('_')[-1]):,})" if ckpts else ""


def _claimed(run_dir: Path, work):
    """Run ``work()`` holding the run directory's claim (the one ``bench`` takes, :mod:`exprbench.benchmarks.report.claims`),
    so two trainings never write one run.

    Raises:
        UserError: another process (a ``train`` or a ``bench`` runner) holds the claim.
    """
    from exprbench.benchmarks.report.claims import Claim, holder

    claim = Claim(run_dir, runner="train")
    if not claim.acquire():
        h = holder(Path(run_dir)) or {}
        raise UserError(f"{run_dir} is being trained by PID {h.get('pid', '?')} on {h.get('host', '?')} "
                        f"({h.get('runner', '?')}): wait for it to finish or stop it")
    try:
        return work()
    finally:
        claim.release()


@command("show", config_app)
def config_show(
    model: str = typer.Argument(..., help="Model plugin name (see `exprbench models`)."),
    config: str = typer.Option("default", "--config", help="Named config: default, reference, ..."),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Print the resolved config of MODEL (JSON, as a run's config.json would hold it) without training."""
    from exprbench.runs.config import resolve_config

    cfg = resolve_config(model, config, _overrides(set_))
    typer.echo(json.dumps(cfg.to_dict(), indent=2))


@command("sample")
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

    from exprbench.data import to_uint8
    from exprbench.runs.loader import load_trained
    from exprbench.core.images import grid_image, save_png
    from exprbench.cli.capability_commands import out_path

    dest = out_path(out, Path(run_dir) / "samples" / "sample.png", run_dir)
    _, model, spec, step = load_trained(run_dir, device)
    names = label or list(spec.class_names)
    unknown = [x for x in names if x not in spec.class_names]
    if unknown:
        raise UserError(f"unknown emotion {unknown[0]!r} (known: {', '.join(spec.class_names)})")
    if "sample" not in model.capabilities:
        raise UserError(f"model {model.name!r} cannot sample (capabilities: {', '.join(sorted(model.capabilities))}); "
                        "use exprbench translate")
    if label and "conditional" not in model.capabilities:
        raise UserError(f"model {model.name!r} is unconditional: --label is not supported")
    labels = torch.tensor([spec.class_names.index(x) for x in names]).repeat_interleave(n)
    x = model.sample(len(labels), labels=labels, generator=torch.Generator().manual_seed(seed))
    rows = names if "conditional" in model.capabilities else None
    path = save_png(grid_image(to_uint8(x), n, rows), dest, scale=scale)
    console.print(f"wrote {path} ({len(labels)} images, checkpoint step {step})")

