# Atelier web/worker image. Build: docker build -t atelier .
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=config.settings

WORKDIR /app
RUN useradd --create-home --uid 10001 atelier

COPY requirements.txt constraints.txt ./
RUN pip install --no-cache-dir -r requirements.txt -c constraints.txt

COPY . .
# Static files are collected at build time; the dummy values only satisfy the production checks.
RUN DJANGO_ENV=production SECRET_KEY=build-only-not-secret-build-only-not-secret-0000 \
    ALLOWED_HOSTS=build DATABASE_URL=sqlite:////tmp/build.db STATIC_ROOT=/app/staticfiles \
    python manage.py collectstatic --noinput \
    && mkdir -p /app/var && chown -R atelier /app/var

USER atelier
ENV STATIC_ROOT=/app/staticfiles ATELIER_VAR_DIR=/app/var
EXPOSE 8000
# gunicorn 27 opens a control socket under ~/.gunicorn by default; containers don't need it.
# --preload loads Django once in the master: a configuration error stops the container with its
# one-line message instead of workers restarting forever. Threads: an API call with `Prefer: wait`
# or an MCP generation tool holds its thread up to ~40 s while the job runs, so each worker has 8
# and a few waiting calls leave the site answering (at most 24 database connections per container).
CMD ["gunicorn", "config.wsgi:application", "--preload", "--bind", "0.0.0.0:8000", "--workers", "3", "--worker-class", "gthread", "--threads", "8", "--timeout", "60", "--no-control-socket", "--access-logfile", "-"]
