"""`image_url` content parts → image blocks of the neutral format (the Messages API's own:
`{"type": "image", "source": {"type": "base64", "media_type", "data"} | {"type": "url", "url"}}`).

`data:` URLs are checked (an allowed media type, valid base64, a bounded size, bytes that are what the
type says); `https` URLs are passed on to the provider as they are, never fetched by Conduit (the
provider fetches them: no request of ours to an address a client chose).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any
from urllib.parse import urlsplit

from assistant.surfaces.openai.errors import bad_request

MAX_IMAGES = 20  # per request, over all its messages
MAX_IMAGE_BYTES = 5 * 1024 * 1024  # decoded, per image (the Messages API's own limit)
MAX_IMAGE_URL = 2048  # characters of an https URL
MEDIA_TYPES = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),  # then 4 bytes of size and WEBP (checked below)
}
_DATA_URL = re.compile(r"^data:([a-zA-Z0-9.+/-]+);base64,", re.ASCII)


class ImageCounter:
    """Counts a request's images against MAX_IMAGES."""

    def __init__(self) -> None:
        self.count = 0

    def add(self, param: str) -> None:
        self.count += 1
        if self.count > MAX_IMAGES:
            raise bad_request(f"At most {MAX_IMAGES} images per request.", param)


def image_block(part: dict[str, Any], param: str) -> dict[str, Any]:
    """An `image_url` content part as an image block. Raises OpenAIError (400 naming the part)."""
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise bad_request("An image part needs `image_url.url`: a data: URL or an https URL.", f"{param}.image_url.url")
    param = f"{param}.image_url.url"
    if url[:5].lower() == "data:":
        return _data_image(url, param)
    parts = urlsplit(url)
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise bad_request("An image URL must be an https URL or a data: URL (base64 png, jpeg, gif or webp).", param)
    if len(url) > MAX_IMAGE_URL:
        raise bad_request(f"An image URL must be at most {MAX_IMAGE_URL} characters.", param)
    return {"type": "image", "source": {"type": "url", "url": url}}


def _data_image(url: str, param: str) -> dict[str, Any]:
    match = _DATA_URL.match(url)
    media_type = match.group(1).lower() if match else ""
    if media_type not in MEDIA_TYPES:
        raise bad_request(
            f"An image data: URL must be base64 of one of {', '.join(sorted(MEDIA_TYPES))}"
            " (`data:image/png;base64,…`).", param,
        )  # fmt: skip
    data = url[match.end() :]
    if len(data) > (MAX_IMAGE_BYTES + 2) // 3 * 4:  # checked before decoding anything
        raise bad_request(f"An image is larger than {MAX_IMAGE_BYTES} bytes.", param)
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request("The image's data is not valid base64.", param) from None
    if not raw:
        raise bad_request("The image is empty.", param)
    if len(raw) > MAX_IMAGE_BYTES:
        raise bad_request(f"An image is larger than {MAX_IMAGE_BYTES} bytes.", param)
    if not raw.startswith(MEDIA_TYPES[media_type]) or (media_type == "image/webp" and raw[8:12] != b"WEBP"):
        raise bad_request(f"The image's data is not {media_type}.", param)
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}

