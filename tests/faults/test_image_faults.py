"""Image faults: what a Label Studio task's image URL can do wrong, served by a real loopback
HTTP server (tests/fixtures/servers.py), each in a batch beside a good task."""

from __future__ import annotations

import io
import time

import pytest
from PIL import Image

from tests.faults.common import (
    assert_good,
    check_contract,
    good_task,
    jpeg,
    png,
    predict,
    url_task,
)

LS_TOKEN = "lstoken0123456789abcdef"


def _bomb_png() -> bytes:
    """12,000 x 12,000 pixels (144 MP) in a ~20 KB PNG: the classic decompression bomb."""
    buf = io.BytesIO()
    Image.new("1", (12_000, 12_000), 0).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def _corrupt_jpeg() -> bytes:
    data = bytearray(jpeg(5))
    return bytes(data[: len(data) // 2])  # a download that broke off half way


# name -> (route set-up on the image server -> image ref, env, reason prefix, words in the error)
def _elsewhere(url: str) -> str:
    """The same loopback server under another origin than Label Studio's (LABEL_STUDIO_URL is
    http://127.0.0.1:port): an image URL of some other web server."""
    return url.replace("://127.0.0.1:", "://localhost:", 1)


def _url_404(s):
    return _elsewhere(s.add("/missing.png", b"not found", status=404, content_type="text/plain"))


def _url_401(s):
    return _elsewhere(s.add("/private.png", b"{}", status=401, content_type="application/json"))


def _url_403(s):
    return _elsewhere(s.add("/forbidden.png", b"<html>denied</html>", status=403, content_type="text/html"))


def _ls_404(s):
    s.add("/data/upload/1/gone.png", b'{"detail":"Not found."}', status=404, content_type="application/json")
    return "/data/upload/1/gone.png"


def _ls_401(s):
    s.add("/data/upload/1/a.png", b'{"detail":"Invalid token."}', status=401, content_type="application/json")
    return "/data/upload/1/a.png"


def _ls_403(s):
    s.add("/data/upload/1/b.png", b'{"detail":"No access."}', status=403, content_type="application/json")
    return "/data/upload/1/b.png"


def _zero_bytes(s):
    return s.add("/empty.jpg", b"", content_type="image/jpeg")


def _corrupt(s):
    return s.add("/broken.jpg", _corrupt_jpeg(), content_type="image/jpeg")


def _text_as_jpg(s):
    return s.add("/notes.jpg", b"Meeting notes: bring the photos on Monday.\n" * 20, content_type="image/jpeg")


def _bomb(s):
    return s.add("/bomb.png", _bomb_png())


def _redirect_loop(s):
    s.redirect("/loop-a.png", "/loop-b.png")
    return s.redirect("/loop-b.png", "/loop-a.png")


def _redirect_chain(s):
    for i in range(10):
        s.redirect(f"/hop{i}.png", f"/hop{i + 1}.png")
    return s.url("/hop0.png")


def _slow_server(s):
    return s.add("/slow.png", png(9), delay=5.0)


def _trickle(s):
    return s.add_stream("/trickle.png", 2 * 2**20, chunk_size=1024, chunk_delay=0.05)


CASES = {
    "url_404": (_url_404, {}, "image_not_found", ["not found", "404"]),
    "url_401": (_url_401, {}, "image_unauthorized", ["image server refused", "401"]),
    "url_403": (_url_403, {}, "image_forbidden", ["image server refused", "403"]),
    "label_studio_404": (_ls_404, {}, "image_not_found", ["404", "label studio"]),
    "label_studio_401": (_ls_401, {}, "image_unauthorized", ["label studio refused", "401"]),
    "label_studio_403": (_ls_403, {}, "image_forbidden", ["label studio refused", "403"]),
    "zero_bytes": (_zero_bytes, {}, "image_empty", ["empty", "0 bytes"]),
    "corrupt_jpeg": (_corrupt, {}, "image_corrupt", ["damaged or truncated"]),
    "text_named_jpg": (_text_as_jpg, {}, "image_not_an_image", ["not a picture", "text file"]),
    "decompression_bomb": (_bomb, {}, "image_too_many_pixels", ["IMAGE_MAX_PIXELS", "decompression bomb"]),
    "redirect_loop": (_redirect_loop, {}, "image_redirect_loop", ["redirect loop"]),
    "too_many_redirects": (_redirect_chain, {}, "image_redirect_loop", ["too many redirects"]),
    "slow_server": (_slow_server, {"IMAGE_FETCH_TIMEOUT": "1"}, "image_timeout", ["IMAGE_FETCH_TIMEOUT=1"]),
    "trickling_body": (_trickle, {"IMAGE_FETCH_TIMEOUT": "1"}, "image_timeout", ["IMAGE_FETCH_TIMEOUT=1"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_image_fault_fails_only_its_task(case, backend_factory, emu, image_server, gemini_logs):
    setup, env, reason, words = CASES[case]
    backend = backend_factory(
        LABEL_STUDIO_URL=image_server.base_url, LABEL_STUDIO_API_KEY=LS_TOKEN, PREDICT_TIMEOUT="20", **env
    )
    ref = setup(image_server)
    started = time.monotonic()
    good_before, bad, good_after = predict(backend, [good_task(1), url_task(2, ref), good_task(3)])
    elapsed = time.monotonic() - started
    check_contract(backend, gemini_logs, bad, 2, reason, *words)
    assert_good(good_before, 1)
    assert_good(good_after, 3)
    assert elapsed < 4.0, f"{case}: the batch took {elapsed:.1f} s"
    # counted by its reason word (exactly once: see test_image_errors_are_counted_once)
    word = reason.removeprefix("image_")
    assert backend.metric("gemini_ls_image_fetch_errors_total", reason=word) >= 1
    # the bad image never reached Gemini: only the two good tasks were sent
    assert emu.counters()["requests"].get("generateContent", 0) == 2


@pytest.mark.parametrize("case", ["url_404", "zero_bytes", "redirect_loop", "slow_server", "corrupt_jpeg"])
def test_image_errors_are_counted_once(case, backend_factory, emu, image_server):
    """One failed image is one gemini_ls_image_fetch_errors_total increment, fetch or decode."""
    setup, env, reason, _ = CASES[case]
    backend = backend_factory(LABEL_STUDIO_URL=image_server.base_url, LABEL_STUDIO_API_KEY=LS_TOKEN, **env)
    predict(backend, [url_task(1, setup(image_server))])
    word = reason.removeprefix("image_")
    assert backend.metric("gemini_ls_image_fetch_errors_total", reason=word) == 1
    assert backend.metric("gemini_ls_task_failures_total", reason=reason) == 1


def test_label_studio_images_carry_its_token_and_others_do_not(backend_factory, emu, image_server):
    """The credential goes to Label Studio's origin only (a URL elsewhere that 401s gets none)."""
    backend = backend_factory(LABEL_STUDIO_URL=image_server.base_url, LABEL_STUDIO_API_KEY=LS_TOKEN)
    image_server.add("/data/upload/1/ok.png", png(4))
    other = image_server.add("/elsewhere.png", png(5))
    other = other.replace("127.0.0.1", "localhost")  # another origin on this machine
    first, second = predict(backend, [url_task(1, "/data/upload/1/ok.png"), url_task(2, other)])
    assert_good(first, 4)
    assert_good(second, 5)
    assert image_server.requests("/data/upload/1/ok.png")[0].headers.get("authorization") == f"Token {LS_TOKEN}"
    assert "authorization" not in image_server.requests("/elsewhere.png")[0].headers


@pytest.mark.parametrize("declared", [True, False], ids=["content_length", "no_content_length"])
def test_200_mb_download_is_cut_off_at_the_cap(declared, backend_factory, emu, image_server, gemini_logs):
    """200 MB behind an image URL, IMAGE_MAX_DOWNLOAD_BYTES=4 MB: refused from the header when the
    size is declared, else abandoned while streaming; quickly, without the server sending it all."""
    total = 200 * 2**20
    backend = backend_factory(IMAGE_MAX_DOWNLOAD_BYTES=str(4 * 2**20))
    url = image_server.add_stream("/huge.png", total, content_length=declared)
    started = time.monotonic()
    bad, good = predict(backend, [url_task(1, url), good_task(2)])
    elapsed = time.monotonic() - started
    check_contract(backend, gemini_logs, bad, 1, "image_too_large", "IMAGE_MAX_DOWNLOAD_BYTES")
    assert_good(good, 2)
    assert elapsed < 5.0, elapsed
    time.sleep(0.3)  # the server notices the closed socket
    sent = image_server.bytes_sent("/huge.png")
    assert sent < 32 * 2**20, f"the server sent {sent:,} of {total:,} bytes"
    if declared:
        assert sent < 8 * 2**20, sent  # refused on the Content-Length: at most socket buffers went out
