"""Keywords bench: how much ``keywords`` recovers of the names and rare terms the default model
misses, and what keywords that are not spoken cost.

The English speech of ``../shared/eval`` (short clips, the long files cut at their utterances,
FLEURS English) is transcribed by the server (``whisper-1``, ``language=en``) without keywords
first. A reference word the output misses is a keyword when it is rare (its lower-case form takes
two or more of Whisper's BPE tokens) and at least 4 letters long. Clips are grouped by recording
(speaker or file); each clip that missed a keyword is sent again with its group's keywords (the
group's glossary: some of them are spoken in other clips), and recall is the share of its missed
keywords the output now holds. Every clip is also sent with another group's keywords (none of them
in its reference): distractors, scored by WER against the same clips without keywords.

Layouts are compared through the ``hotwords`` field (the server puts it where it puts keywords),
then the ``keywords`` field itself with the server's layout. Clips alternate between a tuning half
(even positions in each group) and a held-out half; each half's keywords are found in that half.

Run by hand: ``python -m bench.keywords [--layouts spaces,commas] [--cache plain.json] [--parallel 2]``
(``--cache`` keeps the outputs without keywords for the next run); not part of the tests.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import tokenizers

from app.audio.decode import decode_audio
from app.audio.pcm import PcmFormat
from app.models.registry import embedded_model_path
from bench.runners import Server, _wav
from tests.support.evalset import clips, normalize, wer

LAYOUTS: dict[str, Callable[[list[str]], str]] = {
    "spaces": lambda kws: " ".join(kws),
    "commas": lambda kws: ", ".join(kws),
    "glossary": lambda kws: "Glossary: " + ", ".join(kws) + ".",
    "terms": lambda kws: "Names and terms: " + ", ".join(kws) + ".",
}


@dataclass(frozen=True)
class Item:
    id: str
    group: str
    wav: bytes
    reference: str


def english_items() -> list[Item]:
    """Short English clips, FLEURS English, and the long files' utterances cut out."""
    items = []
    for clip in clips():
        english = clip.kind == "short" or (clip.kind == "multilingual" and clip.raw.get("language") == "en")
        if english:
            group = clip.raw["speaker"] if clip.kind == "short" else clip.id
            items.append(Item(clip.id, group, clip.path.read_bytes(), clip.text))
        elif clip.kind == "long":
            audio = decode_audio(
                clip.path.read_bytes(), content_type=None, pcm=PcmFormat(), max_duration_s=1e6
            )
            samples = audio.to_float()
            for u in clip.raw["segments"]:
                cut = samples[round(u["start_s"] * 16000) : round(u["end_s"] * 16000)]
                items.append(Item(u["id"], clip.id, _wav(np.asarray(cut)), u["text"]))
    return items


class Rarity:
    """A word is rare when its lower-case form (after a space) takes two or more BPE tokens."""

    def __init__(self) -> None:
        self._tok = tokenizers.Tokenizer.from_file(str(embedded_model_path() / "tokenizer.json"))
        self._base = len(self._tok.encode(" the").ids) - 1  # the special tokens it adds

    def __call__(self, word: str) -> bool:
        if len(word) < 4 or not word.isalpha():
            return False
        return len(self._tok.encode(" " + word).ids) - self._base >= 2


def shown_form(word: str, reference: str) -> str:
    """A keyword as a client would write it: as the reference spells it, capitalised where the
    reference is all upper case (LibriSpeech)."""
    for token in reference.replace(",", " ").replace(".", " ").split():
        if normalize(token) == word:
            return token.capitalize() if reference.isupper() else token.strip("'\"")
    return word


def transcribe(server: Server, item: Item, **fields: Any) -> str:
    r = httpx.post(
        f"{server.base}/v1/audio/transcriptions",
        data={"model": "whisper-1", "language": "en", **fields},
        files={"file": ("a.wav", item.wav, "audio/wav")},
        timeout=600,
    )
    r.raise_for_status()
    return str(r.json()["text"])


def words(text: str) -> set[str]:
    return set(normalize(text).split())


@dataclass
class Half:
    """One half of the clips: its keywords (found in this half) and what each clip is given."""

    name: str
    missed: dict[str, set[str]]  # clip id -> the keywords its plain output missed
    keyworded: list[tuple[Item, list[str]]]  # clips that missed some, with their group's glossary
    distracted: list[tuple[Item, list[str]]]  # every clip with another group's glossary (none spoken)
    kept_of: int  # rare words the keyworded clips' plain outputs got right


def split_halves(items: list[Item], plain: dict[str, str], rare: Rarity) -> list[Half]:
    members: dict[str, list[Item]] = {"tuning": [], "held-out": []}
    position: dict[str, int] = defaultdict(int)
    for it in items:
        members["tuning" if position[it.group] % 2 == 0 else "held-out"].append(it)
        position[it.group] += 1
    halves = []
    for name, clips_ in members.items():
        missed: dict[str, set[str]] = {}
        glossary: dict[str, dict[str, str]] = defaultdict(dict)  # group -> keyword -> shown form
        for it in clips_:
            lost = {w for w in normalize(it.reference).split() if rare(w) and w not in words(plain[it.id])}
            if lost:
                missed[it.id] = lost
                glossary[it.group].update({w: shown_form(w, it.reference) for w in lost})
        groups = sorted(glossary)
        other = {g: groups[(i + 1) % len(groups)] for i, g in enumerate(groups)}
        keyworded = [(it, list(glossary[it.group].values())) for it in clips_ if it.id in missed]
        distracted = []
        for it in clips_:
            given = glossary[other.get(it.group, groups[0])]
            if not set(given) & words(it.reference):
                distracted.append((it, list(given.values())))
        kept_of = sum(
            1 for it, _ in keyworded for w in words(it.reference) if rare(w) and w in words(plain[it.id])
        )
        halves.append(Half(name, missed, keyworded, distracted, kept_of))
    return halves


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.keywords")
    parser.add_argument("--layouts", default="spaces,commas", help=f"hotwords layouts: {', '.join(LAYOUTS)}")
    parser.add_argument("--cache", type=Path, default=None, help="JSON file keeping the no-keywords outputs")
    parser.add_argument("--parallel", type=int, default=2, help="requests at once")
    args = parser.parse_args()
    pool = ThreadPoolExecutor(args.parallel)
    items = english_items()
    rare = Rarity()
    server = Server()
    try:
        _wait_ready(server)

        def run(pairs: list[tuple[Item, dict[str, Any]]]) -> list[str]:
            return list(pool.map(lambda pair: transcribe(server, pair[0], **pair[1]), pairs))

        plain = _cached(
            args.cache,
            lambda: dict(zip([it.id for it in items], run([(it, {}) for it in items]), strict=True)),
        )
        print(f"{len(items)} English clips\n")
        print(
            "| half | layout | keyword clips | missed keywords | recovered | rare words kept |"
            " distractor WER (none -> with) |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- |")
        layouts = [name for name in args.layouts.split(",") if name]  # "": the keywords field alone
        conditions = [(name, "hotwords") for name in layouts] + [("server", "keywords")]
        for half in split_halves(items, plain, rare):
            print(f"<!-- {half.name}: keywords {sorted({w for v in half.missed.values() for w in v})} -->")
            for layout, field in conditions:

                def fields(kws: list[str], layout: str = layout, field: str = field) -> dict[str, Any]:
                    return {"keywords[]": kws} if field == "keywords" else {"hotwords": LAYOUTS[layout](kws)}

                outs = run([(it, fields(kws)) for it, kws in half.keyworded])
                found = sum(
                    len(half.missed[it.id] & words(o))
                    for (it, _), o in zip(half.keyworded, outs, strict=True)
                )
                kept = sum(
                    1
                    for (it, _), o in zip(half.keyworded, outs, strict=True)
                    for w in words(it.reference)
                    if rare(w) and w in words(plain[it.id]) and w in words(o)
                )
                refs = [it.reference for it, _ in half.distracted]
                before = 100 * wer(refs, [plain[it.id] for it, _ in half.distracted])
                after = 100 * wer(refs, run([(it, fields(kws)) for it, kws in half.distracted]))
                total = sum(len(v) for v in half.missed.values())
                recall = f"{found} ({100 * found / max(total, 1):.0f}%)"
                cost = f"{before:.2f}% -> {after:.2f}% ({after - before:+.2f}) on {len(half.distracted)}"
                row = [
                    half.name,
                    f"{layout} ({field})",
                    len(half.keyworded),
                    total,
                    recall,
                    f"{kept}/{half.kept_of}",
                    cost,
                ]
                print("| " + " | ".join(map(str, row)) + " |", flush=True)
    finally:
        server.close()


def _cached(path: Path | None, make: Callable[[], dict[str, str]]) -> dict[str, str]:
    """The outputs without keywords, from ``path`` when it holds them (the server unchanged)."""
    if path is not None and path.is_file():
        return dict(json.loads(path.read_text()))
    made = make()
    if path is not None:
        path.write_text(json.dumps(made))
    return made


def _wait_ready(server: Server, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{server.base}/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not start")


if __name__ == "__main__":
    main()
