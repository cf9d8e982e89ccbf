"""Fast tests, in-process: the fake engine, pure functions (``make test-fast``)."""
