# Convenience targets; the README's two commands are what CI and a fresh machine run.
PY ?= python3
VENV ?= .venv

# Debian packages the tests drive for real: ffmpeg (test audio in every container), nginx and
# prometheus (the fleet and scrape tests), chromium (the web page in a real browser), postgresql (the
# jobs fleet: a throwaway cluster per test run), podman with runc and mmdebstrap (the Docker image on a
# locally made base, tests/system/test_container.py). `make test` installs the missing ones (as root,
# or through sudo); nothing starts them as services.
TEST_APT_PACKAGES ?= ffmpeg nginx prometheus chromium postgresql podman runc uidmap mmdebstrap
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install run test test-fast test-deps lint bench
install:
	$(PY) -m venv $(VENV) && $(VENV)/bin/pip install -q --upgrade pip && $(VENV)/bin/pip install -q -e '.[dev]'
run:
	$(VENV)/bin/asr-server
test-deps:
	@missing=$$(for p in $(TEST_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    --no-install-recommends $$missing; \
	fi
test: test-deps
	$(VENV)/bin/python -m pytest
# The unit tier alone (fake engine, no model, no servers, no Debian packages): under a minute.
test-fast:
	$(VENV)/bin/python -m pytest tests/unit
lint:
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy
bench:
	$(VENV)/bin/python -m bench
