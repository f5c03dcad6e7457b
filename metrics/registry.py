"""The metrics registry: protocols whose names carry what defines them (StyleGAN3-style).

A :class:`Protocol` fixes the metric family, the sample count, the generation seed, the feature
extractor, the reference data and the model capabilities it needs. Names follow StyleGAN3's
``fid50k_full``: ``fid10k_train`` is FID of 10,000 generated images against the full FER2013 train
split. A name with another count is resolved on the fly (``fid1k_train``, ``kid2500_train``), and
overriding the count (``--n-samples``) renames the protocol (``ifid_train`` -> ``ifid2k_train``,
``acc_gen`` -> ``acc_gen700``, ``cas`` -> ``cas7k``, ``recon_test`` -> ``recon1k_test``), so numbers of different protocols never share a name.

Third-party packages can register protocols through the ``exprbench.metrics`` entry-point group.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from exprbench.errors import RegistryError
from exprbench.registry import Registry

from .names import EXTRACTOR_NAME, INCEPTION_NAME

PROTOCOL_VERSION = "exprbench-metrics/1"
PROTOCOLS: Registry = Registry("metric protocol", entry_point_group="exprbench.metrics")


def format_count(n: int) -> str:
    """10000 -> ``10k``, 1000 -> ``1k``, 2500 -> ``2500``, 700 -> ``700``."""
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def parse_count(text: str) -> int:
    """``10k`` -> 10000, ``2500`` -> 2500."""
    return int(text[:-1]) * 1000 if text.endswith("k") else int(text)


@dataclass(frozen=True)
class Protocol:
    """One evaluation protocol.

    Attributes:
        name: the protocol name as recorded in eval.json.
        family: ``fid``, ``kid``, ``pr``, ``dc`` (density/coverage), ``mem`` (memorisation), ``ifid``, ``acc_gen``, ``cas``, or a capability family:
            ``enc_acc``, ``probe``, ``recon_l1``, ``translate_acc``, ``translate_fid``, ``edit``, ``bpd``.
        needs: model capabilities required (``sample``, ``conditional``, ``encode``, ``translate``);
            skipped with a reason otherwise.
        n_samples: generated images in total (per-class protocols use ``n_samples // K`` per class);
            for the capability protocols, the real test images fed to the model (a fixed random
            subset of ``min(n, len(test))`` PrivateTest images drawn with ``seed``).
        seed: seed of the generation (latents and labels), fixed per protocol; capability protocols
            share one seed so they all see the same test images (and share translations).
        extractor: ``fer-evaluator`` or ``inception-v3-compat`` (CAS: its own fresh classifier;
            ``model-encoder``: the number comes from the model's own encoder).
        reference: the real data compared with (``train`` split; CAS, acc and capability protocols
            use ``test``).
        default: part of the default set of ``exprbench evaluate``.
        summary: one line for ``exprbench metrics``.
        name_pattern: the name with ``{n}`` for the count (used to rename on a count override).
    """

    name: str
    family: str
    needs: frozenset
    n_samples: int
    seed: int
    extractor: str = EXTRACTOR_NAME
    reference: str = "train"
    default: bool = True
    summary: str = ""
    name_pattern: str = ""

    def with_n(self, n: int) -> "Protocol":
        """The same protocol with ``n`` samples, renamed so the name carries the count."""
        if n < 1:
            raise RegistryError(f"{self.name}: the sample count must be positive, got {n}")
        if n == self.n_samples:
            return self
        name = self.name_pattern.format(n=format_count(n))
        return replace(self, name=name, n_samples=int(n))


def _register(p: Protocol) -> Protocol:
    PROTOCOLS.register(p.name)(p)
    return p


S, SC = frozenset({"sample"}), frozenset({"sample", "conditional"})
for _p in (
    Protocol("fid10k_train", "fid", S, 10000, 0, summary="FID (fer-evaluator features), 10k generated vs the full train split",
             name_pattern="fid{n}_train"),
    Protocol("kid10k_train", "kid", S, 10000, 0, summary="KID mean/std over 100 subsets (fer-evaluator), 10k generated vs train",
             name_pattern="kid{n}_train"),
    Protocol("pr10k_train", "pr", S, 10000, 0, summary="precision/recall (k=3, fer-evaluator), 10k generated vs 10k train; value = F-score",
             name_pattern="pr{n}_train"),
    Protocol("dc10k_train", "dc", S, 10000, 0,
             summary="density/coverage (Naeem et al. 2020, k=5 balls on 10k train features, fer-evaluator); "
                     "value = coverage, density in details",
             name_pattern="dc{n}_train"),
    Protocol("mem10k_train", "mem", S, 10000, 0,
             summary="memorisation: fraction of generated closer to their nearest train face than the 5th "
                     "percentile of test-to-train distances (fer-evaluator); real data ~ 0.05",
             name_pattern="mem{n}_train"),
    Protocol("ifid_train", "ifid", SC, 10000, 1, summary="intra-class FID: per emotion, n/K generated vs that emotion's train images; mean",
             name_pattern="ifid{n}_train"),
    Protocol("acc_gen", "acc_gen", SC, 3500, 2, reference="test",
             summary="label accuracy (GAN-test): n/K per emotion classified by the evaluator (hflip TTA)",
             name_pattern="acc_gen{n}"),
    Protocol("cas", "cas", SC, 7000, 3, extractor="cas-classifier", reference="test",
             summary="Classification Accuracy Score: fresh classifier trained on n generated, tested on real test",
             name_pattern="cas{n}"),
    Protocol("fid10k_train_inception", "fid", S, 10000, 0, extractor=INCEPTION_NAME,
             summary="FID with Inception-V3 (torch-fidelity inception-v3-compat) when its weights are present",
             name_pattern="fid{n}_train_inception"),
    Protocol("kid10k_train_inception", "kid", S, 10000, 0, extractor=INCEPTION_NAME, default=False,
             summary="KID with Inception-V3 when its weights are present", name_pattern="kid{n}_train_inception"),
):
    _register(_p)

# Capability protocols (issue 5): real test images through the model's encoder / translator.
# Seed 4 is shared: every capability protocol of one count uses the same test subset.
CAPABILITY_SEED = 4
PROBE_TRAIN_PER_CLASS = 300  # linear probe: fixed class-balanced train subset, <= 300 per class (seed 4)
E, EC, T = frozenset({"encode"}), frozenset({"encode", "conditional"}), frozenset({"translate"})
for _p in (
    Protocol("enc_acc_test", "enc_acc", EC, 700, CAPABILITY_SEED, extractor="model-encoder", reference="test",
             summary="encoder label accuracy: argmax E_c(x) on n real test images (floor: the evaluator's accuracy)",
             name_pattern="enc_acc{n}_test"),
    Protocol("probe_test", "probe", E, 700, CAPABILITY_SEED, extractor="model-encoder", reference="test",
             summary=f"linear probe: logistic regression on E(x) of <= {PROBE_TRAIN_PER_CLASS}/class train images, "
                     "accuracy on n test images",
             name_pattern="probe{n}_test"),
    Protocol("recon_test", "recon_l1", E, 700, CAPABILITY_SEED, reference="test",
             summary="reconstruction: mean L1 of x vs G(E(x)) on n test images ([0, 1] scale, lower is better); "
                     "SSIM, evaluator label agreement",
             name_pattern="recon{n}_test"),
    Protocol("translate_acc_test", "translate_acc", T, 700, CAPABILITY_SEED, reference="test",
             summary="translation target accuracy: n test faces to every other emotion, read by the evaluator; "
                     "pair matrix, identity L1/SSIM/feature distance",
             name_pattern="translate_acc{n}_test"),
    Protocol("translate_fid_test", "translate_fid", T, 700, CAPABILITY_SEED,
             summary="translation FID: per target emotion, translations of n test faces vs that emotion's train "
                     "images (fer-evaluator); mean over targets",
             name_pattern="translate_fid{n}_test"),
):
    _register(_p)


# Editing and likelihood protocols (issue 6).
EDIT_SEED, BPD_SEED = 5, 6
EDIT_FIT_PER_CLASS = 500  # attribute vectors: mean latent of <= 500 train images per class (seed 5)
BPD_IW_K = 64  # importance samples of the IWAE bound (models with iw_bits_per_dim: the VAE)
for _p in (
    Protocol("edit_success", "edit", frozenset({"edit"}), 350, EDIT_SEED, reference="generated",
             summary="editing: n sampled latents edited toward every emotion over the model's strength sweep; "
                     "evaluator success at the reference strength (mean over emotions), identity drift, entanglement",
             name_pattern="edit_success{n}"),
    Protocol("bpd_test", "bpd", frozenset({"likelihood"}), 3589, BPD_SEED, extractor="model-likelihood",
             reference="test",
             summary=f"bits/dim of n real test images (exact for flows, ELBO bound for VAEs, plus the IWAE bound "
                     f"with K={BPD_IW_K}); lower is better",
             name_pattern="bpd{n}_test"),
):
    _register(_p)


def default_protocols() -> list[str]:
    """Names of the protocols ``exprbench evaluate`` runs by default, in registry order of definition."""
    return [n for n in _ORDER if n in PROTOCOLS and PROTOCOLS.get(n).default] + [
        n for n in PROTOCOLS.names() if n not in _ORDER and PROTOCOLS.get(n).default]


_ORDER = ["fid10k_train", "kid10k_train", "pr10k_train", "dc10k_train", "mem10k_train", "ifid_train", "acc_gen", "cas", "fid10k_train_inception",
          "kid10k_train_inception", "enc_acc_test", "probe_test", "recon_test", "translate_acc_test",
          "translate_fid_test", "edit_success", "bpd_test"]


def resolve_protocol(name: str) -> Protocol:
    """The protocol of a name: a registered one, or a registered pattern with another count.

    ``fid1k_train`` resolves to ``fid10k_train`` with 1,000 samples.

    Raises:
        RegistryError: unknown name (lists the known ones).
    """
    if name in PROTOCOLS:
        return PROTOCOLS.get(name)
    for reg in PROTOCOLS.names():
        p = PROTOCOLS.get(reg)
        if not p.name_pattern:
            continue
        rx = "^" + re.escape(p.name_pattern).replace(re.escape("{n}"), r"(\d+k?)") + "$"
        m = re.match(rx, name)
        if m:
            n = parse_count(m.group(1))
            if n < 1:
                break
            return replace(p, name=name, n_samples=n) if n != p.n_samples else p
    known = ", ".join(PROTOCOLS.names())
    raise RegistryError(f"unknown metric protocol {name!r} (known: {known}; counts may vary, e.g. fid1k_train)")
