# Convenience targets; the README's two commands are what CI and a fresh machine run.
PY ?= python3
VENV ?= .venv

# Debian packages the tests drive for real: ffmpeg (test audio in every container), nginx and
# prometheus (the fleet and scrape tests), chromium (the web page in a real browser), postgresql (the
# jobs fleet: a throwaway cluster per test run). `make test` installs the missing ones (as root, or
# through sudo); nothing starts them as services.
TEST_APT_PACKAGES ?= ffmpeg nginx prometheus chromium postgresql
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install run test test-fast test-deps test-container lint bench
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
# The Docker image built and run with podman as compose would (opt-in, tests/system/test_container.py:
# minutes cold; the stand-in base image and the unchanged layers stay cached in podman's store).
CONTAINER_APT_PACKAGES ?= podman debootstrap runc uidmap
test-container:
	@$(MAKE) --no-print-directory test-deps TEST_APT_PACKAGES="$(CONTAINER_APT_PACKAGES)"
	ASR_CONTAINER_TESTS=1 $(VENV)/bin/python -m pytest tests/system/test_container.py
lint:
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy
bench:
	$(VENV)/bin/python -m bench
