#!/usr/bin/env bash
# Installs what the OIDC sign-in end-to-end test (tests/tests/e2e/oidc.rs) needs on a fresh
# Debian machine (runs as root, idempotent, non-interactive):
#   nodejs, npm     to run tests/oidc/provider.mjs
#   oidc-provider   the certified OpenID provider it serves on loopback (npm, into tests/oidc/node_modules)
set -euo pipefail

cd "$(dirname "$0")/../tests/oidc"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nodejs npm
fi

if [ ! -f node_modules/oidc-provider/package.json ]; then
  npm install --no-audit --no-fund --loglevel=error
fi
