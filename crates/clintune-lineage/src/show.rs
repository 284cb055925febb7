//! Human-readable rendering of a manifest chain.

use crate::chain::{Ancestry, ChainError};
use crate::manifest::{MANIFEST_FILE, Manifest};
use crate::verify::resolve;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

/// Renders the manifest in `dir` and, indented below it, each parent that is
/// still on disk, down to the source files. A parent already above in the
/// chain (a cycle) is named and not followed.
pub fn render_chain(dir: &Path) -> Result<String, ChainError> {
    let mut out = String::new();
    let mut path = Ancestry::default();
    path.enter(dir)?;
    render(dir, 0, &mut path, &mut out)?;
    Ok(out)
}

fn render(
    dir: &Path,
    depth: usize,
    path: &mut Ancestry,
    out: &mut String,
) -> Result<(), ChainError> {
    let m = Manifest::read(dir)?;
    let pad = "  ".repeat(depth);
    let _ = writeln!(out, "{pad}{} {}", m.stage, m.id);
    let _ = writeln!(out, "{pad}  dir:      {}", dir.display());
    let _ = writeln!(
        out,
        "{pad}  tool:     {} {} (commit {})",
        m.tool.name, m.tool.version, m.tool.git_commit
    );
    let _ = writeln!(out, "{pad}  created:  {}", m.created_at);
    let _ = writeln!(out, "{pad}  config:   {}", m.config_hash);
    for (k, v) in &m.config {
        let _ = writeln!(out, "{pad}            {k} = {}", scalar(v));
    }
    render_files(out, &pad, "inputs", &m.inputs);
    render_files(out, &pad, "outputs", &m.outputs);
    if !m.counts.is_empty() {
        let _ = writeln!(out, "{pad}  counts:");
        for (k, v) in &m.counts {
            render_count(out, &format!("{pad}    "), k, v);
        }
    }
    for parent in &m.parents {
        let parent_dir = resolve(dir, &parent.path);
        if parent_dir.join(MANIFEST_FILE).is_file() {
            match path.enter(&parent_dir) {
                Err(ChainError::Cycle { .. }) => {
                    let _ = writeln!(
                        out,
                        "{pad}  derived from: {} {} (LINEAGE CYCLE: {} is already above in this chain)",
                        parent.stage,
                        parent.id,
                        parent_dir.display()
                    );
                    continue;
                }
                entered => entered?,
            }
            let _ = writeln!(out, "{pad}  derived from:");
            render(&parent_dir, depth + 2, path, out)?;
            path.leave();
        } else {
            let _ = writeln!(
                out,
                "{pad}  derived from: {} {} (not on disk at {})",
                parent.stage,
                parent.id,
                parent_dir.display()
            );
        }
    }
    Ok(())
}

fn render_files(out: &mut String, pad: &str, label: &str, files: &[crate::FileEntry]) {
    let bytes: u64 = files.iter().map(|f| f.bytes).sum();
    let _ = writeln!(
        out,
        "{pad}  {label}:{:>w$}{} files, {bytes} bytes",
        "",
        files.len(),
        w = 9 - label.len()
    );
    for f in files {
        let rows = f.rows.map(|r| format!(", {r} rows")).unwrap_or_default();
        let redacted = if f.redacted { " (name redacted)" } else { "" };
        let _ = writeln!(
            out,
            "{pad}    {} sha256:{}… {} bytes{rows}{redacted}",
            f.path,
            &f.sha256[..f.sha256.len().min(16)],
            f.bytes
        );
    }
}

fn render_count(out: &mut String, pad: &str, key: &str, value: &Value) {
    match value {
        Value::Object(map) => {
            let _ = writeln!(out, "{pad}{key}:");
            for (k, v) in map {
                render_count(out, &format!("{pad}  "), k, v);
            }
        }
        v => {
            let _ = writeln!(out, "{pad}{key}: {}", scalar(v));
        }
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
