#!/usr/bin/env python3
"""Regenerate datasets/sample/bulk/ and datasets/sample/bundles/ from ../shared.

Usage (from the repository root):

    python3 datasets/sample/make_sample.py            # write the sample
    python3 datasets/sample/make_sample.py --list     # per-patient sizes, to revisit the choice
    python3 datasets/sample/make_sample.py --shared /path/to/shared

Only the Python standard library is used. Source lines are copied byte for byte (never
re-serialised), in their original order, so the sample is a true subset of the export.
The chat traces (chat/traces.jsonl) are hand-written and are not produced here.
"""
import argparse
import json
import re
import shutil
import sys
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

# Bulk export (synthea-bulk-10pt): three patients, chosen for size and coverage.
BULK_PATIENTS = [
    # Denis399 Lincoln623 Schmitt836, b. 2011-03-23, living: the smallest record (15 notes).
    "63ee2253-bdd5-da55-2ad2-b4984d0ad700",
    # Devin82 Anibal473 Cole117, b. 1960-04-13, deceased 1971-10-01: the smallest deceased patient.
    "3af3708d-41f1-cd80-f3dd-ec5ac76072bf",
    # Elisa944 Donetta1 Johnson679, b. 1927-05-21, living: notes give ages 90+ (up to 95).
    "a5cb8ce9-cec6-6b23-0990-cbaf753578a4",
]
# Keep at most this many DocumentReference notes per patient (None: keep all).
MAX_NOTES_PER_PATIENT = None

# Non-patient resource files: kept, trimmed to what the kept resources reference.
SHARED_TYPES = ["Organization", "Practitioner", "Location", "PractitionerRole"]

# Transaction bundles (synthea-r4-bundles-2019): the two smallest patient bundles, renamed.
BUNDLES = [
    ("Edward_Gulgowski_43481611-2459-44f5-ab20-4b142dac160f.json", "bundle-001.json"),
    ("Chauncey_Johnston_f4673866-81fb-411a-8486-0c27f2a5b480.json", "bundle-002.json"),
]


def patient_of(res):
    if res.get("resourceType") == "Patient":
        return res.get("id")
    for key in ("subject", "patient"):
        ref = (res.get(key) or {}).get("reference", "")
        if ref.startswith("Patient/"):
            return ref[len("Patient/"):]
    return None


def references(obj, out):
    """Collect every `reference` string and every logical `identifier` reference."""
    if isinstance(obj, dict):
        for key, val in obj.items():
            if key == "reference" and isinstance(val, str):
                out.add(val)
            else:
                references(val, out)
    elif isinstance(obj, list):
        for val in obj:
            references(val, out)


def logical_refs(obj, out):
    """Reference.identifier ({"identifier": {"system", "value"}}) as 'system|value'."""
    if isinstance(obj, dict):
        ident = obj.get("identifier")
        if isinstance(ident, dict) and "value" in ident:
            out.add(f"{ident.get('system', '')}|{ident['value']}")
        for val in obj.values():
            logical_refs(val, out)
    elif isinstance(obj, list):
        for val in obj:
            logical_refs(val, out)


def keys_of(res):
    """Ways a reference can point at this resource: Type/id and Type?identifier=sys|val."""
    rt = res["resourceType"]
    keys = {f"{rt}/{res['id']}"}
    for ident in res.get("identifier", []) or []:
        keys.add(f"{rt}?identifier={ident.get('system', '')}|{ident.get('value', '')}")
    return keys


def ident_keys(res):
    return {f"{i.get('system', '')}|{i.get('value', '')}" for i in res.get("identifier", []) or []}


def list_patients(src):
    pats = {}
    for line in open(src / "Patient.000.ndjson", encoding="utf-8"):
        r = json.loads(line)
        n = r["name"][0]
        pats[r["id"]] = (" ".join(n.get("given", []) + [n.get("family", "")]), r.get("birthDate"),
                         r.get("deceasedDateTime", ""))
    counts, sizes = defaultdict(Counter), Counter()
    for f in sorted(src.glob("*.000.ndjson")):
        for line in open(f, encoding="utf-8"):
            pid = patient_of(json.loads(line))
            if pid:
                counts[pid][f.name.split(".")[0]] += 1
                sizes[pid] += len(line.encode("utf-8"))
    for pid, size in sorted(sizes.items(), key=lambda kv: kv[1]):
        name, birth, dec = pats.get(pid, ("?", "?", ""))
        print(f"{pid} {size:>9} B  {name} b.{birth} {'deceased ' + dec if dec else ''}")
        print("    " + ", ".join(f"{k}={v}" for k, v in sorted(counts[pid].items())))


def make_bulk(src, dst):
    dst.mkdir(parents=True, exist_ok=True)
    keep = set(BULK_PATIENTS)
    refs = set()
    notes = Counter()
    summary = {}
    for f in sorted(src.glob("*.000.ndjson")):
        rtype = f.name.split(".")[0]
        if rtype in SHARED_TYPES:
            continue
        kept = []
        for line in open(f, encoding="utf-8"):
            res = json.loads(line)
            pid = patient_of(res)
            if pid not in keep:
                continue
            if rtype == "DocumentReference" and MAX_NOTES_PER_PATIENT is not None:
                notes[pid] += 1
                if notes[pid] > MAX_NOTES_PER_PATIENT:
                    continue
            references(res, refs)
            kept.append(line if line.endswith("\n") else line + "\n")
        if kept:
            (dst / f.name).write_text("".join(kept), encoding="utf-8")
            summary[f.name] = len(kept)

    # Non-patient resources. Practitioners and organizations/locations referenced by the
    # patient resources; roles of the kept practitioners; then the organizations and
    # locations those roles and locations point at (so references resolve in the sample).
    pools = {t: [(line, json.loads(line)) for line in open(src / f"{t}.000.ndjson", encoding="utf-8")]
             for t in SHARED_TYPES}
    chosen = {t: set() for t in SHARED_TYPES}
    for t in ("Practitioner", "Organization", "Location"):
        for i, (_, res) in enumerate(pools[t]):
            if keys_of(res) & refs:
                chosen[t].add(i)
    prac_idents = set().union(*(ident_keys(pools["Practitioner"][i][1]) for i in chosen["Practitioner"]))
    logical = set()
    for i, (_, res) in enumerate(pools["PractitionerRole"]):
        who = res.get("practitioner", {}).get("identifier", {})
        if f"{who.get('system', '')}|{who.get('value', '')}" in prac_idents:
            chosen["PractitionerRole"].add(i)
            logical_refs({k: v for k, v in res.items() if k != "practitioner"}, logical)
    for i in chosen["Location"]:
        logical_refs(pools["Location"][i][1].get("managingOrganization", {}), logical)
    for t in ("Organization", "Location"):
        for i, (_, res) in enumerate(pools[t]):
            if ident_keys(res) & logical:
                chosen[t].add(i)
    for t in SHARED_TYPES:
        lines = [pools[t][i][0] for i in sorted(chosen[t])]
        lines = [ln if ln.endswith("\n") else ln + "\n" for ln in lines]
        (dst / f"{t}.000.ndjson").write_text("".join(lines), encoding="utf-8")
        summary[f"{t}.000.ndjson"] = len(lines)

    # References into the shared resources that are still unresolved (reported, not fatal).
    known = set()
    for t in SHARED_TYPES:
        for i in chosen[t]:
            known |= keys_of(pools[t][i][1])
    missing = sorted(r for r in refs if r.split("/")[0].split("?")[0] in SHARED_TYPES and r not in known)
    if missing:
        print(f"warning: {len(missing)} unresolved references, e.g. {missing[:3]}", file=sys.stderr)

    shutil.copyfile(src / "LICENSE", dst / "LICENSE")
    return summary


def make_bundles(src, dst):
    dst.mkdir(parents=True, exist_ok=True)
    for name, new in BUNDLES:
        shutil.copyfile(src / name, dst / new)
    shutil.copyfile(src / "LICENSE", dst / "LICENSE")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared",
                    help="the shared data folder (default: ../shared from the repository root)")
    ap.add_argument("--out", type=Path, default=HERE, help="default: datasets/sample")
    ap.add_argument("--list", action="store_true", help="print per-patient sizes of the bulk export and exit")
    args = ap.parse_args()
    bulk_src = args.shared / "records" / "synthea-bulk-10pt"
    bundle_src = args.shared / "records" / "synthea-r4-bundles-2019"
    if args.list:
        list_patients(bulk_src)
        return
    summary = make_bulk(bulk_src, args.out / "bulk")
    make_bundles(bundle_src, args.out / "bundles")
    for name, n in summary.items():
        print(f"bulk/{name}: {n}")
    print("bundles/: " + ", ".join(new for _, new in BUNDLES))


if __name__ == "__main__":
    main()
