"""Which model decodes a request and loading it: the registry, model selection, the packaged model.

Imports ``app.engine`` (the contract) and ``app.server`` (metrics), never HTTP routes or transcription.
"""
