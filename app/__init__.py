"""asr-server: a self-hosted speech-to-text server with OpenAI- and AI Refinery-compatible APIs."""
