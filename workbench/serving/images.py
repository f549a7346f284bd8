"""Images and figures as context: what a model is shown, stored once by content, named by hash.

A prompt may hold images: ``wb.ask(["What does this chart show?", fig])``, ``images=[...]``,
or ``{fig}`` in a ``%%llm`` cell. Each becomes an :class:`Image` — PNG or JPEG bytes, its
size and its sha256 — from PNG/JPEG bytes, a path to such a file, a PIL image, a matplotlib
figure, or a plotly figure (through ``kaleido``, when it is installed). In the prompt's text an
image is a marker, ``[image 640x480 png sha256:0123456789ab]``: that is what the guardrails
scan, the call log shows and the fingerprint hashes, with the full hash in the request
(``workbench-blob:sha256:...``). The bytes go to the provider as an OpenAI-style
``image_url`` part (a ``data:`` URL) and into the store's ``blobs`` table, once per content,
so a replay or a re-run sends the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError

BLOB_SCHEME = "workbench-blob:sha256:"
MARKER = re.compile(r"\[image (\d+)x(\d+) (png|jpeg) sha256:([0-9a-f]{12})\]")
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


class ImageError(WorkbenchError):
    """An image that cannot be sent: not an image, too large, or for a model that cannot see."""


@dataclass(frozen=True, slots=True)
class Image:
    """One image as sent: its bytes, format, size and content hash."""

    data: bytes
    mime: str  # image/png or image/jpeg
    width: int
    height: int
    sha256: str

    @property
    def marker(self) -> str:
        """How the image stands in the prompt's text."""
        return f"[image {self.width}x{self.height} {self.mime.split('/')[1]} sha256:{self.sha256[:12]}]"

    @property
    def ref(self) -> str:
        """How the stored request names it."""
        return BLOB_SCHEME + self.sha256

    def data_url(self) -> str:
        """The bytes as a ``data:`` URL (what providers receive)."""
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode()}"

    def part(self) -> dict[str, Any]:
        """The OpenAI-style content part naming the stored image."""
        return {"type": "image_url", "image_url": {"url": self.ref}}


def is_image(value: Any) -> bool:
    """Whether ``value`` is something :func:`as_image` takes (without converting it)."""
    if isinstance(value, Image):
        return True
    if isinstance(value, bytes | bytearray):
        return _sniff(bytes(value[:16])) is not None
    if isinstance(value, Path):
        return value.suffix.lower() in _IMAGE_SUFFIXES
    kind = type(value)
    module = kind.__module__
    return (
        (module.startswith("matplotlib") and hasattr(value, "savefig"))
        or (module.startswith("PIL") and hasattr(value, "save"))
        or (module.startswith("plotly") and hasattr(value, "to_image"))
    )


def as_image(value: Any) -> Image:
    """``value`` as an :class:`Image`; a one-line :class:`ImageError` for anything else."""
    if isinstance(value, Image):
        return value
    if isinstance(value, bytes | bytearray):
        return from_bytes(bytes(value))
    if isinstance(value, str | Path):
        path = Path(value).expanduser()
        if not path.is_file():
            raise ImageError(f"no image file at {str(path)!r}")
        return from_bytes(path.read_bytes(), str(path))
    module = type(value).__module__
    buffer = io.BytesIO()
    if module.startswith("matplotlib") and hasattr(value, "savefig"):
        value.savefig(buffer, format="png", bbox_inches="tight")
        return from_bytes(buffer.getvalue(), "the matplotlib figure")
    if module.startswith("PIL") and hasattr(value, "save"):
        value.save(buffer, format="PNG")
        return from_bytes(buffer.getvalue(), "the PIL image")
    if module.startswith("plotly") and hasattr(value, "to_image"):
        try:
            return from_bytes(value.to_image(format="png"), "the plotly figure")
        except (ImportError, ValueError, RuntimeError) as exc:
            raise ImageError(
                "a plotly figure is sent as a PNG through kaleido, which is not available here "
                f"({type(exc).__name__}); pip install kaleido, or send fig.to_image() bytes from where it is"
            ) from None
    raise ImageError(
        f"cannot send a {type(value).__name__} as an image: give PNG or JPEG bytes, a path, a PIL image, "
        "a matplotlib figure or a plotly figure"
    )


def from_bytes(data: bytes, where: str = "the bytes") -> Image:
    """An :class:`Image` from PNG or JPEG bytes (their size read from the header), without its metadata.

    What an image says besides its pixels — a PNG's text and EXIF chunks (where image tools write the prompt
    that made it, cameras and editors their notes), a JPEG's comments and APP segments (EXIF, XMP, ICC,
    Photoshop), anything after its end — is dropped before it is sent or stored: no scanner reads it, so it
    is never kept. The pixels are sent as they are.
    """
    mime = _sniff(data[:16])
    if mime is None:
        raise ImageError(f"{where} are not a PNG or JPEG image")
    size = _png_size(data) if mime == "image/png" else _jpeg_size(data)
    if size is None:
        raise ImageError(f"{where}: a {mime.split('/')[1].upper()} whose header cannot be read")
    kept = _png_pixels(data) if mime == "image/png" else _jpeg_pixels(data)
    if kept is None:
        raise ImageError(f"{where}: a {mime.split('/')[1].upper()} whose structure cannot be read (cut short?)")
    return Image(kept, mime, size[0], size[1], hashlib.sha256(kept).hexdigest())


# The PNG chunks that say how to draw the pixels; every other (tEXt, zTXt, iTXt, eXIf, iCCP, tIME, private
# ones, an animation's frames) is dropped.
_PNG_KEPT = frozenset(b"IHDR PLTE IDAT IEND tRNS gAMA cHRM sRGB sBIT bKGD pHYs".split())


def _png_pixels(data: bytes) -> bytes | None:
    """``data`` with only the chunks in ``_PNG_KEPT``, up to IEND; ``None`` when its chunks cannot be read."""
    out, at = [data[:8]], 8
    while at + 12 <= len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        end = at + 12 + length
        if end > len(data):
            return None
        kind = data[at + 4 : at + 8]
        if kind in _PNG_KEPT:
            out.append(data[at:end])
        if kind == b"IEND":
            return b"".join(out)
        at = end
    return None


def _jpeg_pixels(data: bytes) -> bytes | None:
    """``data`` without comments and APP segments (but a plain JFIF or Adobe header), up to the end-of-image
    marker; ``None`` when its segments cannot be read.
    """
    out, at = [b"\xff\xd8"], 2
    while at + 1 < len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # a fill byte before a marker
            at += 1
            continue
        if marker == 0xD9:
            out.append(b"\xff\xd9")
            return b"".join(out)
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            at += 2
            continue
        if at + 4 > len(data):
            return None
        end = at + 2 + struct.unpack(">H", data[at + 2 : at + 4])[0]
        if end > len(data) or end < at + 4:
            return None
        segment = data[at:end]
        plain_header = (marker == 0xE0 and segment[4:9] == b"JFIF\x00" and len(segment) == 18) or (
            marker == 0xEE and segment[4:9] == b"Adobe" and len(segment) == 16
        )
        if not (0xE0 <= marker <= 0xEF or marker == 0xFE) or plain_header:
            out.append(segment)
        at = end
        if marker == 0xDA:  # a scan: its entropy-coded data runs to the next marker (0xFF00 and RSTn are data)
            scan = at
            while (scan := data.find(b"\xff", scan)) >= 0 and scan + 1 < len(data):
                following = data[scan + 1]
                if following != 0 and not 0xD0 <= following <= 0xD7:
                    break
                scan += 2
            else:
                return None  # no end-of-image marker
            out.append(data[at:scan])
            at = scan
    return None


def check_sizes(images: list[Image], max_mb: float, max_call_mb: float) -> None:
    """A one-line error for an image, or a call's images together, over the configured limits."""
    for image in images:
        if len(image.data) > max_mb * 1e6:
            raise ImageError(
                f"image {image.marker} is {len(image.data) / 1e6:.1f} MB, over the {max_mb:g} MB limit "
                "([images] max_mb): send a smaller or downscaled image"
            )
    total = sum(len(i.data) for i in {i.sha256: i for i in images}.values())
    if total > max_call_mb * 1e6:
        raise ImageError(
            f"this call's images come to {total / 1e6:.1f} MB, over the {max_call_mb:g} MB per call "
            "([images] max_call_mb): send fewer or smaller images"
        )


def with_parts(content: str, images: list[Image]) -> list[dict[str, Any]] | str:
    """A message's text as content parts: text between the images, each image where its marker is."""
    by_marker = {i.marker: i for i in images}
    parts: list[dict[str, Any]] = []
    at = 0
    for m in MARKER.finditer(content):
        image = by_marker.get(m.group())
        if image is None:
            continue
        if content[at : m.start()].strip():
            parts.append({"type": "text", "text": content[at : m.start()]})
        parts.append(image.part())
        at = m.end()
    if not parts:
        return content
    if content[at:].strip():
        parts.append({"type": "text", "text": content[at:]})
    return parts


def refs(messages: list[dict[str, Any]]) -> list[str]:
    """The sha256 of every stored image the messages name."""
    out = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                url = part_url(part)
                if url.startswith(BLOB_SCHEME):
                    out.append(url.removeprefix(BLOB_SCHEME))
    return out


def wire(messages: list[dict[str, Any]], blobs: dict[str, Image]) -> list[dict[str, Any]]:
    """The messages as a provider receives them: each stored image's bytes as a ``data:`` URL."""
    if not blobs:
        return messages
    out = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = [_wired(part, blobs) for part in content]
            message = {**message, "content": content}
        out.append(message)
    return out


def text_view(messages: list[dict[str, Any]], blobs: dict[str, Image]) -> tuple[list[dict[str, Any]], int]:
    """The messages with each image as its marker, and the tokens the images add (OpenAI's tiles)."""
    extra, out = 0, []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            texts = []
            for part in content:
                url = part_url(part)
                image = blobs.get(url.removeprefix(BLOB_SCHEME)) if url.startswith(BLOB_SCHEME) else None
                if image is not None:
                    texts.append(image.marker)
                    extra += image_tokens(image.width, image.height)
                elif isinstance(part, dict) and part.get("type") == "text":
                    texts.append(part.get("text", ""))
            message = {**message, "content": "".join(texts)}
        out.append(message)
    return out, extra


def image_tokens(width: int, height: int) -> int:
    """What a high-detail image costs in OpenAI's accounting: 85 plus 170 per 512-pixel tile, after scaling."""
    scale = min(1.0, 2048 / max(width, height, 1))
    w, h = width * scale, height * scale
    scale = min(1.0, 768 / max(min(w, h), 1))
    w, h = w * scale, h * scale
    return 85 + 170 * (-(-int(w) // 512)) * (-(-int(h) // 512))


def describe(data_url: str) -> str:
    """What ``local/echo`` says for an image part it was given: its marker (or what it was, if not one)."""
    if data_url.startswith("data:") and ";base64," in data_url:
        try:
            return from_data_url(data_url).marker
        except ImageError:
            return "[image: unreadable]"
    return f"[image {data_url[:60]}]"


def part_url(part: Any) -> str:
    """The URL of an ``image_url`` content part ("" for any other part, or one without a URL)."""
    image_url = part.get("image_url") if isinstance(part, dict) else None
    return str(image_url.get("url", "")) if isinstance(image_url, dict) else ""


def from_data_url(url: str, where: str = "the image") -> Image:
    """An :class:`Image` from a ``data:...;base64,`` URL; a one-line :class:`ImageError` for anything else."""
    if not url.startswith("data:") or ";base64," not in url:
        raise ImageError(f"{where}: an image_url must be a data: URL of PNG or JPEG bytes, not {url[:40]!r}")
    try:
        data = base64.b64decode(url.split(",", 1)[1], validate=True)
    except ValueError:  # binascii.Error: bad padding or characters
        raise ImageError(f"{where}: the data: URL is not valid base64") from None
    return from_bytes(data, where)


def _wired(part: Any, blobs: dict[str, Image]) -> Any:
    url = part_url(part)
    if not url.startswith(BLOB_SCHEME):
        return part
    sha = url.removeprefix(BLOB_SCHEME)
    if sha not in blobs:
        raise ImageError(f"image sha256:{sha[:12]} is not in the store (compacted, or never stored)")
    return {"type": "image_url", "image_url": {"url": blobs[sha].data_url()}}


def _sniff(head: bytes) -> str | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    return None


def _png_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return (width, height) if width and height else None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    at = 2
    while at + 9 < len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            at += 2
            continue
        length = struct.unpack(">H", data[at + 2 : at + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start-of-frame: the size is here
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return (width, height) if width and height else None
        at += 2 + length
    return None
