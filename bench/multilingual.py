"""Multilingual bench: the server against the bare faster-whisper library on the multilingual clips
of ``../shared/eval`` (FLEURS: German, French, Spanish, Portuguese, English).

The server gets each clip as a client does by default (``whisper-1``, no language: detected, then
English on tiny.en and the rest on the multilingual base); the library runs ``transcribe`` with the
language given on the model the server routed to. A second pass sends English to ``base``
explicitly, for the routing trade (tiny.en's speed against base's accuracy). Prints, per language:
throughput (audio seconds per wall second, one request at a time) of both, their ratio, and both WERs
(Whisper's BasicTextNormalizer on both sides); then the detection accuracy.

Run by hand: ``python -m bench.multilingual [--library-threads N]``; not part of the tests.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import httpx
import jiwer
from faster_whisper import WhisperModel
from whisper_normalizer.basic import BasicTextNormalizer

from app.config import load_settings
from app.engine.placement import available_cores
from app.models.packaged import assembled_model
from app.models.registry import embedded_model_path
from bench.runners import Server
from tests.support.evalset import Clip, clips

_normalizer = BasicTextNormalizer()


def wer(refs: list[str], hyps: list[str]) -> float:
    def norm(text: str) -> str:
        return " ".join(str(_normalizer(text)).split()) or "<empty>"

    return 100 * float(jiwer.wer([norm(r) for r in refs], [norm(h) for h in hyps]))


def timed(run: Callable[[Clip], str], chosen: list[Clip]) -> tuple[float, list[str]]:
    """(seconds, texts) for the clips one after another."""
    start, texts = time.monotonic(), [run(c) for c in chosen]
    return time.monotonic() - start, texts


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.multilingual")
    parser.add_argument("--library-threads", type=int, default=0, help="default: the server's CPU threads")
    args = parser.parse_args()
    threads = args.library_threads or load_settings().cpu_threads or available_cores()
    every = clips("multilingual")
    languages = sorted({c.raw["language"] for c in every})
    server = Server()
    heard: dict[str, str] = {}  # the language the server detected, per clip

    def served(model: str, language: str | None) -> Callable[[Clip], str]:
        def run(c: Clip) -> str:
            fields = {"model": model, "response_format": "verbose_json", "language": language or "auto"}
            url = f"{server.base}/v1/audio/transcriptions"
            with c.path.open("rb") as f:
                r = httpx.post(url, data=fields, files={"file": f}, timeout=600)
            r.raise_for_status()
            if language is None:
                heard[c.id] = r.json()["language"]
            return str(r.json()["text"])

        return run

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{server.base}/health", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    for model in ("whisper-1", "base"):  # load both before timing anything
        served(model, "de")(every[0])
    base = WhisperModel(str(assembled_model()), device="cpu", compute_type="int8", cpu_threads=threads)
    tiny = WhisperModel(str(embedded_model_path()), device="cpu", compute_type="int8", cpu_threads=threads)

    def library(model: WhisperModel) -> Callable[[Clip], str]:
        def run(c: Clip) -> str:
            segments, _ = model.transcribe(str(c.path), language=c.raw["language"], beam_size=5)
            return "".join(s.text for s in segments)

        return run

    rows = []
    for language in languages:
        chosen = [c for c in every if c.raw["language"] == language]
        audio_s = sum(c.duration_s for c in chosen)
        refs = [c.text for c in chosen]
        routes = [("whisper-1 (detected)", served("whisper-1", None), tiny if language == "en" else base)]
        if language == "en":
            routes.append(("base (en given)", served("base", "en"), base))
        for name, server_run, model in routes:
            server_s, server_texts = timed(server_run, chosen)
            library_s, library_texts = timed(library(model), chosen)
            rows.append(
                f"| {language} | {name} | {len(chosen)} | {audio_s:.1f} | {audio_s / server_s:.1f}x "
                f"| {audio_s / library_s:.1f}x | {library_s / server_s:.2f} "
                f"| {wer(refs, server_texts):.2f}% | {wer(refs, library_texts):.2f}% |"
            )
    server.close()
    right = sum(heard[c.id].split("-")[0] == c.raw["language"] for c in every)
    print(f"CPU threads: server {load_settings().cpu_threads or available_cores()}, library {threads}")
    print(
        "| language | server route | clips | audio s | server | library | server/library speed "
        "| server WER | library WER |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    print(f"detection (no language given): {right}/{len(every)} right ({100 * right / len(every):.1f}%)")


if __name__ == "__main__":
    main()
