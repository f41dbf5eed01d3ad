"""The evaluation report: Markdown for the Dagster UI and a self-contained HTML page (plots embedded)."""
from __future__ import annotations

import base64
import html
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

PVCTR_NOTE = (
    "PVCTR@k here is an **offline proxy** of the online page-view CTR: logged page views are replayed, their "
    "impressions re-ranked by the model's score, and a page view counts as clicked when a clicked impression "
    "lands in the top k. It is not an A/B-test result."
)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "" if pd.isna(value) else f"{value:.4f}"
    return str(value)


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no tabulate dependency)."""
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(_fmt(row[c]) for c in cols) + " |")
    return "\n".join(lines)


def _html_table(table: pd.DataFrame, highlight: str | None) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    rows = []
    for _, row in table.iterrows():
        cls = ' class="ours"' if highlight is not None and row.get("model") == highlight else ""
        cells = "".join(f"<td>{html.escape(_fmt(row[c]))}</td>" for c in table.columns)
        rows.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _img(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(Path(path).stem)}" src="data:image/png;base64,{data}">'


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;color:#222;
padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:right}
th{background:#f4f6f8}td:first-child,th:first-child{text-align:left}tr.ours{background:#eef7ee;font-weight:600}
.headline{display:flex;gap:1em;flex-wrap:wrap}
.card{border:1px solid #ddd;border-radius:8px;padding:.8em 1.2em;min-width:180px}
.card .v{font-size:1.6em;font-weight:700}.note{color:#555;font-size:.9em}img{max-width:100%;margin:.5em 0}
.pass{color:#1a7f37}.fail{color:#cf222e}.kept{color:#555}code{background:#f4f6f8;padding:0 .3em}
"""


CI_NOTE = (
    "Every interval is a 95 % percentile interval from a bootstrap that resamples page views (the impressions of "
    "one page are correlated, so rows are not resampled one by one). Differences between two models are paired: "
    "both are scored on the same resamples; a difference is significant when its interval excludes 0."
)
SELECTION_NOTE = (
    "Selection uses the validation split only: freeze level and epochs (early stopping) per model, the best "
    "baseline, and the promoted model. The test split is reported, never used to choose."
)


def _section_md(title: str, table: pd.DataFrame | None, intro: str = "") -> list[str]:
    if table is None or not len(table):
        return []
    return [f"## {title}", ""] + ([intro, ""] if intro else []) + [markdown_table(table), ""]


def write_evaluation_report(
    out_dir: Path,
    *,
    title: str,
    ours: str,
    sections: list[tuple[str, pd.DataFrame, str]],
    headline: dict[str, str] | None = None,
    plots: dict[str, Path] | None = None,
    lineage: dict[str, Any] | None = None,
    decision: dict[str, Any] | None = None,
    notes: list[str] | None = None,
) -> dict[str, Path]:
    """Write `report.md` and `report.html` into `out_dir`; returns their paths.

    `sections`: (title, table, intro) in display order — one row per model (column `model`) or per domain.
    `decision`: {"serving", "promote", "reasons"} from the champion / challenger gate.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = plots or {}
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    all_notes = [PVCTR_NOTE, CI_NOTE, SELECTION_NOTE, *(notes or [])]
    md = [f"# {title}", "", f"_Generated {generated}. Model under test: **{ours}**._", ""]
    if headline:
        md += [" · ".join(f"**{k}**: {v}" for k, v in headline.items()), ""]
    if decision:
        md += ["## Which model serves, and why", "", f"Serving: **{decision.get('serving')}** "
               f"({'newly promoted' if decision.get('promote') else 'kept'})", ""]
        md += [f"- {r}" for r in decision.get("reasons", [])] + [""]
    for name, table, intro in sections:
        md += _section_md(name, table, intro)
    md += ["## Notes", ""] + [f"- {n}" for n in all_notes] + [""]
    if plots:
        md += ["## Plots", ""] + [f"![{name}]({Path(p).name})" for name, p in plots.items()] + [""]
    if lineage:
        md += ["## Lineage", ""] + [f"- **{k}**: `{v}`" for k, v in lineage.items()] + [""]
    md_path = out_dir / "report.md"
    md_path.write_text("\n".join(md))

    cards = "".join(
        f'<div class="card"><div>{html.escape(k)}</div><div class="v">{html.escape(str(v))}</div></div>'
        for k, v in (headline or {}).items()
    )
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p class='note'>Generated {generated}. "
        f"Model under test: <b>{html.escape(ours)}</b>.</p>",
        f"<div class='headline'>{cards}</div>",
    ]
    if decision:
        status = "pass" if decision.get("promote") else "kept"
        parts += [
            "<h2>Which model serves, and why</h2>",
            f"<p class='{status}'><b>Serving {html.escape(str(decision.get('serving')))}</b> "
            f"({'newly promoted' if decision.get('promote') else 'kept'})</p>",
            "<ul>" + "".join(f"<li>{html.escape(r)}</li>" for r in decision.get("reasons", [])) + "</ul>",
        ]
    for name, table, intro in sections:
        if table is not None and len(table):
            parts.append(f"<h2>{html.escape(name)}</h2>")
            if intro:
                parts.append(f"<p class='note'>{html.escape(intro)}</p>")
            parts.append(_html_table(table, ours))
    if plots:
        parts += ["<h2>Plots</h2>"] + [_img(p) for p in plots.values()]
    parts += ["<h2>Notes</h2><ul>"] + [f"<li>{html.escape(n).replace('**', '')}</li>" for n in all_notes] + ["</ul>"]
    if lineage:
        parts += ["<h2>Lineage</h2><ul>"]
        parts += [f"<li><b>{html.escape(k)}</b>: <code>{html.escape(str(v))}</code></li>" for k, v in lineage.items()]
        parts += ["</ul>"]
    parts.append("</body></html>")
    html_path = out_dir / "report.html"
    html_path.write_text("".join(parts))
    return {"md": md_path, "html": html_path}
