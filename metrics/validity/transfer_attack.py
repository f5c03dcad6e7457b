"""Validity of the scoring evaluator against classifier-guided generators: a transfer-attack test.

A generator trained against a real-face classifier C can learn to write what C reads. If the scoring
evaluator reads the same marks, ``acc_gen`` rewards them. The test: targeted PGD (Madry et al. 2018,
L-infinity ball, ``steps`` signed-gradient steps of ``eps / 4``, random start) on real test faces against C,
toward a random other class; then the share of the perturbed faces that the scorer reads as the target
(hflip TTA, as ``acc_gen``). Chance is 1/K. A scorer that does not share C's pixel-level cues stays near
chance; the criterion: a targeted success below :data:`CRITERION` at 8/255 (the issue "Class evidence that
survives a blur").
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from exprbench.data import to_float, to_uint8

CRITERION = 0.25  # the scorer's targeted success at 8/255 must stay below it
EPSILONS = (4 / 255, 8 / 255)


def targeted_pgd(net: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, eps: float, steps: int = 20,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Targeted L-infinity PGD against ``net`` (eval mode; ``net(x)[1]`` are logits).

    Args:
        net: a classifier returning ``(features, logits)``; x: float32 N x 1 x H x W in [-1, 1];
        target: int64 N classes to push toward; eps: radius on the [0, 1] pixel scale (e.g. 8/255);
        steps: signed-gradient steps of eps / 4; generator: CPU generator of the random start.

    Returns:
        float32 N x 1 x H x W in [-1, 1], within eps (on the [0, 1] scale) of ``x``.
    """
    e = 2.0 * eps  # the [-1, 1] scale is twice the [0, 1] one
    start = (torch.rand(x.shape, generator=generator) * 2 - 1).to(x.device) * e
    adv = (x + start).clamp(-1, 1)
    for _ in range(steps):
        adv.requires_grad_(True)
        loss = F.cross_entropy(net(adv)[1].float(), target)
        (grad,) = torch.autograd.grad(loss, adv)
        with torch.no_grad():
            adv = adv - (e / 4) * grad.sign()  # toward the target: down the target's cross entropy
            adv = (x + (adv - x).clamp(-e, e)).clamp(-1, 1)
    return adv.detach()


def transfer_attack(source, scorers: dict, images: torch.Tensor, labels: torch.Tensor, k: int,
                    epsilons: Sequence[float] = EPSILONS, steps: int = 20, seed: int = 0, batch_size: int = 256) -> dict:
    """Targeted PGD against ``source`` on real images, read by each scorer.

    Args:
        source: a loaded :class:`~.evaluator.Evaluator` (its ``net``) standing for the training classifier C;
        scorers: name -> loaded Evaluator; images: uint8 N x 1 x 48 x 48; labels: int64 N; k: classes;
        epsilons: radii on the [0, 1] scale; steps: PGD steps; seed: targets and random starts.

    Returns:
        ``{"targets_seed": seed, "n": N, "chance": 1/k, "criterion": ..., "eps": {"4/255": {"source_success",
        "<scorer>": success, ...}, ...}}`` (success = share of perturbed images read as their target).
    """
    g = torch.Generator().manual_seed(seed)
    target = (labels + torch.randint(1, k, labels.shape, generator=g)) % k
    out = {"targets_seed": seed, "n": int(images.shape[0]), "chance": 1.0 / k, "criterion": CRITERION,
           "steps": steps, "eps": {}}
    net = source.net
    for eps in epsilons:
        advs = []
        for xb, tb in zip(images.split(batch_size), target.split(batch_size)):
            advs.append(to_uint8(targeted_pgd(net, to_float(xb.to(source.device)), tb.to(source.device), eps, steps, g)).cpu())
        adv = torch.cat(advs)
        row = {"source_success": float((source.predict(adv, tta=True) == target).float().mean())}
        for name, sc in scorers.items():
            row[name] = float((sc.predict(adv, tta=True) == target).float().mean())
        out["eps"][f"{round(eps * 255)}/255"] = row
    return out


#: the heading of the transfer-attack section of the validity study's criteria.md
SECTION = "## The scoring evaluator against classifier-guided marks (transfer attack)"


def attack_table(res: dict) -> list[str]:
    """Markdown lines of a :func:`transfer_attack` result (with its ``scorers`` and ``source`` entries): one row per
    scorer with its pass/fail against :data:`CRITERION`, the attacked source's own success, and a note line."""
    lines = ["| scorer | PrivateTest accuracy | targeted success 4/255 | targeted success 8/255 | criterion (< "
             f"{res['criterion']} at 8/255) |", "|---|---|---|---|---|"]
    for name, info in res["scorers"].items():
        s4, s8 = res["eps"]["4/255"][name], res["eps"]["8/255"][name]
        lines.append(f"| {name} | {info['test_accuracy']:.4f} | {s4:.3f} | {s8:.3f} | "
                     f"{'pass' if s8 < res['criterion'] else 'FAIL'} |")
    lines.append(f"| (source: {res['source']['weights']}) |  | {res['eps']['4/255']['source_success']:.3f} | "
                 f"{res['eps']['8/255']['source_success']:.3f} |  |")
    return lines + ["", f"{res['n']} real PrivateTest faces, targets a random other emotion (seed {res['targets_seed']}), "
                    f"{res['steps']} PGD steps of eps/4, chance {res['chance']:.3f}."]


def criteria_section(res: dict) -> list[str]:
    """The transfer-attack section of criteria.md: :data:`SECTION`, a sentence on what passes, the table."""
    return [SECTION, "", "Targeted PGD on real faces against the training classifier C, then read by each scorer: a "
            "generator that learns what C reads should not thereby fool the scorer.", "", *attack_table(res)]


def with_section(markdown: str, res: dict) -> str:
    """``markdown`` (a criteria.md) with its transfer-attack section replaced by, or appended as, the one of ``res``."""
    head = markdown.split(SECTION)[0].rstrip("\n")
    return head + "\n\n" + "\n".join(criteria_section(res)) + "\n"
