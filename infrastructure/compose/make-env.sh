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
# Airflow's DAGs call ingest, the trainer, the gateway and the monitor as their "airflow" principal: each
# token is in the service's table and, alone, in AIRFLOW_<SERVICE>_TOKEN for Airflow's connection.
airflow_ingest=$(secret)
airflow_trainer=$(secret)
airflow_gateway=$(secret)
airflow_monitor=$(secret)
with_airflow() { printf "'{\"operator\": \"%s\", \"airflow\": \"%s\"}'" "$(secret)" "$1"; }
# Fernet keys are URL-safe base64 of 32 bytes, not hex.
fernet_key() {
  if command -v openssl >/dev/null 2>&1; then
    openssl rand -base64 32 | tr '+/' '-_'
  else
    python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'
  fi
}
# The monitor rolls back or switches to the fallback at the gateway as its own "monitor" principal.
monitor_gateway=$(secret)
gateway_tokens() {
  printf "'{\"operator\": \"%s\", \"airflow\": \"%s\", \"monitor\": \"%s\"}'" "$(secret)" "$airflow_gateway" "$monitor_gateway"
}
# Alertmanager calls the monitor's webhook as its own principal: the same token in both variables.
webhook_token=$(secret)
monitor_tokens() {
  printf "'{\"operator\": \"%s\", \"alertmanager\": \"%s\", \"airflow\": \"%s\"}'" "$(secret)" "$webhook_token" "$airflow_monitor"
}

umask 077
tmp=$(mktemp "$target.XXXXXX")
trap 'rm -f "$tmp"' EXIT
cat >"$tmp" <<ENV
# Written by \`make compose-env\` (infrastructure/compose/make-env.sh); see .env.example for each variable.
COMPOSE_PROJECT_NAME=fraudops
COMPOSE_PROFILES=full

POSTGRES_PASSWORD=$(secret)
MLFLOW_DB_PASSWORD=$(secret)
INGEST_DB_PASSWORD=$(secret)
TRAINER_DB_PASSWORD=$(secret)
REGISTRY_GATEWAY_DB_PASSWORD=$(secret)
AIRFLOW_DB_PASSWORD=$(secret)

MINIO_ROOT_USER=fraudops-admin
MINIO_ROOT_PASSWORD=$(secret)
MINIO_MLFLOW_SECRET_KEY=$(secret)
MINIO_DATASETS_SECRET_KEY=$(secret)

FRAUDOPS_INGEST_TOKENS=$(with_airflow "$airflow_ingest")
FRAUDOPS_TRAINER_TOKENS=$(with_airflow "$airflow_trainer")
FRAUDOPS_SCORER_TOKENS=$(token_table)
FRAUDOPS_MONITOR_TOKENS=$(monitor_tokens)
FRAUDOPS_REGISTRY_GATEWAY_TOKENS=$(gateway_tokens)
MONITOR_GATEWAY_TOKEN=$monitor_gateway

ALERTMANAGER_WEBHOOK_TOKEN=$webhook_token
GRAFANA_ADMIN_PASSWORD=$(secret)

AIRFLOW_INGEST_TOKEN=$airflow_ingest
AIRFLOW_TRAINER_TOKEN=$airflow_trainer
AIRFLOW_REGISTRY_GATEWAY_TOKEN=$airflow_gateway
AIRFLOW_MONITOR_TOKEN=$airflow_monitor
AIRFLOW_JWT_SECRET=$(secret)
AIRFLOW_FERNET_KEY=$(fernet_key)
AIRFLOW_ADMIN_PASSWORD=$(secret)
AIRFLOW_MONITOR_PASSWORD=$(secret)
ENV
mv "$tmp" "$target"
trap - EXIT
echo "wrote $target (mode 0600) with fresh secrets"
