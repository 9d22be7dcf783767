"""``results/index.html`` in a real browser: headless Chromium (Debian's ``chromium``, installed
by ``.ci/run``) renders the committed page, takes a screenshot, and its console must stay clean;
the DOM after load has the headline tables, and clicking a header sorts its table. A page with a
deliberate script error checks that such errors are caught at all."""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "results" / "index.html"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed "
                                    "(.ci/run installs Debian's chromium)")


def chromium(tmp_path: Path, page: Path, *args: str) -> tuple[str, list[str]]:
    """Run headless Chromium on ``page``; (stdout, the console messages it logged)."""
    assert CHROMIUM is not None
    cmd = [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
           "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
           "--enable-logging=stderr", "--v=0", *args, page.resolve().as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, console


def test_page_is_self_contained() -> None:
    text = PAGE.read_text(encoding="utf-8")
    links = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert links and all(link.startswith(("#", "data:image/png;base64,")) for link in links)
    assert "<link" not in text and "@import" not in text and "url(" not in text
    for ident in ("table-translation", "table-recognition", "significance", "plots", "details",
                  "runs", "signatures"):
        assert f'id="{ident}"' in text
    assert text.count("<figcaption>") >= 2


@needs_chromium
def test_page_renders_without_script_errors(tmp_path: Path) -> None:
    shot = tmp_path / "page.png"
    _, console = chromium(tmp_path, PAGE, "--window-size=1400,1800", f"--screenshot={shot}")
    assert console == []
    with Image.open(shot) as image:
        assert image.size == (1400, 1800)
        colours = image.convert("L").getcolors(maxcolors=1 << 16)
        assert colours is not None and len(colours) > 20  # text and tables, not a blank page


@needs_chromium
def test_tables_are_there_and_sort(tmp_path: Path) -> None:
    """Click the BLEU-4 header twice (ascending, then descending): the best BLEU-4 comes first."""
    click = ('<script>var th = document.querySelectorAll("#table-translation th")[4];'
             "th.click(); th.click();"
             'var cells = document.querySelector("#table-translation tbody tr").cells;'
             'document.body.setAttribute("data-first", cells[0].textContent + "|" +'
             " cells[4].textContent);</script></body>")
    page = tmp_path / "index.html"
    page.write_text(PAGE.read_text(encoding="utf-8").replace("</body>", click), encoding="utf-8")
    dom, console = chromium(tmp_path, page, "--dump-dom")
    assert console == []
    assert dom.count("<table") >= 4 and 'id="table-recognition"' in dom
    with open(PAGE.parent / "leaderboard-full.csv", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["BLEU-4"]]
    best = max(rows, key=lambda r: float(r["BLEU-4"]))
    (first,) = re.findall(r'data-first="([^"]*)"', dom)
    method, cell = first.split("|")
    assert method == best["method"] and cell.startswith(f"{float(best['BLEU-4']):.2f} ± ")


@needs_chromium
def test_a_script_error_would_be_caught(tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><body><table></table>"
                    "<script>notDefined();</script></body></html>", encoding="utf-8")
    _, console = chromium(tmp_path, page, "--dump-dom")
    assert any("Uncaught ReferenceError" in line for line in console)


def test_runs_table_names_the_cpu_generation() -> None:
    from harness.leaderboard.html import _hardware

    zen2 = {"cpu": "AMD EPYC", "cpu_id": "AuthenticAMD family 23 model 49 stepping 0",
            "cpu_capability": "AVX2", "gpu": None}
    assert _hardware(zen2) == "AMD EPYC (AuthenticAMD family 23 model 49 stepping 0, AVX2)"
    assert _hardware({"cpu": "AMD EPYC", "gpu": None}) == "AMD EPYC"  # runs from before the field
    assert _hardware({**zen2, "gpu": {"name": "NVIDIA H100 80GB HBM3"}}) == "NVIDIA H100 80GB HBM3"
