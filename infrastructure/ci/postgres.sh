#!/usr/bin/env bash
# Start Debian's PostgreSQL cluster for the tests and export FRAUDOPS_TEST_POSTGRES_DSN (a role with a fresh password).
start_ci_postgres() {
  local version
  version=$(ls /usr/lib/postgresql | sort -n | tail -1)
  if ! pg_lsclusters -h | awk '{print $1, $2}' | grep -q "^$version main$"; then
    pg_createcluster "$version" main >/dev/null
  fi
  pg_ctlcluster "$version" main start 2>/dev/null || pg_ctlcluster "$version" main status >/dev/null
  local port
  port=$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $3}')
  local password
  password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
  runuser -u postgres -- psql -q -p "$port" -v ON_ERROR_STOP=1 <<SQL >/dev/null
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'fraudops_ci') THEN
    CREATE ROLE fraudops_ci LOGIN CREATEDB;
  END IF;
END \$\$;
ALTER ROLE fraudops_ci PASSWORD '$password';
SELECT 'CREATE DATABASE fraudops_ci OWNER fraudops_ci' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'fraudops_ci')\gexec
SQL
  export FRAUDOPS_TEST_POSTGRES_DSN="postgresql://fraudops_ci:${password}@127.0.0.1:${port}/fraudops_ci"
  echo "postgres $version ready on 127.0.0.1:$port"
}
