#!/usr/bin/env bash
# Memory over edits (issue 10): a daemon holds the runbook versions in force and those of its
# unfinished runs, nothing else, however often a runbook is edited.
#
#   bash bench/versions.sh          # about a minute: a 10,000-step runbook edited 1, 10 and 40 times
#   PATCHDAY_BENCH_BIN=/path/to/patchday bash bench/versions.sh   # that binary, no build (A/B)
#
# `patchday serve` (release build, temporary folder, free loopback port, a virtual clock so
# nothing fires) loads a generated runbook of 10,000 steps, with a run of it waiting for an
# approval (so one old version must stay). The runbook is then edited (a comment line added:
# a new version each time) and the daemon reloads it; VmRSS is read after the first load and
# after 1, 10 and 40 edits, with `patchday_runbook_versions` from /metrics. Exit 0 when edits
# 11 to 40 cost less than one version's worth of memory (versions do not pile up; what is left
# is the allocator keeping freed pages), 1 otherwise, 2 when the benchmark could not run.
set -euo pipefail

STEPS=10000
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
TMP=$(mktemp -d)
PID=
cleanup() {
  [[ -n "$PID" ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
mkdir -p "$TMP/runbooks"

python3 - "$TMP/runbooks/big.yaml" "$STEPS" <<'EOF'
import sys
path, steps = sys.argv[1], int(sys.argv[2])
lines = ["name: big", "roles:", "  cab: [cab@example.com]", "steps:",
         "  ask: { uses: approval, with: { approvers: cab } }"]
for i in range(steps):
    needs = "ask" if i == 0 else f"s{i - 1}"
    lines.append(f"  s{i}: {{ uses: noop, needs: [{needs}] }}")
open(path, "w").write("\n".join(lines) + "\n")
EOF

"$BIN" serve --listen 127.0.0.1:0 --database "sqlite://$TMP/p.db" --runbooks "$TMP/runbooks" \
  --outbox "$TMP/outbox" --now 2026-12-08T10:00:00Z >"$TMP/out" 2>"$TMP/log" &
PID=$!
ADDR=$(await_serving "$TMP/out")
[[ -n "$ADDR" ]] || { echo "the daemon did not start:" >&2; cat "$TMP/log" >&2; exit 2; }

metric() { curl -sf "http://$ADDR/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
rss_mb() { awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$PID/status"; }

# A run of the first version, waiting for its approval: its version must stay.
"$BIN" --database "sqlite://$TMP/p.db" trigger big --server "http://$ADDR" >/dev/null

edit() { # edit N: a new version, and wait for the reload
  echo "# edit $1" >>"$TMP/runbooks/big.yaml"
  for _ in $(seq 600); do
    [[ "$(metric patchday_runbook_reloads_total)" == "$1" ]] && return 0
    sleep 0.1
  done
  echo "edit $1 was not reloaded" >&2
  exit 2
}

measure() { # measure N: RSS and versions after N edits
  sleep 2
  printf '| after %s edit%s | %s MB | %s |\n' "$1" "$([[ $1 == 1 ]] || echo s)" "$(rss_mb)" \
    "$(metric patchday_runbook_versions)"
}

sleep 2
LOADED=$(rss_mb)
printf '| what | VmRSS | versions in memory |\n|---|---|---|\n'
printf '| %s-step runbook loaded, a run of it waiting | %s MB | %s |\n' "$STEPS" "$LOADED" \
  "$(metric patchday_runbook_versions)"
edit 1
ROW1=$(measure 1)
echo "$ROW1"
for n in $(seq 2 10); do edit "$n"; done
ROW10=$(measure 10)
echo "$ROW10"
for n in $(seq 11 40); do edit "$n"; done
ROW40=$(measure 40)
echo "$ROW40"
mb() { echo "$1" | awk -F'|' '{ print $3 + 0 }'; }
ONE=$(mb "$ROW1") TEN=$(mb "$ROW10") FORTY=$(mb "$ROW40")
PER_VERSION=$(awk -v a="$LOADED" -v b="$ONE" 'BEGIN { printf "%.1f", b - a }')
echo "one version: about +$PER_VERSION MB; edits 2-10: +$(awk -v a="$ONE" -v b="$TEN" 'BEGIN { printf "%.1f", b - a }') MB; edits 11-40: +$(awk -v a="$TEN" -v b="$FORTY" 'BEGIN { printf "%.1f", b - a }') MB"
# Versions do not pile up: 30 more edits cost less than one version's worth.
awk -v a="$TEN" -v b="$FORTY" -v v="$PER_VERSION" 'BEGIN { exit !(b - a < v) }' || {
  echo "versions pile up" >&2
  exit 1
}
