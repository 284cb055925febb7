#!/usr/bin/env bash
# Packs what check.sh needs on a GPU machine that has no Rust toolchain and no network:
# a stripped, xz-compressed release clintune built with the cuda feature, the bundled
# sample de-identified and curated, and a small model for its tokenizer. Runs here.
#
#   benches/gpu/pack.sh            # → benches/gpu/pack/ (git-ignored), ready to carry
#   FEATURES= benches/gpu/pack.sh  # a CPU-only build, to try check.sh with DEVICE=cpu
#   ALT_FEATURES=cuda,burn/fusion,burn/autotune benches/gpu/pack.sh
#                                  # also packs a second build, whose speed check.sh times too
#
# The cuda build needs no CUDA toolkit: burn compiles its kernels at run time through
# NVRTC, which check.sh finds on the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/../.."

pack=benches/gpu/pack
features=${FEATURES-cuda}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${TMPDIR:-/tmp}/clintune-ci-target}"

echo "== building clintune (release, features: ${features:-none})"
cargo build --release --locked --bin clintune ${features:+--features "$features"}

work="$pack.tmp-$$"
trap 'rm -rf "$work"' EXIT
rm -rf "$work"
mkdir -p "$work"
strip -o "$work/clintune" "$CARGO_TARGET_DIR/release/clintune"
bin="$work/clintune"

echo "== training data: the bundled sample, de-identified and curated"
# The sample is synthetic; this is its documented demo key (README).
CLINTUNE_DEID_KEY=demo-key-for-the-synthetic-sample-only-0123456789 \
    "$bin" deid -q --input datasets/sample --out "$work/deid"
"$bin" curate -q --input "$work/deid" --config benches/gpu/curate.toml --out "$work/curated"
rm -rf "$work/deid"

echo "== a small model for the sample's tokenizer"
"$bin" init-model -q --tokenizer "$work/curated" --out "$work/base" \
    --layers 2 --hidden 128 --heads 4 --kv-heads 2 --max-positions 256 --seed 1

xz -T0 -6 "$bin"

if [ -n "${ALT_FEATURES:-}" ]; then
    echo "== a second build (features: $ALT_FEATURES), timed beside the first"
    cargo build --release --locked --bin clintune --features "$ALT_FEATURES"
    mkdir -p "$work/alt"
    strip -o "$work/alt/clintune" "$CARGO_TARGET_DIR/release/clintune"
    xz -T0 -6 "$work/alt/clintune"
    echo "features $ALT_FEATURES" >"$work/alt/NAME"
fi
printf '%s\n' "features=${features:-none}" "commit=$(git rev-parse HEAD)" \
    "dirty=$(git status --porcelain --untracked-files=no | wc -l)" >"$work/PACKED"
rm -rf "$pack"
mv "$work" "$pack"
trap - EXIT

du -sh "$pack" "$pack/clintune.xz"
# What travels to the GPU machine: tracked and unignored files, and the pack.
tree=$(git ls-files -co --exclude-standard -z | du --files0-from=- -cb | tail -1 | cut -f1)
packed=$(du -sb "$pack" | cut -f1)
echo "== packed into $pack; with the working tree: $(((tree + packed) / 1048576)) MiB (64 MiB may travel)"
