"""The classifier-training recipe shared by the evaluator and the Classification Accuracy Score.

:func:`train_classifier`: SGD + Nesterov, one-cycle LR, label smoothing, random shift / rotation /
horizontal flip (kornia); :func:`accuracy_of` with hflip TTA; :func:`train_evaluator` (``exprbench
evaluator train``): trains, selects the best val epoch, writes ``fer_evaluator.pt`` (a plain state dict,
loaded with ``weights_only=True``) and the JSON card beside it.
"""

from __future__ import annotations

import copy
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from exprbench.data import FER7, FaceDataset, to_float
from exprbench.core.errors import UserError

from exprbench.metrics.extractors.evaluator_net import DEFAULT_WEIGHTS, NetConfig, build_net, save_evaluator
from exprbench.metrics.protocols.names import EXTRACTOR_NAME
from exprbench.metrics.extractors.classifier_state import load_state, save_state
from exprbench.metrics.families.labels import confusion_matrix, per_class_accuracy

# --------------------------------------------------------------------------------------------
# training recipe (evaluator and CAS)


@dataclass
class TrainRecipe:
    """Hyper-parameters of :func:`train_classifier`.

    Attributes:
        epochs: passes over the training images.
        batch_size: images per SGD step.
        lr: peak learning rate of the one-cycle schedule (Smith & Topin 2019).
        weight_decay: L2 weight decay (SGD, Nesterov momentum 0.9).
        label_smoothing: cross-entropy label smoothing (Szegedy et al. 2016).
        translate: largest random shift as a fraction of the size (training augmentation).
        rotate: largest random rotation in degrees (training augmentation).
        hflip: random horizontal flips (training augmentation).
        seed: seeds weights init, data order and augmentation.
        threads: CPU threads (``torch.set_num_threads``); None keeps the current setting.
        blur: probability of a random Gaussian blur (3x3 or 5x5, sigma in [0.1, 1.5]) per image, so that
            pixel-exact high-frequency cues carry no class (the blur-robust evaluator; 0 = off).
        resample: probability of a 48 -> s -> 48 bilinear resampling, s in [20, 40] (0 = off).
        noise: probability of additive Gaussian noise, std 0.06 on the [-1, 1] scale (0 = off).
        cutout: probability of erasing one random rectangle of 2-12% of the image (DeVries & Taylor 2017;
            0 = off).
        init: weights to start from (a fine-tune of a trained evaluator, e.g. a few low-learning-rate epochs;
            the net config must be theirs); "" is a fresh initialization.
    """

    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.1
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    translate: float = 0.1
    rotate: float = 10.0
    hflip: bool = True
    seed: int = 0
    threads: int | None = None
    blur: float = 0.0
    resample: float = 0.0
    noise: float = 0.0
    cutout: float = 0.0
    init: str = ""

    @property
    def robust(self) -> bool:
        """Whether any of the augmentations that remove pixel-exact cues is on."""
        return max(self.blur, self.resample, self.noise, self.cutout) > 0


class RandomResample(nn.Module):
    """With probability ``p`` per image, bilinear 48 -> s -> 48 resampling with s uniform in ``sizes``.

    Takes and returns float N x C x H x W; randomness from torch's global RNG (checkpointed by the trainer).
    """

    def __init__(self, p: float, sizes: tuple[int, int] = (20, 40)) -> None:
        super().__init__()
        self.p, self.sizes = p, sizes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pick = torch.rand(x.shape[0]) < self.p
        if not bool(pick.any()):
            return x
        s = int(torch.randint(self.sizes[0], self.sizes[1] + 1, ()))
        out = x.clone()
        small = F.interpolate(x[pick], size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        out[pick] = F.interpolate(small, size=x.shape[2:], mode="bilinear", align_corners=False)
        return out


def _augmenter(recipe: TrainRecipe) -> nn.Module:
    import kornia.augmentation as K

    from exprbench.data.augment import AugmentConfig, build_augment

    geometric = build_augment(AugmentConfig(hflip=recipe.hflip, rotate=(-recipe.rotate, recipe.rotate),
                                            translate=recipe.translate, p_affine=1.0, padding="border"))
    if not recipe.robust:
        return geometric
    ops: list[nn.Module] = [geometric]
    if recipe.blur > 0:
        ops.append(K.RandomGaussianBlur((3, 3), (0.1, 1.5), p=recipe.blur / 2))
        ops.append(K.RandomGaussianBlur((5, 5), (0.1, 1.5), p=recipe.blur / 2))
    if recipe.resample > 0:
        ops.append(RandomResample(recipe.resample))
    if recipe.noise > 0:
        ops.append(K.RandomGaussianNoise(std=0.06, p=recipe.noise))
    if recipe.cutout > 0:
        ops.append(K.RandomErasing(scale=(0.02, 0.12), ratio=(0.5, 2.0), value=0.0, p=recipe.cutout))
    return nn.Sequential(*ops)


@torch.no_grad()
def accuracy_of(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device,
                tta: bool = True, class_idx: Sequence[int] | None = None, batch_size: int = 512) -> tuple[float, torch.Tensor]:
    """Accuracy (fraction) of ``net`` on uint8 images N x 1 x 48 x 48 and int64 labels, and the predictions.

    ``class_idx`` restricts the logits to those classes (labels index into it); ``tta`` averages the
    softmax over the image and its horizontal mirror.
    """
    was = net.training
    net.eval()
    preds = []
    try:
        for i in range(0, images.shape[0], batch_size):
            x = to_float(images[i : i + batch_size].to(device)).contiguous(memory_format=torch.channels_last)
            lo = net(x)[1].float()
            p = F.softmax(lo if class_idx is None else lo[:, list(class_idx)], 1)
            if tta:
                lf = net(torch.flip(x, dims=[3]))[1].float()
                p = 0.5 * (p + F.softmax(lf if class_idx is None else lf[:, list(class_idx)], 1))
            preds.append(p.argmax(1).cpu())
    finally:
        net.train(was)
    pred = torch.cat(preds)
    return float((pred == labels.cpu()).float().mean()), pred


def _optimizer(net: nn.Module, recipe: TrainRecipe, steps_per_epoch: int):
    """SGD (Nesterov 0.9, no decay on biases and norms) and its one-cycle schedule (linear decay under 20 steps)."""
    decay, no_decay = [], []
    for _, p in net.named_parameters():
        (no_decay if p.ndim == 1 else decay).append(p)
    opt = torch.optim.SGD([{"params": decay, "weight_decay": recipe.weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=recipe.lr, momentum=0.9, nesterov=True)
    total_steps = recipe.epochs * steps_per_epoch
    if total_steps >= 20:
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, epochs=recipe.epochs,
                                                    steps_per_epoch=steps_per_epoch, pct_start=0.2)
    else:  # OneCycleLR cannot split a handful of steps into phases: linear decay instead
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: max(1.0 - i / total_steps, 0.0))
    return opt, sched


def _train_epoch(net, aug, opt, sched, images_d, labels_d, perm, bs: int, steps: int, recipe: TrainRecipe, amp) -> dict:
    """One pass of ``steps`` batches in the order ``perm``; returns loss and train accuracy."""
    net.train()
    tot_loss, tot_ok, seen = 0.0, 0, 0
    for s in range(steps):
        idx = perm[s * bs : (s + 1) * bs]
        with torch.no_grad():
            x = aug(to_float(images_d[idx])).contiguous(memory_format=torch.channels_last)
        y = labels_d[idx]
        with amp:
            logits = net(x)[1]
            loss = F.cross_entropy(logits.float(), y, label_smoothing=recipe.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        tot_loss += loss.item() * len(idx)
        tot_ok += int((logits.argmax(1) == y).sum())
        seen += len(idx)
    return {"loss": tot_loss / seen, "train_acc": tot_ok / seen}


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    net_cfg: NetConfig,
    recipe: TrainRecipe,
    device: torch.device | str = "cpu",
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    log: Callable[[dict], None] | None = None,
    checkpoint: Path | None = None,
) -> tuple[nn.Module, list[dict]]:
    """Train a fresh evaluator-family net (``net_cfg.arch``) on uint8 images N x 1 x 48 x 48, int64 labels 0..K-1.

    The recipe: SGD (Nesterov momentum 0.9) with a one-cycle LR schedule (warm-up over the first 20%,
    then cosine annealing; schedules under 20 steps decay linearly), label-smoothed cross entropy,
    per-image random shift / rotation / horizontal flip (kornia) and, when the recipe asks, blur,
    resampling, noise and cutout; channels_last, fp32 (bf16 autocast on CUDA). With ``val`` the weights
    of the epoch with the best val accuracy (hflip TTA) are returned (model selection); otherwise those
    of the last epoch.

    Args:
        checkpoint: a file written after every epoch (net, optimizer, schedule, RNG states, history); when it
            exists, training continues from it (a stopped training resumes at its next epoch, bit-exact on CPU).

    Returns:
        ``(net, history)``: the net in eval mode on ``device``, one dict per epoch (loss, train
        accuracy, val accuracy, seconds).

    Raises:
        UserError: empty training set, labels outside 0..K-1, or a checkpoint of another recipe.
    """
    dev = torch.device(device)
    if images.shape[0] == 0:
        raise UserError("train_classifier: empty training set")
    k = len(net_cfg.class_names)
    if int(labels.min()) < 0 or int(labels.max()) >= k:
        raise UserError(f"train_classifier: labels outside 0..{k - 1}")
    if recipe.threads:
        torch.set_num_threads(recipe.threads)
    torch.manual_seed(recipe.seed)
    net = build_net(net_cfg)
    if recipe.init:  # a fine-tune: the trained weights (their card's net config) instead of a fresh init
        net.load_state_dict(torch.load(recipe.init, map_location="cpu", weights_only=True))
    net = net.to(dev).to(memory_format=torch.channels_last)
    aug = _augmenter(recipe).to(dev)
    n = images.shape[0]
    bs = min(recipe.batch_size, n)
    steps_per_epoch = max(n // bs, 1)
    opt, sched = _optimizer(net, recipe, steps_per_epoch)
    gen = torch.Generator().manual_seed(recipe.seed)
    images_d, labels_d = images.to(dev), labels.to(dev)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else _null()
    history: list[dict] = []
    best_acc, best_state = -1.0, None
    if checkpoint is not None and Path(checkpoint).exists():
        history, best_acc, best_state = load_state(Path(checkpoint), net, opt, sched, gen, asdict(recipe))
    for epoch in range(len(history), recipe.epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=gen).to(dev)
        rec = {"epoch": epoch + 1, **_train_epoch(net, aug, opt, sched, images_d, labels_d, perm, bs,
                                                   steps_per_epoch, recipe, amp),
               "seconds": round(time.perf_counter() - t0, 2)}
        if val is not None:
            rec["val_acc"], _ = accuracy_of(net, val[0], val[1], dev, tta=True)
            if rec["val_acc"] > best_acc:
                best_acc = rec["val_acc"]
                best_state = copy.deepcopy(net.state_dict())
                rec["best"] = True
        history.append(rec)
        if checkpoint is not None:
            save_state(Path(checkpoint), net, opt, sched, gen, history, best_acc, best_state, asdict(recipe))
        if log:
            log(rec)
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return net, history


DESCRIPTIONS = {
    "vgg": "Compact VGG-style FER2013 classifier (4 stages of 2 conv3x3-BN-ReLU + maxpool, GAP, FC-BN-ReLU "
           "penultimate features, linear logits).",
    "resvgg": "Residual VGG-style FER2013 classifier (conv3x3-BN-ReLU stem, 4 stages of 2 conv3x3-BN with a residual "
              "shortcut (He et al. 2016) + maxpool, GAP, FC-BN-ReLU penultimate features, linear logits).",
}


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return False



def _test_report(net: nn.Module, te, dev: torch.device) -> dict:
    """The card's PrivateTest numbers (hflip TTA unless said): accuracy, without TTA, on fer6, after each low-pass
    filter (:mod:`.lowpass`), per class, and the confusion matrix."""
    from exprbench.metrics.families.lowpass import LOWPASS

    test_acc, pred = accuracy_of(net, te.images, te.labels, dev, tta=True)
    cm = confusion_matrix(te.labels, pred, len(FER7))
    disgust = FER7.index("disgust")
    fer6_idx = [i for i in range(len(FER7)) if i != disgust]
    keep = te.labels != disgust
    remap = torch.full((len(FER7),), -1, dtype=torch.int64)
    remap[fer6_idx] = torch.arange(len(fer6_idx))
    lowpass = {k: accuracy_of(net, f(te.images), te.labels, dev, tta=True)[0] for k, f in LOWPASS.items()}
    return {"test_accuracy": test_acc,
            "test_accuracy_no_tta": accuracy_of(net, te.images, te.labels, dev, tta=False)[0],
            "test_accuracy_fer6": accuracy_of(net, te.images[keep], remap[te.labels[keep]], dev, tta=True,
                                              class_idx=fer6_idx)[0],
            "test_accuracy_blur": lowpass["blur"], "test_accuracy_resample": lowpass["resample"],
            "per_class_test_accuracy": per_class_accuracy(cm, FER7), "test_confusion_matrix": cm,
            "confusion_matrix_axes": "rows = true class, columns = predicted class (test = PrivateTest)"}


def train_evaluator(
    data: FaceDataset,
    out: Path = DEFAULT_WEIGHTS,
    net_cfg: NetConfig = NetConfig(),
    recipe: TrainRecipe = TrainRecipe(),
    device: torch.device | str = "cpu",
    command: str | None = None,
    log: Callable[[dict], None] | None = None,
    checkpoint: Path | None = None,
) -> dict:
    """Train the evaluator on ``data``'s train split (fer7), select on val, report on test; write weights + card.

    Args:
        data: FER2013 with the ``fer7`` label set.
        out: weights path (``.pt``); the card goes beside it (``.json``).
        command: the command line recorded in the card (default: ``sys.argv``).
        checkpoint: the per-epoch training state (see :func:`train_classifier`); resumed when it exists.

    Returns:
        The card (dict): sha256, command, data fingerprint, epochs, val/test accuracy (hflip TTA),
        per-class test accuracy, test confusion matrix, wall time, hardware.

    Raises:
        UserError: the data is not fer7.
    """
    from exprbench.core.devices import device_name, library_versions

    if tuple(data.class_names) != FER7:
        raise UserError(f"the evaluator is trained on the fer7 label set, got {data.label_set}")
    dev = torch.device(device)
    t0 = time.perf_counter()
    tr, va, te = data.split("train"), data.split("val"), data.split("test")
    net, history = train_classifier(tr.images, tr.labels, net_cfg, recipe, dev,
                                    val=(va.images, va.labels), log=log, checkpoint=checkpoint)
    wall = time.perf_counter() - t0
    if checkpoint is not None:  # a resumed training: the epochs' own seconds
        wall = max(wall, sum(r["seconds"] for r in history))
    best = max(history, key=lambda r: r.get("val_acc", -1))
    val_acc, _ = accuracy_of(net, va.images, va.labels, dev, tta=True)
    card = {
        "name": EXTRACTOR_NAME,
        "description": DESCRIPTIONS[net_cfg.arch] + " Accuracies use hflip TTA.",
        "command": command if command is not None else " ".join(shlex.quote(a) for a in sys.argv),
        "data_fingerprint": data.fingerprint,
        "data_source": Path(data.source).name,
        "label_set": "fer7",
        "class_names": list(FER7),
        "recipe": asdict(recipe),
        "epochs": recipe.epochs,
        "best_epoch": best["epoch"],
        "val_accuracy": val_acc,
        **_test_report(net, te, dev),
        "history": history,
        "wall_seconds": round(wall, 1),
        "hardware": device_name(dev),
        "platform": platform.platform(),
        "versions": library_versions(),
        "target_note": "issue target >= 0.68 test accuracy (fer7, hflip TTA)",
    }
    saved = save_evaluator(net, Path(out), card)
    from exprbench.metrics.extractors.multilayer import build_multilayer_card, multilayer_card_path

    build_multilayer_card(net, saved["sha256"], data.images[data.splits == 0], data.fingerprint,
                          multilayer_card_path(out), saved["command"])  # its realism space (metrics/extractors/multilayer.py)
    return saved


