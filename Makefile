# Okada: every entry point a developer or CI uses. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
MANAGE := $(BIN)/python manage.py
STAMP := $(VENV)/.installed

# French catalogues: compiled by the set-up (msgfmt), never committed (see `make messages`).
PO := $(shell find locale -name '*.po' 2>/dev/null)
MO := $(PO:.po=.mo)

.PHONY: help venv up down status system run serve test lint bench migrate messages compilemessages requirements clean

help:
	@echo "make run     - services + migrate + admin + demo data, then web, worker and beat (Ctrl-C stops)"
	@echo "make serve   - the web app under gunicorn with the production settings (http://127.0.0.1:8000)"
	@echo "make test    - the whole pytest suite against real PostgreSQL and Redis"
	@echo "make up      - start private PostgreSQL and Redis under var/ (idempotent)"
	@echo "make down    - stop them (idempotent; data stays in var/)"
	@echo "make lint    - ruff (lint + format check), mypy, import layers, squawk (SQL in migrations), makemigrations --check"
	@echo "make bench   - benchmarks against a seeded database"
	@echo "make messages - refresh locale/ from the code (then translate the new entries)"

$(STAMP): requirements.txt requirements-dev.txt
	@test -n "$(PYTHON)" || { echo "Python 3.11 not found: install python3.11"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))' || { echo "Python >= 3.11 is required ($(PYTHON) is older)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { echo "cannot create a venv: install python3.11-venv (apt-get install -y python3.11-venv)"; exit 1; }
	@echo "[setup] installing pinned requirements into $(VENV) ..."
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	@touch $@

venv: $(STAMP)

system:
	@$(PYTHON) okada/devservices.py system

%.mo: %.po
	@msgfmt --check-format -o $@ $<

compilemessages: system $(MO)

messages: venv system
	@$(MANAGE) update_messages

up:
	@$(PYTHON) okada/devservices.py up

down:
	@$(PYTHON) okada/devservices.py down

status:
	@$(PYTHON) okada/devservices.py status

migrate: venv up compilemessages
	@$(MANAGE) check_services
	@$(MANAGE) backup --kind pre_migration --if-migrations-pending
	@$(MANAGE) migrate --noinput

run: migrate
	@$(MANAGE) ensure_admin
	@$(MANAGE) seed_demo --preset small --if-empty
	@$(MANAGE) backup --if-stale --verify
	@echo "[run] web on http://127.0.0.1:8000/admin/ + Celery worker + beat; Ctrl-C stops them."
	@echo "[run] PostgreSQL and Redis keep running in the background: 'make down' stops them."
	@$(BIN)/honcho --no-prefix -f okada/Procfile -d . start || test $$? -eq 130

# Production settings on a developer machine: plain HTTP (no TLS redirect), a secret key kept in
# var/, static files collected and served by whitenoise. Real deployments set these themselves.
SERVE_ENV = DJANGO_SETTINGS_MODULE=okada.settings.production \
	SECRET_KEY="$${SECRET_KEY:-$$(cat var/serve-secret-key)}" \
	ALLOWED_HOSTS="$${ALLOWED_HOSTS:-127.0.0.1,localhost}" \
	DJANGO_SECURE_SSL_REDIRECT="$${DJANGO_SECURE_SSL_REDIRECT:-0}"

serve: migrate
	@test -s var/serve-secret-key || (umask 077 && $(BIN)/python -c "import secrets; print(secrets.token_urlsafe(50))" > var/serve-secret-key)
	@chmod 600 var/serve-secret-key
	@$(SERVE_ENV) $(MANAGE) collectstatic --noinput -v0
	@echo "[serve] gunicorn (production settings) on http://$${GUNICORN_BIND:-127.0.0.1:8000}/ -- API docs at /api/docs/; Ctrl-C stops it."
	@$(SERVE_ENV) $(BIN)/gunicorn -c okada/gunicorn.conf.py okada.wsgi || test $$? -eq 130

test: venv up compilemessages
	@$(BIN)/pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports --no-logo --no-cache
	@# The SQL migrations run by hand (RunSQL), written out for squawk (.squawk.toml says what it skips)
	@DJANGO_SETTINGS_MODULE=okada.settings.test $(MANAGE) migration_sql --out var/migration-sql >/dev/null
	$(BIN)/squawk 'var/migration-sql/**/*.sql'
	@DJANGO_SETTINGS_MODULE=okada.settings.test $(MANAGE) makemigrations --check --dry-run >/dev/null || { echo "models changed without a migration: run makemigrations"; exit 1; }

bench: migrate
	@$(BIN)/python -m bench $(BENCH_ARGS)

requirements:
	$(BIN)/uv pip compile -q requirements.in -o requirements.txt --python-version 3.11
	$(BIN)/uv pip compile -q requirements-dev.in -o requirements-dev.txt --python-version 3.11

clean: down
	@# var/pg may be a symlink to the cluster kept elsewhere (see okada/devservices.py)
	@if [ -L var/pg ]; then rm -rf "$$(readlink -f var/pg)"; fi
	rm -rf var $(VENV)
