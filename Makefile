# Convenience targets; the README's two commands are what CI and a fresh machine run.
PY ?= python3
VENV ?= .venv

.PHONY: install run test lint bench
install:
	$(PY) -m venv $(VENV) && $(VENV)/bin/pip install -q --upgrade pip && $(VENV)/bin/pip install -q -e '.[dev]'
run:
	$(VENV)/bin/asr-server
test:
	$(VENV)/bin/python -m pytest
lint:
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy
bench:
	$(VENV)/bin/python -m bench
