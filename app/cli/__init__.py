"""``asr-server transcribe PATH...``: files and folders of recordings -> transcripts beside them (or
under ``--out``), in-process on the configured models or against a running server, with progress
bars; re-runnable (done files are skipped) and every output written whole or not at all."""
