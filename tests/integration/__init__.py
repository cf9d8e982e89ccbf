"""The real model in process, or a real server process on 127.0.0.1, on real eval audio."""
