"""Conditional cycle-consistent GAN for expressions (CCycleGAN, Tesei 2019, "Generating Realistic Facial
Expressions through Conditional Cycle-Consistent Generative Adversarial Networks", OpenReview HJg6j3-oeB).

Image-to-image, no paired data: G(x, c_target) -> x' keeps the person and changes the expression. G is a
U-Net split into an encoder and a decoder, the one-hot target label joining the code at the bottleneck;
D(x) -> (real/fake logit, class logits). Each step every real image is encoded once and decoded to
every class (``all_targets``; otherwise to one random other class), so a batch of N gives N (K - 1)
translations plus N reconstructions G_dec(G_enc(x), c_source). Losses:

    D:  adversarial(real x, translations) + w_cls_d * class loss
    G:  w_gan * adversarial(translations) + w_cls * class loss of the target label on translations
        + w_rec * L1(G(x, c_source), x)  [reconstruction = the baseline's identity term]
        + w_cyc * L1(G(G(x, c_target), c_source), x)  [cycle, optional]

Class loss ``bce_null`` (the reference): sigmoid cross-entropy against one-hot targets, translations get
the all-zero "null" target in D's loss; ``ce_real`` (StarGAN-style, Choi et al. 2018): softmax
cross-entropy, D trained on real images only, G on its translations.

Configs:
    ``reference``  the facts of docs/MODELS.md: G encoder 4 x [Conv 4x4 s2 (valid) + LeakyReLU
                   0.2 + InstanceNorm] at 64/128/256/512 (48 -> 23 -> 10 -> 4 -> 1), bottleneck
                   concat[code, one-hot c] -> Dense + LeakyReLU -> code size, decoder 3 x [ConvT 4x4 s2 +
                   ReLU + InstanceNorm + skip] at 256/128/64 then ConvT(C, 4x4 s2) + tanh; D 4 x [Conv 4x4
                   s2 + LeakyReLU + InstanceNorm] 64..512 with a real/fake and a class head; weights g_gan 2,
                   g_cl 2, rec 1, no cycle; Adam 2e-4 beta1 0.5, batch 64, [-1, 1] inputs, random hflip.
                   Fixed: an InstanceNorm over a 1 x 1 map outputs its bias whatever the input (it would cut
                   the bottleneck off, and PyTorch refuses it), so layers whose output is 1 x 1 have none.
                   Not in the facts: the adversarial loss (BCE: the facts reserve LSGAN for the paper's
                   baseline) and the budget (20 epochs of the train split, 8,970 steps).
    ``default``    the same U-Net G; D with spectral norm instead of instance norm (Miyato et al. 2018),
                   hinge loss, ``ce_real`` class loss, the cycle term (weight 10, reconstruction 1 =
                   the baseline's identity = 0.1 x cycle), G's target-class loss read from a separate
                   real-face classifier C (``classifier = "separate"``), G EMA for translation, flips.

``classifier = "separate"`` reads G's target-class loss from C, a BatchNorm CNN trained by cross-entropy
on the real batch only and applied to translations in eval mode (as in the ACGAN plugin), instead of
D's class head. With D's head G and D collude: in the cpu suite's width-16 run D's head read the asked-for
target on translations at 0.77 while it read real faces at 0.37, and the evaluator read the translations
at chance (``translate_acc_test`` 0.146). C is never trained on translations, so G cannot teach it a
code; ``c_acc_real`` logs C's accuracy on real faces and ``acc_target_c`` its reading of the targets.
C is training-only: it is not published. The ``default`` weights G's class term 3 (StarGAN's 1 is for
200k steps): at 1, in the cpu suite's width-16 run, G's class loss on C rose from 2.36 to 2.55 over the
first 650 steps and C read the targets at 0.11 (below chance: the translations kept the source
expression under the cycle term's weight 10).

Capabilities: ``translate``, ``conditional``. It cannot generate from noise, so it neither declares
nor implements ``sample`` (no FID/CAS of samples); its progress grids translate real images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import torch
import torch.nn.functional as F
from torch import nn

from exprbench.data import DataSpec

from . import register_model
from .adversarial import AdversarialPlugin
from .base import Batch
from .contracts import Conditional, Translator
from .blocks import d_loss, g_loss, maybe_sn

CLS_LOSSES = ("bce_null", "ce_real")
D_NORMS = ("instance", "sn")


def _down(s: int) -> int:
    return (s - 4) // 2 + 1  # Conv 4x4 s2, no padding


def _out_pad(s_in: int, s_out: int) -> int:
    """output_padding making ConvT 4x4 s2 (no padding) map s_in to s_out (0 or 1)."""
    op = s_out - ((s_in - 1) * 2 + 4)
    if op not in (0, 1):
        raise ValueError(f"U-Net sizes do not invert: {s_in} -> {s_out}")
    return op


OUTPUTS = ("direct", "residual", "attention")


class UNetGenerator(nn.Module):
    """CCycleGAN's U-Net G(x, c): 4 strided convs, label at the bottleneck, 3 ConvT with skips, a last ConvT.

    Input x float N x C x H x W in [-1, 1], c int64 N; output float N x C x H x W in [-1, 1]. Split into
    :meth:`encode` (the input and the feature maps) and :meth:`decode` (those, c) so one encoding serves many
    targets. ``output`` maps the last ConvT's result h to the image: ``direct`` tanh(h) (the paper),
    ``residual`` clamp(x + 2 tanh(h), -1, 1) (G writes a change to its input), ``attention`` GANimation's
    A x + (1 - A) tanh(h_colour) with the mask A = sigmoid(h_mask) (Pumarola et al. 2018, eq. 1: A = 1 keeps
    the input pixel), so flat regions can be left as they are.

    Raises:
        ValueError: images too small for 4 valid 4x4 s2 convs (H, W >= 34), sizes that do not invert, or an
            unknown ``output``.
    """

    def __init__(self, spec: DataSpec, ch: int, output: str = "direct") -> None:
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"model.output={output!r}: expected one of {', '.join(OUTPUTS)}")
        self.k, self.output, self.channels = spec.num_classes, output, spec.channels
        hs, ws = [spec.height], [spec.width]
        for _ in range(4):
            hs.append(_down(hs[-1]))
            ws.append(_down(ws[-1]))
        if min(hs[-1], ws[-1]) < 1:
            raise ValueError(f"U-Net generator needs images of at least 34x34, got {spec.height}x{spec.width}")
        chans = [spec.channels, ch, 2 * ch, 4 * ch, 8 * ch]
        self.down = nn.ModuleList()
        for i in range(4):
            norm = hs[i + 1] * ws[i + 1] > 1
            self.down.append(nn.Sequential(nn.Conv2d(chans[i], chans[i + 1], 4, 2, 0), nn.LeakyReLU(0.2),
                                           *([nn.InstanceNorm2d(chans[i + 1], affine=True)] if norm else [])))
        self.code_shape = (8 * ch, hs[4], ws[4])
        code = 8 * ch * hs[4] * ws[4]
        self.bottleneck = nn.Sequential(nn.Linear(code + self.k, code), nn.LeakyReLU(0.2))
        self.up = nn.ModuleList()
        cin = 8 * ch
        for i, cout in zip((3, 2, 1), (4 * ch, 2 * ch, ch)):  # targets: skip i has size hs[i]
            op = (_out_pad(hs[i + 1], hs[i]), _out_pad(ws[i + 1], ws[i]))
            self.up.append(nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 0, output_padding=op), nn.ReLU(),
                                         nn.InstanceNorm2d(cout, affine=True)))
            cin = 2 * cout
        op = (_out_pad(hs[1], hs[0]), _out_pad(ws[1], ws[0]))
        last = nn.ConvTranspose2d(cin, spec.channels + (output == "attention"), 4, 2, 0, output_padding=op)
        self.out = nn.Sequential(last, nn.Tanh()) if output == "direct" else nn.Sequential(last)  # keys out.0.*

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The input and the encoder's feature maps [x, d1, d2, d3, d4] (d4 is the code)."""
        feats = [x]
        for layer in self.down:
            x = layer(x)
            feats.append(x)
        return feats

    def decode(self, feats: list[torch.Tensor], c: torch.Tensor, with_mask: bool = False):
        """Decode ``feats`` (from :meth:`encode`, batch N) with target labels ``c`` (int64 N): the images, and
        with ``with_mask`` also the attention mask A (float N x 1 x H x W in [0, 1]; None unless ``attention``)."""
        x, d1, d2, d3, d4 = feats
        h = torch.cat([d4.flatten(1), F.one_hot(c, self.k).to(d4.dtype)], dim=1)
        h = self.bottleneck(h).view(-1, *self.code_shape)
        for up, skip in zip(self.up, (d3, d2, d1)):
            h = torch.cat([up(h), skip], dim=1)
        h, mask = self.out(h), None
        if self.output == "residual":
            h = torch.clamp(x + 2 * torch.tanh(h), -1, 1)
        elif self.output == "attention":
            mask = torch.sigmoid(h[:, self.channels:])
            h = mask * x + (1 - mask) * torch.tanh(h[:, : self.channels])
        return (h, mask) if with_mask else h

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x), c)


class Discriminator(nn.Module):
    """CCycleGAN D: 4 x [Conv 4x4 s2 + LeakyReLU 0.2 + norm] at ch..8ch, then a real/fake and a class head.

    ``norm``: ``instance`` (reference; none where the map is 1 x 1) or ``sn`` (spectral norm on every
    layer, no instance norm). Input float N x C x H x W; returns (logit float N, class logits float N x K).
    """

    def __init__(self, spec: DataSpec, ch: int, norm: str) -> None:
        super().__init__()
        sn = norm == "sn"
        h, w, cin, layers = spec.height, spec.width, spec.channels, []
        for cout in (ch, 2 * ch, 4 * ch, 8 * ch):
            h, w = _down(h), _down(w)
            layers += [maybe_sn(nn.Conv2d(cin, cout, 4, 2, 0), sn), nn.LeakyReLU(0.2)]
            if not sn and h * w > 1:
                layers.append(nn.InstanceNorm2d(cout, affine=True))
            cin = cout
        self.net = nn.Sequential(*layers, nn.Flatten())
        self.adv = maybe_sn(nn.Linear(cin * h * w, 1), sn)
        self.cls = nn.Linear(cin * h * w, spec.num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.net(x)
        return self.adv(h).squeeze(1), self.cls(h)


@dataclass
class CCycleGANConfig:
    """Hyper-parameters of CCycleGAN.

    Attributes:
        ch: base width of G and D (the reference's gf = df = 64).
        loss: adversarial loss, ``bce``, ``hinge`` or ``lsgan``.
        d_norm: ``instance`` or ``sn`` (see :class:`Discriminator`).
        cls_loss: ``bce_null`` or ``ce_real`` (module docstring).
        w_gan, w_cls: weights of G's adversarial and target-class losses.
        w_cls_d: weight of D's class loss.
        w_rec: weight of the reconstruction L1 |G(x, c_source) - x|.
        w_cyc: weight of the cycle L1 |G(G(x, c_t), c_source) - x| (0 = off, saves one G pass).
        all_targets: translate every image to every other class each step (else one random other class).
        classifier: where G's class loss is read: ``shared`` (D's class head, the paper) or ``separate``
            (a BatchNorm classifier C of width ``cls_ch`` trained on real faces only, Adam at ``lr_c``).
        c_reads: with ``separate`` and ``all_targets``, how many of each image's K - 1 translations (drawn
            at random each step) C reads for G's class loss: C on all 6 costs more than G and D together.
        pool_size: unused (kept so that configs and run directories of earlier versions load).
        lr_g, lr_d: Adam learning rates; betas: Adam betas.
        diffaugment: DiffAugment policy on every image D and C see (see :mod:`.diffaugment`); ``""`` is off.
        output: how G's last layer makes the image: ``direct`` (the paper), ``residual`` or ``attention`` (see
            :class:`UNetGenerator`).
        w_att: with ``attention``, weight of GANimation's mask penalty mean(A) on translations (it keeps A from
            saturating at 1, where G would return its input unchanged; mean-normalised, no TV term).
    """

    ch: int = field(default=64, metadata={'min': 1})
    loss: str = "hinge"
    d_norm: str = "sn"
    cls_loss: str = "ce_real"
    w_gan: float = field(default=1.0, metadata={'min': 0})
    w_cls: float = field(default=1.0, metadata={'min': 0})
    w_cls_d: float = field(default=1.0, metadata={'min': 0})
    w_rec: float = field(default=1.0, metadata={'min': 0})
    w_cyc: float = field(default=10.0, metadata={'min': 0})
    all_targets: bool = True
    classifier: str = field(default="shared", metadata={'choices': ['shared', 'separate']})
    cls_ch: int = field(default=24, metadata={'min': 1})
    lr_c: float = field(default=1e-3, metadata={'gt': 0})
    c_reads: int = field(default=1, metadata={'min': 1})
    pool_size: int = field(default=16, metadata={'min': 1})
    lr_g: float = field(default=2e-4, metadata={'gt': 0})
    lr_d: float = field(default=2e-4, metadata={'gt': 0})
    betas: tuple[float, float] = (0.5, 0.999)
    diffaugment: str = ""
    output: str = field(default="direct", metadata={'choices': list(OUTPUTS)})
    w_att: float = field(default=0.1, metadata={'min': 0})


@register_model("ccyclegan")
class CCycleGAN(AdversarialPlugin, Translator, Conditional):
    """CCycleGAN plugin: G(x, c_target) -> x', D(x) -> (logit, class logits); one D then one G update per step."""

    Config = CCycleGANConfig
    training_only_nets = frozenset({"D", "C"})
    named_configs = {
        # w_rec 10: at the default 1 a seed can settle into the photographic negative, which the cycle
        # term cannot see (results/cpu/trials/ccyclegan-wrec-*: seed 1 inverted at 1, stayed positive at 5 and 10).
        "default": {"train.ema": True, "train.batch_size": 64, "train.steps": 20000,
                    "model.classifier": "separate", "model.w_cls": 3.0, "model.w_rec": 10.0},
        "reference": {
            "model.ch": 64, "model.loss": "bce", "model.d_norm": "instance", "model.cls_loss": "bce_null",
            "model.w_gan": 2.0, "model.w_cls": 2.0, "model.w_cls_d": 1.0, "model.w_rec": 1.0, "model.w_cyc": 0.0,
            "model.all_targets": True, "model.lr_g": 2e-4, "model.lr_d": 2e-4, "model.betas": [0.5, 0.999],
            "train.batch_size": 64, "train.steps": 8970, "data.augment.hflip": True,
        },
    }

    def __init__(self, cfg: CCycleGANConfig, spec: DataSpec, device="cpu", channels_last: bool = False) -> None:
        super().__init__(cfg, spec, device, channels_last)
        if cfg.cls_loss not in CLS_LOSSES:
            raise ValueError(f"model.cls_loss={cfg.cls_loss!r}: expected one of {', '.join(CLS_LOSSES)}")
        if cfg.d_norm not in D_NORMS:
            raise ValueError(f"model.d_norm={cfg.d_norm!r}: expected one of {', '.join(D_NORMS)}")
        if spec.num_classes < 2:
            raise ValueError("CCycleGAN needs at least 2 classes")
        self.nets["G"] = UNetGenerator(spec, cfg.ch, cfg.output)
        self.nets["D"] = Discriminator(spec, cfg.ch, cfg.d_norm)
        self.place()
        self.adam("G", cfg.lr_g, cfg.betas)
        self.adam("D", cfg.lr_d, cfg.betas)
        if cfg.classifier == "separate":
            self.init_real_classifier(cfg.cls_ch, cfg.lr_c)

    # -- training ----------------------------------------------------------------------------
    def _targets(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(index of the source image, target label) of every translation (target != source)."""
        n, k = c.shape[0], self.spec.num_classes
        if self.cfg.all_targets:
            src = torch.arange(n, device=c.device).repeat_interleave(k - 1)
            offs = torch.arange(1, k, device=c.device).repeat(n)
        else:
            src = torch.arange(n, device=c.device)
            offs = torch.randint(1, k, (n,), device=c.device)
        return src, (c[src] + offs) % k

    def _cls_d(self, real_cls: torch.Tensor, c: torch.Tensor, fake_cls: torch.Tensor) -> torch.Tensor:
        if self.cfg.cls_loss == "ce_real":
            return F.cross_entropy(real_cls.float(), c)
        k = self.spec.num_classes
        return (F.binary_cross_entropy_with_logits(real_cls.float(), F.one_hot(c, k).float())
                + F.binary_cross_entropy_with_logits(fake_cls.float(), torch.zeros_like(fake_cls, dtype=torch.float)))

    def _cls_g(self, fake_cls: torch.Tensor, c_t: torch.Tensor) -> torch.Tensor:
        if self.cfg.cls_loss == "ce_real":
            return F.cross_entropy(fake_cls.float(), c_t)
        return F.binary_cross_entropy_with_logits(fake_cls.float(), F.one_hot(c_t, self.spec.num_classes).float())

    def pre_step(self, batch: Batch) -> dict[str, float]:
        """The ``separate`` classifier C's cross-entropy step on the real batch (none for ``shared``)."""
        return self.real_classifier_step(batch)

    def _c_reads(self, n: int, device) -> torch.Tensor:
        """Indices (long) of the translations C reads: ``c_reads`` random targets per source image."""
        per = self.spec.num_classes - 1 if self.cfg.all_targets else 1
        r = min(self.cfg.c_reads, per)
        if r == per:
            return torch.arange(n * per, device=device)
        offs = torch.rand(n, per, device=device).argsort(1)[:, :r]
        return (torch.arange(n, device=device)[:, None] * per + offs).reshape(-1)

    def d_inputs(self, batch: Batch):
        G = self.nets["G"]
        src, c_t = self._targets(batch.c)
        fake = G.decode([f[src] for f in G.encode(batch.x)], c_t)
        return (batch.x,), (fake,), {"src": src, "c_t": c_t}

    def d_objective(self, batch: Batch, real_out, fake_out, ctx):
        (real_adv, real_cls), (fake_adv, fake_cls) = real_out, fake_out
        loss_cls_d = self._cls_d(real_cls, batch.c, fake_cls)
        loss_d = d_loss(self.cfg.loss, real_adv, fake_adv) + self.cfg.w_cls_d * loss_cls_d
        return loss_d, {"loss_cls_d": loss_cls_d.item(),
                        "acc_real": (real_cls.argmax(1) == batch.c).float().mean().item(),
                        "d_real": real_adv.mean().item(), "d_fake": fake_adv.mean().item()}

    def g_objective(self, batch: Batch, ctx):
        """Translations to ``ctx``'s targets and reconstructions in one decoder pass, then the weighted
        adversarial, target-class, reconstruction and (w_cyc > 0) cycle terms."""
        G, cfg, x, c = self.nets["G"], self.cfg, batch.x, batch.c
        src, c_t = ctx["src"], ctx["c_t"]
        feats = G.encode(x)
        n = x.shape[0]
        idx = torch.cat([src, torch.arange(n, device=x.device)])
        out, mask = G.decode([f[idx] for f in feats], torch.cat([c_t, c]), with_mask=True)
        fake, rec = out[: src.shape[0]], out[src.shape[0]:]
        adv, cls = self.nets["D"](fake)
        loss_adv = g_loss(cfg.loss, adv)
        if "C" in self.nets:  # the separate real-face classifier, in eval mode, on c_reads per image
            pick = self._c_reads(n, fake.device)
            cls_c, c_c = self.real_classifier_logits(fake[pick]), c_t[pick]
            loss_cls = F.cross_entropy(cls_c, c_c)
        else:
            loss_cls = self._cls_g(cls, c_t)
        loss_rec = (rec - x).abs().mean()
        loss_g = cfg.w_gan * loss_adv + cfg.w_cls * loss_cls + cfg.w_rec * loss_rec
        logs = {"loss_cls_g": loss_cls.item(), "loss_rec": loss_rec.item()}
        if mask is not None:  # GANimation's penalty on the translations' masks
            loss_att = mask[: src.shape[0]].mean()
            loss_g, logs["mask_mean"] = loss_g + cfg.w_att * loss_att, loss_att.item()
        if cfg.w_cyc > 0:
            loss_cyc = (G(fake, c[src]) - x[src]).abs().mean()
            loss_g = loss_g + cfg.w_cyc * loss_cyc
            logs["loss_cyc"] = loss_cyc.item()
        logs["acc_target_d"] = (cls.argmax(1) == c_t).float().mean().item()
        if "C" in self.nets:
            logs["acc_target_c"] = (cls_c.argmax(1) == c_c).float().mean().item()
        return loss_g, logs

    def bn_calibration_inputs(self, n: int, generator: torch.Generator) -> None:
        """None: G takes images, not latents (its EMA copy averages the BatchNorm buffers)."""
        return None

    # -- capabilities ------------------------------------------------------------------------
    def translate(self, x: torch.Tensor, c_target: torch.Tensor, c_source: torch.Tensor | None = None) -> torch.Tensor:
        """G(x, c_target) with the EMA G when enabled: float32 N x C x H x W in [-1, 1] (see base).

        ``c_source`` is not needed by G (it is validated when given).
        """
        x, c_target = self.check_images(x, c_target)
        if c_source is not None:
            self.check_images(x, c_source)
        return self.generate(x, c_target)
