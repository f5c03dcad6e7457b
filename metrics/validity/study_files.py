"""Files of the metric validity study (:mod:`.validity`): ``validity.json`` (every raw value with its
provenance), ``validity.csv`` (one row per protocol and condition), ``criteria.md`` (the pass/fail table)
and figures (seaborn line plots, PNG at 200 dpi and PDF, one per family of changes: facets = protocols,
one line per feature space, the value relative to strength 0; log scale where it spans over a decade).
Every file goes through the atomic writers of :mod:`exprbench.core.io`."""

from __future__ import annotations

import io
from pathlib import Path

from exprbench.core.io import atomic_open, read_json, write_json, write_text
from exprbench.metrics.validity.transfer_attack import with_section

CRITERIA_COLUMNS = ("blur", "noise", "jpeg", "contrast", "shift", "drop_emotions", "collapse", "memorisation",
                    "progress", "dynamic range")
FIGURE_FAMILIES = ("blur", "noise", "jpeg", "contrast", "shift", "drop_emotions", "collapse", "memorisation",
                   "progress")
X_LABEL = {"drop_emotions": "emotions dropped", "collapse": "distinct faces kept",
           "memorisation": "fraction of train faces submitted", "progress": "checkpoint step"}
WHAT = {"blur": "Gaussian blur sigma (px)", "noise": "noise std ([0, 1] pixel units)", "jpeg": "JPEG quality",
        "contrast": "contrast factor", "shift": "shift (px, edge fill)"}


def _tick(param) -> str:
    if param is None or param == "" or (isinstance(param, float) and param != param):
        return "none"
    if isinstance(param, float):
        return f"{param:g}"
    return "\n".join(str(param).split(",")) if isinstance(param, str) else str(param)


def records_frame(records: list[dict]):
    """The records as a pandas DataFrame (ci95 as two columns ``ci95_lo``, ``ci95_hi``)."""
    import pandas as pd

    rows = []
    for r in records:
        row = {k: v for k, v in r.items() if not k.endswith("ci95")}
        ci = r.get("ci95") or (None, None)
        row["ci95_lo"], row["ci95_hi"] = ci[0], ci[1]
        rows.append(row)
    return pd.DataFrame(rows)


def markdown_table(df) -> str:
    """A pipe table of a DataFrame (``DataFrame.to_markdown`` when ``tabulate`` is installed)."""
    try:
        return df.to_markdown(index=False)
    except ImportError:
        cols = [str(c) for c in df.columns]
        lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
        for row in df.itertuples(index=False):
            lines.append("| " + " | ".join(str(v).replace("|", "/") for v in row) + " |")
        return "\n".join(lines)


def criteria_frame(result: dict):
    """The pass/fail table: protocol, feature space and one cell per criterion."""
    import pandas as pd

    return pd.DataFrame(result["criteria"], columns=["protocol", "feature space", *CRITERIA_COLUMNS])


def notes(result: dict) -> list[str]:
    """The lines printed under the table: what was measured and how it is judged."""
    from exprbench.metrics.validity.criteria import DYNAMIC_RANGE, RANK_MIN

    m = result["study"]
    out = [f"{m['n']:,} scored images per sample-based protocol; {m['per_class_note']}; {m['data']['scored']} "
           f"of {m['data']['path']} (fingerprint {str(m['data']['fingerprint'])[:12]}), commit {m['commit']}, "
           f"{m['hardware']['device']}, {m['wall_s']:.0f} s ({m['cpu_s']:.0f} s CPU)" + (" (quick: strengths 0, 2, 4)" if m["quick"] else ""),
           f"monotone: every step worsens the value in the protocol's direction, tolerance {m['ci_tolerance']} x the "
           f"larger ci95 half-width of the step's two values ({m['ci_draws']} bootstrap draws"
           + ("; 0: no tolerance)" if not m["ci_draws"] else ")") + ", and the most severe value is worse than strength 0",
           f"mode dropping: emotions dropped in the order {', '.join(m['drop_order'][:3])}; {m['drop_labels']}; caught "
           "by recall (pr), coverage (dc), intra-class FID, label accuracy and CAS",
           f"progress: Spearman rho of checkpoint step vs value >= {RANK_MIN}; dynamic range: distance of the "
           f"untrained-looking run >= {DYNAMIC_RANGE:g} x that of the face-drawing run",
           ("CAS: trains a classifier per condition, run for " + ", ".join(m["cas_conditions"]) + " only; "
            + (f"its mode-dropping and collapse sets are {m['cas_scored']}" if m.get("cas_scored") else
               "trained on the scored images (its strength-0 value is optimistic: trained and tested on PrivateTest)"))
           if m["cas"]
           else "CAS: not run (pass --cas; it trains a classifier per condition, about 2 min each on CPU)"]
    out[1:1] = [f"update {u['date']} (--update): studied {', '.join(u['protocols'])} at the same settings, commit "
                f"{u['commit']}, {u['hardware']['device']}, {u['wall_s']:.0f} s ({u['cpu_s']:.0f} s CPU); their "
                "records replace any earlier ones of those protocols" for u in m.get("updates", [])]
    out += [f"skipped {s['protocol']} ({s['space']}): {s['reason']}" for s in result["skipped"]]
    return out


def _save(fig, out: Path, name: str) -> list[str]:
    import matplotlib.pyplot as plt

    written = []
    for ext, kw in (("png", {"dpi": 200, "metadata": {"Software": None}}),
                    ("pdf", {"metadata": {"CreationDate": None, "Producer": None}})):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, bbox_inches="tight", **kw)
        with atomic_open(out / f"{name}.{ext}", "wb") as fh:
            fh.write(buf.getvalue())
        written.append(f"{name}.{ext}")
    plt.close(fig)
    return written


def write_figures(df, out: Path) -> list[str]:
    """One line-plot figure per family of changes (see the module docstring); returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    import seaborn as sns

    sns.set_theme(context="paper", style="whitegrid", font_scale=0.9)
    written = []
    ok = df[(df["status"] == "ok") & df["value"].notna()].copy()
    for fam in FIGURE_FAMILIES:
        d = ok[ok["condition"] == fam].copy()
        if d.empty:
            continue
        if fam == "progress":
            d["x"], d["y"], ylab = d["param"].astype(float), d["value"].astype(float), "value"
        else:
            ticks = sorted(set(zip(d["strength"].astype(int), d["param"].map(_tick))))
            ref = d[d["strength"] == 0].set_index(["protocol", "space"])["value"]
            d["y"] = [v / ref.get((p, s), np.nan) if ref.get((p, s), 0) not in (0, None) else np.nan
                      for p, s, v in zip(d["protocol"], d["space"], d["value"])]
            d["x"], ylab = d["strength"].astype(int), "value / value at strength 0"
        d = d[np.isfinite(d["y"])]
        if d.empty:
            continue
        g = sns.relplot(data=d, x="x", y="y", hue="space", col="protocol", kind="line", marker="o",
                        col_wrap=min(4, d["protocol"].nunique()), height=1.9, aspect=1.15,
                        facet_kws={"sharey": False, "sharex": True})
        for name, ax in g.axes_dict.items():
            y = d[d["protocol"] == name]["y"]
            if len(y) and (y > 0).all() and y.max() / y.min() > 10:
                ax.set_yscale("log")
            ax.set_title(name, fontsize=8)
            if fam != "progress":
                ax.set_xticks([t for t, _ in ticks], [lab for _, lab in ticks], fontsize=7)
        g.set_axis_labels(X_LABEL.get(fam, WHAT.get(fam, fam)), ylab)
        g.figure.suptitle(f"metric response: {fam}", y=1.02, fontsize=9)
        written += _save(g.figure, out, f"fig_{fam}")
    return written


def write_study(result: dict, out: Path, figures: bool = True) -> list[str]:
    """Write ``validity.json``, ``validity.csv``, ``criteria.md`` and the figures into ``out``; returns names."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    df = records_frame(result["records"])
    write_json(out / "validity.json", {k: v for k, v in result.items() if k != "verdicts"})
    write_text(out / "validity.csv", df.to_csv(index=False))
    md = "\n".join(["# Metric validity study", "", markdown_table(criteria_frame(result)), ""]
                   + [f"- {n}" for n in notes(result)]) + "\n"
    attack = read_json(out / "transfer_attack.json")  # the scoring evaluator's transfer-attack test, when run
    write_text(out / "criteria.md", with_section(md, attack) if isinstance(attack, dict) and "scorers" in attack else md)
    written = ["validity.json", "validity.csv", "criteria.md"]
    if figures:
        written += write_figures(df, out)
    return written
