"""report/index.html in a real headless browser (Debian Chromium driven by Playwright): the page loads
offline with no console errors, its tables hold the numbers of leaderboard.csv, clicking a header
reorders the rows, and every image loads."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from exprbench.benchmarks.report.html import CHROMIUM
from exprbench.benchmarks.report.build import write_report

from .synthetic import make_results


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    res = make_results(tmp_path_factory.mktemp("html"))
    return write_report(res)


REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "results" / "quick" / "report"


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not importable (pip install playwright: the `test` extra)")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from exprbench.benchmarks.report.html import launch_chromium

    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


def open_page(browser, index: Path):
    """The page, offline: console errors in ``.errors``, refused non-file requests in ``.outside``."""
    pg = browser.new_page()
    errors, outside = [], []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))

    def route(r):
        if r.request.url.startswith(("file:", "data:")):
            return r.continue_()
        outside.append(r.request.url)
        return r.abort()

    pg.route("**/*", route)
    pg.goto(index.as_uri(), wait_until="load")
    pg.errors, pg.outside = errors, outside
    return pg


@pytest.fixture(scope="module")
def page(browser, report_dir):
    return open_page(browser, report_dir / "index.html")


def _rows(page, table_id: str) -> list[dict]:
    return page.eval_on_selector(f"#{table_id}", """t => {
        const heads = [...t.querySelectorAll('thead th')].map(h => h.dataset.column);
        return [...t.querySelectorAll('tbody.rows tr')].map(tr => Object.fromEntries(
            [...tr.cells].map((c, i) => [heads[i] || ('#' + i), {text: c.textContent, value: c.dataset.value}])));
    }""")


def test_page_loads_offline_without_errors(page):
    assert page.errors == [] and page.outside == []
    assert page.title().startswith("exprbench report")


def check_numbers(page, report_dir: Path) -> int:
    """Every leaderboard cell of the page against leaderboard.csv; returns the count checked."""
    csv = pd.read_csv(report_dir / "leaderboard.csv", keep_default_na=True)
    models = csv[csv["row"] == "model"].fillna({"config": ""})
    checked = 0
    for table_id in page.eval_on_selector_all("table.leaderboard", "ts => ts.map(t => t.id)"):
        for row in _rows(page, table_id):
            model, config = row["#0"]["text"], row["#1"]["text"]
            want = models[(models["model"] == model) & (models["config"] == config)]
            assert len(want) == 1, (table_id, model, config)
            for col, cell in row.items():
                if col.startswith("#"):
                    continue
                mean = want.iloc[0][f"{col}|mean"]
                if isinstance(mean, float) and math.isnan(mean):
                    assert cell["value"] == "" and cell["text"] == "–"
                else:
                    assert float(cell["value"]) == pytest.approx(float(mean), rel=1e-5), (table_id, model, col)
                    shown = float(cell["text"].split(" ")[0])
                    assert shown == pytest.approx(float(mean), rel=1e-3, abs=1e-4)
                    checked += 1
    return checked


def check_images(page, report_dir: Path) -> None:
    imgs = page.eval_on_selector_all("img", "xs => xs.map(x => [x.alt, x.complete, x.naturalWidth])")
    pngs = {p.stem for p in (report_dir / "figures").glob("*.png")}
    assert {alt for alt, _, _ in imgs} == pngs and len(pngs) >= 5
    assert all(done and width > 0 for _, done, width in imgs), [i for i in imgs if not (i[1] and i[2] > 0)]


def test_tables_hold_the_numbers_of_leaderboard_csv(page, report_dir):
    assert check_numbers(page, report_dir) >= 10
    csv = pd.read_csv(report_dir / "leaderboard.csv", keep_default_na=True)
    ref = csv[csv["row"] == "reference"].iloc[0]
    ref_cell = page.text_content("#table-fidelity tbody.ref tr td:nth-child(1)")
    assert ref_cell.startswith("real data (reference") and ref["model"] == "real data (reference)"


def test_clicking_a_header_reorders_rows(page):
    def order():
        return [(r["#0"]["text"], float(r["fid70_train"]["value"])) for r in _rows(page, "table-fidelity")]

    before = order()
    header = page.locator('#table-fidelity th[data-column="fid70_train"]')
    header.click()
    asc = order()
    assert [v for _, v in asc] == sorted(v for _, v in before)
    header.click()
    desc = order()
    assert [v for _, v in desc] == sorted((v for _, v in before), reverse=True)
    assert [m for m, _ in asc] != [m for m, _ in desc]
    assert header.get_attribute("aria-sort") == "descending"
    page.locator('#table-fidelity th:nth-child(1)').click()  # text column: alphabetical
    assert [m for m, _ in order()] == sorted(m for m, _ in before)


def test_every_image_loads(page, report_dir):
    check_images(page, report_dir)


def test_the_committed_quick_report(browser):
    """results/quick/report/index.html as committed: offline, no errors, the numbers of its
    leaderboard.csv, every image; its header sorts."""
    if not (COMMITTED / "index.html").is_file():
        pytest.skip(f"{COMMITTED}/index.html is not there (exprbench report results/quick)")
    pg = open_page(browser, COMMITTED / "index.html")
    try:
        assert pg.errors == [] and pg.outside == []
        assert check_numbers(pg, COMMITTED) >= 50
        check_images(pg, COMMITTED)
        th = pg.locator('#table-fidelity th[data-column="fid10k_train"]')
        th.click()
        vals = [float(r["fid10k_train"]["value"]) for r in _rows(pg, "table-fidelity")]
        assert vals == sorted(vals)
    finally:
        pg.close()


def test_skipped_figures_are_listed_with_reasons(page, report_dir):
    items = page.eval_on_selector_all("ul.skipped li", "xs => xs.map(x => x.textContent)")
    assert any(i.startswith("samples_ddpm-images: an images entry") for i in items)
    md = (report_dir / "leaderboard.md").read_text()
    assert "## Figures without their inputs" in md and "- samples_gan-default: " in md
    assert "Protocol" in page.content() and "cpu (x86_64, 1 threads)" in page.text_content("#table-hardware")
