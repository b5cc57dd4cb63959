#!/usr/bin/env bash
# Step-graph layout time (issue 13): how long `patchday plan --format svg` takes to lay out and
# draw a generated runbook's step graph at 200 and 2,000 steps (10x), the same layout the run
# page draws (engine/src/dashboard/layout.rs).
#
#   bash bench/dag-layout.sh        # a few seconds after the release build
#   PATCHDAY_BENCH_BIN=/path/to/patchday bash bench/dag-layout.sh   # that binary, no build (A/B)
#
# Two shapes per size: "mixed" (each step needs up to three of the ten steps before it: long
# edges, many crossings) and "wide" (one start, every other step beside the others, one join).
# A run of `plan --format text` on the same file is timed as the baseline (loading and checking
# the runbook), so the figure printed is the layout and drawing alone: median of 5 runs each.
# Prints ms per size and the 2,000 / 200 ratio. Exit 2 when the benchmark could not run.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

generate() { # generate SHAPE STEPS FILE
  python3 - "$1" "$2" "$3" <<'PY'
import random, sys
shape, steps, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rng = random.Random(7)
lines = ["name: layout-bench", "steps:"]
for i in range(steps):
    if shape == "wide":
        needs = [] if i == 0 else ["s0"] if i < steps - 1 else [f"s{j}" for j in range(1, steps - 1)]
    else:
        needs = sorted({f"s{i - rng.randint(1, 10)}" for _ in range(3) if i >= 10} or ([f"s{i-1}"] if i else []))
    lines.append(f"  s{i}: {{ uses: noop, needs: [{', '.join(needs)}] }}")
open(path, "w").write("\n".join(lines) + "\n")
PY
}

median_ms() { # median_ms FORMAT FILE: median wall time of 5 runs, in ms
  for _ in 1 2 3 4 5; do
    local start end
    start=$(date +%s%N)
    "$BIN" plan "$2" --format "$1" >"$TMP/out" || { echo "plan --format $1 $2 failed" >&2; exit 2; }
    end=$(date +%s%N)
    echo $(((end - start) / 1000))
  done | sort -n | sed -n 3p | awk '{ printf "%.1f", $1 / 1000 }'
}

printf "%-6s %6s %12s %12s %12s\n" shape steps "plan text" "plan svg" "layout+svg"
for shape in mixed wide; do
  declare -A layout=()
  for steps in 200 2000; do
    file="$TMP/$shape-$steps.yaml"
    generate "$shape" "$steps" "$file"
    text=$(median_ms text "$file")
    svg=$(median_ms svg "$file")
    grep -q "<svg" "$TMP/out" || { echo "no SVG drawn for $file" >&2; exit 2; }
    layout[$steps]=$(awk -v a="$svg" -v b="$text" 'BEGIN { d = a - b; printf "%.1f", d < 0 ? 0 : d }')
    printf "%-6s %6d %10s ms %10s ms %10s ms\n" "$shape" "$steps" "$text" "$svg" "${layout[$steps]}"
  done
  awk -v a="${layout[2000]}" -v b="${layout[200]}" -v s="$shape" \
    'BEGIN { printf "%-6s 10x steps: layout %.1fx the time\n", s, (b > 0 ? a / b : 0) }'
done
