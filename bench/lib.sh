# Shared by the bench scripts (sourced, not run): ROOT is the repository, BIN the patchday binary
# measured — $PATCHDAY_BENCH_BIN when set, else a release build made here (exit 2 if it fails).
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -n "${PATCHDAY_BENCH_BIN:-}" ]]; then
  BIN=$PATCHDAY_BENCH_BIN
else
  (cd "$ROOT" && cargo build --release -q -p patchday) || exit 2
  BIN=$ROOT/target/release/patchday
fi
