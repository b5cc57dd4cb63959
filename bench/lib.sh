# Shared by the bench scripts (sourced, not run): ROOT is the repository, BIN the patchday binary
# measured — $PATCHDAY_BENCH_BIN when set, else a release build made here (exit 2 if it fails).
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -n "${PATCHDAY_BENCH_BIN:-}" ]]; then
  BIN=$PATCHDAY_BENCH_BIN
else
  (cd "$ROOT" && cargo build --release -q -p patchday) || exit 2
  BIN=$ROOT/target/release/patchday
fi

# Runbooks for the benches, written into the current folder (growth.sh, pages.sh):
inventory() { # N hosts in group `all`, a few variables each
  python3 - "$1" >"inv-$1.yaml" <<'EOF'
import sys
n = int(sys.argv[1])
print("hosts:")
for i in range(n):
    print(f"  h{i}: {{ address: 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}, vm: v{i}, vars: {{ site: s{i % 7} }} }}")
print("groups:")
print("  all:")
for i in range(n):
    print(f"    - h{i}")
EOF
}
fanout() { # a noop before, one fanned out over N hosts in one wave, a noop after
  inventory "$1"
  cat >"fan-$1.yaml" <<EOF
name: fan-$1
timezone: UTC
inventory: inv-$1.yaml
steps:
  before: { uses: noop }
  patch: { needs: [before], uses: noop, for_each: { group: all } }
  after: { needs: [patch], uses: noop }
EOF
}
