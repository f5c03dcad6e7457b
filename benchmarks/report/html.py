"""``report/index.html``: the whole report as one self-contained page, viewable offline.

Inline CSS and a few lines of vanilla JavaScript (no CDN, no network): every leaderboard sortable by
clicking any column header (again for the other direction; the real-data reference row stays on
top), every figure of ``report/figures/`` (embedded as ``data:image/png;base64`` URIs, or linked
relative to the page with ``embed=False``), a sample-sheet section per model, the figures that were
skipped with their reasons, the protocol (suite, metrics, evaluator, sample counts) and the hardware
of each run (from ``record.json`` / ``status.json`` / ``eval.json``).

Each table cell carries the number it shows in ``data-value`` (the mean, full precision), so the
page can be checked against ``leaderboard.csv``.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path


from exprbench.core.io import read_json, write_text

from exprbench.benchmarks.report.results import REFERENCE_LABEL, Report, references_note
from exprbench.benchmarks.report.sweeps import sweeps_html
from exprbench.benchmarks.report.tables import BOLD_RULE, Table

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1200px;padding:1em 2em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}h3{font-size:1em}
nav a{margin-right:1em}code{background:#f3f3f3;padding:0 .2em}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.85em}
th,td{padding:.25em .6em;border-bottom:1px solid #e3e3e3;text-align:right;white-space:nowrap}
th:nth-child(-n+2),td:nth-child(-n+2){text-align:left}
table.sortable th{cursor:pointer;user-select:none;background:#f7f7f7}
table.sortable th:hover{background:#ececec}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
tbody.ref td{font-style:italic;color:#555;border-bottom:2px solid #bbb}
td.best{font-weight:bold}
th small{font-weight:normal;color:#555}div.scroll{overflow-x:auto;max-width:100%}
.gallery{display:flex;flex-wrap:wrap;gap:.8em;align-items:flex-start}
figure{margin:0;max-width:100%}figure img{display:block;max-width:100%;border:1px solid #eee}
.charts figure img{width:380px}.sheets figure img{max-height:460px}
figcaption{font-size:.8em;color:#444;max-width:380px}
.stale{color:#a15c00}ul.skipped li{font-size:.85em}
"""

JS = """
(function(){
  function key(row, i){ var c = row.cells[i]; return c ? (c.getAttribute('data-value') || '') : ''; }
  function sortTable(table, i, th){
    var body = table.querySelector('tbody.rows'); if(!body) return;
    var asc = th.getAttribute('aria-sort') !== 'ascending';
    table.querySelectorAll('thead th').forEach(function(h){ h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
    var rows = Array.prototype.slice.call(body.rows);
    var numeric = rows.every(function(r){ var k = key(r, i); return k === '' || isFinite(Number(k)); });
    rows.sort(function(a, b){
      var x = key(a, i), y = key(b, i);
      if(x === '' && y === '') return 0; if(x === '') return 1; if(y === '') return -1;
      var d = numeric ? Number(x) - Number(y) : x.localeCompare(y);
      return asc ? d : -d;
    });
    rows.forEach(function(r){ body.appendChild(r); });
  }
  document.querySelectorAll('table.sortable').forEach(function(table){
    table.querySelectorAll('thead th').forEach(function(th, i){
      th.addEventListener('click', function(){ sortTable(table, i, th); });
      th.addEventListener('keydown', function(e){ if(e.key === 'Enter'){ sortTable(table, i, th); } });
    });
  });
})();
"""


def _e(s) -> str:
    return html.escape("" if s is None else str(s))


def _inline_md(text: str) -> str:
    """Escape, then `code` and **bold** of the report's notes."""
    s = _e(text)
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", s)


def _value(v) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return ""
    return repr(float(v)) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def table_html(t: Table) -> str:
    """One sortable leaderboard; the reference row in its own (unsorted) tbody."""
    def label(h: str) -> str:  # "FID ↓ (fid10k_train)": the protocol on a second, smaller line
        name, sep, proto = h.partition(" (")
        return f"{_e(name)}<br><small>({_e(proto)}</small>" if sep else _e(h)

    head = "".join(f'<th tabindex="0" scope="col" data-column="{_e(c or "")}">{label(h)}</th>'
                   for h, c in zip(t.headers, t.columns))
    parts = [f'<div class="scroll"><table class="sortable leaderboard" id="table-{_e(t.name)}"><thead><tr>{head}</tr></thead>']

    def row(cells, values, bold):
        tds = "".join(f'<td data-value="{_e(_value(v))}"' + (' class="best"' if b else "") + f">{_e(c)}</td>"
                      for c, v, b in zip(cells, values, bold))
        return f"<tr>{tds}</tr>"

    rows = list(zip(t.rows, t.values, t.bold))
    if t.has_reference:
        parts.append(f'<tbody class="ref">{row(*rows[0])}</tbody>')
        rows = rows[1:]
    parts.append('<tbody class="rows">' + "".join(row(*r) for r in rows) + "</tbody></table></div>")
    return "".join(parts)


def _img(path: Path, page_dir: Path, embed: bool) -> str:
    if embed:
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    return _e(path.relative_to(page_dir).as_posix())


def _figure(path: Path, page_dir: Path, embed: bool, fresh: bool) -> str:
    cap = _e(path.stem) + ("" if fresh else ' <span class="stale">(from an earlier report: its inputs are not here)</span>')
    return (f'<figure><img src="{_img(path, page_dir, embed)}" alt="{_e(path.stem)}" loading="eager">'
            f"<figcaption>{cap}</figcaption></figure>")


def _protocol(rep: Report) -> str:
    info = rep.suite_info
    items = []
    if info:
        items.append(f"<li>suite <code>{_e(info.get('suite', rep.suite))}</code>"
                     + (f", budget {_e(info.get('budget'))}" if info.get("budget") else "")
                     + (f", grid of {len(info.get('grid', []))} points" if info.get("grid") else "") + "</li>")
        if info.get("metrics"):
            items.append("<li>metrics: " + ", ".join(f"<code>{_e(m)}</code>" for m in info["metrics"]) + "</li>")
    evs = []
    if not rep.runs.empty:
        for p in rep.runs[rep.runs["status"] == "done"]["path"]:
            ev = read_json(Path(p) / "eval.json")
            if ev:
                evs.append(ev)
    if evs:
        ev = evs[0]
        if ev.get("protocol_version"):
            items.append(f"<li>protocol version <code>{_e(ev['protocol_version'])}</code></li>")
        evaluator = ev.get("evaluator") or {}
        if evaluator:
            items.append(f"<li>FER evaluator sha256 <code>{_e(evaluator.get('sha256', '')[:16])}…</code>, "
                         f"test accuracy {_e(evaluator.get('test_accuracy'))}</li>")
        if references_note(ev):
            items.append(f"<li>{_e(REFERENCE_LABEL)}: {_e(references_note(ev))}</li>")
    rows = {}
    for ev in evs:
        for name, e in (ev.get("metrics") or {}).items():
            if isinstance(e, dict) and e.get("status") == "ok" and name not in rows:
                rows[name] = (e.get("n_samples"), e.get("seed"), e.get("extractor"))
    out = "<ul>" + "".join(items) + "</ul>" if items else "<p>No suite record here.</p>"
    if rows:
        out += ('<table class="sortable" id="table-protocols"><thead><tr><th tabindex="0">protocol</th>'
                '<th tabindex="0">samples</th><th tabindex="0">seed</th><th tabindex="0">extractor</th></tr></thead>'
                '<tbody class="rows">' + "".join(
                    f'<tr><td data-value="{_e(n)}">{_e(n)}</td><td data-value="{_e(a)}">{_e(a)}</td>'
                    f'<td data-value="{_e(b)}">{_e(b)}</td><td data-value="{_e(c)}">{_e(c)}</td></tr>'
                    for n, (a, b, c) in sorted(rows.items())) + "</tbody></table>")
    return out


def _hardware(rep: Report) -> str:
    if rep.runs.empty:
        return "<p>The run records are not here (rows kept from an earlier leaderboard.csv).</p>"
    cols = ["run", "model", "config", "seed", "source", "status", "device_name", "steps", "train_seconds",
            "eval_seconds", "img_per_s", "git_commit"]
    heads = ["run", "model", "config", "seed", "source", "status", "hardware", "steps", "train s", "eval s",
             "img/s", "commit"]
    body = []
    for _, r in rep.runs.sort_values(["model", "config", "run"]).iterrows():
        cells = []
        for c in cols:
            v = r.get(c)
            v = None if v is None or (isinstance(v, float) and v != v) else v
            if c == "git_commit" and v:
                v = str(v)[:10]
            if c in ("train_seconds", "eval_seconds", "img_per_s") and v is not None:
                shown = f"{float(v):.0f}"
            else:
                shown = "" if v is None else str(v)
            cells.append(f'<td data-value="{_e(_value(v) if isinstance(v, (int, float)) else shown)}">{_e(shown)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    head = "".join(f'<th tabindex="0">{_e(h)}</th>' for h in heads)
    return (f'<table class="sortable" id="table-hardware"><thead><tr>{head}</tr></thead>'
            f'<tbody class="rows">{"".join(body)}</tbody></table>')


def render_html(rep: Report, page: Path, embed: bool = True) -> str:
    """The page's HTML text (see the module docstring); ``page`` is where it will be written."""
    page_dir = page.parent
    figs = sorted((rep.out / "figures").glob("*.png")) if (rep.out / "figures").is_dir() else []
    fresh = set(rep.written)
    keys = sorted({(r["model"], r["config"]) for _, r in rep.agg.iterrows()})
    per_model, used = [], set()
    for model, config in keys:
        key = f"{model}-{config}" if config else model
        order = ("samples", "translation", "edit", "confusion", "memorisation")
        mine = sorted((p for p in figs if re.fullmatch(rf"({'|'.join(order)})_{re.escape(key)}", p.stem)),
                      key=lambda p: order.index(p.stem.split("_", 1)[0]))
        used |= set(mine)
        inner = ('<div class="gallery sheets">' + "".join(_figure(p, page_dir, embed, p.stem in fresh) for p in mine)
                 + "</div>") if mine else "<p>No sample sheet (see the figures without their inputs).</p>"
        per_model.append(f'<h3 id="model-{_e(key)}">{_e(model)}{" / " + _e(config) if config else ""}</h3>{inner}')
    charts = [p for p in figs if p not in used]
    chart_html = "".join(_figure(p, page_dir, embed, p.stem in fresh) for p in charts)
    title = f"exprbench report: suite {rep.suite}"
    nav = ('<nav><a href="#leaderboards">leaderboards</a><a href="#figures">figures</a>'
           '<a href="#samples">sample sheets</a><a href="#skipped">figures without input</a><a href="#protocol">protocol</a>'
           '<a href="#hardware">hardware</a></nav>')
    notes = "".join(f"<p>{_inline_md(p)}</p>" for p in rep.note.split("\n\n") if p.strip())
    tables = "".join(f'<h3 id="lb-{_e(t.name)}">{_e(t.title)}</h3>{table_html(t)}'
                     + "".join(f'<p class="table-note">{_e(n)}</p>' for n in t.notes) for t in rep.tables)
    skipped = ('<ul class="skipped">' + "".join(f"<li><code>{_e(a)}</code>: {_e(b)}</li>" for a, b in rep.skipped)
               + "</ul>") if rep.skipped else "<p>None.</p>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{CSS}</style></head>
<body><h1>{_e(title)}</h1>{nav}{notes}
<p>Click a column header to sort (again to reverse); the {_e(REFERENCE_LABEL)} row stays on top. ↓ lower is
better, ↑ higher; mean ± std over seeds; {_e(BOLD_RULE)} (no interval: no bold).</p>
<h2 id="leaderboards">Leaderboards</h2>{tables}{sweeps_html(rep)}
<h2 id="figures">Figures</h2><div class="gallery charts">{chart_html or "<p>None.</p>"}</div>
<h2 id="samples">Sample sheets per model</h2>{"".join(per_model)}
<h2 id="skipped">Figures without their inputs</h2>{skipped}
<h2 id="protocol">Protocol</h2>{_protocol(rep)}
<h2 id="hardware">Hardware and cost per run</h2>{_hardware(rep)}
<script>{JS}</script></body></html>
"""


def write_html(rep: Report, page: Path, embed: bool = True) -> Path:
    """Write :func:`render_html` to ``page`` atomically; returns ``page``."""
    write_text(page, render_html(rep, page, embed))
    return page


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def launch_chromium(playwright):
    """A headless Debian Chromium (``/usr/bin/chromium``) driven by Playwright; nothing is downloaded.

    Raises:
        FileNotFoundError: no Chromium there (``apt-get install chromium``).
    """
    if not Path(CHROMIUM).is_file():
        raise FileNotFoundError(f"{CHROMIUM} not found (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def screenshot(page_path: Path, png: Path, width: int = 1280, height: int = 1600, full_page: bool = False) -> Path:
    """A PNG screenshot of a report page in headless Chromium, offline (every non-file request is
    refused). Needs ``playwright`` (the ``test`` extra) and Debian's ``chromium``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("file:", "data:")) else r.abort())
            page.goto(Path(page_path).resolve().as_uri(), wait_until="load")
            data = page.screenshot(full_page=full_page)
        finally:
            browser.close()
    from exprbench.core.io import atomic_open

    with atomic_open(png, "wb") as fh:
        fh.write(data)
    return png


__all__ = ["launch_chromium", "render_html", "screenshot", "table_html", "write_html"]

if __name__ == "__main__":  # python -m exprbench.benchmarks.report.html REPORT/index.html OUT.png
    import sys

    print(screenshot(Path(sys.argv[1]), Path(sys.argv[2]), full_page="--full" in sys.argv[3:]))
