#!/usr/bin/env bash
# Install the Debian packages the test suite needs (PostgreSQL's server, Java and Maven for Kafka, make, a C
# compiler for fraudops' extension,
# Prometheus with promtool and Alertmanager with amtool for the alerting tests),
# only those missing. Shared by .ci/run and the forge's CI workflow (.github/workflows/ci.yml).
# Runs as root, or through sudo when it is not root.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
packages=(postgresql openjdk-17-jre-headless maven make gcc libc6-dev prometheus prometheus-alertmanager)
# Named packages only, when given (the forge's unit job needs just promtool and amtool).
if (($#)); then
  packages=("$@")
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  as_root=(sudo --preserve-env=DEBIAN_FRONTEND)
fi

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
