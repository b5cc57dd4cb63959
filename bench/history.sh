#!/usr/bin/env bash
# The daemon over months of history (issue 12): does what it does per start, page, scrape and
# list stay flat between one month and three years of runs?
#
#   bash bench/history.sh                  # 1 and 36 months, 500 hosts per monthly run
#   HOSTS=5000 bash bench/history.sh       # the issue's size (the build takes a few minutes)
#   MONTHS="1 12 36" bash bench/history.sh
#   PATCHDAY_BENCH_BIN=/path/to/patchday bash bench/history.sh   # that binary (A/B); the
#                                          # history is still built by this checkout
#
# For each length, the history builder (`engine/benches/history.rs`) builds a SQLite file through the
# store API: per month three monthly runbooks' runs of a cycle, each fanned out over HOSTS hosts
# (two audit events per host), and 8 emergency runs of 10 hosts. Then `patchday serve` (release
# build, `--now` just after the last cycle, the three runbooks scheduled on Patch Tuesday) is
# started on it and measured: start to serving, then 50 requests each of the index page, the
# API's run list, /metrics and the latest run's page (p50 and p99 from curl's time_total), and
# the daemon's RSS at the end. The last lines give each figure's ratio, longest history to
# shortest (flat: about 1).
set -euo pipefail

HOSTS=${HOSTS:-500}
MONTHS=${MONTHS:-1 36}
REQUESTS=50
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
# The history builder (engine/benches/history.rs), built with the release profile.
BUILDER=$(cd "$ROOT" && cargo build --release -q -p patchday --bench history --message-format json |
  jq -r 'select(.executable != null and .target.name == "history") | .executable') || exit 2
TMP=$(mktemp -d)
PID=
cleanup() {
  [[ -n "$PID" ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

mkdir -p "$TMP/runbooks"
for name in monthly-a monthly-b monthly-c; do
  printf 'name: %s\ntimezone: UTC\nschedule:\n  - at: patch_tuesday 10:00\nsteps:\n  a: { uses: noop }\n' \
    "$name" >"$TMP/runbooks/$name.yaml"
done
printf 'name: emergency\ntimezone: UTC\nsteps:\n  a: { uses: noop }\n' >"$TMP/runbooks/emergency.yaml"
TOKEN_JSON=$("$BIN" api-token bench --format json)
TOKEN=$(jq -r .token <<<"$TOKEN_JSON")
jq -r .line <<<"$TOKEN_JSON" >"$TMP/api-tokens"

declare -A FIG
# latency NAME MONTHS URL [curl args]: p50 and p99 in ms over REQUESTS requests.
latency() {
  local name=$1 months=$2 url=$3
  shift 3
  for _ in $(seq "$REQUESTS"); do
    curl -sf -o /dev/null -w '%{time_total}\n' "$@" "$url" || echo 999
  done | sort -n >"$TMP/times"
  local p50 p99
  p50=$(awk -v n="$REQUESTS" 'NR == int(n / 2) { printf "%.1f", $1 * 1000 }' "$TMP/times")
  p99=$(awk -v n="$REQUESTS" 'NR == int(n * 0.99) { printf "%.1f", $1 * 1000 }' "$TMP/times")
  FIG[$name-p99-$months]=$p99
  printf "  %-28s p50 %7s ms  p99 %7s ms\n" "$name" "$p50" "$p99"
}

for months in $MONTHS; do
  db=$TMP/history-$months.db
  echo "== $months month(s) of history, $HOSTS hosts per monthly run"
  "$BUILDER" "$db" "$months" "$HOSTS" | sed 's/^/  /'
  last=$((months - 1))
  now=$(printf '%04d-%02d-28T12:00:00Z' $((2024 + last / 12)) $((last % 12 + 1)))
  latest=$(printf 'monthly-a-%04d-%02d' $((2024 + last / 12)) $((last % 12 + 1)))
  begin=$(date +%s.%N)
  PATCHDAY_SECURITY_API_TOKENS_FILE="$TMP/api-tokens" "$BIN" serve --listen 127.0.0.1:0 \
    --database "sqlite://$db" --runbooks "$TMP/runbooks" --outbox "$TMP/outbox" --now "$now" \
    >"$TMP/out" 2>"$TMP/log" &
  PID=$!
  for _ in $(seq 3000); do grep -q "patchday serving" "$TMP/out" 2>/dev/null && break; sleep 0.01; done
  ADDR=$(sed -n 's|patchday serving http://\([^ ]*\) .*|\1|p' "$TMP/out")
  [[ -n "$ADDR" ]] || { echo "the daemon did not start:" >&2; cat "$TMP/log" >&2; exit 2; }
  FIG[start-$months]=$(echo "($(date +%s.%N) - $begin) * 1000" | bc | xargs printf "%.0f")
  echo "  start to serving             ${FIG[start-$months]} ms"
  latency "index page" "$months" "http://$ADDR/"
  latency "API run list (50)" "$months" "http://$ADDR/api/v1/runs" -H "Authorization: Bearer $TOKEN"
  latency "/metrics" "$months" "http://$ADDR/metrics"
  latency "the latest run's page" "$months" "http://$ADDR/runs/$latest"
  FIG[rss-$months]=$(awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$PID/status")
  echo "  daemon RSS after             ${FIG[rss-$months]} MB"
  kill "$PID"
  wait "$PID" 2>/dev/null || true
  PID=
done

set -- $MONTHS
first=$1
eval "longest=\${$#}"
echo "== ratios, $longest months to $first"
ratio() { echo "scale=2; $1 / $2" | bc; }
echo "  start to serving             $(ratio "${FIG[start-$longest]}" "${FIG[start-$first]}")x"
for name in "index page" "API run list (50)" "/metrics" "the latest run's page"; do
  printf "  %-28s p99 %sx\n" "$name" "$(ratio "${FIG[$name-p99-$longest]}" "${FIG[$name-p99-$first]}")"
done
echo "  daemon RSS after             $(ratio "${FIG[rss-$longest]}" "${FIG[rss-$first]}")x"
