# Parley's image: one image for the API, the worker and the migrations
# (`parley api`, `parley worker`, `parley migrate`); compose.yaml picks the command.

# The chat widget, built apart: only its one file goes into the image.
FROM node:20-slim AS widget
WORKDIR /widget
COPY widget/package.json widget/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY widget/ ./
RUN npm run build

# The dashboard, built apart too: its dist/ is served at /app.
FROM node:20-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY web/ ./
RUN npm run build

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 parley \
    && useradd --system --uid 10001 --gid parley --home-dir /app --shell /usr/sbin/nologin parley \
    && install -d -o parley -g parley /var/lib/parley

WORKDIR /app

# Dependencies first, against empty packages, so that a code change reuses this layer. The
# install is editable: /app goes on sys.path, where the code copied below is found, and with it
# alembic.ini and migrations/ that `parley migrate` needs.
COPY pyproject.toml README.md ./
COPY scripts/install-model.sh ./scripts/
RUN mkdir backend worker \
    && touch backend/__init__.py worker/__init__.py \
    && pip install -e . \
    && scripts/install-model.sh /usr/local

COPY alembic.ini ./
COPY migrations ./migrations
COPY worker ./worker
COPY backend ./backend
COPY --from=widget /widget/dist/widget.js ./widget/dist/widget.js
COPY --from=web /web/dist ./web/dist
RUN python -m compileall -q backend worker migrations

# The code stays owned by root: the app can read it, not change it.
USER parley
ENV PARLEY_DATA_DIR=/var/lib/parley \
    PARLEY_API_HOST=0.0.0.0
EXPOSE 8000
CMD ["parley", "api"]
