#!/bin/sh
# One-shot MinIO set-up of the compose stack (runs in the minio/mc image; safe to run again):
#   the buckets fraudops-mlflow (MLflow artifacts and models) and fraudops-datasets (ingest's datasets),
#   and one access key per bucket limited to it by a policy, so no service holds the root credentials.
# The server is reached through MC_HOST_minio (set by docker-compose.yml from the root credentials).
set -eu
: "${MINIO_MLFLOW_SECRET_KEY:?}" "${MINIO_DATASETS_SECRET_KEY:?}"

setup_bucket() {
  bucket=$1 user=$2 secret=$3 policy=$4
  mc mb --ignore-existing "minio/$bucket"
  mc anonymous set none "minio/$bucket"
  mc admin policy create minio "$user" "$policy"
  mc admin user add minio "$user" "$secret" >/dev/null
  # Attaching a policy the user already has is an error to mc (on a second run): accept it when the
  # user's info names the policy (policy and user share the name;
  # only sh built-ins: the mc image may lack grep).
  if ! mc admin policy attach minio "$user" --user "$user" 2>/dev/null; then
    info=$(mc admin user info minio "$user")
    case "$info" in
      *Policy*"$user"*) ;;
      *) echo "minio-init: cannot attach policy $user to its user" >&2; exit 1 ;;
    esac
  fi
  echo "minio-init: bucket $bucket and its key $user ready"
}

setup_bucket fraudops-mlflow fraudops-mlflow "$MINIO_MLFLOW_SECRET_KEY" /init/minio/mlflow-policy.json
setup_bucket fraudops-datasets fraudops-datasets "$MINIO_DATASETS_SECRET_KEY" /init/minio/datasets-policy.json
