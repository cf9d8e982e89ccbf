"""BCP-47 tags (``en-US``, what the AI Refinery SDK sends and parses) <-> Whisper codes (``en``)."""

from __future__ import annotations

from app.errors import InvalidRequest, shown

# A list literal of 100 codes reads worse than this block.
WHISPER_LANGUAGES = frozenset(
    """af am ar as az ba be bg bn bo br bs ca cs cy da de el en es et eu fa fi fo fr gl gu ha haw he
    hi hr ht hu hy id is it ja jw ka kk km kn ko la lb ln lo lt lv mg mi mk ml mn mr ms mt my ne nl
    nn no oc pa pl ps pt ro ru sa sd si sk sl sn so sq sr su sv sw ta te tg th tk tl tr tt uk ur uz
    vi yi yo zh yue""".split()  # noqa: SIM905
)
# BCP-47 primary subtags that Whisper spells differently.
_ALIASES = {"iw": "he", "jv": "jw", "nb": "no", "fil": "tl", "in": "id", "ji": "yi"}
# The region reported for a detected language (the AI Refinery schema wants ``xx-YY``).
_DEFAULT_REGIONS = {
    "en": "US", "es": "ES", "fr": "FR", "de": "DE", "it": "IT", "pt": "BR", "zh": "CN", "ja": "JP",
    "ko": "KR", "ar": "SA", "hi": "IN", "ru": "RU", "nl": "NL", "sv": "SE", "da": "DK", "nn": "NO",
    "no": "NO", "fi": "FI", "pl": "PL", "tr": "TR", "uk": "UA", "he": "IL", "el": "GR", "cs": "CZ",
    "vi": "VN", "th": "TH", "id": "ID", "ms": "MY", "fa": "IR", "ur": "PK", "bn": "BD", "ta": "IN",
    "sw": "KE", "ca": "ES", "ro": "RO", "hu": "HU", "sk": "SK", "bg": "BG", "hr": "HR", "sr": "RS",
    "sl": "SI", "et": "EE", "lv": "LV", "lt": "LT", "ga": "IE", "cy": "GB", "af": "ZA", "tl": "PH",
}  # fmt: skip


def to_whisper(language: str | None, field: str = "language") -> str | None:
    """``en-US``/``en``/``EN_us`` -> ``en``; ``auto`` or None -> None (detect); unknown -> 400."""
    if language is None or language.strip().lower() in {"", "auto"}:
        return None
    primary = language.strip().replace("_", "-").split("-")[0].lower()
    if language.strip().lower() == "yue" or language.lower().startswith("zh-yue"):
        primary = "yue"
    primary = _ALIASES.get(primary, primary)
    if primary not in WHISPER_LANGUAGES:
        raise InvalidRequest(f"{field}: {shown(language)} is not a language Whisper knows", field=field)
    return primary


def to_bcp47(code: str, requested: str | None = None) -> str:
    """A Whisper code as ``xx-YY``; keeps the region the client asked for when it names one."""
    if requested:
        parts = requested.strip().replace("_", "-").split("-")
        if len(parts) >= 2 and len(parts[0]) == 2 and len(parts[1]) == 2 and to_whisper(parts[0]) == code:
            return f"{parts[0].lower()}-{parts[1].upper()}"
    region = _DEFAULT_REGIONS.get(code, code[:2].upper())
    return f"{code[:2]}-{region}"


def to_whisper_list(languages: list[str]) -> tuple[str, ...]:
    """The request's ``languages`` as Whisper codes, each once ("auto" entries mean nothing)."""
    codes = (to_whisper(language, field="languages") for language in languages)
    return tuple(dict.fromkeys(code for code in codes if code))
