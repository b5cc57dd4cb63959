#!/usr/bin/env bash
# Installs what the accessibility end-to-end test (tests/tests/e2e/accessibility.rs) needs on a
# fresh Debian machine (runs as root, idempotent, non-interactive):
#   nodejs, npm   to install axe-core
#   axe-core      the accessibility checker, pinned in tests/axe/package.json (and its lock),
#                 installed into tests/axe/node_modules; the test injects axe.min.js into each page
set -euo pipefail

cd "$(dirname "$0")/../tests/axe"

if ! command -v npm >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nodejs npm
fi

if [ ! -f node_modules/axe-core/axe.min.js ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
