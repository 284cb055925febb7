#!/usr/bin/env bash
# Rebuilds deid/dictionaries/philter/ from Philter's published lexicons
# (BCHSI/philter-ucsf, BSD-3; see SOURCES.md). Not run in CI.
#
# Usage: deid/dictionaries/make-philter-lists.sh [PHILTER_LEXICON_DIR]
#        (default: ../shared/lexicons/philter-ucsf beside the repository)
# Needs: python3 (stdlib), zstd (the command-line tool).
#
# Each list becomes one lower-case word a line, sorted by code point, unique,
# zstd-compressed at level 19 without a checksum frame so that two runs give
# byte-identical files.
set -euo pipefail

OUT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/philter"
SRC="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/../shared/lexicons/philter-ucsf}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

python3 - "$SRC" "$WORK" <<'PY'
import json, sys
from pathlib import Path

src, work = Path(sys.argv[1]), Path(sys.argv[2])
lists = {
    "safe-words.txt": "whitelist_plus_fps_091718_nonames.json",
    "first-names.txt": "firstnames_minus_fps.json",
    "last-names.txt": "lastnames_minus_fps.json",
}
for name, source in lists.items():
    words = json.loads((src / source).read_text(encoding="utf-8"))
    # Entries are the keys; a few are empty or have surrounding blanks.
    clean = sorted({w.strip().lower() for w in words if w.strip()})
    (work / name).write_text("".join(w + "\n" for w in clean), encoding="utf-8")
    print(f"{name}: {len(clean)} words")
PY

mkdir -p "$OUT_DIR"
for f in safe-words.txt first-names.txt last-names.txt; do
  zstd -q -f -19 --no-check "$WORK/$f" -o "$OUT_DIR/$f.zst"
done
cp "$SRC/LICENSE" "$OUT_DIR/LICENSE-PHILTER"
cat "$SRC/COMMIT" > "$OUT_DIR/UPSTREAM-COMMIT"
ls -l "$OUT_DIR"
sha256sum "$OUT_DIR"/*.zst
