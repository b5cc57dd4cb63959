#!/usr/bin/env bash
# The independent audit verifier docs/verify_audit.py and its e2e test need Python 3 with the
# `cryptography` package (Ed25519). Runs as root, idempotent: installs Debian's packages if the
# import fails.
set -euo pipefail

if python3 -c 'import cryptography.hazmat.primitives.asymmetric.ed25519' 2>/dev/null; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends python3 python3-cryptography
python3 -c 'import cryptography.hazmat.primitives.asymmetric.ed25519'
