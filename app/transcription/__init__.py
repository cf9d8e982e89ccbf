"""One transcription request: its params, the windows it is decoded in, its result, the bodies,
stream events and subtitles it is answered with.

Imports ``app.audio``, ``app.engine``, ``app.diarization``, ``app.models`` and ``app.server``; never the
routes or realtime.
"""
