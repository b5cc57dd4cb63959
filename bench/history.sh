#!/usr/bin/env bash
# The daemon over months of history (issue 12): does what it does per start, page, scrape and
# list stay flat between one month and three years of runs?
#
#   bash bench/history.sh                  # 12 and 36 months, 500 hosts per monthly run
#   HOSTS=5000 bash bench/history.sh       # the issue's size (the build takes a few minutes)
#   MONTHS="1 12 36" bash bench/history.sh
#   BACKEND=postgres bash bench/history.sh # PostgreSQL on 127.0.0.1:5432 (user postgres, trust
#                                          # auth): a fresh database per length, dropped after
#   PATCHDAY_BENCH_BIN=/path/to/patchday bash bench/history.sh   # that binary (A/B); the
#                                          # history is still built by this checkout
#
# For each length, the history builder (`engine/benches/history.rs`) builds a database (SQLite
# file, or a fresh PostgreSQL database) through the store API: per month three monthly runbooks' runs of a cycle, each fanned out over HOSTS hosts
# (two audit events per host), and 8 emergency runs of 10 hosts. Then `patchday serve` (release
# build, `--now` just after the last cycle, the three runbooks scheduled on Patch Tuesday) is
# started on it and measured: start to serving, then (signed in as the local operator through the
# link the daemon prints) 50 requests each of the index page, the month calendar, the API's run
# list, /metrics and the latest run's page (p50 and p99 from curl's time_total; any answer but
# 200 stops the bench), the mean scheduler pass (`patchday_scheduler_pass_seconds`), the
# daemon's RSS at the end, then `patchday audit verify` (events/s, peak RSS). The last lines
# give each figure's ratio, longest history to shortest (flat: about 1).
set -euo pipefail

HOSTS=${HOSTS:-500}
MONTHS=${MONTHS:-12 36}
BACKEND=${BACKEND:-sqlite}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
[[ "$BACKEND" == sqlite || "$BACKEND" == postgres ]] || { echo "BACKEND is sqlite or postgres" >&2; exit 2; }
[[ -x /usr/bin/time ]] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
REQUESTS=50
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
# The history builder (engine/benches/history.rs), built with the release profile.
BUILDER=$(cd "$ROOT" && cargo build --release -q -p patchday --bench history --message-format json |
  jq -r 'select(.executable != null and .target.name == "history") | .executable') || exit 2
TMP=$(mktemp -d)
PID=
PGDB=
# psql_admin SQL: runs SQL on the server's `postgres` database.
psql_admin() { psql -q -d "$PG/postgres" -c "$1"; }
drop_pgdb() {
  [[ -n "$PGDB" ]] && psql_admin "DROP DATABASE IF EXISTS $PGDB WITH (FORCE)"
  PGDB=
}
cleanup() {
  [[ -n "$PID" ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  drop_pgdb
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
    curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "$@" "$url"
  done >"$TMP/answers"
  if grep -qv '^200 ' "$TMP/answers"; then
    echo "$name: $url answered $(grep -v '^200 ' "$TMP/answers" | head -1)" >&2
    exit 2
  fi
  cut -d' ' -f2 "$TMP/answers" | sort -n >"$TMP/times"
  local p50 p99
  p50=$(awk -v n="$REQUESTS" 'NR == int(n / 2) { printf "%.1f", $1 * 1000 }' "$TMP/times")
  p99=$(awk -v n="$REQUESTS" 'NR == int(n * 0.99) { printf "%.1f", $1 * 1000 }' "$TMP/times")
  FIG[$name-p99-$months]=$p99
  printf "  %-28s p50 %7s ms  p99 %7s ms\n" "$name" "$p50" "$p99"
}

for months in $MONTHS; do
  if [[ "$BACKEND" == postgres ]]; then
    PGDB=patchday_history_$$_$months
    psql_admin "CREATE DATABASE $PGDB"
    db=$PG/$PGDB
  else
    db=sqlite://$TMP/history-$months.db
  fi
  echo "== $months month(s) of history on $BACKEND, $HOSTS hosts per monthly run"
  "$BUILDER" "$db" "$months" "$HOSTS" | sed 's/^/  /'
  last=$((months - 1))
  now=$(printf '%04d-%02d-28T12:00:00Z' $((2024 + last / 12)) $((last % 12 + 1)))
  latest=$(printf 'monthly-a-%04d-%02d' $((2024 + last / 12)) $((last % 12 + 1)))
  begin=$(date +%s.%N)
  PATCHDAY_SECURITY_API_TOKENS_FILE="$TMP/api-tokens" "$BIN" serve --listen 127.0.0.1:0 \
    --database "$db" --runbooks "$TMP/runbooks" --outbox "$TMP/outbox" --now "$now" \
    >"$TMP/out" 2>"$TMP/log" &
  PID=$!
  ADDR=$(await_serving "$TMP/out")
  [[ -n "$ADDR" ]] || { echo "the daemon did not start:" >&2; cat "$TMP/log" >&2; exit 2; }
  FIG[start-$months]=$(echo "($(date +%s.%N) - $begin) * 1000" | bc | xargs printf "%.0f")
  echo "  start to serving             ${FIG[start-$months]} ms"
  COOKIE=$(sign_in "$TMP/out")
  [[ -n "$COOKIE" ]] || { echo "could not sign in as the local operator" >&2; exit 2; }
  latency "index page" "$months" "http://$ADDR/" -H "Cookie: $COOKIE"
  latency "calendar page" "$months" "http://$ADDR/calendar?month=${now:0:7}" -H "Cookie: $COOKIE"
  latency "API run list (50)" "$months" "http://$ADDR/api/v1/runs" -H "Authorization: Bearer $TOKEN"
  latency "/metrics" "$months" "http://$ADDR/metrics"
  latency "the latest run's page" "$months" "http://$ADDR/runs/$latest" -H "Cookie: $COOKIE"
  FIG[pass-$months]=$(curl -sf "http://$ADDR/metrics" | awk '
    /^patchday_scheduler_pass_seconds_sum/ { sum = $2 }
    /^patchday_scheduler_pass_seconds_count/ { n = $2 }
    END { if (n > 0) printf "%.2f", sum / n * 1000; else print "0" }')
  echo "  scheduler pass (mean)        ${FIG[pass-$months]} ms"
  FIG[rss-$months]=$(awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$PID/status")
  echo "  daemon RSS after             ${FIG[rss-$months]} MB"
  kill "$PID"
  wait "$PID" 2>/dev/null || true
  PID=
  /usr/bin/time -f "%e %M" -o "$TMP/time" "$BIN" audit verify --database "$db" >"$TMP/verify" 2>&1 ||
    { cat "$TMP/verify" >&2; exit 2; }
  read -r secs kb <"$TMP/time"
  events=$(grep -o '[0-9]* events' "$TMP/verify" | head -1 | cut -d' ' -f1)
  FIG[verify-$months]=$(echo "${events:-0} / ($secs + 0.001)" | bc)
  FIG[verify-rss-$months]=$(echo "scale=1; $kb / 1024" | bc)
  echo "  audit verify                 ${events:-?} events in ${secs} s: ${FIG[verify-$months]} events/s, peak RSS ${FIG[verify-rss-$months]} MB"
  drop_pgdb
done

set -- $MONTHS
first=$1
eval "longest=\${$#}"
echo "== ratios, $longest months to $first"
ratio() { echo "scale=2; $1 / $2" | bc; }
echo "  start to serving             $(ratio "${FIG[start-$longest]}" "${FIG[start-$first]}")x"
for name in "index page" "calendar page" "API run list (50)" "/metrics" "the latest run's page"; do
  printf "  %-28s p99 %sx\n" "$name" "$(ratio "${FIG[$name-p99-$longest]}" "${FIG[$name-p99-$first]}")"
done
echo "  scheduler pass (mean)        $(ratio "${FIG[pass-$longest]}" "${FIG[pass-$first]}")x"
echo "  daemon RSS after             $(ratio "${FIG[rss-$longest]}" "${FIG[rss-$first]}")x"
echo "  audit verify events/s        $(ratio "${FIG[verify-$longest]}" "${FIG[verify-$first]}")x"
echo "  audit verify peak RSS        $(ratio "${FIG[verify-rss-$longest]}" "${FIG[verify-rss-$first]}")x"
