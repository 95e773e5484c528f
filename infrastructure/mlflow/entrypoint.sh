#!/bin/sh
# `mlflow server` reads its backend store URI from MLFLOW_BACKEND_STORE_URI only, and that URI holds the
# database password: compose hands it over as a secret file instead (MLFLOW_BACKEND_STORE_URI_FILE), which
# this exports for the server alone, so the password is in no compose environment and never in argv.
# (S3 keys need nothing here: botocore reads AWS_SHARED_CREDENTIALS_FILE itself.)
set -eu
if [ -n "${MLFLOW_BACKEND_STORE_URI_FILE:-}" ]; then
  if [ -n "${MLFLOW_BACKEND_STORE_URI:-}" ]; then
    echo "mlflow: set MLFLOW_BACKEND_STORE_URI or MLFLOW_BACKEND_STORE_URI_FILE, not both" >&2
    exit 1
  fi
  MLFLOW_BACKEND_STORE_URI=$(cat "$MLFLOW_BACKEND_STORE_URI_FILE")
  export MLFLOW_BACKEND_STORE_URI
  unset MLFLOW_BACKEND_STORE_URI_FILE
fi
exec "$@"
