#!/usr/bin/env bash
# Write what docker compose reads: .env with the settings (no secret in it) and one file per secret in
# .secrets/, both next to docker-compose.yml, whose `secrets:` block mounts the files into the containers.
#   make-env.sh [ENV_FILE [SECRETS_DIR]]      (defaults: .env and .secrets at the repository root)
# Values are never printed.
#
# Two kinds of secret file:
#   - values (passwords, tokens, keys): made once, then kept. Postgres, MinIO, Grafana and Airflow's
#     Fernet-encrypted rows depend on them, so an existing file is never replaced; delete one (and the
#     data volume that holds it) to get a new value. A value missing here but present in an .env written
#     before secrets moved to files is taken from that .env, so an existing stack keeps its passwords.
#   - composed files (a service's token table, a URL with a password, an S3 credentials file): rewritten
#     from the values on every run, so they always agree with them. Edit the values, not these.
#
# Compose mounts `file:` secrets as bind mounts and ignores uid/gid/mode for them (they apply to swarm
# only), so a container sees each file with its host owner and mode. The files are world-readable (0644)
# for the images' non-root users (10001, postgres' 999, Grafana's 472, nobody...); the directory is 0700,
# so on the host only its owner can reach them.
#
# Every secret is 64 hex characters: URL-safe (they go into database URLs), and no placeholder word fits
# in the hex alphabet, so the services' secret check accepts them.
set -euo pipefail
cd "$(dirname "$0")/../.."
env_file=${1:-.env}
secrets_dir=${2:-.secrets}

secret() {
  if command -v openssl >/dev/null 2>&1; then
    openssl rand -hex 32
  else
    python3 -c 'import secrets; print(secrets.token_hex(32))'
  fi
}
# Fernet keys are URL-safe base64 of 32 bytes, not hex.
fernet_key() {
  if command -v openssl >/dev/null 2>&1; then
    openssl rand -base64 32 | tr '+/' '-_'
  else
    python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'
  fi
}

umask 077
if [ -e "$env_file" ]; then
  echo "$env_file exists; kept as it is"
else
  tmp=$(mktemp "$env_file.XXXXXX")
  trap 'rm -f "$tmp"' EXIT
  cat >"$tmp" <<ENV
# Written by \`make compose-env\` (infrastructure/compose/make-env.sh); see .env.example for each variable.
# No secret lives here: each is a file in .secrets/ next to docker-compose.yml.
COMPOSE_PROJECT_NAME=fraudops
COMPOSE_PROFILES=full
MINIO_ROOT_USER=fraudops-admin
ENV
  mv "$tmp" "$env_file"
  trap - EXIT
  echo "wrote $env_file (mode 0600)"
fi

mkdir -p "$secrets_dir"
chmod 0700 "$secrets_dir"

write_file() {
  local tmp
  tmp=$(mktemp "$secrets_dir/.$1.XXXXXX")
  printf '%s' "$2" >"$tmp"
  chmod 0644 "$tmp"
  mv -f "$tmp" "$secrets_dir/$1"
}

# The value of VARIABLE in an .env written by an earlier version of this script (quotes removed).
legacy_value() {
  [ -f "$env_file" ] || return 0
  local line
  line=$(grep -E "^$1=" "$env_file" | tail -n 1 || true)
  line=${line#*=}
  line=${line#[\'\"]}
  line=${line%[\'\"]}
  printf '%s' "$line"
}

made=0
migrated=0
# value FILE LEGACY_VARIABLE [GENERATOR]: keep the file, else take the old .env's value, else generate one.
value() {
  local file=$1 variable=$2 generator=${3:-secret} old=""
  [ -s "$secrets_dir/$file" ] && return 0
  if [ -n "$variable" ]; then old=$(legacy_value "$variable"); fi
  if [ -n "$old" ]; then
    write_file "$file" "$old"
    migrated=$((migrated + 1))
  else
    write_file "$file" "$("$generator")"
    made=$((made + 1))
  fi
}
read_value() { printf '%s' "$(<"$secrets_dir/$1")"; }

value postgres_password POSTGRES_PASSWORD
value mlflow_db_password MLFLOW_DB_PASSWORD
value ingest_db_password INGEST_DB_PASSWORD
value trainer_db_password TRAINER_DB_PASSWORD
value registry_gateway_db_password REGISTRY_GATEWAY_DB_PASSWORD
value airflow_db_password AIRFLOW_DB_PASSWORD
value minio_root_password MINIO_ROOT_PASSWORD
value minio_mlflow_secret_key MINIO_MLFLOW_SECRET_KEY
value minio_datasets_secret_key MINIO_DATASETS_SECRET_KEY
# Each principal's token at each service. The operator's are for people (curl, the CLI).
value ingest_operator_token ""
value trainer_operator_token ""
value scorer_operator_token ""
value monitor_operator_token ""
value registry_gateway_operator_token ""
value airflow_ingest_token AIRFLOW_INGEST_TOKEN
value airflow_trainer_token AIRFLOW_TRAINER_TOKEN
value airflow_registry_gateway_token AIRFLOW_REGISTRY_GATEWAY_TOKEN
value airflow_monitor_token AIRFLOW_MONITOR_TOKEN
value monitor_gateway_token MONITOR_GATEWAY_TOKEN
value alertmanager_webhook_token ALERTMANAGER_WEBHOOK_TOKEN
value grafana_admin_password GRAFANA_ADMIN_PASSWORD
value airflow_jwt_secret AIRFLOW_JWT_SECRET
value airflow_fernet_key AIRFLOW_FERNET_KEY fernet_key
value airflow_admin_password AIRFLOW_ADMIN_PASSWORD
value airflow_monitor_password AIRFLOW_MONITOR_PASSWORD

# ---- composed files. Token tables are JSON objects principal -> token, as the services' TOKENS setting.
table() {
  local out="{" sep="" principal file
  while [ $# -gt 0 ]; do
    principal=$1 file=$2
    shift 2
    out="$out$sep\"$principal\": \"$(read_value "$file")\""
    sep=", "
  done
  printf '%s}' "$out"
}
write_file ingest_tokens "$(table operator ingest_operator_token airflow airflow_ingest_token)"
write_file trainer_tokens "$(table operator trainer_operator_token airflow airflow_trainer_token)"
write_file scorer_tokens "$(table operator scorer_operator_token)"
write_file monitor_tokens "$(table operator monitor_operator_token alertmanager alertmanager_webhook_token \
  airflow airflow_monitor_token)"
write_file registry_gateway_tokens "$(table operator registry_gateway_operator_token \
  airflow airflow_registry_gateway_token monitor monitor_gateway_token)"

postgres_url() { printf '%s://%s:%s@postgres:5432/%s' "$1" "$2" "$(read_value "$3")" "$2"; }
write_file ingest_database_url "$(postgres_url postgresql+psycopg ingest ingest_db_password)"
write_file trainer_database_url "$(postgres_url postgresql+psycopg trainer trainer_db_password)"
write_file registry_gateway_database_url \
  "$(postgres_url postgresql+psycopg registry_gateway registry_gateway_db_password)"
write_file mlflow_backend_store_uri "$(postgres_url postgresql mlflow mlflow_db_password)"
write_file airflow_sql_alchemy_conn "$(postgres_url postgresql+psycopg airflow airflow_db_password)"

# AWS shared credentials files (AWS_SHARED_CREDENTIALS_FILE): botocore and pyarrow's S3 read them.
s3_credentials() {
  printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$1" "$(read_value "$2")"
}
write_file datasets_s3_credentials "$(s3_credentials fraudops-datasets minio_datasets_secret_key)"
write_file mlflow_s3_credentials "$(s3_credentials fraudops-mlflow minio_mlflow_secret_key)"

# Airflow's connections to the services (its local-filesystem secrets backend): each token as the password.
connection() { printf '"fraudops_%s": "http://:%s@%s:%s"' "$1" "$(read_value "airflow_$1_token")" "$2" "$3"; }
write_file airflow_connections.json "{$(connection ingest ingest 8001), $(connection trainer trainer 8002), \
$(connection registry_gateway registry-gateway 8005), $(connection monitor monitor 8004)}"

echo "secrets in $secrets_dir/: $made new, $migrated taken from $env_file, the rest kept; composed files rewritten"
if [ "$migrated" -gt 0 ]; then
  echo "$env_file still holds those values, which compose no longer reads: delete its secret lines"
fi
