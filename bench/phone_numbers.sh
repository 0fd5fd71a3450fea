#!/usr/bin/env bash
# Phone-number parsing, ns per number (US-only and a 15-country mix), release build.
# usage: bench/phone_numbers.sh [COUNT]   (default 200000)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release --quiet --example phone_parse_bench -- "${1:-200000}"
