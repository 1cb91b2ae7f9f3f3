# The two set-up commands in the README are `make demo` and `make test`.
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

.PHONY: install demo test bench
install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/motcua demo

# Runs every test on SQLite and on PostgreSQL (MOTCUA_TEST_PG_URL, default the local `test` database).
# tools/test-env.sh installs Debian's chromium and starts PostgreSQL when run as root on a fresh machine.
test: $(STAMP)
	tools/test-env.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q

bench: $(STAMP)
	$(VENV)/bin/python bench/engine_cycle.py
