# guildsite: two commands for a newcomer (`make run`, `make test`), plus `make bench`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8880
HOST ?= 127.0.0.1

.PHONY: install run test bench lint

$(VENV)/.installed: requirements.txt sdk/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

install: $(VENV)/.installed

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py load_demo_data --host $(HOST) --port $(PORT)
	GRPC_HOST=$(HOST) $(PY) -m guildsite.serve -b $(HOST) -p $(PORT) guildsite.asgi:application

test: install
	$(PY) tests/run_suites.py

lint: install
	$(VENV)/bin/ruff check .

bench: install
	$(PY) -m bench
