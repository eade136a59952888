"""Where CAP alerts come from: a file, a folder, a URL, or an Atom/RSS feed of them.

Every document is read with a size limit and, over HTTP, a timeout; XML is
parsed by the same DTD-refusing parser as the alerts themselves.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from loaxa import __version__
from loaxa.province.cap import MAX_DOCUMENT_BYTES, CapError, _safe_parse

log = logging.getLogger(__name__)

TIMEOUT_S = 20.0
MAX_FEED_ENTRIES = 50
ATOM = "{http://www.w3.org/2005/Atom}"
CAP_TYPES = ("application/cap+xml", "application/common-alerting-protocol+xml")


@dataclass(frozen=True)
class Document:
    source: str  # path or URL, for messages
    data: bytes


def is_url(source: str) -> bool:
    return urllib.parse.urlsplit(source).scheme in ("http", "https")


def fetch(source: str) -> bytes:
    """The bytes of a file or an http(s) URL, at most MAX_DOCUMENT_BYTES."""
    if is_url(source):
        request = urllib.request.Request(source, headers={"User-Agent": f"loaxa/{__version__} (CAP bridge)"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as reply:
                data = reply.read(MAX_DOCUMENT_BYTES + 1)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise CapError(f"cannot fetch {source}: {getattr(exc, 'reason', exc)}") from None
    else:
        try:
            with open(source, "rb") as f:
                data = f.read(MAX_DOCUMENT_BYTES + 1)
        except OSError as exc:
            raise CapError(f"cannot read {source}: {exc.strerror or exc}") from None
    if len(data) > MAX_DOCUMENT_BYTES:
        raise CapError(f"{source} is larger than {MAX_DOCUMENT_BYTES} bytes; refused")
    return data


def documents(source: str) -> list[Document]:
    """The CAP documents behind `source`: itself, a folder's *.xml, or a feed's entries."""
    if not is_url(source) and Path(source).is_dir():
        return [Document(str(p), fetch(str(p))) for p in sorted(Path(source).glob("*.xml"))]
    data = fetch(source)
    links = feed_links(data, source)
    if links is None:
        return [Document(source, data)]
    out = []
    for link in links[:MAX_FEED_ENTRIES]:
        try:
            out.append(Document(link, fetch(link)))
        except CapError as exc:
            log.warning("%s", exc)
    return out


def feed_links(data: bytes, base: str) -> list[str] | None:
    """Alert links of an Atom or RSS feed; None when `data` is not a feed."""
    head = data[:512].lower()
    if b"<feed" not in head and b"<rss" not in head:
        return None
    root = _safe_parse(data)
    links: list[str] = []
    if root.tag == f"{ATOM}feed":
        for entry in root.iter(f"{ATOM}entry"):
            hrefs = [
                (el.get("type", ""), el.get("rel", "alternate"), el.get("href")) for el in entry.iter(f"{ATOM}link")
            ]
            best = [h for t, _, h in hrefs if t in CAP_TYPES] or [h for _, r, h in hrefs if r == "alternate"]
            if best and best[0]:
                links.append(best[0])
    elif root.tag == "rss":
        for item in root.iter("item"):
            enclosure = item.find("enclosure")
            link = enclosure.get("url") if enclosure is not None else None
            link = link or (item.findtext("link") or "").strip()
            if link:
                links.append(link)
    else:
        return None
    return [urllib.parse.urljoin(base, link) if is_url(base) else _relative(base, link) for link in links]


def _relative(base: str, link: str) -> str:
    if is_url(link) or Path(link).is_absolute():
        return link
    return str(Path(base).parent / link)
