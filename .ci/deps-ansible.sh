#!/usr/bin/env bash
# Installs Ansible for the `ansible` connector's tests, the inventory oracle tests and the demo
# (runs as root, idempotent, non-interactive):
#   python3-venv   Debian's venv module, for a virtual environment of our own
#   python3-apt    the apt bindings Ansible's `apt` module needs on a Debian target (the demo's
#                  hosts are this machine; playbooks/linux-patch.yml runs there in check mode)
#   ansible-core   from PyPI, pinned, into /opt/patchday-ansible (ansible-playbook,
#                  ansible-inventory in /opt/patchday-ansible/bin)
# The tests look there unless PATCHDAY_TEST_ANSIBLE_BIN names another folder.
set -euo pipefail

venv=${PATCHDAY_ANSIBLE_VENV:-/opt/patchday-ansible}
version=2.19.14

packages=(python3-venv python3-apt)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

installed=$("$venv/bin/ansible-playbook" --version 2>/dev/null | sed -n 1p || true)
if [[ $installed != *"core $version"* ]]; then
  [[ -x $venv/bin/python ]] || /usr/bin/python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "ansible-core==$version"
fi
"$venv/bin/ansible-playbook" --version | sed -n 1p
