"""Verbs of the metrics layer: ``exprbench evaluate``, ``metrics`` (the group; ``metrics validate`` is in
:mod:`.validity`), ``evaluator train|info|multilayer``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from exprbench.core.errors import UserError
from exprbench.cli.app import command, group

console = Console(width=None if sys.stdout.isatty() else 160)  # piped: wide enough for whole names
evaluator_app = group("evaluator", "The FER2013 evaluator network (feature space of the metrics).")


@command("train", evaluator_app)
def evaluator_train(
    data: Optional[str] = typer.Option(None, "--data", help="FER2013 zip, csv or folder (default: $EXPRBENCH_DATA)."),
    epochs: int = typer.Option(16, "--epochs", min=1, help="Training epochs (one-cycle schedule)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Weights path (.pt; default metrics/weights/fer_evaluator-w<width>-e<epochs>-s<seed>.pt, "
                                                         "never the shipped evaluator); the card goes beside it."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing weights file (without --out: the shipped evaluator)."),
    width: int = typer.Option(24, "--width", min=4, help="Channels of the first stage (stages: x1, x2, x4, x8)."),
    feat_dim: int = typer.Option(256, "--feat-dim", min=8, help="Size of the penultimate feature layer."),
    dropout: float = typer.Option(0.3, "--dropout", min=0.0, max=0.9, help="Dropout in the head."),
    batch_size: int = typer.Option(128, "--batch-size", min=8, help="Images per step."),
    lr: float = typer.Option(0.1, "--lr", min=0.0, help="Peak learning rate (SGD, one-cycle)."),
    seed: int = typer.Option(0, "--seed", help="Seed of init, data order and augmentation."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads (torch.set_num_threads)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    arch: str = typer.Option("vgg", "--arch", help="vgg (compact VGG) or resvgg (VGG stages with residual shortcuts)."),
    blur: float = typer.Option(0.0, "--blur", min=0.0, max=1.0, help="Probability of a random Gaussian blur per image."),
    resample: float = typer.Option(0.0, "--resample", min=0.0, max=1.0, help="Probability of a 48 -> s -> 48 resampling."),
    noise: float = typer.Option(0.0, "--noise", min=0.0, max=1.0, help="Probability of additive Gaussian noise."),
    cutout: float = typer.Option(0.0, "--cutout", min=0.0, max=1.0, help="Probability of erasing a random rectangle."),
    resume: bool = typer.Option(False, "--resume", help="Continue from <out>.state.pt (written after every epoch)."),
    init: Optional[Path] = typer.Option(None, "--init", help="Fine-tune these evaluator weights (their card's net: --arch, --width, --feat-dim and --dropout are taken from it) instead of a fresh net, e.g. a few epochs at a low --lr."),
) -> None:
    """Train the evaluator on FER2013 train (fer7), select on val, report on test; write weights + card.

    After every epoch the training state goes to ``<out>.state.pt``; ``--resume`` continues from it."""
    from exprbench.data import load_fer2013
    from exprbench.core.devices import resolve_device

    from exprbench.metrics.extractors.evaluator_net import DEFAULT_WEIGHTS, NetConfig
    from exprbench.metrics.extractors.classifier_training import TrainRecipe, train_evaluator
    from exprbench.metrics.extractors.evaluator_net import ARCHS

    from exprbench.core.io import check_writable_file

    if out is None:
        out = DEFAULT_WEIGHTS if overwrite else DEFAULT_WEIGHTS.with_name(f"fer_evaluator-w{width}-e{epochs}-s{seed}.pt")
    dest = check_writable_file(out, "--out")
    if dest.suffix != ".pt":
        raise UserError(f"--out {dest}: the weights file must end in .pt")
    if dest.exists() and not overwrite:
        raise UserError(f"--out {dest} exists: pass --overwrite to replace it, or choose another --out")
    if arch not in ARCHS:
        raise UserError(f"--arch {arch!r}: not one of {', '.join(ARCHS)}")
    state = dest.with_suffix(".state.pt")
    if state.exists() and not resume:
        raise UserError(f"{state} exists (a stopped training): pass --resume to continue it, or delete it")
    dev = resolve_device(device)
    ds = load_fer2013(data, "fer7")
    recipe = TrainRecipe(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, threads=threads,
                         blur=blur, resample=resample, noise=noise, cutout=cutout, init=str(init or ""))
    cfg = NetConfig(width=width, feat_dim=feat_dim, dropout=dropout, arch=arch) if init is None else _init_net(init)
    command = "exprbench " + " ".join(sys.argv[1:])

    def log(rec: dict) -> None:
        console.print(json.dumps(rec), highlight=False)

    card = train_evaluator(ds, dest, cfg, recipe, dev, command=command, log=log, checkpoint=state)
    for part in (state, state.with_name(f"{state.stem}.opt.pt"), state.with_name(f"{state.stem}.best.pt")):
        part.unlink(missing_ok=True)  # the training state, once the weights and card are written
    console.print(f"[green]done[/green] {dest}: val {card['val_accuracy']:.4f}, test {card['test_accuracy']:.4f} "
                  f"(best epoch {card['best_epoch']}/{card['epochs']}, {card['wall_seconds']:.0f} s)")


def _init_net(weights: Path):
    """The net config of the evaluator weights a fine-tune starts from (their card's), after checking the file
    against its card (a one-line UserError otherwise)."""
    from exprbench.metrics.extractors.evaluator import load_evaluator
    from exprbench.metrics.extractors.evaluator_net import NetConfig

    ev = load_evaluator(weights, "cpu")  # refuses missing weights or a card that does not describe them
    return NetConfig.from_dict(ev.card["net"])


@command("attack", evaluator_app)
def evaluator_attack(
    scorer: List[Path] = typer.Option([], "--scorer", help="Scoring evaluator weights (repeatable; default: the shipped evaluator)."),
    source: Optional[Path] = typer.Option(None, "--source", help="The classifier attacked (default: the auxiliary FER classifier)."),
    data: Optional[str] = typer.Option(None, "--data", help="FER2013 zip, csv or folder (default: $EXPRBENCH_DATA)."),
    n: int = typer.Option(700, "--n", min=7, help="Real PrivateTest faces attacked (a fixed random subset, seed 0)."),
    steps: int = typer.Option(20, "--steps", min=1, help="PGD steps."),
    out: Path = typer.Option(Path("results/validity/transfer_attack.json"), "--out", help="Result JSON (a .md table beside it)."),
) -> None:
    """Transfer-attack validity test: targeted PGD (4/255, 8/255) on real test faces against the training
    classifier, read by each scorer; passes when a scorer's targeted success at 8/255 stays below 0.25."""
    from exprbench.data import load_fer2013
    from exprbench.core.io import check_writable_file, write_json, write_text
    from exprbench.metrics.extractors.evaluator_net import AUX_WEIGHTS, DEFAULT_WEIGHTS
    from exprbench.metrics.extractors.evaluator import load_evaluator
    from exprbench.metrics.validity.transfer_attack import attack_table, transfer_attack, with_section

    dest = check_writable_file(out, "--out")
    ds = load_fer2013(data, "fer7")
    te = ds.split("test")
    idx = torch_randperm(len(te), n)
    src = load_evaluator(source or AUX_WEIGHTS)
    paths = scorer or [DEFAULT_WEIGHTS]
    scorers = {Path(p).stem: load_evaluator(p) for p in paths}
    res = transfer_attack(src, scorers, te.images[idx], te.labels[idx], len(ds.class_names), steps=steps)
    res.update(source={"weights": Path(source or AUX_WEIGHTS).name, "sha256": src.sha256},
               scorers={name: {"sha256": sc.sha256, "test_accuracy": sc.card.get("test_accuracy")}
                        for name, sc in scorers.items()}, data_fingerprint=ds.fingerprint)
    write_json(dest, res)
    lines = attack_table(res)
    write_text(dest.with_suffix(".md"), "\n".join(lines) + "\n")
    criteria = dest.parent / "criteria.md"
    if criteria.is_file():  # the validity study beside it: its pass/fail table gets the criterion too
        write_text(criteria, with_section(criteria.read_text(), res))
    console.print("\n".join(lines), highlight=False)


def torch_randperm(total: int, n: int):
    """The first ``min(n, total)`` indices of a seed-0 permutation of ``range(total)`` (int64)."""
    import torch

    return torch.randperm(total, generator=torch.Generator().manual_seed(0))[: min(n, total)]


@command("info", evaluator_app)
def evaluator_info(
    weights: Optional[Path] = typer.Option(None, "--weights", help="Weights file (default: the shipped evaluator)."),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Check the weights' sha256 against the card."),
) -> None:
    """Print the evaluator card: accuracies (hflip TTA), per-class accuracy, sha256, provenance."""
    from exprbench.metrics.extractors.evaluator_net import DEFAULT_WEIGHTS, read_card
    from exprbench.metrics.extractors.evaluator import load_evaluator

    path = weights or DEFAULT_WEIGHTS
    card = load_evaluator(path).card if verify else read_card(path)
    console.print(f"[bold]FER2013 evaluator[/bold] {path}")
    console.print(f"test accuracy (PrivateTest, fer7, hflip TTA): [bold]{card['test_accuracy']:.4f}[/bold]   "
                  f"val (PublicTest): {card['val_accuracy']:.4f}   fer6 test: {card.get('test_accuracy_fer6', float('nan')):.4f}   "
                  f"no-TTA test: {card.get('test_accuracy_no_tta', float('nan')):.4f}")
    t = Table("class", "test accuracy", title="per-class (recall)")
    for k, v in card["per_class_test_accuracy"].items():
        t.add_row(k, "-" if v is None else f"{v:.3f}")
    console.print(t)
    net = card.get("net", {})
    console.print(f"net: width {net.get('width')}, features {net.get('feat_dim')}; epochs {card['epochs']} "
                  f"(best {card.get('best_epoch')}); wall {card.get('wall_seconds')} s on {card.get('hardware')}")
    console.print(f"sha256 {card['sha256']}  ({card.get('size_bytes')} bytes)   data {card.get('data_fingerprint')}")
    console.print(f"command: {card.get('command')}")


@command("multilayer", evaluator_app)
def evaluator_multilayer(
    data: Optional[str] = typer.Option(None, "--data", help="FER2013 zip, csv or folder (default: $EXPRBENCH_DATA)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Evaluator weights (default: the shipped evaluator)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Card path (default: <weights stem>_multilayer.json beside the weights)."),
) -> None:
    """Make the card of the realism space fer-multilayer: each evaluator stage's scale on the train split."""
    from exprbench.data import load_fer2013
    from exprbench.core.io import check_writable_file
    from exprbench.metrics.extractors.evaluator import load_evaluator, resolve_weights
    from exprbench.metrics.extractors.multilayer import build_multilayer_card, multilayer_card_path

    dest = check_writable_file(out or multilayer_card_path(resolve_weights(weights)), "--out")
    ev = load_evaluator(weights)
    ds = load_fer2013(data, "fer7")
    card = build_multilayer_card(ev.net, ev.sha256, ds.images[ds.splits == 0], ds.fingerprint, dest,
                                 "exprbench " + " ".join(sys.argv[1:]))
    console.print(f"[green]done[/green] {dest}: {card['feature_dim']} features, stage scales "
                  + ", ".join(f"{s:.4g}" for s in card["stage_scales"]))


@command("evaluate")
def evaluate_cmd(
    run_dir: Optional[Path] = typer.Argument(None, help="A run directory with a checkpoint (or use --images).", show_default=False),
    metrics: List[str] = typer.Option([], "--metrics", help="Protocol names (repeatable or comma-separated; default: the default set)."),
    n_samples: Optional[int] = typer.Option(None, "--n-samples", min=1, help="Override every protocol's sample count (recorded in the name)."),
    checkpoint: str = typer.Option("latest", "--checkpoint", help="Which checkpoint of the run: a step number or 'latest'."),
    images: Optional[Path] = typer.Option(None, "--images", help="Score images instead of a run: a folder of PNGs, or an .npz with 'images' (uint8 N x H x W or N x C x H x W) and optional 'labels'."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="With --images: one class index or emotion name per image (.npy, .txt, .csv)."),
    out: Optional[Path] = typer.Option(None, "--out", help="With --images: the directory for eval.json and source.json (default results/runs/NAME, else results/runs/images-<stem>)."),
    name: Optional[str] = typer.Option(None, "--name", help="With --images: the name shown for these images in tables (default images-<folder or file stem>)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset path (default: the run's data.path, else $EXPRBENCH_DATA)."),
    inception_weights: Optional[Path] = typer.Option(None, "--inception-weights", help="torch-fidelity Inception-V3 weights (.pth)."),
    evaluator_weights: Optional[Path] = typer.Option(None, "--evaluator-weights", help="Evaluator weights (default: the shipped ones)."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress bars (default: on a terminal only)."),
    keep_samples: bool = typer.Option(False, "--keep-samples", help="Keep the generated image sets in RUN_DIR/.generated/ so a re-evaluation of this checkpoint reads them (a diffusion model's take hours to draw on a CPU)."),
    strict: bool = typer.Option(False, "--strict", help="Refuse (exit 2) when the run was trained on other data than --data (fingerprints differ); default: a warning, stored in eval.json."),
) -> None:
    """Evaluate a trained run (or score images from any source with --images): merge the results into
    eval.json and print them with the real-data values. Progress goes to stderr, one line per protocol."""
    from rich.console import Console

    from exprbench.metrics.run.images_eval import evaluate_images
    from exprbench.metrics.run.evaluate import evaluate_run
    from exprbench.metrics.run.console import print_eval
    from exprbench.metrics.run.progress import ConsoleReporter

    names = [m.strip() for item in metrics for m in item.split(",") if m.strip()] or None
    if images is not None and run_dir is not None:
        raise UserError(f"give a run directory ({run_dir}) or --images {images}, not both")
    if images is None:
        if run_dir is None:
            raise UserError("evaluate needs a run directory, or --images DIR|FILE.npz to score images")
        for opt, val in (("--labels", labels), ("--out", out), ("--name", name)):
            if val is not None:
                raise UserError(f"{opt} goes with --images; a run writes RUN_DIR/eval.json")
    elif checkpoint != "latest":
        raise UserError("--checkpoint goes with a run directory, not with --images")
    elif strict:
        raise UserError("--strict goes with a run directory (images have no training data fingerprint)")
    elif keep_samples:
        raise UserError("--keep-samples goes with a run directory (--images are not generated here)")
    reporter = ConsoleReporter(Console(stderr=True), bars=progress)
    if images is not None:
        result = evaluate_images(images, labels=labels, out=out, name=name, metrics=names, n_samples=n_samples,
                                 device=device, data=data, inception_weights=inception_weights,
                                 evaluator_weights=evaluator_weights, reporter=reporter,
                                 command="exprbench " + " ".join(sys.argv[1:]))
        from exprbench.metrics.run.images_eval import images_out_dir

        dest = images_out_dir(images, out, name)
    else:
        result = evaluate_run(run_dir, metrics=names, n_samples=n_samples, device=device, data=data,
                              inception_weights=inception_weights, evaluator_weights=evaluator_weights,
                              checkpoint=checkpoint, reporter=reporter, strict=strict, keep_samples=keep_samples)
        dest = Path(run_dir)
    print_eval(result, console, only=result["evaluations"][-1]["protocols"])
    extra = " and source.json" if images is not None else ""
    console.print(f"wrote {dest / 'eval.json'}{extra} ({result['wall_s']:.1f} s)", highlight=False, soft_wrap=True)


def metrics_cmd() -> None:
    """List the metric protocols, what they need and their sample counts."""
    from exprbench.metrics.protocols.catalog import all_metrics, resolve_metric

    t = Table("protocol", "needs", "n_samples", "seed", "default", "summary")
    for name in sorted(all_metrics()):
        p = resolve_metric(name)
        t.add_row(name, ", ".join(sorted(p.needs)), str(p.n_samples), str(p.seed), "yes" if p.default else "", p.summary)
    console.print(t)


metrics_app = group("metrics", "List the metric protocols, what they need and their sample counts "
                               "(alone); 'validate': the metric validity study.", default=metrics_cmd)


@command("sweep")
def sweep_cmd(
    run_dir: Path = typer.Argument(..., help="A run directory with a checkpoint.", show_default=False),
    setting: str = typer.Option(..., "--set", help="A sampling setting and its values: model.FIELD=V1,V2,... (e.g. model.guidance=0,0.5,1,2,4)."),
    metrics: List[str] = typer.Option([], "--metrics", help="Protocols that score generated images (repeatable or comma-separated; default: acc_gen700, fid2k_train_ml, pr2k_train_ml)."),
    checkpoint: str = typer.Option("latest", "--checkpoint", help="Which checkpoint of the run: a step number or 'latest'."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset path (default: the run's data.path, else $EXPRBENCH_DATA)."),
    evaluator_weights: Optional[Path] = typer.Option(None, "--evaluator-weights", help="Evaluator weights (default: the shipped ones)."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress bars (default: on a terminal only)."),
) -> None:
    """Evaluate one checkpoint at several values of a sampling setting (a diffusion model's guidance weight w):
    RUN_DIR/sweeps/FIELD.json, resumable; `exprbench report` shows it as a table and a figure."""
    from exprbench.metrics.run.progress import ConsoleReporter
    from exprbench.metrics.run.sweep import DEFAULT_SWEEP_METRICS, parse_setting, sweep_run

    field, values = parse_setting(setting)
    names = [m.strip() for item in metrics for m in item.split(",") if m.strip()] or list(DEFAULT_SWEEP_METRICS)
    reporter = ConsoleReporter(Console(stderr=True), bars=progress)
    doc = sweep_run(run_dir, field, values, names, device=device, data=data, evaluator_weights=evaluator_weights,
                    checkpoint=checkpoint, reporter=reporter)
    t = Table(doc["setting"], *doc["metrics"])
    for p in doc["points"]:
        t.add_row(str(p["value"]), *[_cell(p["metrics"].get(m)) for m in doc["metrics"]])
    console.print(t)
    console.print(f"wrote {Path(run_dir) / 'sweeps' / (field + '.json')}", highlight=False, soft_wrap=True)


def _cell(entry: dict | None) -> str:
    """A sweep table cell: the value, or the status and reason."""
    if not entry:
        return "-"
    if entry.get("status") != "ok":
        return f"{entry.get('status')}: {entry.get('reason', '')}"
    return f"{entry['value']:.4g}"
