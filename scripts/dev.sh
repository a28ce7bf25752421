#!/usr/bin/env bash
# Set everything up, then run `stategate dev`: local Kafka, a gateway node,
# the order services and demo inventory. Ctrl-C stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/stategate dev "$@"
