"""The look of every HTML email, in one place, written into each element's `style` attribute.

Mail clients drop or ignore `<style>` sheets (Gmail's app, Outlook's Word engine, many webmail
clients strip them): only inline styles reach every reader. The templates stay plain semantic
HTML (`templates/emails/_layout.html` is the one shared layout); `inline(html)` gives each
opening tag of `STYLES` its style, and a `class` its extra declarations. The mail templates'
loader applies it to each HTML template's source once, when it is loaded (messages.py), so no
message pays for it; the values rendered in later are autoescaped and bring no tag.

A tag is `<name>` or `<name attributes…>` with plain attributes: one whose attributes a Jinja
statement writes (`<p{% if x %} class="…"{% endif %}>`) is not seen; write two tags instead. A
tag that already has a `style` attribute (the layout's frame) keeps it as written.
"""
from __future__ import annotations

import re

INK, MUTED, RULE, ACCENT, PAPER, PANEL = "#1f2933", "#616e7c", "#e4e7eb", "#2f5fd0", "#ffffff", "#f5f7fa"
FONT = "-apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"

#: Declarations per tag, and per `tag.class`, appended to the tag's.
STYLES: dict[str, str] = {
    "h1": f"margin: 0 0 16px; font-family: {FONT}; font-size: 20px; line-height: 28px; font-weight: 600; "
          f"color: {INK};",
    "p": f"margin: 0 0 16px; font-family: {FONT}; font-size: 15px; line-height: 22px; color: {INK};",
    "p.note": f"font-size: 13px; line-height: 19px; color: {MUTED};",
    "p.action": f"padding: 12px 16px; background: {PANEL}; border-left: 3px solid {ACCENT};",
    "ul": f"margin: 0 0 16px; padding-left: 20px; font-family: {FONT}; font-size: 15px; line-height: 22px; "
          f"color: {INK};",
    "li": "margin: 0 0 4px;",
    "table": f"width: 100%; margin: 0 0 20px; border-collapse: collapse; font-family: {FONT}; font-size: 14px; "
             f"line-height: 20px; color: {INK};",
    "th": f"padding: 6px 12px 6px 0; border-bottom: 1px solid {RULE}; text-align: left; vertical-align: top; "
          f"font-weight: 600; color: {MUTED}; white-space: nowrap;",
    "td": f"padding: 6px 12px 6px 0; border-bottom: 1px solid {RULE}; text-align: left; vertical-align: top;",
    "th.num": "text-align: right;",
    "td.num": "text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums;",
    "tr.total": "font-weight: 600;",
    "strong": f"font-weight: 600; color: {INK};",
    "a": f"color: {ACCENT}; text-decoration: underline;",
    "a.button": f"display: inline-block; padding: 10px 18px; border-radius: 4px; background: {ACCENT}; "
                f"color: {PAPER}; font-weight: 600; text-decoration: none;",
    "code": f"padding: 1px 4px; border-radius: 3px; background: {PANEL}; font-family: Menlo, Consolas, monospace; "
            f"font-size: 13px;",
}

_TAGS = sorted({key.partition(".")[0] for key in STYLES}, key=len, reverse=True)
_OPENING = re.compile(r"<(" + "|".join(_TAGS) + r")(\s[^<>]*)?>")
_CLASS = re.compile(r'\sclass="([^"]*)"')


def style_of(tag: str, classes: str = "") -> str:
    """The declarations of a tag with these classes (space-separated)."""
    return " ".join(filter(None, [STYLES.get(tag, "")] + [STYLES.get(f"{tag}.{c}", "") for c in classes.split()]))


def _styled(match: re.Match) -> str:
    tag, attributes = match.group(1), match.group(2) or ""
    if re.search(r"\sstyle=", attributes):
        return match.group(0)
    found = _CLASS.search(attributes)
    declarations = style_of(tag, found.group(1) if found else "")
    trailing_slash = attributes.endswith("/")
    attributes = attributes[:-1] if trailing_slash else attributes
    return f'<{tag}{attributes} style="{declarations}"{" /" if trailing_slash else ""}>'


def inline(html: str) -> str:
    """The HTML with each styled tag's declarations in its `style` attribute."""
    return _OPENING.sub(_styled, html)

#: The shared layout's frame (`templates/emails/_layout.html`), written there as its styles.
FRAME: dict[str, str] = {
    "body": f"margin: 0; padding: 0; background: {PANEL};",
    "preheader": "display: none; max-height: 0; max-width: 0; overflow: hidden; opacity: 0; font-size: 1px; "
                 "line-height: 1px;",
    "page": f"width: 100%; margin: 0; background: {PANEL}; border-collapse: collapse;",
    "gutter": "padding: 24px 12px;",
    "card": f"width: 100%; max-width: 600px; margin: 0 auto; background: {PAPER}; border: 1px solid {RULE}; "
            f"border-radius: 6px; border-collapse: separate;",
    "test_banner": f"padding: 8px 32px; background: #fff4ce; color: #7a5d00; font-family: {FONT}; font-size: 12px; "
                   f"line-height: 16px; font-weight: 600; letter-spacing: 0.04em; text-transform: uppercase; "
                   f"border-radius: 6px 6px 0 0;",
    "brand": f"padding: 24px 32px 0; font-family: {FONT}; font-size: 16px; line-height: 22px; font-weight: 600; "
             f"color: {INK};",
    "content": "padding: 16px 32px 4px;",
    "footer": f"padding: 16px 32px 8px; border-top: 1px solid {RULE};",
}
