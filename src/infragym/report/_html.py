"""Building HTML that cannot be injected into: every string is escaped unless it is ``Html``.

Transcripts are untrusted agent output, and task names, agent names, errors and fault
labels come from episodes too. So nothing is written with string formatting: elements are
made by :func:`el`, which escapes every child and attribute value that is not already
:class:`Html`; chart figures travel as JSON data blocks with ``<``, ``>`` and ``&``
escaped (:func:`json_block`), never inside executable script. The page's
Content-Security-Policy allows exactly the two scripts it embeds (by their SHA-256), so
even a string that escaped escaping could not run.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


class Html(str):
    """Markup that is safe as it is (made by :func:`el` or from a constant)."""

    __slots__ = ()


def esc(text: object) -> Html:
    """``text`` as HTML text (``&``, ``<``, ``>``, quotes escaped); ``Html`` kept as is."""
    if isinstance(text, Html):
        return text
    return Html(html.escape(str(text), quote=True))


def _children(children: Iterable[Any]) -> Iterable[Html]:
    for c in children:
        if c is None:
            continue
        if isinstance(c, str | int | float):
            yield esc(c)
        else:
            yield from _children(c)


def el(tag: str, *children: Any, **attrs: object) -> Html:
    """``<tag attrs>children</tag>``; ``class_`` gives ``class``, ``data_x`` gives
    ``data-x``; an attribute of True is written bare, of None or False left out."""
    parts = [tag]
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        name = key.rstrip("_").replace("_", "-")
        parts.append(name if value is True else f'{name}="{esc(value)}"')
    inner = "".join(_children(children))
    return Html(f"<{' '.join(parts)}>{inner}</{tag}>")


def join(parts: Iterable[Any]) -> Html:
    return Html("".join(_children(parts)))


def header_row(*names: str) -> Html:
    return el("tr", *(el("th", n) for n in names))


def json_block(element_id: str, value: Any) -> Html:
    """A ``<script type="application/json">`` data block (never executed) holding
    ``value``; no ``</script>`` or comment opener can appear in it."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Html(f'<script type="application/json" id="{esc(element_id)}">{text}</script>')


@dataclass
class Charts:
    """A page's chart placeholders and the data blocks they draw from, numbered in page
    order (a boot script hands each block to plotly when its placeholder nears the
    screen)."""

    blocks: list[Html] = field(default_factory=list)

    def add(self, spec: dict[str, Any], height: int) -> Html:
        fig_id = f"fig-{len(self.blocks) + 1}"
        self.blocks.append(json_block(fig_id, spec))
        return el("div", class_="chart", data_fig=fig_id, style=f"height:{height}px")


def _sha256(source: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode()


def page(title: str, body: Html, *, style: str, scripts: Iterable[str]) -> str:
    """A whole document: ``scripts`` are inlined after the body (each trusted source code,
    allowed by its hash and nothing else: no network source, no inline handler)."""
    sources = [s.replace("</script", "<\\/script") for s in scripts]
    csp = "; ".join(
        [
            "default-src 'none'",
            "script-src " + " ".join(f"'{_sha256(s)}'" for s in sources),
            "style-src 'unsafe-inline'",  # plotly sets styles on its elements
            "img-src data:",
            "font-src data:",
            "base-uri 'none'",
            "form-action 'none'",
        ]
    )
    tags = "".join(f"<script>{s}</script>" for s in sources)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{style}</style></head>"
        f"<body>{body}{tags}</body></html>\n"
    )
