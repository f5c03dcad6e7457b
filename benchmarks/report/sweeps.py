"""The report's sampling sweeps (``exprbench sweep``, ``RUN_DIR/sweeps/<setting>.json``): per swept run, a
table (one row per value of the setting) and a figure of realism FID against label accuracy, one point per
value: for a diffusion model's guidance weight w, the fidelity/conditioning trade-off of classifier-free
guidance (Ho & Salimans 2022, Fig. 4) that no other row of the leaderboard can show.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from exprbench.core.io import read_json  # noqa: E402

from exprbench.benchmarks.report.columns import derived_columns, higher_is_better, is_accuracy  # noqa: E402
from exprbench.benchmarks.report.results import Report  # noqa: E402

Skipped = list[tuple[str, str]]


def sweep_docs(rep: Report) -> list[tuple[str, dict]]:
    """``(run name, sweep file content)`` of every reported run directory's ``sweeps/*.json``, in run order."""
    out = []
    if rep.runs.empty or "path" not in rep.runs:
        return out
    for r in rep.runs.itertuples():
        for f in sorted(Path(r.path).glob("sweeps/*.json")):
            doc = read_json(f)
            if isinstance(doc, dict) and doc.get("points"):
                out.append((Path(r.path).name, doc))
    return out


def _ok(entry: dict | None) -> dict | None:
    return entry if isinstance(entry, dict) and entry.get("status") == "ok" else None


def _cell(entry: dict | None, key: str | None = None) -> str:
    e = _ok(entry)
    if e is None:
        return "–"
    if key is not None:
        v = (e.get("details") or {}).get(key)
        return "–" if v is None else f"{v:.3f}"
    ci = e.get("ci95")
    return f"{e['value']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _columns(doc: dict) -> list[tuple[str, str, str | None]]:
    """``(header, protocol, detail key)`` per table column: each protocol's value, then its declared derived
    columns (precision and recall of a precision/recall protocol)."""
    cols = []
    for m in doc["metrics"]:
        cols.append((m, m, None))
        cols += [(f"{m} {key}", m, key) for key in derived_columns(m)]
    return cols


def _axes(doc: dict) -> tuple[str | None, str | None]:
    """``(x, y)`` of the sweep figure: the first protocol where lower is better (realism FID) and the first
    label accuracy (``acc_gen``), from their declarations."""
    lower = [m for m in doc["metrics"] if not higher_is_better(m)]
    acc = [m for m in doc["metrics"] if is_accuracy(m)]
    return (lower[0] if lower else None), (acc[0] if acc else None)


def sweep_tables(rep: Report) -> list[tuple[str, list[str], list[list[str]], str]]:
    """``(caption, headers, rows, real-data line)`` per sweep of the reported runs (the cells as text)."""
    out = []
    for run, doc in sweep_docs(rep):
        setting, cols, r = doc["setting"], _columns(doc), doc.get("run") or {}
        caption = (f"`{run}` at step {r.get('step')}, one checkpoint sampled at each value of `{setting}` "
                   f"(`exprbench sweep`; values with a 95% bootstrap interval; {doc.get('device', '')})")
        headers = [setting, "evaluations / image", *[c[0] for c in cols]]
        rows = [[f"{p['value']:g}", str((p.get("sampling") or {}).get("evaluations", "–")),
                 *[_cell(p["metrics"].get(m), key) for _, m, key in cols]] for p in doc["points"]]
        refs = doc.get("references") or {}
        real = "; ".join(f"{m} {_cell(refs.get(m))}" for m in doc["metrics"] if _ok(refs.get(m)))
        out.append((caption, headers, rows, f"Real data: {real}." if real else ""))
    return out


def sweeps_markdown(rep: Report) -> str:
    """The ``## Sampling sweeps`` section of ``leaderboard.md`` ("" when no reported run has a sweep)."""
    parts = []
    for caption, headers, rows, real in sweep_tables(rep):
        parts.append(f"{caption}:\n\n| " + " | ".join(headers) + " |\n|" + "---:|" * len(headers) + "\n"
                     + "".join("| " + " | ".join(r) + " |\n" for r in rows) + (f"\n{real}\n" if real else "") + "\n")
    return "## Sampling sweeps\n\n" + "".join(parts) if parts else ""


def sweeps_html(rep: Report) -> str:
    """The page's sampling-sweep tables ("" when no reported run has a sweep)."""
    import html

    e = html.escape
    parts = []
    for caption, headers, rows, real in sweep_tables(rep):
        head = "".join(f"<th>{e(h)}</th>" for h in headers)
        body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows)
        parts.append(f"<p>{e(caption)}</p><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
                     + (f"<p>{e(real)}</p>" if real else ""))
    return '<h2 id="sweeps">Sampling sweeps</h2>' + "".join(parts) if parts else ""


def sweep_figures(rep: Report, w, skipped: Skipped) -> None:
    """``sweep_<run>_<field>``: realism FID (x) against label accuracy (y), one labelled point per value."""
    for run, doc in sweep_docs(rep):
        fid, acc = _axes(doc)
        name = f"sweep_{run}_{doc['setting'].split('.')[-1]}"
        pts = [(p["value"], _ok(p["metrics"].get(fid)), _ok(p["metrics"].get(acc))) for p in doc["points"]] \
            if fid and acc else []
        pts = [(v, f, a) for v, f, a in pts if f is not None and a is not None]
        if not pts:
            skipped.append((name, "the sweep has no lower-is-better and label-accuracy values to plot"))
            continue
        fig, ax = plt.subplots(figsize=(4.2, 3.2))
        xs, ys = [f["value"] for _, f, _ in pts], [a["value"] for _, _, a in pts]
        xerr = [[f["value"] - f["ci95"][0] if f.get("ci95") else 0 for _, f, _ in pts],
                [f["ci95"][1] - f["value"] if f.get("ci95") else 0 for _, f, _ in pts]]
        ax.errorbar(xs, ys, xerr=xerr, fmt="o-", color="tab:blue", lw=1, ms=4, capsize=2)
        for (v, _, _), x, y in zip(pts, xs, ys):
            ax.annotate(f"{doc['setting'].split('.')[-1][0]}={v:g}", (x, y), textcoords="offset points",
                        xytext=(4, 4), fontsize=7)
        ref = _ok((doc.get("references") or {}).get(acc))
        if ref is not None:
            ax.axhline(ref["value"], color="black", ls="--", lw=1, label="evaluator on real faces (balanced)")
            ax.legend(fontsize=6)
        ax.set_xlabel(f"{fid} (lower is better)")
        ax.set_ylabel(f"{acc} (higher is better)")
        ax.set_title(f"{run}: {doc['setting']} sweep", fontsize=8)
        w.save(fig, name)
