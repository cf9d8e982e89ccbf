"""Live transcription over a WebSocket, wire-compatible with OpenAI's Realtime transcription sessions.

- ``protocol``: client events in, validated.
- ``events``: the server events out, typed.
- ``segmenter``: utterances found in the audio as it arrives (the HTTP path's webrtcvad).
- ``partials``: successive previews turned into append-only deltas.
- ``utterances``: each utterance's decode state, and the options of previews and final decodes.
- ``capacity``: the limits all sessions share (sessions, previews running at once).
- ``decoder``: one session's decoding: previews for deltas, final decodes in order for ``completed``.
- ``session``: one connection's state machine: client events, resampling, turns, commits.

``app.routes.realtime`` accepts the socket (auth, limits). Imports ``app.audio``, ``app.engine``,
``app.models`` and ``app.transcription`` (prompts, logprobs); never the routes.
"""
