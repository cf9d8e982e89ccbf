"""Helpers the tiers share: generated and eval audio, fake engines and servers, client venvs."""
