"""The web API: thin HTTP routes over the transcription service and live sessions."""
