//! `clintune report`: one self-contained HTML page for a governance
//! reviewer: the lineage chain drawn, de-identification counts, the
//! dataset's figures, training curves, the evaluation, the memorization
//! audit, the PHI scan and the release status. Inline CSS and SVG only:
//! nothing is fetched, so the page opens the same offline and years later.

use crate::error::EvalError;
use clintune_lineage::Manifest;
use serde_json::Value;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// What the page is made from; everything but the export is optional.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The export.
    pub export: PathBuf,
    /// A `clintune eval` output.
    pub eval: Option<PathBuf>,
    /// A `clintune audit memorization` output.
    pub audit: Option<PathBuf>,
    /// A `clintune release` approval.
    pub release: Option<PathBuf>,
    /// PHI scan findings by category, if a scan was run.
    pub scan: Option<Vec<(String, usize)>>,
}

/// One manifest of the chain and its directory.
struct Link {
    dir: PathBuf,
    manifest: Manifest,
}

/// The export's chain, the export first, then its first parent's, and so on.
fn chain(export: &Path) -> Result<Vec<Link>, EvalError> {
    let mut links = Vec::new();
    let mut dir = export.to_path_buf();
    let mut seen = std::collections::BTreeSet::new();
    loop {
        let manifest = Manifest::read(&dir).map_err(|e| EvalError::model(&dir, e))?;
        // A cycle is reported by `lineage verify`; here it just ends the walk.
        if !seen.insert(manifest.id.clone()) {
            break;
        }
        let next = manifest.parents.first().map(|p| p.dir_from(&dir));
        links.push(Link { dir, manifest });
        match next {
            Some(parent)
                if parent
                    .join(clintune_lineage::manifest::MANIFEST_FILE)
                    .is_file() =>
            {
                dir = parent;
            }
            _ => break,
        }
    }
    Ok(links)
}

fn read_json(dir: &Path, file: &str) -> Result<Value, EvalError> {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).map_err(|e| EvalError::dataset(&path, e))?;
    serde_json::from_str(&text).map_err(|e| EvalError::dataset(&path, e))
}

/// Escapes text for HTML.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:60rem;color:#222}\
h1{font-size:1.5rem}h2{font-size:1.15rem;border-bottom:1px solid #ccc;padding-bottom:.2rem;margin-top:2rem}\
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ddd;padding:.25rem .5rem;text-align:left}\
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.ok{color:#176b2c;font-weight:600}.no{color:#a11;font-weight:600}.muted{color:#777}code{font-size:.85em}";

/// The page.
pub fn render(src: &Sources) -> Result<String, EvalError> {
    let links = chain(&src.export)?;
    let release = match &src.release {
        Some(dir) => Some(read_json(dir, crate::gate::RECORD_FILE)?),
        None => None,
    };
    let mut page = String::new();
    let export = &links[0].manifest;
    let title = format!("clintune report: {}", src.export.display());
    let _ = write!(
        page,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>",
        esc(&title)
    );
    let _ = write!(
        page,
        "<h1>{}</h1><p>Export manifest <code>{}</code>, made {}.</p>",
        esc(&title),
        esc(&export.id),
        esc(&export.created_at)
    );
    section_status(&mut page, release.as_ref());
    section_lineage(&mut page, &links, src, release.is_some());
    for link in links.iter().rev() {
        match link.manifest.stage.as_str() {
            "deid" => section_counts(&mut page, "De-identification", &link.manifest),
            "curate" => section_counts(&mut page, "Dataset", &link.manifest),
            "train" => section_training(&mut page, &link.dir),
            _ => {}
        }
    }
    if let Some(dir) = &src.eval {
        section_eval(&mut page, &read_json(dir, crate::eval::REPORT_FILE)?);
    }
    if let Some(dir) = &src.audit {
        section_audit(
            &mut page,
            &read_json(dir, crate::memorization::REPORT_FILE)?,
        );
    }
    section_scan(&mut page, src.scan.as_deref());
    page.push_str("<p class=\"muted\">Made by clintune ");
    page.push_str(&esc(clintune_core::TOOL_VERSION));
    page.push_str(". Every figure comes from a file whose hash its manifest records; <code>clintune lineage verify</code> checks them.</p></body></html>\n");
    Ok(page)
}

fn section_status(page: &mut String, release: Option<&Value>) {
    page.push_str("<h2>Release status</h2>");
    match release {
        Some(r) => {
            let _ = write!(
                page,
                "<p class=\"ok\">Approved by {} on {}.</p>",
                esc(r["decided"]["reviewer"].as_str().unwrap_or("?")),
                esc(r["decided"]["decided_at"].as_str().unwrap_or("?"))
            );
            if let Some(note) = r["decided"]["note"].as_str() {
                let _ = write!(page, "<p>Note: {}</p>", esc(note));
            }
            page.push_str("<table><tr><th>check</th><th>result</th><th>detail</th></tr>");
            for c in r["checks"].as_array().into_iter().flatten() {
                let passed = c["passed"].as_bool() == Some(true);
                let _ = write!(
                    page,
                    "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
                    esc(c["name"].as_str().unwrap_or("?")),
                    if passed { "ok" } else { "no" },
                    if passed { "passed" } else { "failed" },
                    esc(c["detail"].as_str().unwrap_or(""))
                );
            }
            page.push_str("</table>");
        }
        None => page
            .push_str("<p class=\"no\">Not released: no approval was given for this report.</p>"),
    }
}

/// The chain as boxes left to right, oldest first; evaluation and audit
/// below the export.
fn section_lineage(page: &mut String, links: &[Link], src: &Sources, released: bool) {
    page.push_str("<h2>Lineage</h2>");
    let mut boxes: Vec<(String, String, String)> = links
        .iter()
        .rev()
        .map(|l| {
            let id = l.manifest.id.trim_start_matches("sha256:");
            (
                l.manifest.stage.clone(),
                id.chars().take(12).collect(),
                l.manifest.created_at.chars().take(10).collect(),
            )
        })
        .collect();
    if released {
        boxes.push(("release".into(), "approved".into(), String::new()));
    }
    let (w, h, gap) = (130, 56, 30);
    let width = boxes.len() * (w + gap);
    let _ = write!(
        page,
        "<svg role=\"img\" aria-label=\"lineage chain\" width=\"{width}\" height=\"{}\">",
        h * 2 + 40
    );
    for (i, (stage, id, date)) in boxes.iter().enumerate() {
        let x = i * (w + gap) + 2;
        let _ = write!(
            page,
            "<rect x=\"{x}\" y=\"2\" width=\"{w}\" height=\"{h}\" rx=\"6\" fill=\"#eef3fb\" stroke=\"#4a6fa5\"/>\
             <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-weight=\"600\">{}</text>\
             <text x=\"{}\" y=\"38\" text-anchor=\"middle\" font-size=\"10\">{}</text>\
             <text x=\"{}\" y=\"51\" text-anchor=\"middle\" font-size=\"10\" fill=\"#666\">{}</text>",
            x + w / 2,
            esc(stage),
            x + w / 2,
            esc(id),
            x + w / 2,
            esc(date)
        );
        if i + 1 < boxes.len() {
            let _ = write!(
                page,
                "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#4a6fa5\" stroke-width=\"2\"/>",
                x + w,
                h / 2 + 2,
                x + w + gap,
                h / 2 + 2
            );
        }
    }
    let below: Vec<&str> = [("eval", src.eval.is_some()), ("audit", src.audit.is_some())]
        .iter()
        .filter(|(_, on)| *on)
        .map(|(s, _)| *s)
        .collect();
    let export_x = (links.len() - 1) * (w + gap) + 2;
    for (j, stage) in below.iter().enumerate() {
        let x = export_x + j * (w / 2 + 10) - if below.len() > 1 { w / 4 } else { 0 };
        let _ = write!(
            page,
            "<rect x=\"{x}\" y=\"{}\" width=\"{}\" height=\"30\" rx=\"6\" fill=\"#f6f6f6\" stroke=\"#999\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            h + 30,
            w / 2,
            x + w / 4,
            h + 50,
            esc(stage)
        );
    }
    page.push_str("</svg><table><tr><th>stage</th><th>manifest</th><th>directory</th></tr>");
    for l in links.iter().rev() {
        let _ = write!(
            page,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            esc(&l.manifest.stage),
            esc(&l.manifest.id),
            esc(&l.dir.display().to_string())
        );
    }
    page.push_str("</table>");
}

/// A manifest's counts, nested maps flattened to dotted names.
fn section_counts(page: &mut String, title: &str, manifest: &Manifest) {
    let _ = write!(
        page,
        "<h2>{}</h2><table><tr><th>count</th><th>value</th></tr>",
        esc(title)
    );
    let mut rows = Vec::new();
    flatten("", &Value::Object(manifest.counts.clone()), &mut rows);
    for (name, value) in rows {
        let _ = write!(
            page,
            "<tr><td>{}</td><td class=\"n\">{}</td></tr>",
            esc(&name),
            esc(&value)
        );
    }
    page.push_str("</table>");
}

fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&name, v, out);
            }
        }
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// One curve: its (step, loss) points, its split and its colour.
type Series = (Vec<(f64, f64)>, &'static str, &'static str);

/// Training and validation loss by step, from the run's `metrics.jsonl`.
fn section_training(page: &mut String, run: &Path) {
    page.push_str("<h2>Training</h2>");
    let Ok(text) = std::fs::read_to_string(run.join("metrics.jsonl")) else {
        page.push_str("<p class=\"muted\">No metrics.jsonl beside the run's manifest.</p>");
        return;
    };
    let mut series: [Series; 2] = [
        (Vec::new(), "train", "#4a6fa5"),
        (Vec::new(), "eval", "#c0392b"),
    ];
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let (Some(step), Some(loss)) = (v["step"].as_f64(), v["loss"].as_f64()) else {
            continue;
        };
        for (points, split, _) in series.iter_mut() {
            if v["split"].as_str() == Some(*split) {
                points.push((step, loss));
            }
        }
    }
    let all: Vec<(f64, f64)> = series.iter().flat_map(|s| s.0.iter().copied()).collect();
    if all.is_empty() {
        page.push_str("<p class=\"muted\">No losses logged.</p>");
        return;
    }
    let (x0, x1) = bounds(all.iter().map(|p| p.0));
    let (y0, y1) = bounds(all.iter().map(|p| p.1));
    let (w, h, pad) = (640.0, 240.0, 40.0);
    let sx = |x: f64| pad + (x - x0) / (x1 - x0).max(1e-9) * (w - 2.0 * pad);
    let sy = |y: f64| h - pad - (y - y0) / (y1 - y0).max(1e-9) * (h - 2.0 * pad);
    let _ = write!(
        page,
        "<svg role=\"img\" aria-label=\"loss by step\" width=\"{w}\" height=\"{h}\">\
        <line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#999\"/><line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{}\" stroke=\"#999\"/>\
        <text x=\"{pad}\" y=\"{}\" font-size=\"11\">step {x0}</text><text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">step {x1}</text>\
        <text x=\"2\" y=\"{}\" font-size=\"11\">{y1:.2}</text><text x=\"2\" y=\"{}\" font-size=\"11\">{y0:.2}</text>",
        h - pad,
        w - pad,
        h - pad,
        h - pad,
        h - pad + 16.0,
        w - pad,
        h - pad + 16.0,
        pad + 4.0,
        h - pad
    );
    for (i, (points, split, color)) in series.iter().enumerate() {
        if points.is_empty() {
            continue;
        }
        let path: Vec<String> = points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        let _ = write!(
            page,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            path.join(" ")
        );
        let _ = write!(
            page,
            "<text x=\"{}\" y=\"{}\" font-size=\"12\" fill=\"{color}\">{split} loss</text>",
            w - 120.0,
            pad + 14.0 * i as f64
        );
    }
    page.push_str("</svg>");
    for (points, split, _) in &series {
        if let (Some(first), Some(last)) = (points.first(), points.last()) {
            let _ = write!(
                page,
                "<p>{split} loss {:.4} at step {} → {:.4} at step {}.</p>",
                first.1, first.0, last.1, last.0
            );
        }
    }
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    })
}

fn section_eval(page: &mut String, eval: &Value) {
    let _ = write!(
        page,
        "<h2>Evaluation</h2><p>Split <code>{}</code>; model <code>{}</code>; baseline <code>{}</code>.</p>\
         <table><tr><th>task</th><th>examples</th><th>patients</th><th>tokens</th><th>loss</th><th>perplexity</th><th>token accuracy</th><th>baseline loss</th><th>Δ loss [95% CI]</th></tr>",
        esc(eval["config"]["split"].as_str().unwrap_or("?")),
        esc(eval["model"]["path"].as_str().unwrap_or("?")),
        esc(eval["baseline"]["path"].as_str().unwrap_or("none"))
    );
    for (task, t) in eval["tasks"].as_object().into_iter().flatten() {
        let f =
            |v: &Value, digits: usize| v.as_f64().map_or("–".into(), |x| format!("{x:.digits$}"));
        let d = &t["difference"]["loss"];
        let delta = match (
            d["value"].as_f64(),
            d["ci95"][0].as_f64(),
            d["ci95"][1].as_f64(),
        ) {
            (Some(v), Some(lo), Some(hi)) => format!("{v:+.4} [{lo:+.4}, {hi:+.4}]"),
            _ => "–".into(),
        };
        let _ = write!(
            page,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(task),
            t["examples"],
            t["patients"],
            t["tokens"],
            f(&t["model"]["loss"], 4),
            f(&t["model"]["perplexity"], 2),
            f(&t["model"]["token_accuracy"], 4),
            f(&t["baseline"]["loss"], 4),
            esc(&delta)
        );
    }
    page.push_str("</table>");
}

fn section_audit(page: &mut String, audit: &Value) {
    let _ = write!(
        page,
        "<h2>Memorization audit</h2><p>Each planted canary ranked among same-format candidates; exposure in bits (the format holds {:.1} bits).</p>\
         <table><tr><th>canary</th><th>planted</th><th>rank</th><th>of</th><th>exposure</th></tr>",
        audit["format_bits"].as_f64().unwrap_or(0.0)
    );
    for c in audit["canaries"].as_array().into_iter().flatten() {
        let _ = write!(
            page,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.2}</td></tr>",
            esc(c["id"].as_str().unwrap_or("?")),
            c["repeats"],
            c["rank"],
            c["scored"],
            c["exposure"].as_f64().unwrap_or(0.0)
        );
    }
    let x = &audit["extraction"];
    let rate = |s: &str| {
        format!(
            "{}/{} ({:.1}%)",
            x[s]["reproduced"],
            x[s]["examples"],
            100.0 * x[s]["rate"].as_f64().unwrap_or(0.0)
        )
    };
    let _ = write!(
        page,
        "</table><p>Verbatim extraction: training examples {}, validation examples {}.</p>",
        rate("train"),
        rate("validation")
    );
}

fn section_scan(page: &mut String, scan: Option<&[(String, usize)]>) {
    page.push_str("<h2>PHI scan of the export</h2>");
    let Some(found) = scan else {
        page.push_str("<p class=\"muted\">Not run.</p>");
        return;
    };
    if found.is_empty() {
        page.push_str("<p class=\"ok\">No findings.</p>");
        return;
    }
    page.push_str("<p>Findings by category (a tokenizer's vocabulary yields name- and date-like pieces; read them with <code>clintune scan</code>):</p><table><tr><th>category</th><th>findings</th></tr>");
    for (category, n) in found {
        let _ = write!(
            page,
            "<tr><td>{}</td><td class=\"n\">{n}</td></tr>",
            esc(category)
        );
    }
    page.push_str("</table>");
}

/// Writes the page to `out` atomically.
pub fn write(out: &Path, page: &str) -> Result<(), EvalError> {
    clintune_core::staging::write_atomic(out, page.as_bytes())
        .map_err(|e| EvalError::output(out, e))
}
