"""Known speakers' references: data URLs (``data:audio/wav;base64,...``) of 2-10 s of one person's
voice, checked when the form is read and decoded like uploads (same decoders, limits and budget)."""

from __future__ import annotations

import base64
import binascii

from app.audio.decode import decode_audio
from app.audio.pcm import Charge, PcmFormat
from app.diarization.known import REFERENCE_MAX_S, REFERENCE_MIN_S, KnownSpeakers
from app.errors import AsrError, InvalidRequest, ServerBusy, UploadTooLarge

FIELD = "known_speaker_references"
# Encoders pad a clip's end (an MP3 frame, an AAC priming delay): a reference this much over
# REFERENCE_MAX_S still counts as 10 s.
_PADDING_S = 0.1


def data_url_audio(url: str) -> tuple[str, bytes]:
    """A data URL's media type (with its parameters, e.g. ``audio/pcm;rate=8000``) and bytes;
    ValueError (its message for the client) unless it is base64 audio."""
    scheme, _, rest = url.partition(":")
    header, comma, payload = rest.partition(",")
    if scheme.strip().lower() != "data" or not comma:
        raise ValueError("must be a data URL, e.g. data:audio/wav;base64,UklGR...")
    *media, encoding = [part.strip() for part in header.split(";")]
    media_type = ";".join(media)
    if encoding.lower() != "base64":
        raise ValueError("must be a base64 data URL (data:audio/...;base64,...)")
    if not media_type.lower().startswith("audio/"):
        raise ValueError(
            f"must be audio (a data URL of type audio/...), not {media_type[:40] or 'untyped'!r}"
        )
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is not valid base64") from None
    if not data:
        raise ValueError("holds no audio")
    return media_type, data


def decode_references(
    names: list[str], urls: list[str], pcm: PcmFormat, charge: Charge | None
) -> KnownSpeakers | None:
    """The request's known speakers, each reference decoded to 16 kHz mono (its decoded audio
    charged to the request's budget); a reference that is not 2-10 s of audio is a 400 naming it."""
    if not names:
        return None
    decoded = []
    for i, url in enumerate(urls):
        where = f"{FIELD}[{i}] ({names[i]})"
        media_type, data = data_url_audio(url)  # checked when the form was read
        try:
            audio = decode_audio(
                data,
                content_type=media_type,
                pcm=pcm,
                max_duration_s=REFERENCE_MAX_S + _PADDING_S,
                charge=charge,
            )
        except ServerBusy:
            raise
        except UploadTooLarge:
            raise InvalidRequest(
                f"{where}: is too long (a reference is {_span()} of audio)", field=FIELD
            ) from None
        except AsrError as exc:  # not audio, or broken
            reason = exc.message.replace("the uploaded file", "it")
            raise InvalidRequest(
                f"{where}: {reason} (a reference is {_span()} of audio)", field=FIELD
            ) from None
        if audio.duration_s < REFERENCE_MIN_S:
            raise InvalidRequest(
                f"{where}: {audio.duration_s:.1f} s is too short (a reference is {_span()} of audio)",
                field=FIELD,
            )
        decoded.append(audio.pcm)
    return KnownSpeakers(tuple(names), tuple(decoded))


def _span() -> str:
    return f"{REFERENCE_MIN_S:g}-{REFERENCE_MAX_S:g} s"
