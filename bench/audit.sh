#!/usr/bin/env bash
# The audit log at scale (issues 12 and 14): `patchday audit verify --checkpoints` walks the log
# page by page, so its time grows with the log and its memory does not; a checkpoint and a proof
# over the whole log read the stored Merkle nodes (migration 0019), so they do not grow with it.
#
#   bash bench/audit.sh               # 1x = 200,000 events, 10x = 2,000,000 (a few minutes)
#   EVENTS=20000 bash bench/audit.sh  # a smaller 1x
#   PATCHDAY_BENCH_BIN=/path/to/patchday bash bench/audit.sh   # that binary, no build (A/B)
#
# For each size a fresh SQLite file is made by the binary (`patchday run` of a one-step
# runbook: the migrations and the first events), then grown to the size with events appended
# by Python's sqlite3 (correct hashes, chained, the head updated: what years of runs would
# leave). Then, through the binary: `audit keygen`; `audit checkpoint` (the first one over a log
# without stored nodes: the whole tree built once and its nodes stored); 1,000 more events and
# `audit checkpoint` again (incremental: the tree resumed from the nodes, the new events
# added); `audit verify --checkpoints` (chain + Merkle root at both checkpoints: every event
# read and hashed, the nodes not trusted); `audit prove --seq` (an inclusion proof from the
# nodes). Wall time and peak RSS from /usr/bin/time. The proof's time is given without process
# start: the mean of 20 runs minus the mean of 20 runs of `audit prove --seq 0` (the same
# start, database opening and checkpoint reading, refused before any proof work). Prints each
# figure and the 10x/1x ratios; exit 0 when verify's peak RSS at 10x is within 1.5x of 1x
# (constant memory), 1 otherwise, 2 when the benchmark could not run.
set -euo pipefail

EVENTS=${EVENTS:-200000}
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
[[ -x /usr/bin/time ]] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# grow DB N: appends events until the log has N, as the store would have written them.
grow() {
  python3 - "$1" "$2" <<'EOF'
import hashlib, json, sqlite3, sys
from datetime import datetime, timedelta, timezone
path, target = sys.argv[1], int(sys.argv[2])
db = sqlite3.connect(path)
seq, prev = db.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
at = datetime(2024, 1, 9, 10, tzinfo=timezone.utc)
rows = []
while seq < target:
    seq += 1
    at += timedelta(seconds=47)
    when = at.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    host = f"host{seq % 5000:04d}"
    details = {"host": host, "attempt": 1, "output": "patched"}
    canon = [seq, when, "engine", "step.succeeded", "r-bench", "patch", details, prev]
    text = json.dumps(canon, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    prev = hashlib.sha256(text.encode()).hexdigest()
    rows.append((seq, when, "engine", "step.succeeded", "r-bench", "patch",
                 json.dumps(details, separators=(",", ":"), sort_keys=True), canon[-1], prev))
    if len(rows) == 50000 or seq == target:
        db.executemany("INSERT INTO events (seq, at, actor, action, run_id, step_id, details, "
                       "prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?)", rows)
        rows = []
db.execute("UPDATE chain_head SET seq = ?, hash = ? WHERE id = 1", (seq, prev))
db.commit()
EOF
}

# measure NAME CMD...: runs CMD under /usr/bin/time; sets SECS (wall), CPU (user + system) and
# RSS_MB.
measure() {
  local name=$1
  shift
  if ! /usr/bin/time -f "%e %M %U %S" -o "$TMP/time" "$@" >"$TMP/out.$name" 2>"$TMP/err.$name"; then
    echo "$name failed:" >&2
    cat "$TMP/out.$name" "$TMP/err.$name" >&2
    exit 2
  fi
  read -r SECS KB USER_S SYS_S <"$TMP/time"
  CPU=$(awk -v u="$USER_S" -v s="$SYS_S" 'BEGIN { printf "%.2f", u + s }')
  RSS_MB=$(awk -v k="$KB" 'BEGIN { printf "%.1f", k / 1024 }')
}

# mean_ms CMD...: the mean CPU time (user + system) of 20 runs of CMD, in milliseconds (its exit
# code ignored). CPU time, not wall: on a shared machine the wall time of a 10 ms process is
# mostly waiting for a core.
mean_ms() {
  python3 - "$@" <<'PY'
import resource, subprocess, sys
for _ in range(20):
    subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{(usage.ru_utime + usage.ru_stime) / 20 * 1000:.2f}")
PY
}

declare -A FIG
for scale in 1 10; do
  n=$((EVENTS * scale))
  dir=$TMP/x$scale
  mkdir -p "$dir"
  printf 'name: bench\nsteps:\n  a: { uses: noop }\n' >"$dir/r.yaml"
  db="sqlite://$dir/log.db"
  "$BIN" run "$dir/r.yaml" --database "$db" >/dev/null
  grow "$dir/log.db" "$n"
  "$BIN" audit keygen --name bench/audit --out "$dir/key" >/dev/null
  measure checkpoint "$BIN" audit checkpoint --key "$dir/key" --dir "$dir/cps" --database "$db"
  FIG[first.$scale]="$SECS s, $RSS_MB MB"
  grow "$dir/log.db" $((n + 1000))
  measure checkpoint "$BIN" audit checkpoint --key "$dir/key" --dir "$dir/cps" --database "$db"
  FIG[checkpoint.$scale]="$SECS s ($CPU s CPU), $RSS_MB MB"
  FIG[checkpoint_s.$scale]=$SECS
  n=$((n + 1000))
  measure verify "$BIN" audit verify --checkpoints "$dir/cps" --key "$dir/key.pub" --database "$db"
  grep -q "checkpoints ok: 2 signed" "$TMP/out.verify" || { cat "$TMP/out.verify" >&2; exit 2; }
  FIG[verify_s.$scale]=$SECS
  FIG[verify_mb.$scale]=$RSS_MB
  FIG[verify_rate.$scale]=$(awk -v n="$n" -v s="$SECS" 'BEGIN { printf "%.0f", n / (s > 0 ? s : 0.01) }')
  FIG[verify_cpu.$scale]="$CPU s CPU, $(awk -v n="$n" -v s="$CPU" 'BEGIN { printf "%.0f", n / (s > 0 ? s : 0.01) }') events per CPU second"
  measure prove "$BIN" audit prove --seq $((n / 2)) --checkpoints "$dir/cps" --database "$db"
  "$BIN" audit check-proof "$TMP/out.prove" --key "$dir/key.pub" >/dev/null || { echo "the proof does not check" >&2; exit 2; }
  prove_ms=$(mean_ms "$BIN" audit prove --seq $((n / 2)) --checkpoints "$dir/cps" --database "$db")
  start_ms=$(mean_ms "$BIN" audit prove --seq 0 --checkpoints "$dir/cps" --database "$db")
  FIG[prove.$scale]=$(awk -v a="$prove_ms" -v b="$start_ms" 'BEGIN { printf "%.2f ms CPU (%.2f ms with process start)", a - b, a }')
  FIG[prove_ms.$scale]=$(awk -v a="$prove_ms" -v b="$start_ms" 'BEGIN { printf "%.3f", a - b }')
  echo "$n events: first audit checkpoint ${FIG[first.$scale]}; audit checkpoint after 1,000 more (incremental) ${FIG[checkpoint.$scale]}; audit verify --checkpoints ${FIG[verify_s.$scale]} s (${FIG[verify_rate.$scale]} events/s wall; ${FIG[verify_cpu.$scale]}), peak RSS ${FIG[verify_mb.$scale]} MB; inclusion proof ${FIG[prove.$scale]}, peak RSS $RSS_MB MB"
  rm -rf "$dir"
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b > 0 ? a / b : 0) }'; }
echo "10x/1x: verify time $(ratio "${FIG[verify_s.10]}" "${FIG[verify_s.1]}")x, verify peak RSS $(ratio "${FIG[verify_mb.10]}" "${FIG[verify_mb.1]}")x, incremental checkpoint time $(ratio "${FIG[checkpoint_s.10]}" "${FIG[checkpoint_s.1]}")x, proof time $(ratio "${FIG[prove_ms.10]}" "${FIG[prove_ms.1]}")x"
awk -v a="${FIG[verify_mb.10]}" -v b="${FIG[verify_mb.1]}" 'BEGIN { exit (a <= 1.5 * b) ? 0 : 1 }'
