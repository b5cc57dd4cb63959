#!/usr/bin/env bash
# Installs what the patchday-connectors tests need on a fresh Debian machine (runs as root,
# idempotent, non-interactive):
#   openssh-server / openssh-client  real sshd + ssh client for the `command` and `check` tests
#   libvirt-clients                  virsh with libvirt's built-in test driver (test:///default)
#   python3-aiosmtpd                 the real SMTP server the `email` and `report` tests start
set -euo pipefail

packages=(openssh-server openssh-client libvirt-clients python3-aiosmtpd)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# sshd's privilege separation directory (normally made by the service unit).
mkdir -p /run/sshd
