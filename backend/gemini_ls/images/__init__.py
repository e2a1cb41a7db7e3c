"""The image edge: fetch a task's image (Label Studio credentials from labelstudio/, SSRF guard,
limits) and prepare it for Gemini (format sniffing, EXIF orientation, conversion, downscale)."""

from .errors import ImageError
from .fetch import ImageFetcher, decode_data_uri
from .prepare import PreparedImage, prepare_image
from .ssrf import check_url

__all__ = [
    "ImageError",
    "ImageFetcher",
    "PreparedImage",
    "check_url",
    "decode_data_uri",
    "prepare_image",
]
