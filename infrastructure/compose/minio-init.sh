#!/bin/sh
# One-shot MinIO set-up of the compose stack (runs in the minio/mc image; safe to run again):
#   the buckets fraudops-mlflow (MLflow artifacts and models) and fraudops-datasets (ingest's datasets),
#   and one access key per bucket limited to it by a policy, so no service holds the root credentials.
# mc reads no secret file, so its alias (MC_HOST_minio) is built here from the root password's compose
# secret; the keys' secrets come from theirs (make compose-env writes them all).
set -eu
: "${MINIO_ROOT_USER:?}"
secret() {
  if [ ! -s "/run/secrets/$1" ]; then
    echo "minio-init: /run/secrets/$1 is missing or empty (run make compose-env)" >&2
    exit 1
  fi
  cat "/run/secrets/$1"
}
MC_HOST_minio="http://$MINIO_ROOT_USER:$(secret minio_root_password)@minio:9000"
export MC_HOST_minio

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

# Assignments, not arguments: a failed $(secret ...) then stops the script (set -e).
mlflow_key=$(secret minio_mlflow_secret_key)
datasets_key=$(secret minio_datasets_secret_key)
setup_bucket fraudops-mlflow fraudops-mlflow "$mlflow_key" /init/minio/mlflow-policy.json
setup_bucket fraudops-datasets fraudops-datasets "$datasets_key" /init/minio/datasets-policy.json
