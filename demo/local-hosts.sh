#!/usr/bin/env bash
# Local test hosts for runbooks/demo/emergency-local.yaml, monthly-local.yaml and
# linux-weekly-local.yaml, all on 127.0.0.1 (README: "First run", "Try it against local test
# hosts" and "Point patchday at an existing Ansible setup"):
#
#   sshd      a real OpenSSH server run as you (-D -f <its own config>), generated host and user
#             keys, a known_hosts file; the hosts of inventory/demo-hosts.yaml log in here
#   http      smoke-test endpoints and a ServiceNow-style change API (demo/http_server.py)
#   smtp      an SMTP server that requires AUTH and keeps every message as a file (demo/smtp_server.py)
#   libvirt   a node file for libvirt's test driver, with the nodes' VMs (for the snapshot steps)
#
# and writes the patchday.toml (and an env file with the secrets) to run the daemon against them.
#
#   demo/local-hosts.sh start  [--state DIR] [--foreground] [--http-port N]
#   demo/local-hosts.sh stop   [--state DIR]
#   demo/local-hosts.sh status [--state DIR]
#
# Everything lives in one folder, ./demo-state unless --state (or PATCHDAY_DEMO_STATE) says
# otherwise; keys and secrets are made once and kept. `start` returns once every server listens
# and leaves them in the background; with --foreground it stays and stops them on Ctrl-C. `stop`
# ends only the processes this folder's pid files name (and only if they still run from it).
# The HTTP server listens on 127.0.0.1:18080 because the demo runbook's params name that port;
# sshd and SMTP take free ports (written into patchday.toml).
# Needs: openssh-server, openssh-client, libvirt-clients, python3-aiosmtpd (.ci/deps-connectors.sh).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
sshd_bin=/usr/sbin/sshd

usage() {
  sed -n '13,15p' "${BASH_SOURCE[0]}" | sed 's/^# *//' >&2
  exit 2
}

command=${1:-}
[[ -n $command ]] || usage
shift
state=${PATCHDAY_DEMO_STATE:-demo-state}
foreground=0
http_port=18080
while (($#)); do
  case $1 in
    --state) state=${2:?--state needs a folder}; shift 2 ;;
    --foreground) foreground=1; shift ;;
    --http-port) http_port=${2:?--http-port needs a port}; shift 2 ;;
    *) echo "unknown option: $1" >&2; usage ;;
  esac
done
mkdir -p "$state"
state="$(cd "$state" && pwd)"
if [[ $state =~ [[:space:]\"] ]]; then
  echo "the state folder must not contain spaces or quotes: $state" >&2
  exit 2
fi
run="$state/run"

# The Python that has aiosmtpd (Debian's python3-aiosmtpd installs it for /usr/bin/python3).
python=${PYTHON:-}
if [[ -z $python ]]; then
  python=python3
  [[ -x /usr/bin/python3 ]] && python=/usr/bin/python3
fi

# Whether pid file NAME names a live process started from this state folder.
alive() {
  local pid
  pid=$(cat "$run/$1.pid" 2>/dev/null) || return 1
  [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$state"
}

stop_all() {
  local name pid
  for name in sshd http smtp; do
    if alive "$name"; then
      pid=$(cat "$run/$name.pid")
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
      echo "stopped $name (pid $pid)"
    fi
    rm -f "$run/$name.pid"
  done
}

status() {
  local name any=1
  for name in sshd http smtp; do
    if alive "$name"; then
      echo "$name running (pid $(cat "$run/$name.pid")), log $state/logs/$name.log"
      any=0
    else
      echo "$name not running"
    fi
  done
  return $any
}

free_port() {
  "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A random secret (URL-safe base64 of 24 random bytes), with PREFIX before it.
secret() {
  "$python" -c 'import secrets, sys; sys.stdout.write(sys.argv[1] + secrets.token_urlsafe(24))' "${1:-}"
}

# Writes FILE (mode 600) with the output of the rest of the arguments, unless it exists.
keep() {
  local file=$1
  shift
  [[ -s $file ]] && return 0
  (umask 077 && "$@" >"$file")
}

# Starts NAME in the background (its own session, output to its log); records its pid.
launch() {
  local name=$1
  shift
  setsid "$@" </dev/null >"$state/logs/$name.log" 2>&1 &
  echo $! >"$run/$name.pid"
}

# Waits until NAME's log has PATTERN (it listens), or fails with the log if it died.
wait_ready() {
  local name=$1 pattern=$2
  for _ in $(seq 1 200); do
    grep -q "$pattern" "$state/logs/$name.log" 2>/dev/null && return 0
    if ! alive "$name"; then
      echo "$name did not start:" >&2
      sed 's/^/  /' "$state/logs/$name.log" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "$name did not start within 20 s; see $state/logs/$name.log" >&2
  return 1
}

check_prerequisites() {
  local missing=()
  [[ -x $sshd_bin ]] || missing+=("$sshd_bin (openssh-server)")
  command -v ssh >/dev/null || missing+=("ssh (openssh-client)")
  command -v ssh-keygen >/dev/null || missing+=("ssh-keygen (openssh-client)")
  command -v virsh >/dev/null || missing+=("virsh (libvirt-clients)")
  "$python" -c 'import aiosmtpd' 2>/dev/null || missing+=("aiosmtpd for $python (python3-aiosmtpd)")
  if ((${#missing[@]})); then
    printf 'missing: %s\n' "${missing[@]}" >&2
    echo "install them with: sudo bash .ci/deps-connectors.sh" >&2
    exit 2
  fi
}

start() {
  check_prerequisites
  local name
  for name in sshd http smtp; do
    if alive "$name"; then
      echo "the local test hosts already run from $state; stop them first: $0 stop --state $state" >&2
      exit 2
    fi
  done
  mkdir -p "$run" "$state/logs" "$state/ssh" "$state/mail" "$state/hosts" "$state/bin" "$state/changes"
  local user
  user=$(id -un)

  # Keys, made once: the host key (known_hosts stays valid) and the key patchday logs in with.
  local k
  for k in host_key user_key; do
    [[ -f $state/ssh/$k ]] || ssh-keygen -q -t ed25519 -N '' -C "patchday-demo-$k" -f "$state/ssh/$k"
  done
  cp "$state/ssh/user_key.pub" "$state/ssh/authorized_keys"
  chmod 600 "$state/ssh/authorized_keys"
  keep "$state/smtp-password" secret
  keep "$state/change-token" secret
  keep "$state/api-token" secret pdt_
  printf '# patchday API tokens of the demo: NAME SHA256(token)\ndemo %s\n' \
    "$(printf '%s' "$(cat "$state/api-token")" | sha256sum | cut -d' ' -f1)" >"$state/api-tokens"
  (umask 077 && cat >"$state/env" <<EOF
# Secrets for the demo daemon and the operator commands: . $state/env
export PATCHDAY_SECRET_CHANGE_TOKEN='$(cat "$state/change-token")'
export PATCHDAY_API_TOKEN='$(cat "$state/api-token")'
EOF
  )
  install -m 755 "$here/patch-now" "$state/bin/patch-now"

  local ssh_port smtp_port
  ssh_port=$(free_port)
  smtp_port=$(free_port)

  # sshd as the current user: only that user can log in, with the generated key only.
  # SetEnv tells the commands where the demo hosts keep their files.
  cat >"$state/ssh/sshd_config" <<EOF
Port $ssh_port
ListenAddress 127.0.0.1
HostKey $state/ssh/host_key
PidFile $state/ssh/sshd.pid
AuthorizedKeysFile $state/ssh/authorized_keys
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
SetEnv PATCHDAY_DEMO_STATE=$state
MaxStartups 50
LogLevel INFO
EOF
  echo "[127.0.0.1]:$ssh_port $(cat "$state/ssh/host_key.pub")" >"$state/ssh/known_hosts"

  # The nodes' VMs for libvirt's test driver. Each virsh call with a test:/// URI starts from
  # this file afresh, so a snapshot made by one call is gone in the next.
  cat >"$state/libvirt-node.xml" <<'EOF'
<!-- libvirt test driver node for the local test hosts: the VMs of inventory/demo-hosts.yaml. -->
<node>
  <domain type='test'>
    <name>demo-node1</name>
    <memory>131072</memory>
    <vcpu>1</vcpu>
    <os><type>hvm</type></os>
  </domain>
  <domain type='test'>
    <name>demo-node2</name>
    <memory>131072</memory>
    <vcpu>1</vcpu>
    <os><type>hvm</type></os>
  </domain>
</node>
EOF

  cat >"$state/patchday.toml" <<EOF
# patchday serve --config $state/patchday.toml: the daemon against the local test hosts
# (written by demo/local-hosts.sh; rewritten at each start).

[database]
url = "sqlite://$state/patchday.db"

[runbooks]
dir = "$repo/runbooks/demo"

[smtp]
host = "127.0.0.1"
port = $smtp_port
tls = "none"
username = "patchday"
password_file = "$state/smtp-password"
from = "patchday@example.com"

[ssh]
known_hosts = "$state/ssh/known_hosts"
identity = "$state/ssh/user_key"
user = "$user"
port = $ssh_port

[libvirt]
uri = "test://$state/libvirt-node.xml"

[security]
api_tokens_file = "$state/api-tokens"
EOF
  # Ansible for linux-weekly-local: $PATCHDAY_ANSIBLE_BIN_DIR, else .ci/deps-ansible.sh's virtual
  # environment, else whatever ansible-playbook is on the PATH.
  local ansible_bin=${PATCHDAY_ANSIBLE_BIN_DIR:-}
  if [[ -z $ansible_bin && -x /opt/patchday-ansible/bin/ansible-playbook ]]; then
    ansible_bin=/opt/patchday-ansible/bin
  fi
  if [[ -n $ansible_bin ]]; then
    printf '\n[ansible]\nbin_dir = "%s"\n' "$ansible_bin" >>"$state/patchday.toml"
  fi

  # sshd's privilege separation directory (made by the service unit, or .ci/deps-connectors.sh).
  mkdir -p /run/sshd 2>/dev/null || true
  launch sshd "$sshd_bin" -D -e -f "$state/ssh/sshd_config"
  launch http "$python" -u "$here/http_server.py" --port "$http_port" --state "$state" \
    --token-file "$state/change-token"
  launch smtp "$python" -u "$here/smtp_server.py" --port "$smtp_port" --user patchday \
    --password-file "$state/smtp-password" --out "$state/mail"
  if ! { wait_ready sshd "Server listening" && wait_ready http READY && wait_ready smtp READY; }; then
    stop_all >/dev/null
    exit 1
  fi

  local rel=$state
  [[ $state == "$PWD"/* ]] && rel=${state#"$PWD"/}
  cat <<EOF
local test hosts ready (state in $state):
  sshd     127.0.0.1:$ssh_port as $user, key $rel/ssh/user_key, known_hosts $rel/ssh/known_hosts
  http     http://127.0.0.1:$http_port  /health/HOST, /api/now/table/change_request (changes in $rel/changes/)
  smtp     127.0.0.1:$smtp_port  AUTH as patchday; every message lands in $rel/mail/
  libvirt  test://$state/libvirt-node.xml  VMs demo-node1, demo-node2
  hosts    node1, node2, test1 (inventory/demo-hosts.yaml); their commands log to $rel/hosts/commands.log
then (README: "First run"):
  . $rel/env
  ./target/release/patchday serve --config $rel/patchday.toml
and in a second terminal:
  . $rel/env
  ./target/release/patchday trigger emergency-local --param cve=CVE-2026-12345
  ./target/release/patchday trigger linux-weekly-local   # Ansible: .ci/deps-ansible.sh
  ls $rel/mail/                # each email as .eml, .txt (to read) and .json
or the monthly cycle on a virtual clock (README: "Try it against local test hosts"):
  ./target/release/patchday serve --config $rel/patchday.toml --now 2026-12-01T08:59:00Z --virtual-clock
stop them with: $0 stop$([[ $rel == demo-state ]] || echo " --state $rel")
EOF
  if ((foreground)); then
    trap 'echo; stop_all; exit 0' INT TERM
    echo "(in the foreground: Ctrl-C stops them)"
    # Returns when one of them ends (or on Ctrl-C).
    wait -n || true
    echo "a local test host stopped; stopping the others" >&2
    stop_all
    exit 1
  fi
}

case $command in
  start) start ;;
  stop) stop_all ;;
  status) status ;;
  *) usage ;;
esac
