"""ImageFetcher against real loopback HTTP servers: statuses, redirects, limits, auth scoping."""

from __future__ import annotations

import base64
import time
from urllib.parse import quote

import pytest

from gemini_ls.images.errors import ImageError
from gemini_ls.images.fetch import ImageFetcher
from gemini_ls.labelstudio import CredentialStore
from gemini_ls.metrics import Metrics
from gemini_ls.settings import Settings
from tests.fixtures.servers import FakeLabelStudio, ImageServer

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
MB = 1024 * 1024


def make(settings: Settings | None = None, store: CredentialStore | None = None, **kw):
    # Loopback is blocked by default: every test opts in explicitly.
    base = dict(fetch_allowlist=("127.0.0.1",), image_fetch_timeout=5.0)
    base.update(kw)
    settings = settings or Settings(**base)
    metrics = Metrics()
    return ImageFetcher(settings, store or CredentialStore(), metrics), metrics


def fails(fetcher: ImageFetcher, url: str, reason: str) -> ImageError:
    with pytest.raises(ImageError) as e:
        fetcher.fetch(url)
    assert e.value.reason == reason, str(e.value)
    return e.value


def count(metrics: Metrics, reason: str) -> float:
    return metrics.image_fetch_errors.labels(reason=reason)._value.get()


def test_plain_url(image_server):
    url = image_server.add("/a.png", PNG)
    fetcher, _ = make()
    assert fetcher.fetch(url) == PNG
    assert "authorization" not in image_server.requests("/a.png")[0].headers


@pytest.mark.parametrize("status,reason", [(404, "not_found"), (401, "unauthorized"), (403, "forbidden"),
                                           (500, "http_error"), (418, "http_error")])
def test_http_errors_are_mapped_with_status_and_url(image_server, status, reason):
    image_server.add("/x.png", b"nope", status=status, content_type="text/plain")
    fetcher, metrics = make()
    err = fails(fetcher, image_server.url("/x.png?X-Amz-Signature=TOPSECRET&d=keep"), reason)
    msg = str(err)
    assert f"HTTP {status}" in msg and f"127.0.0.1:{image_server.port}/x.png" in msg
    assert "TOPSECRET" not in msg and "X-Amz-Signature=***" in msg
    assert count(metrics, reason) == 1


def test_redirects_are_followed_up_to_five(image_server):
    image_server.add("/final.png", PNG)
    for i in range(5):
        image_server.redirect(f"/r{i}", f"/r{i + 1}" if i < 4 else "/final.png")
    fetcher, _ = make()
    assert fetcher.fetch(image_server.url("/r0")) == PNG
    image_server.redirect("/r-1", "/r0")  # six hops
    err = fails(fetcher, image_server.url("/r-1"), "redirect_loop")
    assert "more than 5" in str(err)


def test_redirect_loop(image_server):
    image_server.redirect("/a", "/b")
    image_server.redirect("/b", image_server.url("/a"))
    fetcher, metrics = make()
    err = fails(fetcher, image_server.url("/a"), "redirect_loop")
    assert "loop" in str(err).lower()
    assert image_server.hits("/a") == 1 and image_server.hits("/b") == 1
    assert count(metrics, "redirect_loop") == 1


def test_redirect_to_unsupported_scheme(image_server):
    image_server.redirect("/r", "file:///etc/passwd")
    fetcher, _ = make()
    assert "file:" in str(fails(fetcher, image_server.url("/r"), "unsupported_url"))


def test_slow_server_times_out(image_server):
    image_server.add("/slow.png", PNG, delay=3.0)
    fetcher, metrics = make(image_fetch_timeout=0.5)
    start = time.monotonic()
    err = fails(fetcher, image_server.url("/slow.png"), "timeout")
    assert time.monotonic() - start < 1.5
    assert "IMAGE_FETCH_TIMEOUT=0.5" in str(err)
    assert count(metrics, "timeout") == 1


def test_trickling_server_hits_the_wall_clock_cap(image_server):
    # 10 bytes every 50 ms: every single read is quick, only the total deadline catches it
    image_server.add_stream("/trickle.png", 100_000, chunk_size=10, chunk_delay=0.05)
    fetcher, _ = make(image_fetch_timeout=0.8)
    start = time.monotonic()
    fails(fetcher, image_server.url("/trickle.png"), "timeout")
    assert time.monotonic() - start < 2.0


@pytest.mark.parametrize("content_length", [True, False])
def test_200_mb_stream_is_aborted_at_the_cap(image_server, content_length):
    image_server.add_stream("/huge.png", 200 * MB, content_length=content_length)
    fetcher, metrics = make(image_max_download_bytes=2 * MB, image_fetch_timeout=20)
    start = time.monotonic()
    err = fails(fetcher, image_server.url("/huge.png"), "too_large")
    elapsed = time.monotonic() - start
    assert elapsed < 3.0, elapsed
    assert "IMAGE_MAX_DOWNLOAD_BYTES=2,097,152" in str(err)
    time.sleep(0.2)  # let the server notice the closed socket
    sent = image_server.bytes_sent("/huge.png")
    if content_length:
        assert "209,715,200 bytes" in str(err)  # refused from the header, before the body
    assert sent < 40 * MB, sent  # socket buffers at most, never the whole 200 MB
    assert count(metrics, "too_large") == 1


def test_empty_body(image_server):
    image_server.add("/empty.png", b"")
    fetcher, _ = make()
    assert "0 bytes" in str(fails(fetcher, image_server.url("/empty.png"), "empty"))


def test_connection_refused():
    server = ImageServer().start()
    port = server.port
    server.stop()  # nothing listens there now
    fetcher, _ = make()
    fails(fetcher, f"http://127.0.0.1:{port}/a.png", "connection")


def test_data_uris():
    fetcher, metrics = make()
    b64 = base64.b64encode(PNG).decode()
    assert fetcher.fetch(f"data:image/png;base64,{b64}") == PNG
    assert fetcher.fetch(f"data:image/png;base64,{b64[:40]}\n{b64[40:]}") == PNG  # wrapped lines
    assert fetcher.fetch("data:image/png;base64," + base64.urlsafe_b64encode(PNG).decode().rstrip("=")) == PNG
    assert fetcher.fetch("data:image/png," + quote(PNG)) == PNG  # percent-encoded
    fails(fetcher, "data:image/png;base64,", "empty")
    fails(fetcher, "data:image/png;base64,!!!not base64!!!", "corrupt")
    fails(fetcher, "data:image/png;base64", "unsupported_url")
    small, _ = make(image_max_download_bytes=100)
    fails(small, f"data:image/png;base64,{b64}", "too_large")
    assert count(metrics, "corrupt") == 1


@pytest.mark.parametrize(
    "url,why",
    [("s3://bucket/a.png", "s3://"), ("gs://bucket/a.png", "gs://"), ("file:///etc/passwd", "file:"),
     ("ftp://example.com/a.png", "ftp:"), ("", "empty")],
)
def test_unsupported_urls(url, why):
    fetcher, metrics = make()
    err = fails(fetcher, url, "unsupported_url")
    assert why in str(err)
    assert count(metrics, "unsupported_url") == 1


def test_relative_path_without_label_studio_url():
    fetcher, _ = make()
    assert "LABEL_STUDIO_URL" in str(fails(fetcher, "/data/upload/1/a.png", "unsupported_url"))


def test_label_studio_paths_are_resolved_and_authorised(fake_label_studio: FakeLabelStudio):
    ls = fake_label_studio
    ls.add_file("/data/upload/7/a.png", PNG)
    ls.add_file("/data/local-files/?d=dir/b.png", PNG[::-1])
    # No allowlist: Label Studio's own host (from the credential store) is always reachable.
    fetcher, _ = make(Settings(image_fetch_timeout=5.0), CredentialStore(ls.url, ls.legacy_token))
    assert fetcher.fetch("/data/upload/7/a.png") == PNG
    assert fetcher.fetch("upload/7/a.png") == PNG  # raw upload key, as label-studio-sdk accepts
    assert fetcher.fetch(ls.url + "/data/upload/7/a.png") == PNG  # full URL to LS: auth too
    assert fetcher.fetch("/data/local-files/?d=dir/b.png") == PNG[::-1]
    headers = [r.headers.get("authorization") for r in ls.server.requests("/data/upload/7/a.png")]
    assert headers == [f"Token {ls.legacy_token}"] * 3
    # a missing upload says where to look
    err = fails(fetcher, "/data/upload/7/missing.png", "not_found")
    assert ls.url in str(err) and "/data/upload/7/missing.png" in str(err)


def test_relative_path_with_url_but_no_key(fake_label_studio: FakeLabelStudio):
    ls = fake_label_studio
    ls.add_file("/data/upload/1/a.png", PNG)
    fetcher, _ = make(Settings(image_fetch_timeout=5.0), CredentialStore(ls.url, None))
    err = fails(fetcher, "/data/upload/1/a.png", "unauthorized")
    assert "set LABEL_STUDIO_API_KEY" in str(err)


def test_auth_header_never_sent_to_other_hosts(fake_label_studio: FakeLabelStudio):
    ls = fake_label_studio
    ls.add_file("/data/upload/1/a.png", PNG)
    with ImageServer() as other:  # another origin (same IP, other port)
        other.add("/b.png", PNG)
        other.redirect("/to-ls", ls.url + "/data/upload/1/a.png")
        ls.server.redirect("/data/upload/1/elsewhere.png", other.url("/b.png"))
        store = CredentialStore(ls.url, ls.pat)
        fetcher, _ = make(store=store)  # allowlist 127.0.0.1 for the other server
        assert fetcher.fetch(other.url("/b.png")) == PNG
        assert fetcher.fetch("/data/upload/1/elsewhere.png") == PNG  # LS redirects off-site
        assert fetcher.fetch(other.url("/to-ls")) == PNG  # and back: LS gets its header again
        assert all("authorization" not in r.headers for r in other.requests("/b.png"))
        assert "authorization" not in other.requests("/to-ls")[0].headers
        assert ls.server.requests("/data/upload/1/elsewhere.png")[0].headers["authorization"].startswith("Bearer ")
        assert ls.server.requests("/data/upload/1/a.png")[-1].headers["authorization"].startswith("Bearer ")


def test_key_never_appears_in_errors(image_server):
    ls = FakeLabelStudio(image_server, legacy_enabled=False)
    ls.add_file("/data/upload/1/a.png", PNG)
    for key in (ls.legacy_token, ls.pat):
        ls.revoked = True
        fetcher, _ = make(Settings(image_fetch_timeout=5.0), CredentialStore(ls.url, key))
        with pytest.raises(ImageError) as e:
            fetcher.fetch("/data/upload/1/a.png")
        assert key not in str(e.value) and key not in repr(e.value)


def test_fetcher_is_thread_safe(fake_label_studio: FakeLabelStudio):
    from concurrent.futures import ThreadPoolExecutor

    ls = fake_label_studio
    for i in range(16):
        ls.add_file(f"/data/upload/1/{i}.png", PNG + bytes([i]))
    fetcher, _ = make(Settings(image_fetch_timeout=10.0), CredentialStore(ls.url, ls.pat))
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda i: fetcher.fetch(f"/data/upload/1/{i}.png"), range(16)))
    assert got == [PNG + bytes([i]) for i in range(16)]
    assert ls.refreshes == 1


def test_preparation_failures_are_counted_with_fetch_failures(image_server, emu):
    """A file that downloads but is no image fails its task as not_an_image, counted in the same
    metric as download failures (gemini_ls_image_fetch_errors), through the whole pipeline."""
    import io

    from PIL import Image

    from gemini_ls.backend import build_backend
    from gemini_ls.emulator.server import DEFAULT_API_KEY
    from gemini_ls.labelconfig import parse_label_config

    out = io.BytesIO()
    Image.new("RGB", (2000, 1000), (200, 10, 10)).save(out, "PNG")
    image_server.add("/photo.png", out.getvalue())
    image_server.add("/photo.jpg", b"this is a text file, whatever the name says\n", content_type="image/jpeg")
    settings = Settings(api_key=DEFAULT_API_KEY, base_url=emu.url, fetch_allowlist=("127.0.0.1",), image_fetch_timeout=5.0)
    backend = build_backend(settings)
    try:
        spec = parse_label_config(
            '<View><Image name="image" value="$image"/>'
            '<Choices name="c" toName="image"><Choice value="Red"/><Choice value="Blue"/></Choices></View>'
        )
        tasks = [{"id": 1, "data": {"image": image_server.url("/photo.png")}}, {"id": 2, "data": {"image": image_server.url("/photo.jpg")}}]
        good, bad = backend.runner.run(tasks, spec, backend.model_version(spec), backend.fetch, deadline=time.monotonic() + 30)
    finally:
        backend.runner.shutdown()
    assert good.succeeded and good.result
    assert bad.status == "failed" and bad.reason == "image_not_an_image" and "text file" in (bad.error or "")
    assert count(backend.metrics, "not_an_image") == 1


@pytest.mark.parametrize("value,why", [(None, "NoneType"), (42, "int"), ("http://", "no host name")])
def test_odd_task_values(value, why):
    fetcher, _ = make()
    assert why in str(fails(fetcher, value, "unsupported_url"))


def _self_signed(tmp_path, name: str = "localhost"):
    """A certificate for `name` only (cryptography comes with google-auth, a dependency of google-genai)."""
    import datetime
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_file, key_file)
    return ctx, str(cert_file)


def test_https_keeps_hostname_verification_while_connecting_to_the_checked_ip(tmp_path):
    import requests

    ctx, ca_file = _self_signed(tmp_path)
    with ImageServer(ssl_context=ctx) as server:
        server.add("/a.png", PNG)
        session = requests.Session()
        session.trust_env = False
        session.verify = ca_file
        settings = Settings(fetch_allowlist=("localhost", "127.0.0.1"), image_fetch_timeout=5.0)
        fetcher = ImageFetcher(settings, CredentialStore(), Metrics(), session=session)
        # the socket goes to the checked 127.0.0.1, TLS still verifies the certificate against "localhost"
        assert fetcher.fetch(f"https://localhost:{server.port}/a.png") == PNG
        # the same server by IP: the certificate does not name 127.0.0.1, so verification must fail
        err = fails(fetcher, f"https://127.0.0.1:{server.port}/a.png", "connection")
        assert "TLS" in str(err)
