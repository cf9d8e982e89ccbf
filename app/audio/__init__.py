"""Bytes -> 16 kHz mono samples -> speech chunks: sniffing, decoding, VAD, chunking, the chunk feed.

Imports only ``app.config`` and ``app.errors``: no HTTP, no model.
"""
