"""``asr-server transcribe``'s pure parts: options, the files a run takes, where outputs go, and
writing them whole or not at all (the command itself runs in tests/integration/test_cli.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.cli.args import decoding_format, parse
from app.cli.files import TEMP_PREFIX, find_sources, write_whole


def test_formats_are_response_formats_in_order_without_repeats() -> None:
    opts = parse(["a.wav", "-f", "srt, txt,text,diarized_json"])
    assert opts.formats == ["srt", "text", "diarized_json"]
    assert parse(["a.wav", "-f", "all"]).formats == [
        "text", "srt", "vtt", "json", "verbose_json", "diarized_json",
    ]  # fmt: skip
    with pytest.raises(SystemExit):
        parse(["a.wav", "-f", "docx"])


def test_request_fields_are_only_the_ones_given() -> None:
    opts = parse(["a.wav", "--language", "de", "--speakers", "--num-speakers", "2", "--word-timestamps"])
    assert opts.fields == {
        "language": "de",
        "num_speakers": 2,
        "diarize": True,
        "timestamp_granularities": ["word", "segment"],
    }
    assert parse(["a.wav"]).fields == {}


def test_one_decode_serves_every_format() -> None:
    assert decoding_format(["text", "diarized_json", "srt"]) == "diarized_json"  # speakers and words
    assert decoding_format(["text", "vtt"]) == "vtt"  # word timings for cues
    assert decoding_format(["text", "json"]) == "text"


def test_folders_are_searched_for_media_and_outputs_keep_their_layout(tmp_path: Path) -> None:
    root = tmp_path / "talks"
    (root / "day1").mkdir(parents=True)
    for name in ("day1/a.flac", "day1/b.MP4", "notes.txt", "c.srt", f"{TEMP_PREFIX}x.wav"):
        (root / name).write_bytes(b"")
    beside = {s.path.relative_to(root): s.out_stem for s in find_sources([root], None)}
    assert beside == {Path("day1/a.flac"): root / "day1/a", Path("day1/b.MP4"): root / "day1/b"}
    out = tmp_path / "out"
    under = [s.out_stem for s in find_sources([root, tmp_path / "one.ogg"], out)]
    assert under == [out / "talks/day1/a", out / "talks/day1/b", out / "one"]
    assert next(find_sources([root], None)).outputs(["text", "verbose_json"]) == {
        "text": root / "day1/a.txt",
        "verbose_json": root / "day1/a.verbose.json",
    }


def test_an_output_is_written_whole_or_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "sub" / "a.srt"
    write_whole(target, "first\n")
    assert target.read_text() == "first\n"

    def interrupted(fd: int) -> None:  # Ctrl-C after the new text went to the temporary file
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_whole(target, "second\n")
    assert target.read_text() == "first\n"  # the old content, not a part of the new
    assert [p.name for p in target.parent.iterdir()] == ["a.srt"]  # no temporary file left
