"""The report of `make run`: REPORT.md and index.html, the latter loaded in a real headless Chromium."""

import json
import re
import shutil
import subprocess

import pytest

from figures._common import run_figure
from softmax_stability.claims import get
from softmax_stability.claims._verify import verify_claim
from figures._report import build_report

FIGS = ("sf_fig22", "sf_table6")
BROWSER = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    # a real result on random instances; the searches are test_verify_all's to check
    res = [verify_claim(get("D2-dispersion-pmax"), adversary=False).to_json()]
    (d / "verification.json").write_text(json.dumps({"results": res}))
    (d / "proofs_check.json").write_text(json.dumps({"records": [
        {"check_id": "dispersion.pmax", "claim_id": "D2-dispersion-pmax", "method": "symbolic",
         "status": "passed", "seconds": 0.1}]}))
    provs = [run_figure(n, d, profile="smoke", show_progress=False) for n in FIGS]
    build_report(d)
    return d, provs


def test_markdown_report_has_claims_and_every_output(out):
    d, provs = out
    md = (d / "REPORT.md").read_text()
    assert "D2-dispersion-pmax" in md and "1 claims verified, 1 pass, 0 fail" in md
    assert "dispersion.pmax" in md
    for prov in provs:
        assert f"### {prov['figure']}" in md and prov["caption"] in md
        for f in prov["files"]:
            if f.endswith(".png"):
                assert f"]({f})" in md


def _render(page, width=1400):
    proc = subprocess.run(
        [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
         f"--window-size={width},1000", "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=1800)  # hang guard
    assert proc.returncode == 0, proc.stderr[-2000:]
    tag = re.search(r"<html[^>]*>", proc.stdout)
    assert tag, proc.stdout[:500]
    return dict(re.findall(r'data-([a-z]+)="([^"]*)"', tag.group(0)))


@pytest.mark.skipif(BROWSER is None, reason="no Chromium on this machine (apt-get install chromium)")
def test_html_report_loads_every_image_in_a_browser(out):
    d, provs = out
    attrs = _render(d / "index.html")
    n_png = sum(f.endswith(".png") for p in provs for f in p["files"])
    assert attrs.get("ready") == "1", attrs
    assert attrs.get("images") == str(n_png), attrs
    assert attrs.get("broken") == "none", attrs
    assert "errors" not in attrs, attrs
    # readable at 1400 px: nothing (a wide table, an image) pushes the page sideways
    assert int(attrs["width"]) <= 1400, attrs


@pytest.mark.skipif(BROWSER is None, reason="no Chromium on this machine (apt-get install chromium)")
def test_browser_check_detects_a_missing_image(out, tmp_path):
    d, provs = out
    copy = tmp_path / "copy"
    shutil.copytree(d, copy)
    png = next(f for p in provs for f in p["files"] if f.endswith(".png"))
    (copy / png).unlink()
    attrs = _render(copy / "index.html")
    assert png in attrs.get("broken", ""), attrs
    assert int(attrs.get("errors", "0")) >= 1, attrs


def test_markdown_notes_render_tables_as_html_tables():
    from figures._report import markdown_to_html

    md = ("## Outcome\n\nTOPK(5) is **below** FULL on `even_pairs`.\n\n"
          "| variant | median | note |\n|---|---:|---|\n| FULL | 0.658 | a \\| b |\n| TOPK(5) | 0.079 | |\n\n"
          "- first\n- second <x>\n")
    h = markdown_to_html(md)
    assert "<pre" not in h
    assert h.count("<table>") == 1 and h.count("<tr>") == 3
    assert "<th>variant</th>" in h and "<td>0.079</td>" in h and "<td>a | b</td>" in h
    assert "<b>below</b>" in h and "<code>even_pairs</code>" in h
    assert "<li>second &lt;x&gt;</li>" in h  # escaped, never raw HTML


def test_html_report_has_no_preformatted_tables(out):
    d, _ = out
    page = (d / "index.html").read_text()
    assert "<pre>" not in page
    assert page.count("<table>") >= 3  # claims, proofs, and the figures' own tables
