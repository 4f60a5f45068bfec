"""The examples of a text dataset as Markdown: one table per group (idx, label, score, text).

Texts are arbitrary user data, so each cell is made safe for a table row: line breaks become a visible ``↵``,
control characters spaces, long texts are cut (``…``), and Markdown's syntax characters are backslash-escaped
(``|`` would end the cell, ``<`` start HTML, ``*``/``_``/``` ` ``` change the rendering). Any ASCII punctuation may be
escaped this way in CommonMark, so the rendered cell shows the text as it is.
"""

from __future__ import annotations

import unicodedata

from .examples import ExampleSet

NEWLINE_MARK = " ↵ "
ELLIPSIS = "…"
_ESCAPED = set("\\`*_[]<>|~&#!")


def escape_cell(value: object, *, max_chars: int | None = None) -> str:
    """``value`` as the text of one Markdown table cell: one line, at most ``max_chars`` visible characters."""
    text = "" if value is None else str(value)
    text = NEWLINE_MARK.join(line.strip() for line in text.strip().splitlines())
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch for ch in text).strip()
    if max_chars is not None and len(text) > max_chars:
        text = text[: max(1, max_chars - 1)].rstrip() + ELLIPSIS
    if not text:
        return "*(empty)*"
    return "".join("\\" + ch if ch in _ESCAPED else ch for ch in text)


def markdown_table(examples: ExampleSet, *, max_chars: int = 200) -> str:
    """The Markdown document: an optional title, then per group a heading and a table (or a note when empty)."""
    column = escape_cell(examples.column)
    lines: list[str] = []
    if examples.title:
        lines += [f"## {escape_cell(examples.title)}", ""]
    for group in examples.groups:
        lines += [f"### {escape_cell(examples.group_title(group))}", ""]
        rows = examples.group(group)
        if not rows:
            lines += ["*(no rows)*", ""]
            continue
        if not examples.labeled:  # an unlabeled corpus: no label column
            lines += [f"| idx | {column} | text |", "|---:|---:|---|"]
            lines += [f"| {e.idx} | {e.score_text} | {escape_cell(e.value, max_chars=max_chars)} |" for e in rows]
            lines.append("")
            continue
        lines += [f"| idx | label | {column} | text |", "|---:|---|---:|---|"]
        lines += [
            f"| {e.idx} | {escape_cell(e.label_name, max_chars=60)} | {e.score_text} | "
            f"{escape_cell(e.value, max_chars=max_chars)} |"
            for e in rows
        ]
        lines.append("")
    return "\n".join(lines)
