"""One-page evaluation reports (Markdown and self-contained HTML) from the metrics of :func:`evaluate`.

Both list the summary first (means, standard deviations, what was evaluated and how), then the
worst views by PSNR with their comparison pictures, then a table of every evaluated image, worst
first. Pictures are referenced by relative file name, so the report folder can be moved or zipped.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from urllib.parse import quote

from ..data.files import write_atomic

N_WORST = 5
LEGEND = ("ground truth | render | error map (mean absolute error over channels; top colour = 0.25) | "
          "depth of the visible surface (near = bright)")


def ranked(per_image: list[dict]) -> list[dict]:
    """Per-image records sorted worst first: ascending PSNR (a perfect, infinite PSNR is last), then name."""
    def key(r):
        p = r.get("psnr")
        return (math.inf if p is None or math.isnan(p) else p, r["name"])

    return sorted(per_image, key=key)


def _num(x, digits: int) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return f"{x:.{digits}f}"


def _pm(m: dict, key: str, digits: int) -> str:
    if m.get(key) is None:
        return "n/a"
    return f"{_num(m[key], digits)} ± {_num(m.get(key + '_std'), digits)}"


def summary_rows(m: dict) -> list[tuple[str, str]]:
    """(label, value) pairs shown at the top of both reports."""
    w, h = m["resolution"]
    n_split = m.get("n_split", m["n_images"])
    images = f"{m['n_images']}" + (f" of {n_split}" if n_split != m["n_images"] else "")
    lp = _pm(m, "lpips", 4) if m.get("lpips") is not None else (m.get("lpips_note") or "n/a")
    return [
        ("PSNR (dB)", _pm(m, "psnr", 2)), ("SSIM", _pm(m, "ssim", 4)), ("LPIPS (VGG)", lp),
        ("split", f"{m['split']}: {images} images"),
        ("resolution", f"{w} x {h} px (downscale {m.get('downscale', 1)})"),
        ("background", str(m["background"])),
        ("method", f"{m['method']}, step {m['step']}, {m['train_time_s']:.1f} s of training"),
        ("model", f"{m.get('source_kind', 'run')} {m.get('source', '')}"),
        ("ground truth", str(m.get("data", ""))),
    ]


def report_markdown(m: dict) -> str:
    """The Markdown report (GitHub-flavoured tables and relative image links)."""
    rows = ranked(m["per_image"])
    lines = [f"# Evaluation: {m['method']} on {m['split']}", "",
             "| | |", "|---|---|", *[f"| {k} | {_md(v)} |" for k, v in summary_rows(m)], "",
             f"## Worst {min(N_WORST, len(rows))} views by PSNR", "", f"Each picture: {LEGEND}.", ""]
    for r in rows[:N_WORST]:
        lines += [f"**{_md(r['name'])}**: PSNR {_num(r['psnr'], 2)} dB, SSIM {_num(r['ssim'], 4)}", ""]
        if r.get("picture"):
            lines += [f"![{_md(r['name'])}]({quote(r['picture'])})", ""]
    lines += [f"## All {len(rows)} images, worst first", "",
              "| # | image | PSNR (dB) | SSIM | LPIPS |", "|---:|---|---:|---:|---:|"]
    for i, r in enumerate(rows, 1):
        name = f"[{_md(r['name'])}]({quote(r['picture'])})" if r.get("picture") else _md(r["name"])
        lines.append(f"| {i} | {name} | {_num(r['psnr'], 2)} | {_num(r['ssim'], 4)} | {_num(r.get('lpips'), 4)} |")
    return "\n".join(lines) + "\n"


def _md(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.summary td:first-child{color:#666}.big{font-size:1.3em;font-weight:600}
figure{margin:1em 0}figure img{width:100%;image-rendering:pixelated;border:1px solid #ccc}
img.thumb{height:40px;image-rendering:pixelated}figcaption{color:#444}.note{color:#666;font-size:.9em}
"""


def report_html(m: dict) -> str:
    """A self-contained HTML page (inline style, no scripts or remote resources; pictures by relative name)."""
    e = html.escape
    rows = ranked(m["per_image"])
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>Evaluation: {e(m['method'])} on {e(m['split'])}</title><style>{_CSS}</style></head><body>",
           f"<h1>Evaluation: {e(m['method'])} on {e(m['split'])}</h1>", '<table class="summary">']
    for i, (k, v) in enumerate(summary_rows(m)):
        cls = ' class="big"' if i < 2 else ""
        out.append(f"<tr><td>{e(k)}</td><td{cls}>{e(v)}</td></tr>")
    out += ["</table>", f"<h2>Worst {min(N_WORST, len(rows))} views by PSNR</h2>",
            f'<p class="note">Each picture: {e(LEGEND)}.</p>']
    for r in rows[:N_WORST]:
        cap = f"{e(r['name'])}: PSNR {_num(r['psnr'], 2)} dB, SSIM {_num(r['ssim'], 4)}"
        img = f'<img src="{e(quote(r["picture"]))}" alt="{e(r["name"])}">' if r.get("picture") else ""
        out.append(f"<figure>{img}<figcaption>{cap}</figcaption></figure>")
    out += [f"<h2>All {len(rows)} images, worst first</h2>", "<table>",
            '<tr><th class="n">#</th><th>image</th><th class="n">PSNR (dB)</th><th class="n">SSIM</th>'
            '<th class="n">LPIPS</th><th>comparison</th></tr>']
    for i, r in enumerate(rows, 1):
        pic = r.get("picture")
        link = f'<a href="{e(quote(pic))}">{e(r["name"])}</a>' if pic else e(r["name"])
        thumb = f'<img class="thumb" loading="lazy" src="{e(quote(pic))}" alt="">' if pic else ""
        out.append(f'<tr><td class="n">{i}</td><td>{link}</td><td class="n">{_num(r["psnr"], 2)}</td>'
                   f'<td class="n">{_num(r["ssim"], 4)}</td><td class="n">{_num(r.get("lpips"), 4)}</td>'
                   f"<td>{thumb}</td></tr>")
    out += ["</table>", '<p class="note">Metrics: PSNR on [0, 1] RGB; SSIM with an 11x11 Gaussian window '
            "(sigma 1.5); means and population standard deviations over the images above. "
            "Full numbers: metrics.json.</p>", "</body></html>"]
    return "\n".join(out) + "\n"


def write_reports(metrics: dict, out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.md`` and ``report.html`` into ``out_dir`` (temporary names, then renamed)."""
    out_dir = Path(out_dir)
    written = {}
    for name, text in (("report.md", report_markdown(metrics)), ("report.html", report_html(metrics))):
        written[name] = write_atomic(out_dir / name, text)
    return written
