# Atelier. `make run` and `make test` are the two set-up commands; the rest are helpers.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip --disable-pip-version-check
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test worker beat migrate lint format check-deploy clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Stamps: reinstall only when the pins change.
$(VENV)/.runtime: requirements.txt constraints.txt | $(BIN)/python
	$(PIP) install -q -r requirements.txt -c constraints.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt constraints.txt | $(BIN)/python
	$(PIP) install -q -r requirements-dev.txt -c constraints.txt
	touch $@ $(VENV)/.runtime

# Migrates, ensures the demo account, then runs the web server and (with no broker configured) a
# Celery worker with beat inside it on a filesystem broker under var/broker; Ctrl-C stops both.
# See config/devserver.py.
run: $(VENV)/.runtime
	$(BIN)/python -m config.devserver $(HOST):$(PORT)

test: $(VENV)/.dev
	$(BIN)/pytest $(PYTEST_ARGS)

# With a broker server (REDIS_URL or CELERY_BROKER_URL) `make run` starts no worker; run both
# beside it: `make worker` runs the queued jobs, `make beat` is the clock (exactly one per
# deployment) that finishes or refunds jobs a dead worker left behind; see "What runs where" in
# the README.
worker: $(VENV)/.runtime
	$(BIN)/celery -A config worker -l info --concurrency=$${CELERY_CONCURRENCY:-2}

beat: $(VENV)/.runtime
	$(BIN)/celery -A config beat -l info --schedule=var/celerybeat-schedule

migrate: $(VENV)/.runtime
	$(BIN)/python manage.py migrate --noinput

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

check-deploy: $(VENV)/.runtime
	DJANGO_ENV=production SECRET_KEY=$$($(BIN)/python -c 'import secrets;print(secrets.token_urlsafe(50))') \
	ALLOWED_HOSTS=atelier.example DATABASE_URL=sqlite:////tmp/atelier-deploy-check.db \
	$(BIN)/python manage.py check --deploy --fail-level WARNING

clean:
	rm -rf $(VENV) var/atelier.sqlite3 var/atelier.sqlite3-wal var/atelier.sqlite3-shm var/broker .pytest_cache
