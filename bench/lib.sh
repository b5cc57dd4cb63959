# Shared by the bench scripts (sourced, not run): ROOT is the repository, BIN the patchday binary
# measured — $PATCHDAY_BENCH_BIN when set, else a release build made here (exit 2 if it fails).
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -n "${PATCHDAY_BENCH_BIN:-}" ]]; then
  BIN=$(realpath "$PATCHDAY_BENCH_BIN") # the scripts run in a temporary folder
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

# await_serving OUT: waits up to 60 s for `patchday serve`'s "patchday serving" line in the file
# OUT (its standard output) and prints the address it serves (host:port); nothing if it did not.
await_serving() {
  for _ in $(seq 6000); do grep -q "patchday serving" "$1" 2>/dev/null && break; sleep 0.01; done
  sed -n 's|patchday serving http://\([^ ]*\) .*|\1|p' "$1"
}

# sign_in OUT: the local operator's session cookie (`patchday_session=...`) from the one-time
# sign-in link `patchday serve` printed in the file OUT: the link's page, then its form's POST.
sign_in() {
  local link csrf
  for _ in $(seq 1000); do
    link=$(sed -n 's|^sign in as the local operator.*: \(http[^ ]*\)$|\1|p' "$1")
    [[ -n "$link" ]] && break
    sleep 0.01
  done
  csrf=$(curl -sf "$link" | sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' | head -1)
  curl -s -o /dev/null -D - --data-urlencode "csrf=$csrf" "$link" |
    sed -n 's/^[Ss]et-[Cc]ookie: \(patchday_session=[^;]*\).*/\1/p' | tr -d '\r'
}
