"""The invoice renderer adapter: Jinja2 templates to PDF with WeasyPrint.

Only this module imports weasyprint. Every value is autoescaped by Jinja2, and WeasyPrint's
URL fetcher may load nothing but files inside the template folder and data: URIs (the
tenant's logo): no network, no file outside it.

Templates are versioned and an invoice records the one it was issued with. From
`invoice_v2.html` on, a template `X.html` is styled by `X.css`, which the renderer parses once
per process and passes with every document (the HTML does not link it): its @font-face fonts
are registered once in the kept FontConfiguration instead of being fetched and installed for
every invoice. `invoice_v1.html` links its stylesheet itself and renders as it always did.

Three context keys are the renderer's, not the template's: `attachments`, files embedded in the
PDF (a list of `Attachment`: the Factur-X XML, a large invoice's lines as CSV), `pdf_variant`
(e.g. "pdf/a-3b", which PDF/A-3 e-invoices need) and `xmp_rdf`, rdf:Description elements
(bytes) added inside the PDF's XMP metadata packet, next to WeasyPrint's own (the Factur-X
properties and their PDF/A extension schema: WeasyPrint's `xmp_metadata` option would put them
in a second rdf:RDF, where XMP readers expect one and read the first).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

import jinja2

from .. import plurals
from ..config import PROJECT_ROOT

TEMPLATE_DIR = PROJECT_ROOT / "templates" / "invoices"
LINKS_OWN_STYLESHEET = frozenset({"invoice_v1.html"})


@dataclass(frozen=True)
class Attachment:
    """A file embedded in a PDF. `relationship` is PDF/A-3's AFRelationship: "Data" for the
    Factur-X XML that states the invoice's content, "Supplement" for a CSV of its lines."""

    name: str
    data: bytes
    mime: str
    description: str = ""
    relationship: str = "Supplement"


class InvoiceRenderer(Protocol):
    def render(self, template: str, context: Mapping[str, Any]) -> bytes: ...

    def render_many(self, jobs: Sequence[tuple[str, Mapping[str, Any]]],
                    processes: int = 1) -> list[bytes | Exception]:
        """Each job's PDF, or the exception that stopped it, in order."""


def confined_fetcher(root: Path):
    """A WeasyPrint URL fetcher that serves regular files under `root` (after resolving links
    and '..') and data: URIs; http(s), other schemes and any other file are refused, and a
    refused fetch fails the render rather than producing a document without it."""
    import mimetypes
    import os
    from urllib.parse import urlsplit
    from urllib.request import url2pathname

    from weasyprint.urls import URLFetcher, URLFetcherResponse

    real_root = os.path.realpath(root)

    class TemplateDirFetcher(URLFetcher):
        def fetch(self, url, headers=None):
            parts = urlsplit(url)
            scheme = parts.scheme.lower()
            if scheme == "data":
                return super().fetch(url, headers)  # decoded in memory, no I/O
            if scheme != "file" or parts.netloc not in ("", "localhost"):
                raise ValueError(f"blocked URL: {url[:80]}")
            path = os.path.realpath(url2pathname(parts.path))
            if os.path.commonpath((path, real_root)) != real_root or not os.path.isfile(path):
                raise ValueError(f"blocked path outside the template folder: {url[:80]}")
            with open(path, "rb") as handle:
                body = handle.read()
            mime = mimetypes.guess_type(path)[0] or "application/octet-stream"
            return URLFetcherResponse(url, body, {"Content-Type": mime})

    return TemplateDirFetcher(fail_on_errors=True, allowed_protocols=("file", "data"))


@jinja2.pass_context
def _counted(context, n: int, one: str, other: str) -> str:
    """`{{ n|counted("payment", "payments") }}` in a document: "1 payment", "1,250 payments" (the
    number in the context's `locale`, if it has one, the noun by English's plural rule)."""
    return plurals.counted(n, one, other, context.get("locale") or "en")


class WeasyPrintRenderer:
    def __init__(self, template_dir: Path = TEMPLATE_DIR):
        self.template_dir = template_dir
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(template_dir)),
                                      autoescape=True, undefined=jinja2.StrictUndefined)
        self.env.filters["counted"] = _counted
        self._fetcher = None  # made at the first render: importing WeasyPrint takes about 1 s
        self._font_config = None
        self._stylesheets: dict[str, list] = {}  # per template, parsed once (see the module doc)
        self._image_cache: dict = {}  # the template's own assets and logos, per process
        # Pango is not thread-safe: two renders at once in one process abort it (seen with
        # concurrent finalize requests). Threads render one at a time; processes scale out.
        self._lock = threading.Lock()

    @property
    def fetcher(self):
        if self._fetcher is None:
            self._fetcher = confined_fetcher(self.template_dir)
        return self._fetcher

    def html(self, template: str, context: Mapping[str, Any]) -> str:
        return self.env.get_template(template).render(**context)

    def stylesheet_name(self, template: str) -> str | None:
        """The stylesheet the renderer passes with `template` (None: the HTML links its own)."""
        if template in LINKS_OWN_STYLESHEET:
            return None
        return template.removesuffix(".html") + ".css"

    def standalone_html(self, template: str, context: Mapping[str, Any]) -> str:
        """The same document with its stylesheet linked, as a browser or plain WeasyPrint
        (relative to the template folder) would render it."""
        html, css = self.html(template, context), self.stylesheet_name(template)
        return html if css is None else html.replace("<head>", f'<head>\n<link rel="stylesheet" href="{css}">', 1)

    def render(self, template: str, context: Mapping[str, Any]) -> bytes:
        from weasyprint.urls import FatalURLFetchingError

        with self._lock:
            try:
                return self._render(template, context)
            except FatalURLFetchingError as exc:  # a BaseException: would pass callers' `except Exception`
                raise RenderError(f"{exc} ({exc.__cause__})") from exc

    def render_many(self, jobs: Sequence[tuple[str, Mapping[str, Any]]],
                    processes: int = 1) -> list[bytes | Exception]:
        """Render (template, context) jobs, in order. One process renders one document at a
        time (Pango), so with `processes` > 1 the jobs go to a pool of that many fresh worker
        processes (spawned: they inherit no database connection), each keeping its own
        renderer for all the jobs it gets. A job that fails yields its exception (from a worker:
        a RenderError naming it) in its place; the other jobs are rendered."""
        if processes <= 1 or len(jobs) <= 1:
            return [self._attempt(template, context) for template, context in jobs]
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        workers = min(processes, len(jobs))
        results: list[bytes | Exception] = []
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_start_worker, initargs=(self.template_dir,)) as pool:
            try:
                for result in pool.map(_render_in_worker, jobs, chunksize=max(1, len(jobs) // (workers * 8))):
                    results.append(result)
            except BrokenProcessPool as exc:  # a worker died (killed, out of memory, Pango abort)
                failure = RenderError(f"a rendering worker process died: {exc}")
                results += [failure] * (len(jobs) - len(results))
        return results

    def _attempt(self, template: str, context: Mapping[str, Any]) -> bytes | Exception:
        try:
            return self.render(template, context)
        except Exception as exc:  # reported to the caller in the job's place, not raised
            return exc

    def _render(self, template: str, context: Mapping[str, Any]) -> bytes:
        import base64

        import weasyprint
        from weasyprint.text.fonts import FontConfiguration

        if self._font_config is None:
            self._font_config = FontConfiguration()
        base_url = self.template_dir.as_uri() + "/"
        html = self.html(template, context)
        # As data: URIs, so that the embedded file's MIME type (its /Subtype) is the attachment's.
        attachments = [weasyprint.Attachment(url=f"data:{a.mime};base64,{base64.b64encode(a.data).decode()}",
                                             name=a.name, description=a.description,
                                             relationship=a.relationship, url_fetcher=self.fetcher)
                       for a in context.get("attachments") or ()]
        if template not in self._stylesheets:
            css = self.stylesheet_name(template)
            self._stylesheets[template] = [] if css is None else [weasyprint.CSS(
                url=base_url + css, url_fetcher=self.fetcher, font_config=self._font_config)]
        document = weasyprint.HTML(string=html, base_url=base_url,
                                   url_fetcher=self.fetcher)
        # Defaults otherwise: fonts are subset (with HarfBuzz), images resampled to 150 dpi.
        options = {"attachments": attachments} if attachments else {}
        if context.get("pdf_variant"):
            options["pdf_variant"] = context["pdf_variant"]
            options["finisher"] = _pdfa_finisher(context.get("xmp_rdf"))
        return document.write_pdf(stylesheets=self._stylesheets[template], font_config=self._font_config,
                                  dpi=150, cache=self._image_cache, **options)


def _pdfa_finisher(rdf: bytes | None):
    """A WeasyPrint finisher for PDF variants: lists each associated file once in the catalog's
    /AF (WeasyPrint 70 lists every attachment twice there) and puts `rdf` inside the rdf:RDF of
    the XMP packet it wrote."""
    def finish(document, pdf) -> None:
        import pydyf

        if "AF" in pdf.catalog:
            pdf.catalog["AF"] = pydyf.Array(dict.fromkeys(pdf.catalog["AF"]))
        if not rdf:
            return
        if "Metadata" not in pdf.catalog:
            raise RenderError("the PDF has no XMP metadata to add to")
        metadata = pdf.objects[int(pdf.catalog["Metadata"].split()[0])]
        packet = b"".join(part if isinstance(part, bytes) else str(part).encode() for part in metadata.stream)
        if b"</rdf:RDF>" not in packet:
            raise RenderError("the PDF's XMP metadata has no rdf:RDF to add to")
        metadata.stream = [packet.replace(b"</rdf:RDF>", rdf + b"</rdf:RDF>", 1)]
    return finish


class RenderError(Exception):
    """A job that failed in a worker process (the original exception may not pickle)."""


_worker_renderer: WeasyPrintRenderer | None = None


def _start_worker(template_dir: Path) -> None:
    global _worker_renderer
    _worker_renderer = WeasyPrintRenderer(template_dir)


def _render_in_worker(job: tuple[str, Mapping[str, Any]]) -> bytes | Exception:
    result = _worker_renderer._attempt(*job)
    return RenderError(f"{type(result).__name__}: {result}") if isinstance(result, Exception) else result
