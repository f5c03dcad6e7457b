"""The FER2013 evaluator networks and their card: :class:`FERNet` (a compact VGG-style CNN, Simonyan &
Zisserman 2015, with batch norm, Ioffe & Szegedy 2015), :class:`FERResVGG` (its stages made residual, He et
al. 2016), :class:`NetConfig` (``arch`` picks one: :func:`build_net`), and the weights + JSON card files.

``vgg``: four stages of two 3x3 conv-BN-ReLU layers and 2x2 max pooling (48 -> 24 -> 12 -> 6 -> 3).
``resvgg``: a 3x3 conv-BN-ReLU stem, then four stages of two 3x3 convs with a residual shortcut and 2x2 max
pooling (24, 12, 6, 3). (A ResNet with strided basic blocks and no pooling learnt markedly slower on FER2013
in a 3-epoch comparison: val 0.46 vs 0.51 for the VGG stages.) Both end in global average pooling, a fully connected ReLU layer (the
*penultimate features*, ``feat_dim`` wide, used for FID / KID / precision-recall) and a linear classifier
(the *logits*); both expose ``stages(x)``, the four stage outputs the realism space pools.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from exprbench.data import FER7
from exprbench.core.errors import UserError
from exprbench.core.io import file_sha256, write_json

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"  # metrics/weights
DEFAULT_WEIGHTS = WEIGHTS_DIR / "fer_evaluator.pt"
#: a second FER classifier (narrower net, other seed) for models that fit on class scores (InterFaceGAN's
#: boundaries), so that the evaluator that scores acc_gen / edit_success never also trains a model
AUX_WEIGHTS = WEIGHTS_DIR / "fer_aux_classifier.pt"
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
        arch: ``vgg`` (:class:`FERNet`) or ``resvgg`` (:class:`FERResVGG`).
    """

    width: int = 32
    feat_dim: int = 256
    dropout: float = 0.4
    class_names: tuple[str, ...] = FER7
    arch: str = "vgg"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["class_names"] = list(self.class_names)
        if self.arch == "vgg":  # cards written before resvgg keep their bytes
            d.pop("arch")
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "NetConfig":
        """Read a card's ``net`` entry (no ``arch``: ``vgg``, the cards written before resvgg).

        Raises:
            ValueError: an unknown ``arch``.
        """
        arch = str(d.get("arch", "vgg"))
        if arch not in ARCHS:
            raise ValueError(f"unknown evaluator arch {arch!r} (known: {', '.join(ARCHS)})")
        return cls(int(d["width"]), int(d["feat_dim"]), float(d["dropout"]), tuple(d["class_names"]), arch)


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def _add_head(net: nn.Module, cin: int, cfg: NetConfig) -> None:
    """The family's head on ``net``: ``head`` (GAP'd ``cin`` channels -> dropout -> FC-BN-ReLU, the penultimate
    features), ``drop`` and ``classifier`` (linear logits); then He init of every conv (fan out)."""
    net.head = nn.Sequential(nn.Flatten(), nn.Dropout(cfg.dropout), nn.Linear(cin, cfg.feat_dim),
                             nn.BatchNorm1d(cfg.feat_dim), nn.ReLU(inplace=True))
    net.drop = nn.Dropout(cfg.dropout)
    net.classifier = nn.Linear(cfg.feat_dim, len(cfg.class_names))
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


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
        _add_head(self, cin, cfg)

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of each stage (after its max pooling): float32 N x C_k x S_k x S_k, S_k = 24, 12, 6, 3."""
        out, h = [], x
        for layer in self.body:
            h = layer(h)
            if isinstance(layer, nn.MaxPool2d):
                out.append(h)
        return out

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        h = F.adaptive_avg_pool2d(h, 1)
        feats = self.head(h)
        return feats, self.classifier(self.drop(feats))


class _ResStage(nn.Module):
    """``maxpool(relu(bn(conv(relu(bn(conv(x))))) + shortcut(x)))``: a VGG stage made residual (He et al. 2016),
    the shortcut a 1x1 conv-BN when the width changes."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = nn.Identity() if cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.max_pool2d(F.relu(self.bn2(self.conv2(h)) + self.short(x), inplace=True), 2)


class FERResVGG(nn.Module):
    """VGG stages made residual (He et al. 2016) for 1 x 48 x 48 faces: a 3x3 conv-BN-ReLU stem, then four
    :class:`_ResStage` at width x (1, 2, 4, 8), each at full size then 2x2 max pooling (24, 12, 6, 3); GAP,
    FC-BN-ReLU (``feat_dim``), linear logits. ``forward(x)`` takes float32 N x 1 x 48 x 48 in [-1, 1] and
    returns ``(features, logits)`` as :class:`FERNet` does.
    """

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.stem = nn.Sequential(*_conv_bn(1, w))
        chans = [w, w, 2 * w, 4 * w, 8 * w]
        self.body = nn.ModuleList([_ResStage(a, b) for a, b in zip(chans[:-1], chans[1:])])
        _add_head(self, 8 * w, cfg)

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of each stage (after its max pooling): float32 N x C_k x S_k x S_k, S_k = 24, 12, 6, 3."""
        out, h = [], self.stem(x)
        for stage in self.body:
            h = stage(h)
            out.append(h)
        return out

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.adaptive_avg_pool2d(self.stages(x)[-1], 1)
        feats = self.head(h)
        return feats, self.classifier(self.drop(feats))


ARCHS = {"vgg": FERNet, "resvgg": FERResVGG}


def build_net(cfg: NetConfig) -> nn.Module:
    """A fresh evaluator-family network of ``cfg.arch`` (:data:`ARCHS`).

    Raises:
        ValueError: an unknown ``cfg.arch``.
    """
    if cfg.arch not in ARCHS:
        raise ValueError(f"unknown evaluator arch {cfg.arch!r} (known: {', '.join(ARCHS)})")
    return ARCHS[cfg.arch](cfg)


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

    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    atomic_torch_save(state, Path(weights))
    card = {**card, "card_version": CARD_VERSION, "net": net.cfg.to_dict(),
            "weights_file": Path(weights).name, "sha256": file_sha256(Path(weights)),
            "size_bytes": Path(weights).stat().st_size}
    write_json(card_path(Path(weights)), card)
    return card

