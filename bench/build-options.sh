#!/usr/bin/env bash
# Side by side, each from clean in a target directory of its own: how long `make build`'s cargo
# step takes and how large the bootstraps are, for the release-profile options issue 14 asks
# about (one shared bootstrap vs one binary per function; opt-level; fat vs thin LTO and codegen
# units). Not part of `make bench` (about 20 minutes on 2 cores); run from the repository root:
#   bash bench/build-options.sh > bench/build-options.md
# Options are set through cargo's CARGO_PROFILE_RELEASE_* variables over Cargo.toml's profile.
set -euo pipefail
export PATH="$PWD/.venv/bin:$PATH"
command -v cargo-lambda >/dev/null || { echo "cargo-lambda not found: run make deps" >&2; exit 1; }

FUNCTION_PACKAGES=(ingest-webhook ingest-event create-container poll-status publish refresh-tokens notify sweep)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# name | packages | opt-level | lto | codegen-units
options=(
  "one shared bootstrap, opt-level z, fat LTO, 1 codegen unit (Cargo.toml)|instapipe-lambda|z|fat|1"
  "one shared bootstrap, opt-level s, fat LTO, 1 codegen unit|instapipe-lambda|s|fat|1"
  "one shared bootstrap, opt-level 3, fat LTO, 1 codegen unit|instapipe-lambda|3|fat|1"
  "one shared bootstrap, opt-level z, thin LTO, 16 codegen units|instapipe-lambda|z|thin|16"
  "eight binaries, one per function, opt-level z, fat LTO, 1 codegen unit|${FUNCTION_PACKAGES[*]}|z|fat|1"
)

echo "# Build options, side by side"
echo
echo "Command: \`bash bench/build-options.sh\`, $(date -u +%Y-%m-%dT%H:%MZ) on $(hostname) ($(nproc) cores), commit $(git rev-parse --short HEAD)."
echo "Each row is a cold release build (\`cargo lambda build --release -p …\`, every dependency compiled) in a target directory of its own."
echo
echo "| Option | Build from clean | Bootstrap size |"
echo "|---|---|---|"
for option in "${options[@]}"; do
  IFS='|' read -r name packages opt lto cgu <<<"$option"
  target="$work/target"
  args=()
  for p in $packages; do args+=(-p "$p"); done
  start=$(date +%s)
  CARGO_TARGET_DIR="$target" CARGO_PROFILE_RELEASE_OPT_LEVEL="$opt" CARGO_PROFILE_RELEASE_LTO="$lto" \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS="$cgu" \
    cargo lambda build --release --lambda-dir "$target/lambda" "${args[@]}" >"$work/build.log" 2>&1 \
    || { echo "| $name | FAILED (see below) | |"; tail -20 "$work/build.log" >&2; rm -rf "$target"; continue; }
  secs=$(( $(date +%s) - start ))
  sizes=$(for p in $packages; do stat -c %s "$target/lambda/$p/bootstrap"; done | sort -n | uniq |
    awk '{ printf "%s%.2f MB", (NR > 1 ? " – " : ""), $1 / 1e6 }')
  echo "| $name | $((secs / 60)) min $((secs % 60)) s | $sizes |"
  rm -rf "$target"
done
