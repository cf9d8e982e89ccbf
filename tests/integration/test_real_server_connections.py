"""The real server's connections: an upload past the limit is refused while it streams in, and a
client that hangs up mid-stream stops the work (counted in the server's own metrics)."""

from __future__ import annotations

import contextlib
import re
import select
import socket
import time
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from app.audio.chunking import chunking_options
from app.audio.decode import decode_audio
from app.audio.feed import speech_chunks
from app.audio.pcm import PcmFormat
from app.config import Settings
from app.transcription.windows import pack_windows
from tests.integration.test_real_server import URL
from tests.support.evalset import EVAL_DIR
from tests.support.harness import LiveServer


def test_upload_limit_is_enforced_while_streaming_in(live_server: LiveServer) -> None:
    """A chunked upload (no Content-Length) gets its 413 once it passes the limit (100 MB),
    while the client is still sending: the server never reads the rest."""
    host, port = live_server.base_url.removeprefix("http://").split(":")
    head = (
        f"POST {URL} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {live_server.api_key}\r\n"
        "Content-Type: multipart/form-data; boundary=xyz\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    part = (
        b'--xyz\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
        b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
    )
    block = bytes(1 << 20)
    sent = 0
    answer = b""
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head + f"{len(part):x}\r\n".encode() + part + b"\r\n")
        for _ in range(300):  # bounded: 300 MB at most
            try:
                sock.sendall(f"{len(block):x}\r\n".encode() + block + b"\r\n")
            except OSError:
                break  # the server hung up on us
            sent += len(block)
            if select.select([sock], [], [], 0)[0]:
                break  # the answer is there
        sock.settimeout(30)
        with contextlib.suppress(OSError):
            for _ in range(20):  # the head and the body may come in separate segments
                data = sock.recv(65536)
                answer += data
                head_end = answer.find(b"\r\n\r\n")
                length = re.search(rb"content-length: (\d+)", answer[:head_end], re.IGNORECASE)
                if not data or (length and len(answer) >= head_end + 4 + int(length[1])):
                    break
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"success":false' in answer
    assert sent < 150 << 20


def windows_decoded(server: LiveServer) -> float:
    """Model windows the server has started decoding since it started, over all its models."""
    families = text_string_to_metric_families(httpx.get(server.base_url + "/metrics").text)
    return sum(
        sample.value
        for family in families
        if family.name == "asr_windows_decoded"
        for sample in family.samples
        if sample.name.endswith("_total")
    )


def wait_idle(server: LiveServer) -> None:
    """Wait (a minute at most) until the server has no transcription in progress."""
    health = server.base_url + "/health"
    deadline = time.monotonic() + 60
    while httpx.get(health).json()["active_requests"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert httpx.get(health).json()["active_requests"] == 0


def streamed_windows(path: Any) -> int:
    """How many windows a stream of the whole file decodes (its chunks packed as the server packs them)."""
    audio = decode_audio(path.read_bytes(), content_type=None, pcm=PcmFormat(), max_duration_s=600)
    settings = Settings()
    opts = chunking_options(settings.vad)
    return len(pack_windows(speech_chunks(audio, opts), settings.window_s, first_alone=True))


def test_disconnect_stops_the_work(live_server: LiveServer) -> None:
    lj = EVAL_DIR / "long" / "long-ljspeech-LJ001-0001-0032.flac"
    whole = streamed_windows(lj)  # 267 s of speech: 11 windows
    wait_idle(live_server)  # the windows counted below are this request's
    before = windows_decoded(live_server)
    with httpx.stream(
        "POST",
        live_server.base_url + URL,
        data={"model": "whisper-1", "stream": "true"},
        files={"file": ("a.flac", lj.read_bytes(), "audio/wav")},
        headers={"Authorization": f"Bearer {live_server.api_key}"},
        timeout=600,
    ) as r:
        for line in r.iter_lines():
            if line.startswith("data:"):
                break  # got the first delta: hang up
        begun = windows_decoded(live_server) - before
    # the first delta's window was decoded and the file was not: the client left mid-request
    assert 1 <= begun < whole, (begun, whole)
    wait_idle(live_server)
    decoded = windows_decoded(live_server) - before
    print(f"{begun:.0f} windows begun at the hang-up, {decoded:.0f} in all, of {whole}")
    # the windows running at the hang-up may finish (one per lane); the rest of the file is never decoded
    assert begun <= decoded < whole, (begun, decoded, whole)
