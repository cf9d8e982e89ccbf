"""A hostile field over a real socket: the real server process (uvicorn, on the fake engine) answers
400 with the envelope and keeps the connection (the fields themselves: tests/unit/test_hostile.py)."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.support.guarded import fake_server
from tests.unit.test_hostile import AUDIO, URL, deep


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
