//! A whole input file through de-identification's file-level readers: the
//! kind detected from its first line, lines split (NDJSON, JSONL) or Bundle
//! entries walked, records routed by patient into work files, read back,
//! grouped and de-identified. Errors name file, record and field, never
//! panics; and a file that passes without `--skip-invalid` passes with it,
//! giving the same rows and nothing counted as invalid.
#![no_main]

use clintune_deid::audit::Audit;
use clintune_deid::input::route::{RouteOptions, Spill, route_all};
use clintune_deid::input::{InputFile, detect};
use clintune_deid::process::{ProcessOptions, process_partition};
use clintune_deid::DeidError;
use clintune_core::progress::Silent;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeSet;
use std::path::Path;


/// Rows written and records counted as invalid.
fn deidentify(input: &InputFile, skip_invalid: bool) -> Result<(usize, u64), DeidError> {
    let s = clintune_fuzz::Deid::get();
    let work = clintune_fuzz::temp_dir().join("work");
    let _ = std::fs::remove_dir_all(&work);
    // Two partitions: patients are split across work files as in a real run.
    let spill = Spill::create(&work, 2)?;
    let inputs = std::slice::from_ref(input);
    let opts = RouteOptions { skip_invalid };
    let (mut audit, _) = route_all(inputs, &s.policy.policy, &spill, opts, &Silent)?;
    let path_words = BTreeSet::new();
    let d = s.deidentifier(&path_words);
    let mut rows = 0;
    for part in spill.finish()? {
        let p = process_partition(&d, &part, inputs, ProcessOptions { skip_invalid })?;
        rows += p.rows.len();
        audit.merge(&p.audit);
    }
    Ok((rows, invalid(&audit)))
}

fn invalid(audit: &Audit) -> u64 {
    audit.invalid.values().sum()
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the file name, which detection ignores; the rest
    // is the file.
    let Some((name, content)) = data.split_first() else {
        return;
    };
    let name = ["records.ndjson", "bundle.json", "traces.jsonl"][*name as usize % 3];
    let path = clintune_fuzz::temp_dir().join(name);
    std::fs::write(&path, content).expect("write input");
    let Ok(Some(kind)) = detect(&path) else {
        return;
    };
    let input = InputFile { path, kind };
    let strict = deidentify(&input, false);
    let relaxed = deidentify(&input, true);
    if let Ok((rows, counted)) = strict {
        assert_eq!(counted, 0, "nothing is invalid without --skip-invalid");
        let (relaxed_rows, relaxed_counted) = relaxed.expect("passes with --skip-invalid too");
        assert_eq!((relaxed_rows, relaxed_counted), (rows, 0));
    }
    let _ = std::fs::remove_file(Path::new(&input.path));
});
