"""What jobs send out: Standard Webhooks signatures, the retry schedule, URL refusals (SSRF), and
credentials kept out of what is shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.jobs.urls import redact
from app.jobs.webhooks import Webhooks, sign
from app.jobs_config import JobsSettings
from app.server.metrics import Metrics
from tests.support.harness import MakeClient
from tests.unit.test_api import speech_wav


def test_signature_matches_the_standard_webhooks_vector() -> None:
    # The test vector the Standard Webhooks reference libraries check against.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    signature = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_retry_delays_grow_and_are_capped() -> None:
    hooks = Webhooks(JobsSettings(webhook_retry_base_s=10), Metrics())
    delays = [hooks.delay_s(k) for k in range(1, 11)]
    assert delays[:3] == [10, 40, 160] and max(delays) == 6 * 3600
    assert 12 * 3600 < sum(delays) < 2 * 24 * 3600  # the default schedule spans about a day


def test_redact_drops_credentials() -> None:
    assert redact("https://u:secret@host.example:8443/a?b=1") == "https://host.example:8443/a?b=1"
    assert redact("http://host.example/a") == "http://host.example/a"


@pytest.mark.parametrize(
    ("field", "url", "mentions"),
    [
        ("url", "http://127.0.0.1:9/a.wav", "loopback"),
        ("url", "http://169.254.169.254/latest/meta-data", "169.254.169.254"),
        ("url", "http://10.0.0.7/a.wav", "private"),
        ("url", "http://[::1]/a.wav", "::1"),
        ("url", "http://[::ffff:192.168.0.1]/a.wav", "private"),
        ("url", "http://localhost:8000/a.wav", "127.0.0.1"),  # a name that resolves to loopback
        ("url", "file:///etc/passwd", "http"),
        ("url", "gopher://example.com/", "http"),
        ("callback_url", "http://192.168.1.1/hook", "private"),
        ("callback_url", "http://100.64.0.1/hook", "private"),  # carrier-grade NAT
    ],
)
def test_private_and_odd_urls_are_refused(
    make_client: MakeClient, tmp_path: Path, field: str, url: str, mentions: str
) -> None:
    client = make_client(jobs=JobsSettings(data_dir=tmp_path))
    data = {"model": "whisper-1", field: url}
    files = None if field == "url" else {"file": ("a.wav", speech_wav(), "audio/wav")}
    r = client.post("/v1/audio/jobs", data=data, files=files)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["param"] == field and mentions in body["error"]


def test_allow_list_admits_a_private_host(make_client: MakeClient, tmp_path: Path) -> None:
    client = make_client(jobs=JobsSettings(data_dir=tmp_path, allow_private_urls=("127.0.0.0/8",)))
    r = client.post(
        "/v1/audio/jobs",
        data={"model": "whisper-1", "callback_url": "http://user:pw@127.0.0.1:9/hook"},
        files={"file": ("a.wav", speech_wav(), "audio/wav")},
    )
    assert r.status_code == 202 and r.json()["callback_url"] == "http://127.0.0.1:9/hook"
    both = client.post(
        "/v1/audio/jobs",
        data={"model": "whisper-1", "url": "http://127.0.0.1:9/a.wav"},
        files={"file": ("a.wav", speech_wav(), "audio/wav")},
    )
    assert both.status_code == 400 and "one of them" in both.json()["error"]
