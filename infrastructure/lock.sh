#!/usr/bin/env bash
# Resolve the whole workspace once (requirements.lock), then derive each service's image lock from it,
# so every image installs a subset of exactly the versions the tests ran with.
set -euo pipefail
uv=${1:?usage: lock.sh PATH_TO_UV}
cd "$(dirname "$0")/.."

"$uv" pip compile --quiet --python-version 3.11 --generate-hashes requirements.in -o requirements.lock
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
grep -v '^-e ' requirements.lock > "$constraints"

for dir in services/*/; do
  service=$(basename "$dir")
  package=fraudops-$service
  printf -- '-e ./libs/fraudops\n-e ./%s\n' "${dir%/}" |
    "$uv" pip compile --quiet --python-version 3.11 --generate-hashes \
      --constraint "$constraints" --no-emit-package fraudops --no-emit-package "$package" \
      --no-header - -o "${dir}requirements.lock"
  # Name the constraint by what it is, not by its temporary path, so the locks diff only on real changes.
  sed -i "s|-c $constraints|-c requirements.lock|" "${dir}requirements.lock"
done
