"""Hostile and careless fields: 400 with the envelope (never a 500 or a dropped connection), bounded
echoes, authentication that cannot crash, and the audio budget."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.transcription.params import MAX_PROMPT_CHARS
from tests.audiogen import speechlike, wav_bytes
from tests.conftest import MakeClient
from tests.guarded import fake_server

URL = "/v1/audio/transcriptions"
AUDIO = wav_bytes(speechlike(1.5))


def post(client: TestClient, fields: dict[str, str], **kw: object) -> object:
    return client.post(URL, data={"model": "whisper-1", **fields}, files={"file": ("a.wav", AUDIO)}, **kw)  # type: ignore[arg-type]


def deep(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


HOSTILE = {
    "extra_body-deep": {"extra_body": '{"a": ' + deep(5000) + "}"},
    "chunking-deep": {"chunking_strategy": '{"type": "server_vad", "x": ' + deep(3000, "{", "}") + "}"},
    "include-deep": {"include": deep(4000)},
    "granularities-deep": {"timestamp_granularities": deep(5000)},
    "long-number": {"extra_body": '{"temperature": 1' + "0" * 5000 + "}"},
    "long-timeout": {"timeout": "9" * 5000},
    "long-rate": {"sample_rate": "1" * 5000},
    "nan-temperature": {"temperature": "nan"},
    "prompt-900k": {"prompt": "word " * 180_000},
    "prompt-over-cap": {"prompt": "x" * (MAX_PROMPT_CHARS + 1)},
    "hotwords-5000": {"hotwords": "h" * 5000},
    "huge-extra-body": {"extra_body": json.dumps({"prompt": "y" * 60_000})},
    "many-includes": {"include": json.dumps(["logprobs"] * 100)},
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_fields_get_400_with_the_envelope(client: TestClient, name: str) -> None:
    r = post(client, HOSTILE[name])
    assert r.status_code == 400, (name, r.status_code, r.text[:300])  # type: ignore[attr-defined]
    body = r.json()  # type: ignore[attr-defined]
    assert body["success"] is False and body["error"] and len(body["error"]) < 400, body


def test_a_prompt_up_to_the_cap_is_used(client: TestClient, fake_engine: object) -> None:
    r = post(client, {"prompt": "p" * MAX_PROMPT_CHARS, "hotwords": "h" * MAX_PROMPT_CHARS})
    assert r.status_code == 200, r.text  # type: ignore[attr-defined]


def http_exchange(sock: socket.socket, request: bytes) -> bytes:
    """Send one request and read one Content-Length-framed answer on a kept-alive socket."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def multipart(fields: dict[str, str], content_type: str = "multipart/form-data") -> bytes:
    parts = b"".join(
        f'--b\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    )
    body = (
        parts
        + b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        + AUDIO
        + b"\r\n--b--\r\n"
    )
    return (
        f"POST {URL} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}; boundary=b\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def test_a_400_keeps_the_connection_and_upper_case_multipart_works(tmp_path: Path) -> None:
    with (
        fake_server(tmp_path) as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock,
    ):
        bad = http_exchange(sock, multipart({"model": "whisper-1", "extra_body": deep(5000)}))
        assert bad.startswith(b"HTTP/1.1 400") and b'"success":false' in bad, bad[:300]
        good = http_exchange(sock, multipart({"model": "whisper-1"}, "MULTIPART/FORM-DATA"))
        assert good.startswith(b"HTTP/1.1 200"), good[:300]
        assert "Traceback" not in server.log()


@pytest.mark.parametrize(
    "authorization",
    [b"Bearer \xe4\xf6\xfc-key", b"\xff\xfe", b"Basic dXNlcjpwYXNz", b"Bearer", b"Bearer  ", b"k1"],
)
def test_bad_authorization_is_401_with_a_challenge(make_client: MakeClient, authorization: bytes) -> None:
    client = make_client(api_keys=("k1",))
    r = post(client, {}, headers={"Authorization": authorization})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", r.text  # type: ignore[attr-defined]
    assert r.json()["code"] == "unauthorized"  # type: ignore[attr-defined]
    assert post(client, {}, headers={"Authorization": "Bearer k1"}).status_code == 200  # type: ignore[attr-defined]


def test_head_health_and_bounded_echoes(client: TestClient) -> None:
    assert client.head("/health").status_code == 200
    name = "m" * 100_000
    for r in (post(client, {"model": name}), client.get(f"/v1/models/{name[:20_000]}")):
        assert r.status_code in (400, 404) and len(r.text) < 1000, (r.status_code, len(r.text))  # type: ignore[attr-defined]


def test_the_audio_budget_refuses_what_it_cannot_hold(make_client: MakeClient) -> None:
    client = make_client(audio_budget_mb=1.0)  # 1 MB: ~32 s of 16 kHz 16-bit audio
    admission = client.app.state.admission  # type: ignore[attr-defined]
    r = client.post(URL, data={"model": "whisper-1"}, files={"file": ("a.wav", wav_bytes(speechlike(60.0)))})
    assert r.status_code == 503 and r.headers["retry-after"].isdigit(), r.text
    assert admission.held_bytes == 0 and admission.active == 0
    assert post(client, {}).status_code == 200  # type: ignore[attr-defined]
    assert admission.held_bytes == 0 and admission.active == 0
