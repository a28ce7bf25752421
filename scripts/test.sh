#!/usr/bin/env bash
# The whole test suite: lint, types, unit and integration tests against a real
# Kafka broker that the suite starts itself (or KAFKA_BOOTSTRAP_SERVERS).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
