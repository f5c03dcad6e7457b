"""Pass criteria of the metric validity study (:mod:`.validity`), on series of measured values.

* **monotone** (:func:`monotone`): along a series of increasing strength, every step worsens the value in
  the protocol's declared direction, up to a tolerance of :data:`CI_TOLERANCE` times the larger bootstrap
  ci95 half-width of the step's two values (0 without intervals), and the most severe value is worse
  than strength 0 by more than that tolerance (a flat response fails);
* **ranked** (:func:`ranked`): training checkpoints, Spearman's rank correlation of step with the value
  oriented so that better is higher, at least :data:`RANK_MIN`;
* **dynamic range** (:func:`dynamic_range`): the value of an untrained-looking model at least
  :data:`DYNAMIC_RANGE` times the value of a model that draws faces (distances: FID, KID, intra-class FID).

Which criterion applies to which protocol is read from its family (:data:`DETECTORS`, :data:`NOT_QUALITY`,
:data:`DISTANCE_FAMILIES`), so a protocol registered later (another feature space's ``fid10k_train_ssl``)
is judged like its family. :func:`judge` turns a study's records into the criteria and verdict rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from exprbench.metrics.validity.degrade import DEGRADATIONS
from exprbench.metrics.protocols.names import CAS_NAME

CI_TOLERANCE = 0.25
RANK_MIN = 0.8
DYNAMIC_RANGE = 3.0
CAS_CONDITIONS = ("drop_emotions", "collapse", "progress", "pair")  # the conditions CAS is scored under
PASS, FAIL, NA = "pass", "fail", "n.a."
# condition -> {family: detail key holding the statistic (None: the value), its direction (None: the protocol's)}
DETECTORS: dict[str, dict[str, tuple[str | None, str | None]]] = {
    "drop_emotions": {"pr": ("recall", "higher"), "dc": (None, None), "ifid": (None, None), "acc_gen": (None, None),
                      "cas": (None, None)},
    "collapse": {"pr": ("recall", "higher"), "dc": (None, None), "ifid": (None, None), "cas": (None, None)},
    "memorisation": {"mem": (None, None)},
}
# families whose value does not measure image quality: degradations and training progress are n.a.
NOT_QUALITY = {"mem": "memorisation counts copies of train faces, not image quality"}
DISTANCE_FAMILIES = ("fid", "kid", "ifid")


@dataclass(frozen=True)
class Verdict:
    """One criterion of one protocol: ``status`` (pass, fail, n.a.) and the measured statistic (or why n.a.)."""

    status: str
    statistic: str

    def cell(self) -> str:
        """``pass (0.02 -> 3.4)`` for a table."""
        return f"{self.status} ({self.statistic})" if self.statistic else self.status


def fmt(v: float | None) -> str:
    """Three significant digits (``-`` for None)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.3g}"


def monotone(values: Sequence[float | None], direction: str, halfwidths: Sequence[float | None] | None = None,
             tolerance: float = CI_TOLERANCE, strengths: Sequence | None = None) -> Verdict:
    """Whether ``values`` (strength 0 first) worsen at every step in ``direction`` (``lower``/``higher`` is better).

    Args:
        values: the value at each strength, increasing severity; a None (not computed) gives n.a.
        direction: the protocol's (or the statistic's) declared direction.
        halfwidths: ci95 half-width of each value (None or missing: 0).
        tolerance: a step may go the wrong way by ``tolerance`` x the larger half-width of its two values.
        strengths: the strength of each value, for the message (default 0, 1, ...).

    Returns:
        A :class:`Verdict` whose statistic is ``v0 -> v_last`` and the first offending step, if any.
    """
    if len(values) < 2 or any(v is None or math.isnan(v) for v in values):
        return Verdict(NA, "not computed at every strength")
    sign = 1.0 if direction == "lower" else -1.0
    h = [0.0 if (halfwidths is None or halfwidths[i] is None) else float(halfwidths[i]) for i in range(len(values))]
    w = [sign * float(v) for v in values]  # increases as the value worsens
    st = list(strengths) if strengths is not None else list(range(len(values)))
    stat = f"{fmt(values[0])} -> {fmt(values[-1])}"
    for i in range(len(w) - 1):
        allowed = tolerance * max(h[i], h[i + 1])
        if w[i + 1] - w[i] < -allowed:
            return Verdict(FAIL, f"{stat}; strength {st[i]}->{st[i + 1]} improves: {fmt(values[i])} -> "
                                 f"{fmt(values[i + 1])}")
    if not w[-1] - w[0] > tolerance * max(h[0], h[-1]):
        return Verdict(FAIL, f"{stat}; no response")
    return Verdict(PASS, stat)


def ranked(steps: Sequence[int], values: Sequence[float | None], direction: str, minimum: float = RANK_MIN) -> Verdict:
    """Whether the checkpoints' values rank them in training order: Spearman's rho of step vs the value
    oriented so that better is higher, at least ``minimum``; n.a. with fewer than 3 checkpoints."""
    from scipy.stats import spearmanr

    pts = [(s, v) for s, v in zip(steps, values) if v is not None and not math.isnan(v)]
    if len(pts) < 3:
        return Verdict(NA, f"{len(pts)} checkpoint(s) scored; ranking needs 3 or more")
    sign = -1.0 if direction == "lower" else 1.0
    rho = spearmanr([s for s, _ in pts], [sign * v for _, v in pts]).statistic
    if rho is None or math.isnan(rho):
        return Verdict(FAIL, "rho undefined (constant values)")
    return Verdict(PASS if rho >= minimum - 1e-9 else FAIL, f"rho {rho:.2f} over {len(pts)} checkpoints")


def dynamic_range(untrained: float | None, faces: float | None, ratio: float = DYNAMIC_RANGE) -> Verdict:
    """Whether a distance of an untrained-looking model is at least ``ratio`` x that of a model that draws faces."""
    if untrained is None or faces is None or math.isnan(untrained) or math.isnan(faces):
        return Verdict(NA, "not computed for both runs")
    if faces <= 0:
        return Verdict(PASS if untrained > 0 else FAIL, f"{fmt(untrained)} vs {fmt(faces)}")
    r = untrained / faces
    return Verdict(PASS if r >= ratio else FAIL, f"{fmt(untrained)} / {fmt(faces)} = x{r:.2f}")


def halfwidth(ci95) -> float | None:
    """Half the width of a ``[lo, hi]`` interval (None when absent)."""
    if not ci95 or ci95[0] is None or ci95[1] is None:
        return None
    return (float(ci95[1]) - float(ci95[0])) / 2


def criteria_table(protocols: Sequence[dict], series, degradations: Sequence[str], have_progress: bool,
                   have_pair: bool, cas_conditions: Sequence[str]) -> list[dict]:
    """One row per protocol: ``protocol``, ``feature space`` and a :class:`Verdict` per criterion.

    Args:
        protocols: ``{"protocol", "family", "space", "direction", "cas"}`` per studied protocol.
        series: ``series(protocol, condition, key) -> [(strength, param, value, ci95)]`` in strength order
            (``key``: a detail key, or None for the value).
        degradations: the degradation families studied.
        have_progress, have_pair: whether ``--progress`` / ``--pair`` were given.
        cas_conditions: the conditions CAS protocols are run for.
    """
    rows = []
    for p in protocols:
        row = {"protocol": p["protocol"], "feature space": p["space"]}
        fam, direction = p["family"], p["direction"]

        def ran(cond: str) -> bool:
            return not p["cas"] or cond in cas_conditions

        for d in degradations:
            if fam in NOT_QUALITY:
                row[d] = Verdict(NA, NOT_QUALITY[fam])
            elif not ran(d):
                row[d] = Verdict(NA, "CAS is run for mode dropping and progress only")
            else:
                s = series(p["protocol"], d, None)
                row[d] = monotone([v for *_, v, _ in s], direction, [halfwidth(c) for *_, c in s],
                                  strengths=[st for st, *_ in s])
        for cond in ("drop_emotions", "collapse", "memorisation"):
            det = DETECTORS[cond].get(fam)
            if det is None:
                row[cond] = Verdict(NA, "not a detector of this change; values recorded")
            elif not ran(cond):
                row[cond] = Verdict(NA, "CAS is run for mode dropping and progress only")
            else:
                key, kdir = det
                s = series(p["protocol"], cond, key)
                v = monotone([v for *_, v, _ in s], kdir or direction, [halfwidth(c) for *_, c in s],
                             strengths=[st for st, *_ in s])
                row[cond] = Verdict(v.status, (f"{key}: " if key else "") + v.statistic)
        if fam in NOT_QUALITY:
            row["progress"] = Verdict(NA, NOT_QUALITY[fam])
        elif not have_progress:
            row["progress"] = Verdict(NA, "no --progress run given")
        elif not (s := series(p["protocol"], "progress", None)):
            row["progress"] = Verdict(NA, "not studied (updated without --progress)")
        else:
            row["progress"] = ranked([par for _, par, _, _ in s], [v for _, _, v, _ in s], direction)
        if fam not in DISTANCE_FAMILIES:
            row["dynamic range"] = Verdict(NA, "not a distance")
        elif not have_pair:
            row["dynamic range"] = Verdict(NA, "no --pair runs given")
        elif not (s := {st: v for st, _, v, _ in series(p["protocol"], "pair", None)}):
            row["dynamic range"] = Verdict(NA, "not studied (updated without --pair)")
        else:
            row["dynamic range"] = dynamic_range(s.get(1), s.get(0))
        rows.append(row)
    return rows


def protocol_row(protocol: str, family: str, space: str, direction: str) -> dict:
    """A studied protocol as :func:`judge` and the criteria table read it (``cas``: the CAS classifier space)."""
    return {"protocol": protocol, "family": family, "space": space, "direction": direction, "cas": space == CAS_NAME}


def judge(records: Sequence[dict], protocols: Sequence[dict], have_progress: bool, have_pair: bool
          ) -> tuple[list[dict], list[dict]]:
    """The criteria rows (cells ``pass (stat)``) and the verdict rows (statuses) of studied protocols.

    Args:
        records: the study's records (:func:`~.validity.run_study`), any order.
        protocols: ``{"protocol", "family", "space", "direction", "cas"}`` per protocol, in table order.
        have_progress, have_pair: whether the study scored training progress / the pair of runs.
    """
    def series(protocol: str, condition: str, key):
        rows = sorted((r for r in records if r["protocol"] == protocol and r["condition"] == condition),
                      key=lambda r: r["strength"])
        return [(r["strength"], r["param"], r[key] if key else r["value"], r.get(f"{key}_ci95") if key else r["ci95"])
                for r in rows]

    rows = criteria_table(protocols, series, list(DEGRADATIONS), have_progress, have_pair, CAS_CONDITIONS)
    return ([{k: (v.cell() if hasattr(v, "cell") else v) for k, v in r.items()} for r in rows],
            [{k: (v.status if hasattr(v, "status") else v) for k, v in r.items()} for r in rows])
