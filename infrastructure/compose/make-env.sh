#!/usr/bin/env bash
# Write the .env docker compose reads (default: .env at the repository root) with fresh random secrets.
# An existing file is kept untouched: Postgres' and MinIO's data volumes depend on the values in it.
# Values are never printed; the file is created with mode 0600.
# Every secret is 64 hex characters: URL-safe (they go into database URLs), and no placeholder word fits
# in the hex alphabet, so the services' secret check accepts them.
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${1:-.env}

if [ -e "$target" ]; then
  echo "$target exists; kept as it is (delete it to generate new secrets, and the data volumes with it)"
  exit 0
fi

secret() {
  if command -v openssl >/dev/null 2>&1; then
    openssl rand -hex 32
  else
    python3 -c 'import secrets; print(secrets.token_hex(32))'
  fi
}
token_table() { printf "'{\"operator\": \"%s\"}'" "$(secret)"; }
# Alertmanager calls the monitor's webhook as its own principal: the same token in both variables.
webhook_token=$(secret)
monitor_tokens() { printf "'{\"operator\": \"%s\", \"alertmanager\": \"%s\"}'" "$(secret)" "$webhook_token"; }

umask 077
tmp=$(mktemp "$target.XXXXXX")
trap 'rm -f "$tmp"' EXIT
cat >"$tmp" <<ENV
# Written by \`make compose-env\` (infrastructure/compose/make-env.sh); see .env.example for each variable.
COMPOSE_PROJECT_NAME=fraudops
COMPOSE_PROFILES=core

POSTGRES_PASSWORD=$(secret)
MLFLOW_DB_PASSWORD=$(secret)
INGEST_DB_PASSWORD=$(secret)
TRAINER_DB_PASSWORD=$(secret)
REGISTRY_GATEWAY_DB_PASSWORD=$(secret)

MINIO_ROOT_USER=fraudops-admin
MINIO_ROOT_PASSWORD=$(secret)
MINIO_MLFLOW_SECRET_KEY=$(secret)
MINIO_DATASETS_SECRET_KEY=$(secret)

FRAUDOPS_INGEST_TOKENS=$(token_table)
FRAUDOPS_TRAINER_TOKENS=$(token_table)
FRAUDOPS_SCORER_TOKENS=$(token_table)
FRAUDOPS_MONITOR_TOKENS=$(monitor_tokens)
FRAUDOPS_REGISTRY_GATEWAY_TOKENS=$(token_table)

ALERTMANAGER_WEBHOOK_TOKEN=$webhook_token
GRAFANA_ADMIN_PASSWORD=$(secret)
ENV
mv "$tmp" "$target"
trap - EXIT
echo "wrote $target (mode 0600) with fresh secrets"
