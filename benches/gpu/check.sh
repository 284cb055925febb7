#!/usr/bin/env bash
# The GPU check, in one call on a GPU machine (no Rust toolchain, no network there):
# parity, training, resume, speed and data parallelism of clintune's CUDA path against
# its CPU path and PyTorch, ending with one table. See benches/gpu/README.md.
#
#   benches/gpu/check.sh                    # on the GPU machine, after pack.sh here
#   DEVICE=cpu benches/gpu/check.sh         # the same steps on the CPU: tests the script
#
# Environment: DEVICE (cuda:0), PACK (benches/gpu/pack), BUDGET (seconds for the steps,
# 420), ONLY (a space-separated subset of: parity train resume speed parallel),
# CLINTUNE (a clintune binary to use instead of the packed one), OUT (also write the
# table, results.json and logs there; the device tool sets it).
set -uo pipefail
cd "$(dirname "$0")/../.."

device=${DEVICE:-cuda:0}
pack=${PACK:-benches/gpu/pack}
out=${OUT:-benches/gpu/pack/out}
mkdir -p "$out"
exec > >(tee "$out/check.log") 2>&1

say() { printf '\n== %s\n' "$*"; }

# Unpacks the xz-compressed binary $1 to the executable $2, with python3's lzma (the
# machine may have no xz).
unpack() {
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
        "$1" "$2" && chmod +x "$2"
}

if [ ! -d "$pack/curated" ] || [ ! -d "$pack/base" ]; then
    echo "no packed data in $pack: run benches/gpu/pack.sh first (and carry $pack)" >&2
    exit 2
fi
say "pack"
cat "$pack/PACKED" 2>/dev/null

bin=${CLINTUNE:-}
if [ -z "$bin" ]; then
    bin=/tmp/clintune-gpu-check/clintune
    mkdir -p "$(dirname "$bin")"
    unpack "$pack/clintune.xz" "$bin" || exit 2
fi
# pack.sh's optional second build (ALT_FEATURES there), timed beside the first.
alt=()
if [ -z "${CLINTUNE:-}" ] && [ -f "$pack/alt/clintune.xz" ]; then
    unpack "$pack/alt/clintune.xz" "$bin-alt" &&
        alt=(--alt-bin "$bin-alt" --alt-name "$(cat "$pack/alt/NAME")")
fi

if [[ $device == cuda* ]]; then
    say "GPU"
    nvidia-smi || echo "nvidia-smi failed"
    say "CUDA libraries (cudarc opens libcuda and libnvrtc by name)"
    # libcuda comes with the driver; libnvrtc with the toolkit or NVIDIA's pip wheels.
    dirs=$(
        {
            ldconfig -p 2>/dev/null | awk '/libcuda\.so|libnvrtc\.so/ {print $NF}'
            find /usr/local/nvidia /usr/local/cuda* /usr/lib/x86_64-linux-gnu /usr/lib64 \
                -maxdepth 4 \( -name 'libcuda.so*' -o -name 'libnvrtc.so*' \) 2>/dev/null
            python3 - <<'PY' 2>/dev/null
import glob, os, site
for root in site.getsitepackages() + [site.getusersitepackages()]:
    for lib in glob.glob(os.path.join(root, "nvidia", "**", "libnvrtc*.so*"), recursive=True):
        print(lib)
PY
        } | xargs -r -n1 dirname | awk '!seen[$0]++'
    )
    for d in $dirs; do
        ls "$d" | grep -E '^lib(cuda|nvrtc)[^/]*\.so' | sed "s|^|  $d/|"
    done
    export LD_LIBRARY_PATH="$(echo $dirs | tr ' ' ':')${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
fi

say "clintune"
"$bin" --version || exit 2

say "checks on $device"
# shellcheck disable=SC2086
python3 benches/gpu/check.py --bin "$bin" --pack "$pack" --device "$device" --out "$out" \
    --budget "${BUDGET:-420}" ${ONLY:+--only $ONLY} "${alt[@]}"
