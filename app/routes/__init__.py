"""The web API: thin HTTP routes over the transcription service and live sessions.

The top of the layers below ``app.main``: may import every package but ``app.main``.
"""
