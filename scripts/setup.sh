#!/usr/bin/env bash
# Install everything stategate needs on a fresh machine: a virtualenv with the
# package and its dev tools (.venv), and the Apache Kafka broker jars from
# Maven Central (cached in ~/.cache/stategate). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
# Resolve the broker jars now, so the first test or `stategate kafka` does not wait for Maven.
.venv/bin/python -c 'from stategate.app.broker import broker_classpath; print("Kafka jars:", broker_classpath())'
