#!/bin/bash
# Postgres init script of the compose stack (mounted read-only into /docker-entrypoint-initdb.d/).
# The postgres image runs it once, when the data volume is empty: one database per component, each owned
# by its own login role with its own password, and closed to every other role.
# Each password comes from its compose secret file (/run/secrets/<name>_db_password, written by
# make compose-env) and reaches psql through its environment (\getenv), never argv or logs.
# A password changed later is NOT applied to an existing volume: ALTER ROLE ... PASSWORD by hand.
set -euo pipefail

create_database() {
  local name=$1 file="/run/secrets/$1_db_password" password
  if [ ! -s "$file" ]; then
    echo "postgres-init: $file is missing or empty (run make compose-env)" >&2
    exit 1
  fi
  password=$(<"$file")
  FRAUDOPS_DB_PASSWORD=$password psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" \
    --dbname postgres -v name="$name" <<'SQL'
\getenv password FRAUDOPS_DB_PASSWORD
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'name', :'password')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'name') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'name', :'name')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'name') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'name') \gexec
SQL
  echo "postgres-init: database $name ready"
}

create_database mlflow
create_database ingest
create_database trainer
create_database registry_gateway
create_database airflow
