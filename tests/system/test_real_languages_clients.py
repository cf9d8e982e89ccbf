"""Other languages through the real SDKs and the real server: the AI Refinery SDK with a declared
language, openai-python's translations (the clips and scoring of ``test_real_languages``)."""

from __future__ import annotations

import json

import pytest
import srt

from tests.integration.test_real_languages import clip, normalize, wer
from tests.support.harness import LiveServer
from tests.support.sdk_clients import run_client, sdk_env


def test_ai_refinery_sdk_with_a_declared_language(live_server: LiveServer) -> None:
    german = clip("fleurs-de-001")
    args = [str(german.path), "--client", "sync", "--language", "de-DE", "--response-format", "verbose_json"]
    out = run_client("air-current", "air_current.py", args, sdk_env(live_server))
    call = out["calls"]["sync"]
    assert call["ok"], out
    assert call["result"]["language"] == "de-DE" and wer([german.text], [call["result"]["text"]]) < 0.3


@pytest.mark.parametrize("response_format", ["verbose_json", "srt"])
def test_openai_python_translations(live_server: LiveServer, response_format: str) -> None:
    """FLEURS is parallel: the French and Portuguese clips read the same sentence, whose English
    is "Giancarlo Fisichella lost control of his car and ended the race very soon after the start"."""
    source = clip("fleurs-pt-002" if response_format == "srt" else "fleurs-fr-005")
    args = [str(source.path), "--client", "sync", "--translate", "--response-format", response_format]
    out = run_client("air-current", "openai_client.py", args, sdk_env(live_server))
    call = out["calls"]["sync"]
    assert call["ok"], out
    result = call["result"]
    text = (
        result["text"]
        if response_format == "verbose_json"
        else " ".join(cue.content for cue in srt.parse(result))
    )
    english = set(normalize(text).split())
    assert len(english & {"lost", "control", "car", "race", "the", "his"}) >= 4, text
    if response_format == "verbose_json":
        assert result["language"] == "en-US" and json.dumps(result).count("source_language") == 1
