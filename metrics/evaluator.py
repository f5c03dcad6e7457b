"""The FER2013 evaluator: a fixed expression classifier whose features define the suite's feature space.

Standard FID uses Inception-V3 features of images upscaled to 299x299 RGB; on 48x48 gray faces those say
little about expressions and need downloaded weights. The suite therefore ships its own network,
trained on FER2013 (train split), selected on val (PublicTest), reported on test (PrivateTest):

* :class:`FERNet` - a compact VGG-style CNN (Simonyan & Zisserman 2015) with batch norm (Ioffe &
  Szegedy 2015): four stages of two 3x3 conv-BN-ReLU layers and 2x2 max pooling (48 -> 24 -> 12 -> 6 -> 3),
  global average pooling, a fully connected ReLU layer (the *penultimate features*, ``feat_dim`` wide,
  used for FID / KID / precision-recall) and a linear classifier (the *logits*).
* :class:`Evaluator` - a loaded, verified network with its card: features, logits, hflip-averaged
  predictions, label-set mapping (``fer6`` = the same network with the disgust logit masked).
* :func:`train_classifier` - the training recipe (SGD + Nesterov, one-cycle LR, label smoothing, random
  shift / rotation / horizontal flip), shared with the Classification Accuracy Score.
* :func:`train_evaluator` - ``exprbench evaluator train``: trains, selects the best val epoch, writes
  ``fer_evaluator.pt`` (a plain state dict, loaded with ``weights_only=True``) and the JSON card beside it.
* :class:`FERFeatureExtractor` - the torch-fidelity ``FeatureExtractorBase`` registered as
  ``"fer-evaluator"``, exposing ``"penultimate"`` and ``"logits"``.
"""

from __future__ import annotations

import copy
import json
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
from exprbench.errors import UserError
from exprbench.io import file_sha256

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "fer_evaluator.pt"
from .names import EXTRACTOR_NAME  # noqa: E402  (re-exported)
FEATURE_PENULTIMATE = "penultimate"
FEATURE_LOGITS = "logits"
CARD_VERSION = 1


class EvaluatorError(UserError):
    """Missing or corrupt evaluator weights / card, a sha256 mismatch, or images it cannot take."""


# --------------------------------------------------------------------------------------------
# the network


@dataclass(frozen=True)
class NetConfig:
    """Architecture of :class:`FERNet`.

    Attributes:
        width: channels of the first stage; stages have width x (1, 2, 4, 8).
        feat_dim: size of the penultimate (feature) layer.
        dropout: dropout before the feature layer and before the classifier (training only).
        class_names: the classes of the logits, in order (FER2013 ``fer7`` order by default).
    """

    width: int = 32
    feat_dim: int = 256
    dropout: float = 0.4
    class_names: tuple[str, ...] = FER7

    def to_dict(self) -> dict:
        d = asdict(self)
        d["class_names"] = list(self.class_names)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "NetConfig":
        return cls(int(d["width"]), int(d["feat_dim"]), float(d["dropout"]), tuple(d["class_names"]))


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class FERNet(nn.Module):
    """Compact VGG-style classifier for 1 x 48 x 48 faces.

    ``forward(x)`` takes float32 N x 1 x 48 x 48 images in [-1, 1] (see :func:`exprbench.data.to_float`)
    and returns ``(features, logits)``: float32 N x ``feat_dim`` (non-negative, after ReLU) and
    N x ``len(class_names)``.
    """

    def __init__(self, cfg: NetConfig = NetConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        layers: list[nn.Module] = []
        cin = 1
        for mult in (1, 2, 4, 8):
            layers += _conv_bn(cin, w * mult) + _conv_bn(w * mult, w * mult) + [nn.MaxPool2d(2)]
            cin = w * mult
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(cfg.dropout), nn.Linear(cin, cfg.feat_dim),
                                  nn.BatchNorm1d(cfg.feat_dim), nn.ReLU(inplace=True))
        self.drop = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(cfg.feat_dim, len(cfg.class_names))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        h = F.adaptive_avg_pool2d(h, 1)
        feats = self.head(h)
        return feats, self.classifier(self.drop(feats))


# --------------------------------------------------------------------------------------------
# files: weights + card


def card_path(weights: Path) -> Path:
    """The JSON card beside a weights file: ``fer_evaluator.pt`` -> ``fer_evaluator.json``."""
    return Path(weights).with_suffix(".json")


def read_card(weights: str | Path | None = None) -> dict:
    """Read the card of ``weights`` (default: the shipped evaluator).

    Raises:
        EvaluatorError: the card is missing or malformed.
    """
    cp = card_path(Path(weights or DEFAULT_WEIGHTS))
    if not cp.exists():
        raise EvaluatorError(f"evaluator card {cp} not found (train one with `exprbench evaluator train`)")
    try:
        return json.loads(cp.read_text())
    except json.JSONDecodeError as e:
        raise EvaluatorError(f"{cp}:{e.lineno}: malformed evaluator card ({e.msg})") from None


def save_evaluator(net: FERNet, weights: Path, card: dict) -> dict:
    """Write ``net``'s state dict to ``weights`` and the card (with its sha256 and net config) beside it.

    Returns the card as written.
    """
    from exprbench.data import atomic_torch_save
    from exprbench.harness import write_json

    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    atomic_torch_save(state, Path(weights))
    card = {**card, "card_version": CARD_VERSION, "net": net.cfg.to_dict(),
            "weights_file": Path(weights).name, "sha256": file_sha256(Path(weights)),
            "size_bytes": Path(weights).stat().st_size}
    write_json(card_path(Path(weights)), card)
    return card


class Evaluator:
    """A verified, loaded evaluator network in eval mode.

    Attributes:
        net: the :class:`FERNet` (eval mode, no grad).
        card: the JSON card (dict).
        sha256: sha256 of the weights file, checked against the card on load.
        class_names: the network's classes (fer7).
        device: where it runs.
    """

    def __init__(self, net: FERNet, card: dict, sha256: str, device: torch.device) -> None:
        self.net, self.card, self.sha256, self.device = net, card, sha256, device
        self.class_names = tuple(net.cfg.class_names)

    @property
    def feat_dim(self) -> int:
        return self.net.cfg.feat_dim

    # -- inputs ------------------------------------------------------------------------------
    @staticmethod
    def check_images(images: torch.Tensor, what: str = "images") -> torch.Tensor:
        """Check uint8 N x {1,3} x 48 x 48 images; return N x 1 x 48 x 48 (gray: the channel mean of RGB).

        Raises:
            EvaluatorError: wrong type, dtype, shape, or an empty batch.
        """
        if not torch.is_tensor(images):
            raise EvaluatorError(f"{what}: expected a torch.Tensor, got {type(images).__name__}")
        if images.dtype != torch.uint8:
            raise EvaluatorError(f"{what}: expected dtype uint8 (0..255; use exprbench.data.to_uint8), got {images.dtype}")
        if images.dim() != 4 or images.shape[1] not in (1, 3) or tuple(images.shape[2:]) != (48, 48):
            raise EvaluatorError(f"{what}: expected shape N x 1 x 48 x 48 (or N x 3 x 48 x 48), got {tuple(images.shape)}")
        if images.shape[0] == 0:
            raise EvaluatorError(f"{what}: empty set (0 images)")
        if images.shape[1] == 3:
            images = images.float().mean(1, keepdim=True).round().to(torch.uint8)
        return images

    def _batches(self, images: torch.Tensor, batch_size: int):
        for i in range(0, images.shape[0], batch_size):
            x = to_float(images[i : i + batch_size].to(self.device))
            yield x.contiguous(memory_format=torch.channels_last)

    # -- outputs -----------------------------------------------------------------------------
    @torch.no_grad()
    def features_and_logits(self, images: torch.Tensor, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
        """Penultimate features (float32 N x feat_dim) and logits (float32 N x 7) of uint8 images, on the CPU.

        No test-time augmentation: features are a fixed function of the image.

        Raises:
            EvaluatorError: see :meth:`check_images`.
        """
        images = self.check_images(images)
        fs, ls = [], []
        for x in self._batches(images, batch_size):
            f, l = self.net(x)
            fs.append(f.float().cpu())
            ls.append(l.float().cpu())
        return torch.cat(fs), torch.cat(ls)

    @torch.no_grad()
    def probs(self, images: torch.Tensor, class_names: Sequence[str] | None = None, tta: bool = True,
              batch_size: int = 512) -> torch.Tensor:
        """Class probabilities, float32 N x K, averaged over the image and its mirror when ``tta``.

        Args:
            images: uint8 N x 1 x 48 x 48 (0..255).
            class_names: the label set to predict in (e.g. the 6 ``fer6`` names); logits of the
                evaluator's other classes are masked out (fer6 = disgust masked). Default: all 7.
            tta: horizontal-flip test-time averaging of the softmax.

        Raises:
            EvaluatorError: bad images, or a class name the evaluator does not know.
        """
        images = self.check_images(images)
        idx = self.class_indices(class_names)
        out = []
        for x in self._batches(images, batch_size):
            p = F.softmax(self.net(x)[1].float()[:, idx], dim=1)
            if tta:
                p = 0.5 * (p + F.softmax(self.net(torch.flip(x, dims=[3]))[1].float()[:, idx], dim=1))
            out.append(p.cpu())
        return torch.cat(out)

    def predict(self, images: torch.Tensor, class_names: Sequence[str] | None = None, tta: bool = True) -> torch.Tensor:
        """Predicted labels, int64 N, indices into ``class_names`` (default the evaluator's 7 classes)."""
        return self.probs(images, class_names, tta).argmax(1)

    def class_indices(self, class_names: Sequence[str] | None) -> list[int]:
        """Indices of ``class_names`` among the evaluator's classes.

        Raises:
            EvaluatorError: an unknown class name.
        """
        if class_names is None:
            return list(range(len(self.class_names)))
        unknown = [c for c in class_names if c not in self.class_names]
        if unknown:
            raise EvaluatorError(f"the evaluator does not know class {unknown[0]!r} (knows: {', '.join(self.class_names)})")
        return [self.class_names.index(c) for c in class_names]


_LOADED: dict[tuple[str, str, str], Evaluator] = {}


def resolve_weights(weights: str | Path | None = None) -> Path:
    """The evaluator weights path: ``weights``, else the shipped ``metrics/weights/fer_evaluator.pt``.

    Raises:
        EvaluatorError: the file does not exist.
    """
    p = Path(weights) if weights is not None else DEFAULT_WEIGHTS
    if not p.exists():
        raise EvaluatorError(f"evaluator weights {p} not found (train them with `exprbench evaluator train`)")
    return p


def load_evaluator(weights: str | Path | None = None, device: str | torch.device = "cpu") -> Evaluator:
    """Load the evaluator: check the file's sha256 against its card, then ``torch.load(weights_only=True)``.

    Loaded evaluators are memoized per (path, sha256, device).

    Raises:
        EvaluatorError: missing weights or card, sha256 mismatch, or a state dict that does not fit.
    """
    p = resolve_weights(weights).resolve()
    dev = torch.device(device)
    card = read_card(p)
    sha = file_sha256(p)
    key = (str(p), sha, str(dev))
    if key in _LOADED:
        return _LOADED[key]
    if card.get("sha256") != sha:
        raise EvaluatorError(
            f"evaluator weights {p} have sha256 {sha[:12]}..., the card {card_path(p).name} says "
            f"{str(card.get('sha256'))[:12]}...: the weights are not the ones the card describes"
        )
    try:
        cfg = NetConfig.from_dict(card["net"])
        net = FERNet(cfg)
        net.load_state_dict(torch.load(p, map_location="cpu", weights_only=True))
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise EvaluatorError(f"evaluator weights {p} do not load ({msg})") from None
    net.to(dev).to(memory_format=torch.channels_last).eval().requires_grad_(False)
    ev = Evaluator(net, card, sha, dev)
    _LOADED[key] = ev
    return ev


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


def _augmenter(recipe: TrainRecipe) -> nn.Module:
    from exprbench.augment import AugmentConfig, build_augment

    return build_augment(AugmentConfig(hflip=recipe.hflip, rotate=(-recipe.rotate, recipe.rotate),
                                       translate=recipe.translate, p_affine=1.0, padding="border"))


@torch.no_grad()
def accuracy_of(net: FERNet, images: torch.Tensor, labels: torch.Tensor, device: torch.device,
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


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    net_cfg: NetConfig,
    recipe: TrainRecipe,
    device: torch.device | str = "cpu",
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    log: Callable[[dict], None] | None = None,
) -> tuple[FERNet, list[dict]]:
    """Train a fresh :class:`FERNet` on uint8 images N x 1 x 48 x 48 with int64 labels in 0..K-1.

    The recipe: SGD (Nesterov momentum 0.9) with a one-cycle LR schedule (warm-up over the first 20%,
    then cosine annealing; schedules under 20 steps decay linearly), label-smoothed cross entropy,
    per-image random shift / rotation / horizontal flip (kornia), channels_last, fp32 (bf16 autocast
    on CUDA). With ``val`` the weights of the epoch with the best val accuracy (hflip TTA) are returned
    (model selection); otherwise those of the last epoch.

    Returns:
        ``(net, history)``: the net in eval mode on ``device``, one dict per epoch (loss, train
        accuracy, val accuracy, seconds).

    Raises:
        UserError: empty training set, or labels outside 0..K-1.
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
    net = FERNet(net_cfg).to(dev).to(memory_format=torch.channels_last)
    aug = _augmenter(recipe).to(dev)
    n = images.shape[0]
    bs = min(recipe.batch_size, n)
    steps_per_epoch = max(n // bs, 1)
    decay, no_decay = [], []
    for name, p in net.named_parameters():
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
    gen = torch.Generator().manual_seed(recipe.seed)
    images_d, labels_d = images.to(dev), labels.to(dev)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else _null()
    history: list[dict] = []
    best_acc, best_state = -1.0, None
    for epoch in range(recipe.epochs):
        t0 = time.perf_counter()
        net.train()
        perm = torch.randperm(n, generator=gen).to(dev)
        tot_loss, tot_ok, seen = 0.0, 0, 0
        for s in range(steps_per_epoch):
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
        rec = {"epoch": epoch + 1, "loss": tot_loss / seen, "train_acc": tot_ok / seen,
               "seconds": round(time.perf_counter() - t0, 2)}
        if val is not None:
            rec["val_acc"], _ = accuracy_of(net, val[0], val[1], dev, tta=True)
            if rec["val_acc"] > best_acc:
                best_acc = rec["val_acc"]
                best_state = copy.deepcopy(net.state_dict())
                rec["best"] = True
        history.append(rec)
        if log:
            log(rec)
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return net, history


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return False


# --------------------------------------------------------------------------------------------
# exprbench evaluator train


def confusion_matrix(true: torch.Tensor, pred: torch.Tensor, k: int) -> list[list[int]]:
    """K x K counts: row = true class, column = predicted class."""
    m = torch.bincount(true.cpu() * k + pred.cpu(), minlength=k * k).reshape(k, k)
    return m.tolist()


def per_class_accuracy(cm: list[list[int]], class_names: Sequence[str]) -> dict[str, float | None]:
    """Recall of each class from a confusion matrix (None for a class with no image)."""
    out = {}
    for i, name in enumerate(class_names):
        tot = sum(cm[i])
        out[name] = (cm[i][i] / tot) if tot else None
    return out


def train_evaluator(
    data: FaceDataset,
    out: Path = DEFAULT_WEIGHTS,
    net_cfg: NetConfig = NetConfig(),
    recipe: TrainRecipe = TrainRecipe(),
    device: torch.device | str = "cpu",
    command: str | None = None,
    log: Callable[[dict], None] | None = None,
) -> dict:
    """Train the evaluator on ``data``'s train split (fer7), select on val, report on test; write weights + card.

    Args:
        data: FER2013 with the ``fer7`` label set.
        out: weights path (``.pt``); the card goes beside it (``.json``).
        command: the command line recorded in the card (default: ``sys.argv``).

    Returns:
        The card (dict): sha256, command, data fingerprint, epochs, val/test accuracy (hflip TTA),
        per-class test accuracy, test confusion matrix, wall time, hardware.

    Raises:
        UserError: the data is not fer7.
    """
    from exprbench.harness import device_name, library_versions

    if tuple(data.class_names) != FER7:
        raise UserError(f"the evaluator is trained on the fer7 label set, got {data.label_set}")
    dev = torch.device(device)
    t0 = time.perf_counter()
    tr, va, te = data.split("train"), data.split("val"), data.split("test")
    net, history = train_classifier(tr.images, tr.labels, net_cfg, recipe, dev,
                                    val=(va.images, va.labels), log=log)
    wall = time.perf_counter() - t0
    best = max(history, key=lambda r: r.get("val_acc", -1))
    val_acc, _ = accuracy_of(net, va.images, va.labels, dev, tta=True)
    test_acc, pred = accuracy_of(net, te.images, te.labels, dev, tta=True)
    test_acc_notta, _ = accuracy_of(net, te.images, te.labels, dev, tta=False)
    cm = confusion_matrix(te.labels, pred, len(FER7))
    disgust = FER7.index("disgust")
    fer6_idx = [i for i in range(len(FER7)) if i != disgust]
    keep = te.labels != disgust
    remap = torch.full((len(FER7),), -1, dtype=torch.int64)
    remap[fer6_idx] = torch.arange(len(fer6_idx))
    test6, _ = accuracy_of(net, te.images[keep], remap[te.labels[keep]], dev, tta=True, class_idx=fer6_idx)
    card = {
        "name": EXTRACTOR_NAME,
        "description": "Compact VGG-style FER2013 classifier (4 stages of 2 conv3x3-BN-ReLU + maxpool, GAP, "
                       "FC-BN-ReLU penultimate features, linear logits). Accuracies use hflip TTA.",
        "command": command if command is not None else " ".join(shlex.quote(a) for a in sys.argv),
        "data_fingerprint": data.fingerprint,
        "data_source": Path(data.source).name,
        "label_set": "fer7",
        "class_names": list(FER7),
        "recipe": asdict(recipe),
        "epochs": recipe.epochs,
        "best_epoch": best["epoch"],
        "val_accuracy": val_acc,
        "test_accuracy": test_acc,
        "test_accuracy_no_tta": test_acc_notta,
        "test_accuracy_fer6": test6,
        "per_class_test_accuracy": per_class_accuracy(cm, FER7),
        "test_confusion_matrix": cm,
        "confusion_matrix_axes": "rows = true class, columns = predicted class (test = PrivateTest)",
        "history": history,
        "wall_seconds": round(wall, 1),
        "hardware": device_name(dev),
        "platform": platform.platform(),
        "versions": library_versions(),
        "target_note": "issue target >= 0.68 test accuracy (fer7, hflip TTA)",
    }
    return save_evaluator(net, Path(out), card)


# --------------------------------------------------------------------------------------------
# torch-fidelity feature extractor


def _fidelity_base():
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase

    return FeatureExtractorBase


class FERFeatureExtractor(_fidelity_base()):
    """torch-fidelity feature extractor ``"fer-evaluator"`` over the FER2013 evaluator.

    Input: uint8 B x 1 x 48 x 48 or B x 3 x 48 x 48 (gray repeated; the channel mean is used).
    Output: a tuple in the order of the requested features, from ``("penultimate", "logits")``:
    float32 B x feat_dim and B x 7. FID, KID and precision/recall default to ``"penultimate"``.

    The weights come from ``feature_extractor_weights_path`` (torch-fidelity's kwarg; default the
    shipped file) and are sha256-checked against their card by :func:`load_evaluator`.
    """

    def __init__(self, name: str, features_list, feature_extractor_weights_path=None, **kwargs) -> None:
        super().__init__(name, features_list)
        ev = load_evaluator(feature_extractor_weights_path, "cpu")
        self.net = copy.deepcopy(ev.net)
        self.weights_sha256 = ev.sha256

    @staticmethod
    def get_provided_features_list():
        return (FEATURE_PENULTIMATE, FEATURE_LOGITS)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"isc": FEATURE_LOGITS, "fid": FEATURE_PENULTIMATE, "kid": FEATURE_PENULTIMATE,
                "prc": FEATURE_PENULTIMATE}[metric]

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 1, 48, 48, dtype=torch.uint8)

    def forward(self, x):
        x = Evaluator.check_images(x, "fer-evaluator input")
        f, l = self.net(to_float(x).contiguous(memory_format=torch.channels_last))
        got = {FEATURE_PENULTIMATE: f.float(), FEATURE_LOGITS: l.float()}
        return tuple(got[name] for name in self.features_list)


def register_with_fidelity() -> None:
    """Register :class:`FERFeatureExtractor` as ``"fer-evaluator"`` with torch-fidelity (idempotent)."""
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    if FEATURE_EXTRACTORS_REGISTRY.get(EXTRACTOR_NAME) is not FERFeatureExtractor:
        FEATURE_EXTRACTORS_REGISTRY.pop(EXTRACTOR_NAME, None)
        register_feature_extractor(EXTRACTOR_NAME, FERFeatureExtractor)


register_with_fidelity()
