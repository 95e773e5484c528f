#!/bin/bash
# Postgres init script of the compose stack (mounted read-only into /docker-entrypoint-initdb.d/).
# The postgres image runs it once, when the data volume is empty: one database per component, each owned
# by its own login role with its own password, and closed to every other role.
# Passwords are read from the environment inside psql (\getenv), so they never appear in argv or in logs.
# A password changed in .env later is NOT applied to an existing volume: ALTER ROLE ... PASSWORD by hand.
set -euo pipefail

create_database() {
  local name=$1 variable=$2
  if [ -z "${!variable:-}" ]; then
    echo "postgres-init: $variable is not set" >&2
    exit 1
  fi
  psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres \
    -v name="$name" -v variable="$variable" <<'SQL'
\getenv password :variable
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'name', :'password')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'name') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'name', :'name')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'name') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'name') \gexec
SQL
  echo "postgres-init: database $name ready"
}

create_database mlflow MLFLOW_DB_PASSWORD
create_database ingest INGEST_DB_PASSWORD
create_database trainer TRAINER_DB_PASSWORD
create_database registry_gateway REGISTRY_GATEWAY_DB_PASSWORD
create_database airflow AIRFLOW_DB_PASSWORD
