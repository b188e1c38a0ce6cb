"""The report of ``make run``: ``figures/out/index.html`` and ``figures/out/REPORT.md``.

Both are built from what the other steps left in the output directory: every
``<name>.provenance.json`` (gallery: image, caption, source, provenance), ``verification.json``
(claims table: verdict, max ratio, sharpness, proof status), ``proofs_check.json`` (symbolic checks)
and every figure's Markdown table (``<name>.md``). Nothing is recomputed here.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from softmax_stability._io import atomic_write_text

__all__ = ["build_report", "update_readme", "main"]


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _collect(out: Path) -> dict[str, Any]:
    provs = []
    for p in sorted(out.glob("*.provenance.json")):
        d = _load_json(p)
        if d:
            provs.append(d)
    from figures._common import registry

    order = {name: i for i, name in enumerate(registry())}  # the README gallery's order
    provs.sort(key=lambda d: (order.get(d.get("figure", ""), len(order)), d.get("figure", "")))
    ver = _load_json(out / "verification.json") or {}
    proofs = _load_json(out / "proofs_check.json") or {}
    return {"figures": provs, "verification": ver, "proofs": proofs}


def _fmt(x: Any, digits: int = 4) -> str:
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return "" if x is None else str(x)


def _claim_rows(ver: dict) -> list[list[str]]:
    rows = []
    for r in ver.get("results", []):
        sharp = "-" if not r.get("sharp") else ("reached" if r.get("sharp_reached") else "NOT reached")
        muts = r.get("mutants") or []
        score = f"{sum(bool(m['killed']) for m in muts)}/{len(muts)}" if muts else "not run"
        rows.append([r["id"], r["kind"], str(r["instances"]), _fmt(r["max_ratio"]), sharp,
                     r.get("proof_status", ""), score, r["verdict"], r.get("source", "")])
    return rows


_CLAIM_HEAD = ["claim", "kind", "instances", "max ratio", "sharpness", "proof", "mutants killed",
               "verdict", "source"]
_VERDICT_COL = _CLAIM_HEAD.index("verdict")


def _survivor_rows(ver: dict) -> list[list[str]]:
    """Mutants the verifier passed: checks that could not fail, with the reason each survived."""
    return [[r["id"], m["name"], m["change"], m["reason"]]
            for r in ver.get("results", []) for m in (r.get("mutants") or []) if not m["killed"]]


def _mutant_summary(ver: dict) -> str:
    res = ver.get("results", [])
    total = sum(len(r.get("mutants") or []) for r in res)
    if not total:
        return "Mutants were not run (softmax-stability verify --mutants)."
    killed = sum(bool(m["killed"]) for r in res for m in (r.get("mutants") or []))
    return (f"Mutants (altered bounds the verifier must reject): {killed}/{total} killed"
            + ("." if killed == total else f"; {total - killed} survived (listed below)."))


def _proof_rows(proofs: dict) -> list[list[str]]:
    recs = proofs.get("records", []) if isinstance(proofs, dict) else proofs or []
    return [[r.get("check_id", r.get("id", "")), r.get("claim_id", ""), r.get("method", ""),
             r.get("status", ""), _fmt(r.get("seconds", r.get("time_s")), 3)] for r in recs]


_PROOF_HEAD = ["check", "claim", "method", "status", "seconds"]


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _html_table(head: list[str], rows: list[list[str]], verdict_col: int | None = None) -> str:
    out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for r in rows:
        cls = ""
        if verdict_col is not None:
            cls = ' class="ok"' if r[verdict_col] in ("pass", "passed") else ' class="bad"'
        out.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _inline(text: str) -> str:
    """Escape, then the inline Markdown the figures' notes use: `code` and **bold**."""
    t = html.escape(text)
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", t)


def _table_cells(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [c.strip().replace("\\|", "|") for c in cells]


def markdown_to_html(text: str) -> str:
    """The subset of Markdown the figures' ``.md`` notes are written in, as HTML: pipe tables
    (a header row, a ``---`` row, body rows) become ``<table>``, ``#`` lines headings, ``-`` lines
    lists, everything else paragraphs. A table that sat in ``<pre>`` was cut off at the page's
    right edge and could not be read as a table."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("|") and i + 1 < len(lines) and re.match(r"^\s*\|[\s:|-]+\|?\s*$", lines[i + 1]):
            head = _table_cells(line)
            rows = []
            i += 2
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                rows.append(_table_cells(lines[i]))
                i += 1
            out.append("<div class='scroll'><table><tr>" + "".join(f"<th>{_inline(h)}</th>" for h in head)
                       + "</tr>" + "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>"
                                           for r in rows) + "</table></div>")
            continue
        if m := re.match(r"^(#{1,6})\s+(.*)$", line):
            level = min(len(m.group(1)) + 3, 6)  # below the page's own h1-h3
            out.append(f"<h{level}>{_inline(m.group(2))}</h{level}>")
        elif re.match(r"^\s*[-*]\s+", line):
            items = []
            while i < len(lines) and re.match(r"^\s*[-*]\s+", lines[i]):
                items.append(re.sub(r"^\s*[-*]\s+", "", lines[i]))
                i += 1
            out.append("<ul>" + "".join(f"<li>{_inline(t)}</li>" for t in items) + "</ul>")
            continue
        elif line.strip():
            para = [line]
            while i + 1 < len(lines) and lines[i + 1].strip() and not re.match(r"^(\s*[|#*-])", lines[i + 1]):
                i += 1
                para.append(lines[i])
            out.append(f"<p>{_inline(' '.join(para))}</p>")
        i += 1
    return "\n".join(out)


def _prov_line(d: dict) -> str:
    return (f"profile {d.get('profile')}, seed {d.get('seed')}, {d.get('wall_time_s')} s, "
            f"JAX {d.get('jax_version')} on {d.get('backend')}, library {d.get('library_version')}, "
            f"{d.get('created', '')}")


# Records, in the page itself, whether every image loaded and whether any script or resource
# error happened; the browser test reads these attributes from the rendered DOM.
_SELF_CHECK = """<script>
(function () {
  var root = document.documentElement;
  window.addEventListener('error', function (e) {
    root.dataset.errors = String((+root.dataset.errors || 0) + 1);
  }, true);
  window.addEventListener('load', function () {
    var imgs = Array.prototype.slice.call(document.images);
    var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
    root.dataset.images = String(imgs.length);
    root.dataset.broken = broken.map(function (i) { return i.getAttribute('src'); }).join(' ') || 'none';
    root.dataset.width = String(document.documentElement.scrollWidth);
    root.dataset.ready = '1';
  });
})();
</script>"""


def build_report(out: str | Path) -> tuple[Path, Path]:
    """Write ``index.html`` and ``REPORT.md`` into ``out``; returns their paths."""
    out = Path(out)
    data = _collect(out)
    claims = _claim_rows(data["verification"])
    proofs = _proof_rows(data["proofs"])
    n_bad = sum(r[_VERDICT_COL] != "pass" for r in claims)
    survivors = _survivor_rows(data["verification"])
    mutant_line = _mutant_summary(data["verification"])
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())

    md = ["# softmax-stability report", "", f"Generated {stamp}.", ""]
    md += ["## Claims", "",
           f"{len(claims)} claims verified, {len(claims) - n_bad} pass, {n_bad} fail. "
           "Ratio = measured / bound (bound / measured for lower bounds); <= 1 means the bound holds.", ""]
    md += [mutant_line, ""] if claims else []
    md += [_md_table(_CLAIM_HEAD, claims) if claims else "_verify has not run._", ""]
    if survivors:
        md += ["### Surviving mutants", "", _md_table(["claim", "mutant", "change", "why it survived"],
                                                    survivors), ""]
    md += ["## Symbolic checks (proofs_check)", "", _md_table(_PROOF_HEAD, proofs) if proofs else "_not run._", ""]
    md += ["## Figures and tables", ""]
    for d in data["figures"]:
        name = d["figure"]
        md += [f"### {name}", "", f"{d.get('caption', '')}", "", f"Source: {d.get('source', '')}.", ""]
        for f in d.get("files", []):
            if f.endswith(".png"):
                md += [f"![{name}]({f})", ""]
        if d.get("outcome"):
            md += [f"**Outcome:** {d['outcome']}", ""]
        for f in d.get("files", []):
            if f.endswith(".md") and (out / f).exists():
                md += [(out / f).read_text().strip(), ""]
        md += [f"<sub>Provenance: {_prov_line(d)}</sub>", ""]

    css = ("body{font-family:system-ui,sans-serif;max-width:1300px;margin:2em auto;padding:0 1em}"
           ".scroll{overflow-x:auto}code{font-size:12px}"
           "table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;"
           "padding:3px 6px;text-align:left}tr.ok td:nth-child(8){color:#060}tr.bad td{background:#fee}"
           "figure{margin:2em 0;border-top:1px solid #ddd;padding-top:1em}img{max-width:100%}"
           ".prov{color:#666;font-size:12px}.outcome{background:#f4f7fb;border-left:4px solid #4a78b5;"
           "padding:.4em .8em;margin:.3em 0 1em}")
    h = [f"<!doctype html><html><head><meta charset='utf-8'><title>softmax-stability report</title>"
         f"<style>{css}</style></head><body>", "<h1>softmax-stability report</h1>",
         f"<p>Generated {html.escape(stamp)}.</p>", "<h2 id='claims'>Claims</h2>",
         f"<p>{len(claims)} claims verified, {len(claims) - n_bad} pass, {n_bad} fail. Ratio = measured / "
         "bound (bound / measured for lower bounds); &le; 1 means the bound holds.</p>",
         f"<p>{html.escape(mutant_line)}</p>" if claims else "",
         _html_table(_CLAIM_HEAD, claims, verdict_col=_VERDICT_COL) if claims else "<p>verify has not run.</p>",
         ("<h3>Surviving mutants</h3>" + _html_table(["claim", "mutant", "change", "why it survived"],
                                                     survivors)) if survivors else "",
         "<h2 id='proofs'>Symbolic checks</h2>",
         _html_table(_PROOF_HEAD, proofs, verdict_col=3) if proofs else "<p>not run.</p>",
         "<h2 id='figures'>Figures and tables</h2>"]
    for d in data["figures"]:
        name = html.escape(d["figure"])
        h.append(f"<figure id='{name}'><h3>{name}</h3>")
        for f in d.get("files", []):
            if f.endswith(".png"):
                h.append(f"<img src='{html.escape(f)}' alt='{name}'>")
        if d.get("outcome"):
            h.append(f"<p class='outcome'><b>Outcome:</b> {html.escape(d['outcome'])}</p>")
        for f in d.get("files", []):
            if f.endswith(".md") and (out / f).exists():
                h.append(f"<div class='note'>{markdown_to_html((out / f).read_text())}</div>")
        links = " ".join(f"<a href='{html.escape(f)}'>{html.escape(f)}</a>" for f in d.get("files", []))
        h.append(f"<figcaption>{html.escape(d.get('caption', ''))}<br>Source: {html.escape(d.get('source', ''))}"
                 f"<div class='prov'>{html.escape(_prov_line(d))}<br>{links}</div></figcaption></figure>")
    h.append(_SELF_CHECK)
    h.append("</body></html>")
    p_html = atomic_write_text(out / "index.html", "\n".join(h))
    p_md = atomic_write_text(out / "REPORT.md", "\n".join(md))
    return p_html, p_md


def _replace_between(text: str, tag: str, body: str) -> str:
    start = text.index(f"<!-- {tag}")
    start = text.index("-->", start) + 3
    end = text.index(f"<!-- /{tag} -->", start)
    return text[:start] + "\n" + body.strip() + "\n" + text[end:]


def update_readme(path: str | Path) -> Path:
    """Regenerate the README's claims table and figure gallery from the registries."""
    from figures._common import gallery_markdown
    from softmax_stability.claims import claims_markdown

    path = Path(path)
    text = _replace_between(path.read_text(), "claims-table", claims_markdown())
    text = _replace_between(text, "gallery", gallery_markdown())
    return atomic_write_text(path, text)


def main(argv: list[str] | None = None) -> int:
    from softmax_stability._io import ensure_writable_dir

    repo = Path(__file__).resolve().parent.parent
    from figures._common import prog_name as _prog

    ap = argparse.ArgumentParser(prog=_prog("report"), formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                 description="Build index.html and REPORT.md from what the other steps wrote.")
    ap.add_argument("--out", default=str(repo / "figures" / "out"), help="output directory to read and write")
    ap.add_argument("--update-readme", action="store_true",
                    help="regenerate README.md's claims table and gallery instead of the report")
    args = ap.parse_args(argv)
    if args.update_readme:
        print(f"updated {update_readme(repo / 'README.md')}")
        return 0
    out = ensure_writable_dir(args.out, "--out")
    p_html, p_md = build_report(out)
    print(f"report: {p_html}\nreport: {p_md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
