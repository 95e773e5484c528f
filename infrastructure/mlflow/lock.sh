#!/usr/bin/env bash
# Derive the MLflow image's lock from the workspace lock, as infrastructure/lock.sh does for the services:
# the image installs exactly the versions the tests ran with, every one hash-checked.
set -euo pipefail
uv=${1:?usage: lock.sh PATH_TO_UV}
cd "$(dirname "$0")/../.."

constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
grep -v '^-e ' requirements.lock > "$constraints"
"$uv" pip compile --quiet --python-version 3.11 --generate-hashes --constraint "$constraints" \
  --no-header infrastructure/mlflow/requirements.in -o infrastructure/mlflow/requirements.lock
