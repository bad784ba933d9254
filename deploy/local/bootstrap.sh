#!/usr/bin/env bash
# Everything `make run` and `make test` need, installed if missing (idempotent):
# uv (from PyPI), the Python workspace (one lock file), RabbitMQ, FerretDB.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
export UV_PYTHON_DOWNLOADS=never

if command -v uv >/dev/null 2>&1; then
  UV=(uv)
elif python3 -m uv --version >/dev/null 2>&1; then
  UV=(python3 -m uv)
else
  echo "[bootstrap] installing uv from PyPI" >&2
  python3 -m pip install --quiet --disable-pip-version-check "uv>=0.9,<1"
  UV=(python3 -m uv)
fi

echo "[bootstrap] python dependencies (uv sync --locked)" >&2
"${UV[@]}" sync --all-packages --locked --python 3.11 --quiet

JAUGE_PYTHON="$ROOT/.venv/bin/python" "$ROOT/deploy/local/infra.sh" install
