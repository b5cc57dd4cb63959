#!/usr/bin/env bash
# Daemon figures (issue 6): the confirmation page under load, idle footprint, scheduler lag,
# and what a flood of forged links costs the audit log.
#
#   bash bench/daemon.sh            # about 2.5 minutes: 60 s idle, 20 s wrk, 5 scheduled fires
#   bash bench/daemon.sh --quick    # about 45 s: 15 s idle, 5 s wrk, 2 fires
#   bash bench/daemon.sh --keep     # keep the temporary folder (databases, logs, outboxes)
#   PATCHDAY_BENCH_BIN=/path/to/patchday bash bench/daemon.sh   # that binary, no build (A/B)
#
# Everything runs on this machine over loopback, against the release build, in a temporary
# folder: nothing in the repository is touched. It needs wrk and jq (installed with apt-get
# when missing and run as root). Exit status: 0 when every goal is met, 1 when one is missed,
# 2 when the benchmark itself could not run.
#
# Phases:
# 1. idle: `patchday serve` with the example runbooks (runbooks/*.yaml, their templates and
#    inventory/) and nothing else; after a few seconds of settling, CPU (utime+stime from
#    /proc/PID/stat, and the threads' schedstat in ns) and RSS (VmRSS, VmHWM) over the window.
# 2. scheduler lag: a second daemon with the examples plus N probe runbooks whose cron schedule
#    fires a few seconds apart on the real clock; lag = the probe's first `step.started` minus
#    its due time (and `run.started` minus the due time), from `patchday audit export`.
# 3. load: an approval runbook triggered through the JSON API (`patchday trigger`), its emailed
#    link read from the outbox, and `wrk -t2 -c64 --latency` on the link's GET (the
#    confirmation page, which reads and never writes).
# 4. forged links: wrk on a tampered token; counts the audit events that the flood wrote.
set -euo pipefail

QUICK=0
KEEP=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    --keep) KEEP=1 ;;
    -h | --help)
      sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "unknown argument: $arg (use --quick, --keep)" >&2
      exit 2
      ;;
  esac
done

if ((QUICK)); then
  IDLE_SECS=15 WRK_SECS=5 FIRES=2 FLOOD_SECS=3
else
  IDLE_SECS=60 WRK_SECS=20 FIRES=5 FLOOD_SECS=5
fi
SETTLE_SECS=5      # after start-up, before the idle window opens
FIRST_FIRE_SECS=12 # the first probe fires this long after the runbooks are written
FIRE_GAP_SECS=4    # between two probes

# Goals (issue 6).
GOAL_RPS=5000
GOAL_P99_MS=10
GOAL_RSS_MB=40
GOAL_IDLE_CPU_S=0.1
GOAL_LAG_MS=50

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${PATCHDAY_BENCH_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/patchday}"

die() {
  echo "bench: $*" >&2
  exit 2
}

need() {
  command -v "$1" >/dev/null && return
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "bench: installing $1" >&2
    apt-get install -y "$1" >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y "$1" >/dev/null; }
  fi
  command -v "$1" >/dev/null || die "$1 is missing (apt-get install $1)"
}
need wrk
need jq

if [[ -z ${PATCHDAY_BENCH_BIN:-} ]]; then
  echo "== building the release binary" >&2
  (cd "$ROOT" && cargo build --release -p patchday --quiet) || die "cargo build failed"
fi
[[ -x $BIN ]] || die "no binary at $BIN"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/patchday-bench.XXXXXX")"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if ((KEEP)); then
    echo "bench: kept $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

# A folder laid out like the repository: runbooks/ (the examples and their templates) and
# inventory/, which the examples name as ../inventory/hosts.yaml.
layout() {
  local dir=$1
  mkdir -p "$dir/runbooks"
  cp "$ROOT"/runbooks/*.yaml "$dir/runbooks/"
  cp -r "$ROOT/runbooks/templates" "$dir/runbooks/"
  cp -r "$ROOT/inventory" "$dir/"
}

# start_daemon DIR [ENV=VALUE...]: starts `patchday serve` in DIR on a free port; sets PID, ADDR.
start_daemon() {
  local dir=$1
  shift
  (
    cd "$dir"
    exec env "$@" "$BIN" serve --listen 127.0.0.1:0 \
      --database "sqlite://$dir/patchday.db" --runbooks "$dir/runbooks" --outbox "$dir/outbox" \
      >"$dir/stdout" 2>"$dir/stderr"
  ) &
  PID=$!
  PIDS+=("$PID")
  local line=""
  for _ in $(seq 300); do
    line=$(grep -m1 '^patchday serving http://' "$dir/stdout" 2>/dev/null || true)
    [[ -n $line ]] && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  [[ -n $line ]] || die "the daemon did not start: $(cat "$dir/stderr")"
  ADDR=${line#patchday serving http://}
  ADDR=${ADDR%% *}
  echo "   $line" >&2
}

stop_daemon() {
  kill -TERM "$1"
  wait "$1" 2>/dev/null || true
}

# CPU ticks (utime+stime, the whole process including ended threads).
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
# CPU ns of the live threads (schedstat: finer than ticks).
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%d", s }'; }
# Context switches of the live threads: how often the process woke up.
switches() {
  cat /proc/"$1"/task/*/status 2>/dev/null |
    awk '/^(non)?voluntary_ctxt_switches/ { s += $2 } END { printf "%d", s }'
}
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
mb() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'; }

# wrk's latency as milliseconds ("812.00us", "1.23ms", "1.02s").
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.2f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.2f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.2f", v * 1000 }
    else print v
  }'
}

export_audit() { "$BIN" audit export --database "sqlite://$1/patchday.db"; }

# The machine's busy CPU ticks, all cores (/proc/stat: user nice system idle iowait irq softirq
# steal): what other processes took during a measurement is this minus ours.
machine_busy() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }

TICKS_PER_S=$(getconf CLK_TCK)
check() { # check NAME OK(0/1): the table's verdict (the names of the missed goals: see below)
  if [[ $2 == 1 ]]; then echo "ok"; else echo "MISSED"; fi
}

MACHINE="$(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r)"
echo "== machine: $MACHINE; load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# ---------------------------------------------------------------------------------------------
echo "== 1. idle daemon with the example runbooks (${IDLE_SECS} s)" >&2
IDLE_DIR="$WORK/idle"
layout "$IDLE_DIR"
start_daemon "$IDLE_DIR"
IDLE_PID=$PID
sleep "$SETTLE_SECS"
startup_ticks=$(cpu_ticks "$IDLE_PID")
t0=$(cpu_ticks "$IDLE_PID") n0=$(cpu_ns "$IDLE_PID") s0=$(switches "$IDLE_PID")
sleep "$IDLE_SECS"
t1=$(cpu_ticks "$IDLE_PID") n1=$(cpu_ns "$IDLE_PID") s1=$(switches "$IDLE_PID")
IDLE_RSS=$(status_kb "$IDLE_PID" VmRSS)
IDLE_HWM=$(status_kb "$IDLE_PID" VmHWM)
IDLE_THREADS=$(status_kb "$IDLE_PID" Threads)
IDLE_CPU_S=$(awk -v d=$((t1 - t0)) -v hz="$TICKS_PER_S" 'BEGIN { printf "%.2f", d / hz }')
IDLE_CPU_MS_NS=$(awk -v d=$((n1 - n0)) 'BEGIN { printf "%.1f", d / 1e6 }')
IDLE_WAKEUPS=$((s1 - s0))
STARTUP_CPU_S=$(awk -v d="$startup_ticks" -v hz="$TICKS_PER_S" 'BEGIN { printf "%.2f", d / hz }')
stop_daemon "$IDLE_PID"
echo "   CPU ${IDLE_CPU_S} s (${IDLE_CPU_MS_NS} ms by schedstat), ${IDLE_WAKEUPS} context switches; RSS $(mb "$IDLE_RSS") MB, peak $(mb "$IDLE_HWM") MB, ${IDLE_THREADS} threads" >&2

# ---------------------------------------------------------------------------------------------
echo "== 2. scheduler lag (${FIRES} cron fires, ${FIRE_GAP_SECS} s apart)" >&2
LOAD_DIR="$WORK/load"
layout "$LOAD_DIR"
cat >"$LOAD_DIR/runbooks/bench-approval.yaml" <<'YAML'
name: bench-approval
description: An approval whose emailed link the load test fetches
timezone: UTC
roles:
  cab: [alice@example.com]
steps:
  prepare:
    uses: noop
    with: { message: prepare }
  cab-approval:
    needs: [prepare]
    uses: approval
    with:
      approvers: [cab]
      quorum: 1
      message: "May we patch tonight?"
YAML
now=$(date +%s)
declare -A DUE
for k in $(seq "$FIRES"); do
  due=$((now + FIRST_FIRE_SECS + (k - 1) * FIRE_GAP_SECS))
  DUE[bench-lag-$k]=$due
  # Seconds first; day of month and month pinned, so this is the first (only) match of its month.
  cron=$(date -u -d "@$due" '+%-S %-M %-H %-d %-m *')
  cat >"$LOAD_DIR/runbooks/bench-lag-$k.yaml" <<YAML
name: bench-lag-$k
description: Scheduler lag probe $k
timezone: UTC
schedule:
  - cron: "$cron"
catch_up: 1h
steps:
  first:
    uses: noop
    with: { message: "probe $k" }
YAML
done
TOKEN_JSON=$("$BIN" api-token bench --format json)
TOKEN=$(jq -r .token <<<"$TOKEN_JSON")
jq -r .line <<<"$TOKEN_JSON" >"$LOAD_DIR/api-tokens"
start_daemon "$LOAD_DIR" PATCHDAY_SECURITY_API_TOKENS_FILE="$LOAD_DIR/api-tokens"
LOAD_PID=$PID
if (($(date +%s) >= now + FIRST_FIRE_SECS - 2)); then
  die "the daemon took too long to start for the first probe"
fi
last_due=$((now + FIRST_FIRE_SECS + (FIRES - 1) * FIRE_GAP_SECS))
sleep $((last_due - $(date +%s) + 3))
# The probes' step.started times and run.started times against their due times.
LAGS=$(export_audit "$LOAD_DIR" | jq -rs --argjson due "$(
  for name in "${!DUE[@]}"; do echo "{\"$name\": ${DUE[$name]}}"; done | jq -s add
)" '
  def epoch: (sub("\\.[0-9]+Z$"; "Z") | fromdateiso8601) + ((capture("(?<f>\\.[0-9]+)Z$").f // "0") | tonumber);
  (map(select(.action == "run.started" and (.details.runbook | startswith("bench-lag-"))))
   | map({key: .run_id, value: {runbook: .details.runbook, run: (.at | epoch)}}) | from_entries) as $runs
  | map(select(.action == "step.started" and $runs[.run_id] != null))
  | map($runs[.run_id] + {step: (.at | epoch)})
  | sort_by(.runbook)[]
  | [.runbook, ((.run - $due[.runbook]) * 1000), ((.step - $due[.runbook]) * 1000)]
  | @tsv')
[[ -n $LAGS ]] || die "no probe fired: $(tail -5 "$LOAD_DIR/stderr")"
FIRED=$(wc -l <<<"$LAGS")
while IFS=$'\t' read -r name run_ms step_ms; do
  printf '   %s: run.started +%.1f ms, step.started +%.1f ms after its due time\n' "$name" "$run_ms" "$step_ms" >&2
done <<<"$LAGS"
LAG_MAX=$(awk -F'\t' '{ if ($3 > m) m = $3 } END { printf "%.1f", m }' <<<"$LAGS")
LAG_MEDIAN=$(cut -f3 <<<"$LAGS" | sort -g | awk '{ a[NR] = $1 } END { printf "%.1f", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')

# ---------------------------------------------------------------------------------------------
echo "== 3. the confirmation page under load (wrk -t2 -c64 -d${WRK_SECS}s)" >&2
out=$(PATCHDAY_API_TOKEN=$TOKEN "$BIN" trigger bench-approval --server "http://$ADDR")
echo "   $out" >&2
URL=""
for _ in $(seq 300); do
  URL=$(cat "$LOAD_DIR"/outbox/*.eml 2>/dev/null | grep -o -m1 "http://$ADDR/links/[A-Za-z0-9_-]*" || true)
  [[ -n $URL ]] && break
  sleep 0.1
done
[[ -n $URL ]] || die "no approval email with a link in $LOAD_DIR/outbox"
code=$(curl -s -o "$WORK/page.html" -w '%{http_code}' "$URL")
[[ $code == 200 ]] || die "the link answers $code: $(cat "$WORK/page.html")"
grep -q 'May we patch tonight?' "$WORK/page.html" || die "the confirmation page does not show the approval"
events_before=$(export_audit "$LOAD_DIR" | grep -vc '"action":"email\.' || true)
busy0=$(machine_busy) d0=$(cpu_ticks "$LOAD_PID")
TIMEFORMAT='%U %S'
WRK_CPU=$({ time wrk -t2 -c64 -d"${WRK_SECS}s" --latency "$URL" >"$WORK/wrk.out"; } 2>&1)
busy1=$(machine_busy) d1=$(cpu_ticks "$LOAD_PID")
WRK_OUT=$(cat "$WORK/wrk.out")
echo "$WRK_OUT" | sed 's/^/   /' >&2
# Shares of the machine's cores (200% = both) during the load test.
share() { awk -v t="$1" -v s="$WRK_SECS" -v hz="$TICKS_PER_S" 'BEGIN { printf "%.0f", 100 * t / hz / s }'; }
DAEMON_PCT=$(share $((d1 - d0)))
WRK_PCT=$(awk -v c="$WRK_CPU" -v s="$WRK_SECS" 'BEGIN { split(c, a, " "); printf "%.0f", 100 * (a[1] + a[2]) / s }')
OTHERS_PCT=$(awk -v b="$(share $((busy1 - busy0)))" -v d="$DAEMON_PCT" -v w="$WRK_PCT" 'BEGIN { o = b - d - w; printf "%.0f", o < 0 ? 0 : o }')
echo "   CPU during the test (200% = both cores): daemon ${DAEMON_PCT}%, wrk ${WRK_PCT}%, other processes ${OTHERS_PCT}%" >&2
events_after=$(export_audit "$LOAD_DIR" | grep -vc '"action":"email\.' || true)
RPS=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' <<<"$WRK_OUT")
P50=$(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$WRK_OUT")")
P99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$WRK_OUT")")
NON2XX=$(awk '/Non-2xx/ { print $NF }' <<<"$WRK_OUT")
NON2XX=${NON2XX:-0}
ERRORS=$(awk '/Socket errors/ { print }' <<<"$WRK_OUT")
LOAD_RSS=$(status_kb "$LOAD_PID" VmRSS)
LOAD_HWM=$(status_kb "$LOAD_PID" VmHWM)
LOAD_THREADS=$(status_kb "$LOAD_PID" Threads)
WRITES=$((events_after - events_before))

# ---------------------------------------------------------------------------------------------
echo "== 4. a flood of forged links (wrk -t2 -c64 -d${FLOOD_SECS}s on a tampered token)" >&2
token=${URL##*/links/}
mid=$((${#token} / 2))
swap=A
[[ ${token:mid:1} == A ]] && swap=B
FORGED="http://$ADDR/links/${token:0:mid}${swap}${token:mid+1}"
rejected_before=$(export_audit "$LOAD_DIR" | grep -c '"action":"link\.' || true)
FLOOD_OUT=$(wrk -t2 -c64 -d"${FLOOD_SECS}s" "$FORGED")
rejected_after=$(export_audit "$LOAD_DIR" | grep -c '"action":"link\.' || true)
FLOOD_REQS=$(awk '/requests in/ { print $1 }' <<<"$FLOOD_OUT")
FLOOD_RPS=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' <<<"$FLOOD_OUT")
FLOOD_EVENTS=$((rejected_after - rejected_before))
last_status=$(curl -s -o /dev/null -w '%{http_code}' "$FORGED")
echo "   $FLOOD_REQS requests ($FLOOD_RPS/s), $FLOOD_EVENTS link.* audit events written; a forged link now answers $last_status" >&2
stop_daemon "$LOAD_PID"
"$BIN" audit verify --database "sqlite://$LOAD_DIR/patchday.db" >/dev/null || die "the audit chain does not verify"

# ---------------------------------------------------------------------------------------------
rps_ok=$(awk -v r="$RPS" -v g=$GOAL_RPS 'BEGIN { print (r >= g) ? 1 : 0 }')
p99_ok=$(awk -v p="$P99" -v g=$GOAL_P99_MS 'BEGIN { print (p < g) ? 1 : 0 }')
rss_ok=$(awk -v kb="$IDLE_RSS" -v g=$GOAL_RSS_MB 'BEGIN { print (kb / 1024 < g) ? 1 : 0 }')
cpu_ok=$(awk -v c="$IDLE_CPU_S" -v g=$GOAL_IDLE_CPU_S -v w="$IDLE_SECS" 'BEGIN { print (c * 60 / w < g) ? 1 : 0 }')
lag_ok=$(awk -v l="$LAG_MAX" -v g=$GOAL_LAG_MS -v n="$FIRED" -v f="$FIRES" 'BEGIN { print (l < g && n == f) ? 1 : 0 }')
errors_ok=$([[ $NON2XX == 0 && -z $ERRORS && $WRITES == 0 ]] && echo 1 || echo 0)
FAILED=()
for goal in rps p99 errors rss cpu lag; do
  ok_var="${goal}_ok"
  [[ ${!ok_var} == 1 ]] || FAILED+=("$goal")
done

echo
echo "Machine: $MACHINE"
echo "Command: bash bench/daemon.sh$( ((QUICK)) && echo ' --quick')"
echo
echo "| what | figure | goal | |"
echo "|---|---|---|---|"
echo "| confirmation page, wrk -t2 -c64 -d${WRK_SECS}s on loopback | $RPS req/s | ≥ $GOAL_RPS req/s | $(check rps "$rps_ok") |"
echo "| its latency | p50 $P50 ms, p99 $P99 ms | p99 < $GOAL_P99_MS ms | $(check p99 "$p99_ok") |"
echo "| its errors and audit writes | $NON2XX non-2xx${ERRORS:+, $ERRORS}, $WRITES events written | none (a GET never writes) | $(check errors "$errors_ok") |"
echo "| CPU meanwhile (200% = both cores) | daemon ${DAEMON_PCT}%, wrk ${WRK_PCT}%, other processes ${OTHERS_PCT}% | — | |"
echo "| idle RSS, example runbooks loaded | $(mb "$IDLE_RSS") MB (peak $(mb "$IDLE_HWM") MB, $IDLE_THREADS threads) | < $GOAL_RSS_MB MB | $(check rss "$rss_ok") |"
echo "| idle CPU over ${IDLE_SECS} s | $IDLE_CPU_S s (${IDLE_CPU_MS_NS} ms by schedstat, $IDLE_WAKEUPS context switches) | < $GOAL_IDLE_CPU_S s per 60 s | $(check cpu "$cpu_ok") |"
echo "| start-up CPU (to ready + ${SETTLE_SECS} s) | $STARTUP_CPU_S s | — | |"
echo "| scheduler lag, due time → first step.started | median $LAG_MEDIAN ms, max $LAG_MAX ms ($FIRED of $FIRES fires) | < $GOAL_LAG_MS ms | $(check lag "$lag_ok") |"
echo "| RSS after the load test | $(mb "$LOAD_RSS") MB (peak $(mb "$LOAD_HWM") MB, $LOAD_THREADS threads) | — | |"
echo "| forged-link flood, wrk -c64 -d${FLOOD_SECS}s | $FLOOD_REQS requests, $FLOOD_EVENTS audit events | bounded | |"
if ((${#FAILED[@]})); then
  echo
  echo "missed: ${FAILED[*]}"
  exit 1
fi
