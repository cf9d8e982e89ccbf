"""The command line of ``asr-server transcribe``: options -> the request fields every file is sent with."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.cli.files import SUFFIXES

FORMAT_NAMES = {"txt": "text", **{f: f for f in SUFFIXES}}


@dataclass(frozen=True, slots=True)
class Options:
    paths: list[Path]
    formats: list[str]  # response formats (``txt`` given as ``text``), in the order given
    fields: dict[str, Any]  # request fields but response_format, as the API takes them
    task: str  # transcribe or translate
    out_dir: Path | None
    jobs: int
    overwrite: bool
    server: str | None
    api_key: str | None
    timeout_s: float
    config: Path | None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="asr-server transcribe",
        description="Transcribe audio and video files, and folders of them (recursively), into "
        "transcript files beside each one. Files whose outputs exist are skipped (re-runnable). "
        "Ctrl-C finishes the files in progress; a second Ctrl-C stops at once.",
    )
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files and folders")
    p.add_argument(
        "-f", "--format", default="txt,srt",
        help="output formats, comma-separated: txt, srt, vtt, json, verbose_json, diarized_json, "
        "or all (default: txt,srt)",
    )  # fmt: skip
    p.add_argument("-o", "--out", type=Path, help="output folder (default: beside each file)")
    p.add_argument("--overwrite", action="store_true", help="transcribe files whose outputs exist")
    p.add_argument("-j", "--jobs", type=int, default=1, help="files transcribed at once (default 1)")
    req = p.add_argument_group("request", "the API's request fields")
    req.add_argument("-m", "--model", help="model id or alias (default: the configured default model)")
    req.add_argument("-l", "--language", help="spoken language, e.g. en, de, fr (default: detect)")
    req.add_argument("--task", choices=("transcribe", "translate"), default="transcribe",
                     help="translate: English text from speech in any language")  # fmt: skip
    req.add_argument("--speakers", action="store_true", help="label who speaks (diarize)")
    req.add_argument("--num-speakers", type=int, help="exact number of speakers (implies --speakers)")
    req.add_argument("--min-speakers", type=int, help="at least this many speakers")
    req.add_argument("--max-speakers", type=int, help="at most this many speakers")
    req.add_argument("--prompt", help="text the transcript continues (names, spelling, style)")
    req.add_argument("--hotwords", help="words to favour")
    req.add_argument("--temperature", type=float, help="sampling temperature (default: fallback)")
    req.add_argument("--word-timestamps", action="store_true", help="list words in verbose_json")
    req.add_argument("--chunking-strategy", help="'auto' or server_vad JSON")
    srv = p.add_argument_group("server", "send the files to a running asr-server instead")
    srv.add_argument("--server", metavar="URL", help="e.g. http://127.0.0.1:8000")
    srv.add_argument("--api-key", default=os.environ.get("ASR_API_KEY"),
                     help="the server's API key (default: $ASR_API_KEY)")  # fmt: skip
    srv.add_argument("--timeout", type=float, default=3600.0, help="seconds per file (default 3600)")
    p.add_argument("--config", type=Path, help="config file for in-process runs (default: ./config.yaml)")
    return p


def parse(argv: list[str]) -> Options:
    p = parser()
    a = p.parse_args(argv)
    names = [n.strip().lower() for n in a.format.split(",") if n.strip()]
    if names == ["all"]:
        names = list(SUFFIXES)
    unknown = [n for n in names if n not in FORMAT_NAMES]
    if unknown or not names:
        p.error(f"--format: unknown {', '.join(unknown) or 'empty'}; one of {', '.join(FORMAT_NAMES)}")
    if a.jobs < 1:
        p.error("--jobs: at least 1")
    fields: dict[str, Any] = {
        "model": a.model,
        "language": a.language,
        "prompt": a.prompt,
        "hotwords": a.hotwords,
        "temperature": a.temperature,
        "chunking_strategy": a.chunking_strategy,
        "num_speakers": a.num_speakers,
        "min_speakers": a.min_speakers,
        "max_speakers": a.max_speakers,
    }
    fields = {k: v for k, v in fields.items() if v is not None}
    if a.speakers:
        fields["diarize"] = True
    if a.word_timestamps:
        fields["timestamp_granularities"] = ["word", "segment"]
    return Options(
        paths=a.paths,
        formats=list(dict.fromkeys(FORMAT_NAMES[n] for n in names)),
        fields=fields,
        task=a.task,
        out_dir=a.out,
        jobs=a.jobs,
        overwrite=a.overwrite,
        server=a.server.rstrip("/") if a.server else None,
        api_key=a.api_key,
        timeout_s=a.timeout,
        config=a.config,
    )


def decoding_format(formats: list[str]) -> str:
    """The one response format a file is decoded for, so that every asked format can be rendered
    from that result: speakers for diarized_json, word timings for subtitles."""
    for wanted in ("diarized_json", "srt", "vtt", "verbose_json"):
        if wanted in formats:
            return wanted
    return formats[0]
