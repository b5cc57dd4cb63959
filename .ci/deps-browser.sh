#!/usr/bin/env bash
# Installs what the browser end-to-end test (tests/tests/e2e/browser.rs) needs on a fresh Debian
# machine (runs as root, idempotent, non-interactive):
#   chromium          the headless browser that opens an approval link and clicks Approve
#   chromium-driver   chromedriver, the W3C WebDriver server the test drives it through
set -euo pipefail

packages=(chromium chromium-driver)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
