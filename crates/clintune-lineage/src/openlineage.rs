//! The lineage chain as OpenLineage run events (spec 2-0-2), so an
//! institution's data catalog (Marquez, DataHub, …) can ingest it.
//!
//! Each manifest becomes one `COMPLETE` event: the job is the stage
//! (`clintune.deid`, `clintune.curate`, `clintune.train`, `clintune.export`),
//! the run id is a UUID derived from the manifest's content id, inputs and
//! outputs are files named by absolute path with their SHA-256 in a custom
//! facet, and a `parent` run facet links each event to the manifest it was
//! derived from. Events are listed from the source records up.

use crate::chain::{Ancestry, ChainError};
use crate::manifest::{FileEntry, MANIFEST_FILE, Manifest};
use crate::verify::resolve;
use serde_json::{Value, json};
use std::path::Path;

/// The OpenLineage namespace of clintune's jobs.
pub const NAMESPACE: &str = "clintune";
const PRODUCER: &str = "https://github.com/clintune/clintune";
const SCHEMA: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/definitions/RunEvent";

/// A UUID (version 4 layout) taken from the first bytes of a content id, so
/// the same manifest always gives the same run id.
pub fn run_id(manifest_id: &str) -> String {
    let hex: String = manifest_id
        .trim_start_matches("sha256:")
        .chars()
        .chain(std::iter::repeat('0'))
        .take(32)
        .collect();
    let mut h: Vec<char> = hex.chars().collect();
    h[12] = '4';
    h[16] = ['8', '9', 'a', 'b'][h[16].to_digit(16).unwrap_or(0) as usize % 4];
    let s: String = h.into_iter().collect();
    format!(
        "{}-{}-{}-{}-{}",
        &s[0..8],
        &s[8..12],
        &s[12..16],
        &s[16..20],
        &s[20..32]
    )
}

/// The run events of the chain starting at `dir`, ancestors first; a cycle
/// in the chain is an error.
pub fn events(dir: &Path) -> Result<Vec<Value>, ChainError> {
    let mut out = Vec::new();
    collect(dir, &mut Ancestry::default(), &mut out)?;
    Ok(out)
}

fn collect(dir: &Path, path: &mut Ancestry, out: &mut Vec<Value>) -> Result<(), ChainError> {
    path.enter(dir)?;
    let m = Manifest::read(dir)?;
    for parent in &m.parents {
        let parent_dir = resolve(dir, &parent.path);
        if parent_dir.join(MANIFEST_FILE).is_file() {
            collect(&parent_dir, path, out)?;
        }
    }
    out.push(event(dir, &m));
    path.leave();
    Ok(())
}

fn event(dir: &Path, m: &Manifest) -> Value {
    let base = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let outputs: Vec<Value> = m
        .outputs
        .iter()
        .map(|f| dataset(&base.join(&f.path).display().to_string(), f))
        .collect();
    let inputs: Vec<Value> = m.inputs.iter().map(|f| dataset(&f.path, f)).collect();
    let mut run_facets = json!({
        "clintune_manifest": facet(json!({
            "manifestId": m.id,
            "configHash": m.config_hash,
            "tool": m.tool,
            "counts": m.counts,
        })),
    });
    if let Some(parent) = m.parents.first() {
        run_facets["parent"] = json!({
            "_producer": PRODUCER,
            "_schemaURL": "https://openlineage.io/spec/facets/1-0-1/ParentRunFacet.json#/$defs/ParentRunFacet",
            "run": {"runId": run_id(&parent.id)},
            "job": {"namespace": NAMESPACE, "name": format!("clintune.{}", parent.stage)},
        });
    }
    json!({
        "eventType": "COMPLETE",
        "eventTime": m.created_at,
        "producer": PRODUCER,
        "schemaURL": SCHEMA,
        "run": {"runId": run_id(&m.id), "facets": run_facets},
        "job": {"namespace": NAMESPACE, "name": format!("clintune.{}", m.stage)},
        "inputs": inputs,
        "outputs": outputs,
    })
}

fn dataset(name: &str, f: &FileEntry) -> Value {
    json!({
        "namespace": "file",
        "name": name,
        "facets": {"clintune_file": facet(json!({
            "sha256": f.sha256,
            "bytes": f.bytes,
            "rows": f.rows,
            "kind": f.kind,
            "pseudonymized": f.redacted,
        }))},
    })
}

/// A custom facet: its fields plus the `_producer` and `_schemaURL` every
/// facet carries.
fn facet(mut fields: Value) -> Value {
    if let Some(map) = fields.as_object_mut() {
        map.insert("_producer".into(), PRODUCER.into());
        map.insert(
            "_schemaURL".into(),
            format!("{PRODUCER}/blob/main/crates/clintune-lineage/src/openlineage.rs").into(),
        );
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_stable_version_4_uuids() {
        let id = run_id("sha256:0123456789abcdef0123456789abcdef0123");
        assert_eq!(id, run_id("sha256:0123456789abcdef0123456789abcdef0123"));
        assert_eq!(id.len(), 36);
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!("89ab".contains(&parts[3][..1]));
        assert_ne!(id, run_id("sha256:1123456789abcdef0123456789abcdef0123"));
    }
}
