#!/usr/bin/env bash
# Calendar figures (issue 17): what expanding a schedule costs, through the binary, for 1x and
# 10x the cycles (365 and 3,650 daily cycles; 52 and 520 alternate-week ones), for a cron
# entry, an RRULE, and an RRULE with COUNT (which is counted from its start every time).
#
#   bash bench/calendar.sh
#   PATCHDAY_BENCH_BIN=/path/to/patchday bash bench/calendar.sh   # that binary (A/B)
#
# Uses target/release/patchday when it exists, else target/debug/patchday (say which below).
# Runs in a temporary folder; nothing in the repository is touched. Prints wall time and peak
# RSS per run (GNU time, or bash's own clock when /usr/bin/time is missing) and the 10x/1x ratio.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${PATCHDAY_BENCH_BIN:-}
if [[ -z $bin ]]; then
  bin=$root/target/release/patchday
  [[ -x $bin ]] || bin=$root/target/debug/patchday
fi
[[ -x $bin ]] || { echo "no patchday binary: cargo build --release -p patchday" >&2; exit 2; }
echo "binary: $bin"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
runbook() { # name, schedule entry
  printf 'name: %s\ntimezone: Europe/Berlin\nschedule:\n  - %s\nsteps:\n  a: { uses: noop }\n' "$1" "$2" > "$tmp/$1.yaml"
}
runbook cron-daily '{ cron: "0 30 2 * * *" }'
runbook rrule-daily '{ rrule: "FREQ=DAILY", start: 2027-01-01 02:30 }'
runbook rrule-count '{ rrule: "FREQ=DAILY;COUNT=100000", start: 2027-01-01 02:30 }'
runbook rrule-alternate '{ rrule: "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU", start: 2027-01-05 09:00 }'

# seconds and peak KB of one `patchday calendar` run
measure() {
  local out
  if [[ -x /usr/bin/time ]]; then
    out=$({ /usr/bin/time -f '%e %M' "$bin" calendar "$tmp/$1.yaml" --now 2027-01-01T00:00:00Z \
      --count "$2" --format json > /dev/null; } 2>&1)
    echo "$out"
  else
    local start=$EPOCHREALTIME
    "$bin" calendar "$tmp/$1.yaml" --now 2027-01-01T00:00:00Z --count "$2" --format json > /dev/null
    echo "$(echo "$EPOCHREALTIME - $start" | bc) -"
  fi
}

printf '%-16s %8s %10s %10s %8s %10s %8s\n' schedule cycles seconds peak_KB "x10" seconds ratio
for case in cron-daily:365 rrule-daily:365 rrule-count:365 rrule-alternate:52; do
  name=${case%%:*}
  n=${case##*:}
  read -r s1 m1 < <(measure "$name" "$n")
  read -r s10 m10 < <(measure "$name" $((n * 10)))
  ratio=$(awk -v a="$s1" -v b="$s10" 'BEGIN { if (a > 0) printf "%.1f", b / a; else print "-" }')
  printf '%-16s %8s %10s %10s %8s %10s %8s\n' "$name" "$n" "$s1" "$m1" $((n * 10)) "$s10" "$ratio"
done
