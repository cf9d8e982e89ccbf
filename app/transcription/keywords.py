"""``keywords``: words and phrases that bias recognition toward themselves (OpenAI's field; the
older ``hotwords`` field is free text of the same kind, and both may be given).

Whisper has no biasing list: the keywords are written into the prompt before
<|startoftranscript|> (faster-whisper's hotwords, kept there for every window of the request),
joined by commas: ``bench/keywords.py`` found that layout best (as many missed keywords recovered
as a "Glossary: ..." sentence, at a third of its cost where they are not spoken; more than spaces).
Whisper reads at most 223 prompt tokens, so a request's keywords are bounded in count and length.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

MAX_KEYWORDS = 50
MAX_KEYWORD_CHARS = 64
# The laid-out keywords must fit the half of Whisper's prompt they are given (223 tokens, about
# 900 characters of English; rare words take more tokens per character).
MAX_KEYWORDS_CHARS = 600

Keyword = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_KEYWORD_CHARS)]
Keywords = Annotated[list[Keyword], Field(max_length=MAX_KEYWORDS)]


def keyword_prompt(keywords: list[str] | tuple[str, ...], hotwords: str | None = None) -> str | None:
    """The prompt text that biases decoding toward ``keywords`` (then ``hotwords``); None: neither."""
    listed = ", ".join(dict.fromkeys(k.strip() for k in keywords if k.strip()))
    joined = " ".join(p for p in (listed, (hotwords or "").strip()) if p)
    return joined or None


def check_keywords(keywords: list[str] | tuple[str, ...]) -> None:
    """ValueError (a 400 naming ``keywords``) when the laid-out keywords are longer than allowed."""
    laid_out = keyword_prompt(keywords) or ""
    if len(laid_out) > MAX_KEYWORDS_CHARS:
        raise ValueError(
            f"the keywords take {len(laid_out)} characters together; at most {MAX_KEYWORDS_CHARS}"
            " fit Whisper's prompt"
        )
