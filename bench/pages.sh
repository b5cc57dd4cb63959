#!/usr/bin/env bash
# Page weights (issue 13): bytes and latency of the dashboard's heaviest pages, with a session.
#
#   bash bench/pages.sh                       # a run fanned out over 1,000 hosts (1x) and 10,000 (10x)
#   SIZES="100 1000" bash bench/pages.sh     # other sizes (the first is 1x, the second 10x)
#   PATCHDAY_BENCH_BIN=/path/to/patchday bash bench/pages.sh   # that binary, no build (A/B)
#
# For each size a runbook fanning one `noop` step out over N hosts is run to the end through the
# release binary (`patchday run`, as bench/growth.sh does) into a fresh SQLite file; then
# `patchday serve` is started on that database and signed in as the local operator (the
# one-time sign-in URL it prints, as `patchday login-url` gives: its page, then the form's POST).
# Measured with curl, 50 requests each: the run page, the month calendar, the audit browser, the
# overview and the runbook page, and with an API token the API's run detail (`GET
# /api/v1/runs/{id}`: the counts, the first page of rows and of events)
# (byte size, p50 and p99 of time_total). The last lines give the 10x/1x ratios and check the
# issue's goals: the run page of the 10,000-host run under 300 KB, every page under 100 ms p99.
# Exit 0 when the goals hold, 1 when one does not, 2 when the benchmark could not run.
set -euo pipefail

read -ra SIZES <<<"${SIZES:-1000 10000}"
REQUESTS=50
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
TMP=$(mktemp -d)
PID=
cleanup() {
  [[ -n "$PID" ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
cd "$TMP"
TOKEN_JSON=$("$BIN" api-token bench --format json)
TOKEN=$(jq -r .token <<<"$TOKEN_JSON")
jq -r .line <<<"$TOKEN_JSON" >"$TMP/api-tokens"

declare -A BYTES P99
# measure NAME N PATH: size in bytes, p50 and p99 in ms over REQUESTS requests with the session
# (a path under /api/ with the API token instead).
measure() {
  local name=$1 n=$2 path=$3 auth="Cookie: $COOKIE"
  [[ "$path" == /api/* ]] && auth="Authorization: Bearer $TOKEN"
  BYTES[$name-$n]=$(curl -sf -H "$auth" -o page.html -w '%{size_download}' "http://$ADDR$path")
  if [[ "$path" == /api/* ]]; then
    jq -e .run page.html >/dev/null || { echo "$name: not the run's JSON" >&2; exit 2; }
  else
    grep -q '<h1' page.html || { echo "$name: not a page (signed in?)" >&2; exit 2; }
  fi
  for _ in $(seq "$REQUESTS"); do
    curl -sf -o /dev/null -H "$auth" -w '%{time_total}\n' "http://$ADDR$path" || echo 999
  done | sort -n >times
  local p50
  p50=$(awk -v n="$REQUESTS" 'NR == int(n / 2) { printf "%.1f", $1 * 1000 }' times)
  P99[$name-$n]=$(awk -v n="$REQUESTS" 'NR == int(n * 0.99) { printf "%.1f", $1 * 1000 }' times)
  printf "  %-16s %9s bytes  p50 %7s ms  p99 %7s ms\n" "$name" "${BYTES[$name-$n]}" "$p50" "${P99[$name-$n]}"
}

for n in "${SIZES[@]}"; do
  echo "== a run of one step fanned out over $n hosts"
  fanout "$n"
  mkdir -p "runbooks-$n"
  mv "fan-$n.yaml" "inv-$n.yaml" "runbooks-$n/"
  db=$TMP/pages-$n.db
  (cd "runbooks-$n" && "$BIN" --database "sqlite://$db" run "fan-$n.yaml" >/dev/null 2>"$TMP/run.err") ||
    { echo "the run failed:" >&2; tail -5 "$TMP/run.err" >&2; exit 2; }
  run_id=$(sqlite3 "$db" "SELECT id FROM runs LIMIT 1")
  events=$(sqlite3 "$db" "SELECT COUNT(*) FROM events")
  echo "  run $run_id, $events audit events"
  PATCHDAY_SECURITY_API_TOKENS_FILE="$TMP/api-tokens" "$BIN" serve --listen 127.0.0.1:0 --database "sqlite://$db" --runbooks "runbooks-$n" \
    --outbox "$TMP/outbox" >"$TMP/out" 2>"$TMP/log" &
  PID=$!
  ADDR=$(await_serving "$TMP/out")
  [[ -n "$ADDR" ]] || { echo "the daemon did not start:" >&2; cat "$TMP/log" >&2; exit 2; }
  COOKIE=$(sign_in "$TMP/out")
  [[ -n "$COOKIE" ]] || { echo "could not sign in" >&2; exit 2; }
  measure "run page" "$n" "/runs/$run_id"
  measure "month calendar" "$n" "/calendar"
  measure "audit browser" "$n" "/audit"
  measure "overview" "$n" "/"
  measure "runbook page" "$n" "/runbooks/fan-$n"
  measure "API run detail" "$n" "/api/v1/runs/$run_id"
  kill "$PID"
  wait "$PID" 2>/dev/null || true
  PID=
done

small=${SIZES[0]} big=${SIZES[1]}
echo "== ratios, $big hosts to $small"
ratio() { echo "scale=2; $1 / $2" | bc; }
PAGES=("run page" "month calendar" "audit browser" "overview" "runbook page" "API run detail")
for name in "${PAGES[@]}"; do
  printf "  %-16s bytes %sx  p99 %sx\n" "$name" "$(ratio "${BYTES[$name-$big]}" "${BYTES[$name-$small]}")" \
    "$(ratio "${P99[$name-$big]}" "${P99[$name-$small]}")"
done
ok=0
goal() { if [[ $(echo "$2" | bc) == 1 ]]; then echo "goal met: $1"; else echo "GOAL MISSED: $1"; ok=1; fi; }
goal "run page of the $big-host run < 300 KB (${BYTES[run page-$big]} bytes)" "${BYTES[run page-$big]} < 300 * 1024"
for name in "${PAGES[@]}"; do
  goal "$name < 100 ms p99 at $big hosts (${P99[$name-$big]} ms)" "${P99[$name-$big]} < 100"
done
exit $ok
