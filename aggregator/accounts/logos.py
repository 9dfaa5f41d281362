"""A tenant's logo: a base64 `data:` URI of a PNG, JPEG, GIF, WebP or SVG image that invoices embed.

`logo_problem` says what is wrong with one (None: it is a real image of the type it claims, within
the limits), so that a logo is refused when it is set, and a stored one that cannot be read is left
out of the PDF instead of failing every invoice of the tenant.
"""
from __future__ import annotations

import base64
import binascii
import functools
import io
import re

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

MAX_URI_CHARS = 300_000  # about 220 kB of image
MAX_PIXELS = 4000 * 4000  # beyond this, decoding it is a cost, not a logo
MAX_SIDE = 4000

#: the media type a data: URI names -> the format Pillow reads in it (None: SVG, read as XML)
MEDIA_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/webp": "WEBP",
               "image/svg+xml": None}

_DATA_URI = re.compile(r"data:(image/[a-z+]+);base64,([A-Za-z0-9+/]*={0,2})", re.ASCII)
_SVG = "{http://www.w3.org/2000/svg}svg"


@functools.lru_cache(maxsize=32)  # rendering asks for every invoice of the tenant's
def logo_problem(uri: str) -> str | None:
    """What makes `uri` unusable as a logo, or None."""
    if len(uri) > MAX_URI_CHARS:
        return f"A logo may be at most {MAX_URI_CHARS:,} characters as a data: URI."
    match = _DATA_URI.fullmatch(uri)
    if not match or match.group(1) not in MEDIA_TYPES:
        return "A base64 data: URI of a PNG, JPEG, GIF, WebP or SVG image (data:image/png;base64,…)."
    media_type, encoded = match.groups()
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return "The logo's base64 data is not valid base64."
    if not data:
        return "The logo is empty."
    expected = MEDIA_TYPES[media_type]
    return _svg_problem(data) if expected is None else _bitmap_problem(data, expected, media_type)


def _bitmap_problem(data: bytes, expected: str, media_type: str) -> str | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data), formats=[expected]) as image:
            width, height = image.size
            if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
                return f"The logo is {width}×{height} pixels: at most {MAX_SIDE}×{MAX_SIDE}."
            image.verify()
    except (UnidentifiedImageError, Image.DecompressionBombError):
        return f"The logo is not a {media_type} image."
    except Exception as exc:  # Pillow raises what the decoder met: OSError, SyntaxError, ValueError, …
        return f"The logo is not a readable {media_type} image ({type(exc).__name__})."
    return None


def _svg_problem(data: bytes) -> str | None:
    """Well-formed XML whose root is an <svg> element, without a document type (no entities to
    expand, nothing fetched): the parser itself refuses them (defusedxml), whatever the encoding
    (a UTF-16 document hides `<!DOCTYPE` from a look at the bytes)."""
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        return "An SVG logo may not declare a DOCTYPE or entities."
    try:
        root = fromstring(data, forbid_dtd=True)
    except DefusedXmlException:
        return "An SVG logo may not declare a DOCTYPE or entities."
    except ParseError as exc:
        return f"The logo is not well-formed SVG ({exc})."
    if root.tag != _SVG:
        return "The logo is not SVG: its root element is not <svg> in the SVG namespace."
    return None
