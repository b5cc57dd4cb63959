#!/usr/bin/env bash
# How `patchday run` grows with its work (issue 12), through the release binary as users run it:
# a fresh SQLite file per run, `noop` steps, this machine. Each pair is a 1x and a 10x size;
# the ratio of their times is printed beside them (linear cost: about 10).
#
#   bash bench/growth.sh            # chains 1,000 / 10,000; fan-outs 5,000 / 50,000 and
#                                   # 10,000 / 100,000 hosts; validate + plan 10,000 / 100,000
#   bash bench/growth.sh --quick    # chains 500 / 5,000; fan-outs 1,000 / 10,000 only
#   bash bench/growth.sh --fanout   # fan-outs 10,000 / 100,000 hosts only
#   PATCHDAY_BENCH_BIN=/path/to/patchday bash bench/growth.sh   # that binary, no build (A/B)
#
# One line per measurement: wall seconds, CPU seconds (user + system) and peak RSS, then one
# line per pair with the ratios. Exit 0 when every goal of the issue holds (chain 10x ≤ 12x
# chain 1x; fan-out 50,000 ≤ 12x 5,000; 100,000 hosts ≤ 10 s and < 200 MB), 1 when one does not
# (the wall times depend on the disk's fsync and on what else runs: see the CPU column), 2
# when the benchmark could not run.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cd "$TMP"

chain() { # N milestones, each needing the one before
  { echo "name: chain-$1"; echo "timezone: UTC"; echo "steps:"; echo "  s0: {}"
    for ((i = 1; i < $1; i++)); do echo "  s$i: { needs: [s$((i - 1))] }"; done; } >"chain-$1.yaml"
}

declare -A WALL CPU RSS
measure() { # KIND N COMMAND...: records wall, CPU and peak RSS
  local kind=$1 n=$2; shift 2
  if ! /usr/bin/time -f "%e %U %S %M" -o time.txt "$@" >/dev/null 2>err.txt; then
    echo "$kind $n failed:" >&2; tail -5 err.txt >&2; exit 2
  fi
  read -r wall user sys rss <time.txt
  WALL[$kind-$n]=$wall
  CPU[$kind-$n]=$(echo "$user + $sys" | bc)
  RSS[$kind-$n]=$((rss / 1024))
  printf "%-22s %8s s wall %8s s CPU %6s MB peak RSS\n" "$kind $n" "$wall" "${CPU[$kind-$n]}" "${RSS[$kind-$n]}"
}
run() { measure "$1" "$2" "$BIN" --database "sqlite://$TMP/$1-$2.db" run "$1-$2.yaml"; }
plan() { measure plan "$1" "$BIN" plan "fan-$1.yaml"; }
ratio() { echo "scale=1; ${1} / ${2}" | bc; }
pair() { # KIND SMALL BIG
  printf "%-22s wall %sx, CPU %sx (%s vs %s)\n" "$1 growth" \
    "$(ratio "${WALL[$1-$3]}" "${WALL[$1-$2]}")" "$(ratio "${CPU[$1-$3]}" "${CPU[$1-$2]}")" "$2" "$3"
}

if [[ "${1:-}" == --quick ]]; then
  CHAINS=(500 5000) FANS=(1000 10000) PLANS=()
elif [[ "${1:-}" == --fanout ]]; then
  CHAINS=() FANS=(10000 100000) PLANS=()
else
  CHAINS=(1000 10000) FANS=(5000 50000 10000 100000) PLANS=(10000 100000)
fi
for n in "${CHAINS[@]}"; do chain "$n"; run chain "$n"; done
for n in "${FANS[@]}"; do fanout "$n"; run fan "$n"; done
for n in "${PLANS[@]}"; do plan "$n"; done
echo
[[ ${#CHAINS[@]} -gt 0 ]] && pair chain "${CHAINS[0]}" "${CHAINS[1]}"
for ((i = 0; i < ${#FANS[@]}; i += 2)); do pair fan "${FANS[i]}" "${FANS[i + 1]}"; done
[[ ${#PLANS[@]} -gt 0 ]] && pair plan "${PLANS[0]}" "${PLANS[1]}"

ok=0
goal() { if [[ $(echo "$2" | bc) == 1 ]]; then echo "goal met: $1"; else echo "GOAL MISSED: $1"; ok=1; fi; }
if [[ ${#CHAINS[@]} -gt 0 ]]; then
  goal "chain ${CHAINS[1]} ≤ 12x chain ${CHAINS[0]} (wall)" "${WALL[chain-${CHAINS[1]}]} <= 12 * ${WALL[chain-${CHAINS[0]}]}"
fi
goal "fan-out ${FANS[1]} ≤ 12x fan-out ${FANS[0]} (wall)" "${WALL[fan-${FANS[1]}]} <= 12 * ${WALL[fan-${FANS[0]}]}"
if [[ -n "${WALL[fan-100000]:-}" ]]; then
  goal "fan-out 100000 ≤ 10 s" "${WALL[fan-100000]} <= 10"
  goal "fan-out 100000 < 200 MB peak RSS" "${RSS[fan-100000]} < 200"
fi
exit $ok
