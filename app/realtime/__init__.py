"""Live transcription over a WebSocket, wire-compatible with OpenAI's Realtime transcription sessions.

``protocol`` parses client events, ``events`` types the server events, ``segmenter`` finds
utterances in the audio as it arrives (the HTTP path's webrtcvad), ``partials`` turns successive
partial decodes into append-only deltas, ``session`` runs one connection's state machine, and
``app.routes.realtime`` accepts the socket (auth, limits).
"""
