"""A small document model rendered both as HTML and as Markdown: headings, paragraphs, tables, figures."""


from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas._atomic import atomic_write_bytes
from nas.report._load import NOT_RECORDED, ReportError, number
from nas.report._plots import (
    figure_png,
)

__all__ = ["FIGURES_DIR", "Cell"]


FIGURES_DIR = "report_figures"


@dataclass(frozen=True)
class Link:
    text: str
    href: str


Cell = str | Link


@dataclass(frozen=True)
class Table:
    headers: Sequence[str]
    rows: Sequence[Sequence[Cell]]
    row_attrs: Sequence[str] = ()  # one HTML attribute string per row (e.g. 'data-model="3"'), optional
    numeric: Sequence[bool] = ()

    def html(self) -> str:
        num = list(self.numeric) or [False] * len(self.headers)
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.headers)
        body = []
        for i, row in enumerate(self.rows):
            attrs = f" {self.row_attrs[i]}" if i < len(self.row_attrs) and self.row_attrs[i] else ""
            cells = "".join(
                f"<td{' class=num' if k < len(num) and num[k] else ''}>{_cell_html(c)}</td>"
                for k, c in enumerate(row)
            )
            body.append(f"<tr{attrs}>{cells}</tr>")
        # A wide table scrolls inside its own box rather than widening the page.
        return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'

    def md(self) -> str:
        num = list(self.numeric) or [False] * len(self.headers)
        lines = [
            "| " + " | ".join(_md_escape(h) for h in self.headers) + " |",
            "|"
            + "|".join("---:" if k < len(num) and num[k] else "---" for k in range(len(self.headers)))
            + "|",
        ]
        lines += ["| " + " | ".join(_cell_md(c) for c in row) + " |" for row in self.rows]
        return "\n".join(lines)


def _cell_html(c: Cell) -> str:
    if isinstance(c, Link):
        return f'<a href="{html.escape(c.href, quote=True)}">{html.escape(c.text)}</a>'
    return html.escape(c)


def _cell_md(c: Cell) -> str:
    if isinstance(c, Link):
        return f"[{_md_escape(c.text)}]({c.href.replace(' ', '%20')})"
    return _md_escape(c)


def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


@dataclass
class Doc:
    """The report being built: HTML and Markdown side by side, and the figures to write."""

    out_dir: Path
    html_parts: list[str] = field(default_factory=list)
    md_parts: list[str] = field(default_factory=list)
    figures: dict[str, bytes] = field(default_factory=dict)

    def heading(self, text: str, level: int = 2, anchor: str | None = None) -> None:
        ident = f' id="{html.escape(anchor, quote=True)}"' if anchor else ""
        self.html_parts.append(f"<h{level}{ident}>{html.escape(text)}</h{level}>")
        self.md_parts.append(f"{'#' * level} {text}")

    def para(self, text: str, *, note: bool = False) -> None:
        cls = ' class="note"' if note else ""
        self.html_parts.append(f"<p{cls}>{html.escape(text)}</p>")
        self.md_parts.append(f"> {text}" if note else text)

    def facts(self, items: Sequence[tuple[str, str]]) -> None:
        rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in items)
        self.html_parts.append(f'<div class="scroll"><table class="facts">{rows}</table></div>')
        self.md_parts.append("\n".join(f"- **{k}:** {v}" for k, v in items))

    def bullets(self, items: Sequence[str]) -> None:
        self.html_parts.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>")
        self.md_parts.append("\n".join(f"- {i}" for i in items))

    def table(self, table: Table, *, details: str | None = None) -> None:
        if details is None:
            self.html_parts.append(table.html())
            self.md_parts.append(table.md())
            return
        self.html_parts.append(f"<details><summary>{html.escape(details)}</summary>{table.html()}</details>")
        self.md_parts.append(f"<details><summary>{details}</summary>\n\n{table.md()}\n\n</details>")

    def details(self, summary: str, items: Sequence[str]) -> None:
        """A list folded away under ``summary`` (in Markdown, a plain list after it)."""
        inner = "".join(f"<li>{html.escape(i)}</li>" for i in items)
        self.html_parts.append(f"<details><summary>{html.escape(summary)}</summary><ul>{inner}</ul></details>")
        self.md_parts.append(f"<details><summary>{summary}</summary>\n\n" + "\n".join(f"- {i}" for i in items) + "\n\n</details>")

    def pre(self, text: str) -> None:
        self.html_parts.append(f"<pre>{html.escape(text)}</pre>")
        self.md_parts.append("```\n" + text.replace("```", "'''") + "\n```")

    def figure(self, name: str, fig: Any, caption: str) -> None:
        png = figure_png(fig)
        self.figures[name] = png
        data = base64.b64encode(png).decode("ascii")
        alt = html.escape(caption, quote=True)
        self.html_parts.append(
            f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
        self.md_parts.append(f"![{caption}]({FIGURES_DIR}/{name})")


def fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return NOT_RECORDED
    if isinstance(v, float) and not math.isfinite(v):
        return "inf" if v > 0 else ("-inf" if v < 0 else "nan")
    if number(v):
        return f"{v:.{digits}g}"
    return str(v)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def count(v: Any) -> str:
    if not number(v):
        return "n/a"
    v = float(v)
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= size:
            return f"{v / size:.3g}{unit}"
    return f"{v:.0f}"


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1150px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #444;padding-bottom:.2em}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.8em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
thead th{background:#f0f0f0}td.num{text-align:right;font-variant-numeric:tabular-nums}
table.facts th{background:#f7f7f7;font-weight:600}
figure{margin:1em 0}img{max-width:100%;height:auto}figcaption{color:#555;font-size:.9em}
.note{background:#fff7e0;border-left:4px solid #e0a800;padding:.4em .8em}
.small{color:#666;font-size:.9em}pre{background:#f5f5f5;padding:.6em;overflow-x:auto}details{margin:.6em 0}summary{cursor:pointer}
.scroll{overflow-x:auto;max-width:100%}.scroll table{margin:0}.scroll{margin:.8em 0}
td{overflow-wrap:break-word}th{white-space:nowrap}h1{overflow-wrap:anywhere}
"""


def atomic_write(path: Path, data: bytes) -> Path:
    """Writes ``data`` to ``path`` atomically (:func:`nas._atomic.atomic_write_bytes`) and returns ``path``.

    Raises:
        ReportError: the file cannot be written; the old one is kept and no temporary file is left.
    """
    atomic_write_bytes(path, data, error=ReportError)
    return path
