#!/usr/bin/env bash
# Runs every fuzz target for a bounded time each (default 60 s), starting from the corpus kept in
# fuzz/corpus. cargo-fuzz needs nightly compiler flags; on a stable toolchain RUSTC_BOOTSTRAP=1
# unlocks them.
#
# usage: fuzz/run.sh [SECONDS_PER_TARGET]
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
for target in $(cargo fuzz list); do
  echo "+ fuzzing $target for ${seconds}s"
  # A scratch copy of the corpus: what a run discovers is not committed by accident.
  scratch=$(mktemp -d)
  cp -r "corpus/$target/." "$scratch/"
  cargo fuzz run "$target" "$scratch" -- -max_total_time="$seconds" -rss_limit_mb=2048
  rm -rf "$scratch"
done
