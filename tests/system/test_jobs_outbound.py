"""Jobs reaching out, on the real server: a url source behind a redirect, a webhook receiver that
fails twice (delivered on the third attempt, verified by openai-python's ``client.webhooks``), one
answering 400 (no retry), and a redirect to a private address (refused: the job fails saying why);
and a DNS-rebinding name (public to the check, loopback a moment later) that reaches nothing inside;
over TLS, the pinned address is reached with the name's SNI and certificate."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from app.jobs.urls import outbound_client
from tests.support.evalset import EVAL_DIR
from tests.support.harness import free_port, start_server, stop, wait_healthy
from tests.support.rebinding import environment as rebinding
from tests.support.rebinding import resolving
from tests.support.sdk_clients import run_client

JOBS = "/v1/audio/jobs"
CLIP = "short/ls-test-other-3331-159605-0004.flac"
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


class Receiver(BaseHTTPRequestHandler):
    """Serves the clip (and redirects to it, or to a private address); records webhook POSTs."""

    posts: ClassVar[dict[str, list[dict[str, Any]]]] = {}
    hosts: ClassVar[list[str]] = []  # each GET's Host header

    def do_GET(self) -> None:
        self.hosts.append(self.headers["host"])
        if self.path == "/clip.flac":
            body = (EVAL_DIR / CLIP).read_bytes()
            self.send_response(200)
            self.send_header("content-type", "audio/flac")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        target = {"/redirect": "/clip.flac", "/to-private": "http://10.1.2.3/clip.flac"}[self.path]
        self.send_response(302)
        self.send_header("location", target)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"])).decode()
        seen = self.posts.setdefault(self.path, [])
        seen.append({"body": body, "headers": {k.lower(): v for k, v in self.headers.items()}})
        status = {"/hook-flaky": 500 if len(seen) <= 2 else 200, "/hook-400": 400, "/hook": 200}[self.path]
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


class Inside(BaseHTTPRequestHandler):
    """A service on loopback that outbound requests must never reach: records whatever comes."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(f"GET {self.path}")
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        self.seen.append(f"POST {self.path}")
        self.do_GET()

    def log_message(self, *_: Any) -> None:
        pass


@contextmanager
def serving(address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    httpd = ThreadingHTTPServer(address, handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.posts, Receiver.hosts = {}, []
    with serving(("127.0.0.1", 0), Receiver) as port:
        yield f"http://127.0.0.1:{port}"


@contextmanager
def launched(tmp_path: Path, **env: str) -> Iterator[str]:
    port, log_path = free_port(), tmp_path / "server.log"
    env = {
        **os.environ,
        "ASR_API_KEYS": "",
        "ASR_JOBS__DATA_DIR": str(tmp_path / "data"),
        "ASR_JOBS__WEBHOOK_SECRET": SECRET,
        "ASR_JOBS__WEBHOOK_RETRY_BASE_S": "0.5",
        **env,
    }
    proc = start_server(port, env, log_path)
    try:
        wait_healthy(proc, f"http://127.0.0.1:{port}/health", log_path.read_text, timeout_s=180)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc, timeout_s=20)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    with launched(tmp_path, ASR_JOBS__ALLOW_PRIVATE_URLS='["127.0.0.1"]') as url:
        yield url


def wait_for(condition: Any, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_url_source_and_webhooks(server: str, receiver: str, tmp_path: Path) -> None:
    fields = {"model": "whisper-1", "language": "en"}
    with httpx.Client(base_url=server, timeout=60) as client:
        good = client.post(
            JOBS,
            data={
                **fields,
                "url": f"http://user:pw@127.0.0.1:{receiver.rsplit(':', 1)[1]}/redirect",
                "callback_url": f"{receiver}/hook-flaky",
                "metadata": json.dumps({"batch": "7"}),
            },
        ).json()
        assert good["url"].startswith("http://127.0.0.1:") and "pw" not in json.dumps(good)
        bad = client.post(
            JOBS, data={**fields, "url": f"{receiver}/to-private", "callback_url": f"{receiver}/hook-400"}
        ).json()
        done = client.get(f"{JOBS}/{good['id']}?wait=60").json()
        assert done["status"] == "completed", done
        sync = client.post(
            "/v1/audio/transcriptions",
            data=fields,
            files={"file": ("a.flac", (EVAL_DIR / CLIP).read_bytes())},
        )
        assert client.get(f"{JOBS}/{good['id']}/result").text == sync.text
        failed = client.get(f"{JOBS}/{bad['id']}?wait=30").json()
        assert failed["status"] == "failed" and failed["error"]["code"] == "url_fetch_failed"
        assert "10.1.2.3" in failed["error"]["message"]

        wait_for(lambda: len(Receiver.posts.get("/hook-flaky", [])) >= 3, "no third webhook attempt")
        wait_for(lambda: len(Receiver.posts.get("/hook-400", [])) >= 1, "no webhook for the failed job")
        time.sleep(3)  # past the first retry's delay (0.5 s): a 400 is not retried
        job = client.get(f"{JOBS}/{good['id']}").json()
        assert [d["outcome"] for d in job["deliveries"]] == ["retrying", "retrying", "delivered"]
        assert [d["status_code"] for d in job["deliveries"]] == [500, 500, 200]
        rejected = client.get(f"{JOBS}/{bad['id']}").json()["deliveries"]
        assert [(d["outcome"], d["status_code"]) for d in rejected] == [("failed", 400)]
    flaky, refused = Receiver.posts["/hook-flaky"], Receiver.posts["/hook-400"]
    assert len(flaky) == 3 and len(refused) == 1
    assert len({p["headers"]["webhook-id"] for p in flaky}) == 1  # the same id on every attempt
    tampered = {**flaky[-1], "body": flaky[-1]["body"].replace('"7"', '"8"')}
    deliveries = [flaky[-1], refused[0], tampered]
    checks = tmp_path / "deliveries.json"
    checks.write_text(json.dumps({"secret": SECRET, "deliveries": deliveries}))
    out = run_client("air-current", "openai_webhook.py", [str(checks)], {})
    results = out["results"]
    assert [r["verified"] for r in results] == [True, True, False], out
    event = results[0]["event"]
    assert event["type"] == "transcription.job.completed" and event["id"].startswith("evt_")
    assert event["data"] == {"id": good["id"], "status": "completed", "metadata": {"batch": "7"}}
    assert results[1]["event"]["type"] == "transcription.job.failed"


def test_dns_rebinding_reaches_nothing_inside(tmp_path: Path) -> None:
    """127.0.0.2 plays a public address (allowed); 127.0.0.1, on the same port, a service inside.
    Each name answers 127.0.0.2 to its first lookups, then 127.0.0.1: the server must connect to
    the address it checked, whenever the name flips."""
    Receiver.posts, Receiver.hosts, Inside.seen = {}, [], []
    with serving(("127.0.0.2", 0), Receiver) as port, serving(("127.0.0.1", port), Inside):
        public, inside = "127.0.0.2", "127.0.0.1"
        script = {
            "media.rebind.test": [public, public, inside],  # checked at submission and at the fetch
            "hook.rebind.test": [public, public, inside],
            "late.rebind.test": [public, inside],  # flips before the fetch: refused there
        }
        env = rebinding(script, tmp_path / "resolver")
        with (
            launched(tmp_path, ASR_JOBS__ALLOW_PRIVATE_URLS=json.dumps([public]), **env) as server,
            httpx.Client(base_url=server, timeout=60) as client,
        ):
            fields = {"model": "whisper-1", "language": "en"}
            pinned = client.post(
                JOBS,
                data={
                    **fields,
                    "url": f"http://media.rebind.test:{port}/clip.flac",
                    "callback_url": f"http://hook.rebind.test:{port}/hook",
                },
            )
            late = client.post(JOBS, data={**fields, "url": f"http://late.rebind.test:{port}/clip.flac"})
            assert pinned.status_code == late.status_code == 202, (pinned.text, late.text)
            done = client.get(f"{JOBS}/{pinned.json()['id']}?wait=60").json()
            assert Inside.seen == [], "the fetch reached the service inside"
            assert done["status"] == "completed", done
            assert client.get(f"{JOBS}/{pinned.json()['id']}/result").json()["text"].strip()
            refused = client.get(f"{JOBS}/{late.json()['id']}?wait=30").json()
            assert refused["status"] == "failed" and refused["error"]["code"] == "url_fetch_failed"
            assert inside in refused["error"]["message"], refused
            wait_for(lambda: len(Receiver.posts.get("/hook", [])) >= 1, "no webhook delivered")
            deliveries = client.get(f"{JOBS}/{pinned.json()['id']}").json()["deliveries"]
            assert [(d["outcome"], d["status_code"]) for d in deliveries] == [("delivered", 200)]
    assert Receiver.hosts == [f"media.rebind.test:{port}"]  # the name kept in the Host header
    assert Receiver.posts["/hook"][0]["headers"]["host"] == f"hook.rebind.test:{port}"
    assert Inside.seen == []


def test_pinned_tls_keeps_the_name(tmp_path: Path) -> None:
    """The connection goes to the address checked, TLS still speaks to the name: its SNI, and the
    certificate verified for the name (the bare address fails verification: no name was lost)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    name = "media.rebind.test"
    openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    subprocess.run(
        [
            *openssl,
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            f"/CN={name}",
            "-addext",
            f"subjectAltName=DNS:{name}",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    names: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda _socket, name, _context: names.append(name)
    Receiver.hosts = []
    httpd = ThreadingHTTPServer(("127.0.0.2", 0), Receiver)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    port = int(httpd.server_address[1])
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    trusted = ssl.create_default_context(cafile=str(cert))

    async def get(host: str) -> int:
        async with outbound_client("url", ("127.0.0.2",), 30, verify=trusted) as client:
            return (await client.get(f"https://{host}:{port}/clip.flac")).status_code

    try:
        with resolving({name: ["127.0.0.2"]}):
            assert asyncio.run(get(name)) == 200
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                asyncio.run(get("127.0.0.2"))
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
    assert names[0] == name and Receiver.hosts == [f"{name}:{port}"]
