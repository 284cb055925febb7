//! `clintune release`: the checks an export must pass before anyone else may
//! use it, and the approval record a reviewer signs when it does.
//!
//! Every check runs, so a refusal names every failure at once:
//! - **lineage**: the export's files, tensors and whole manifest chain verify;
//! - **scan**: the PHI detector finds nothing in the categories the policy
//!   forbids (names and dates are left to the reviewer: a tokenizer's
//!   vocabulary is full of name-like pieces);
//! - **eval**: an evaluation of this very export on held-out patients, no
//!   task worse than its baseline beyond the policy's margin;
//! - **memorization**: an audit of this export, every canary's exposure and
//!   the extraction gap below the policy's limits.
//!
//! An approval is written as a lineage stage, `release`, whose parents are
//! the export and the evaluation and audit it relied on, so `lineage verify`
//! covers it and a changed byte in it is named.

use crate::error::EvalError;
use crate::eval::{Stage, write_stage};
use clintune_core::hash::file_digest;
use clintune_core::{ConfigError, Invalid};
use clintune_deid::scrub::Scrubber;
use clintune_lineage::{Manifest, verify_chain};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};

/// The lineage stage of an approval.
pub const STAGE: &str = "release";

/// The approval record's file name.
pub const RECORD_FILE: &str = "release.json";

/// What an export must show to be released (`release.toml`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReleasePolicy {
    /// The PHI scan.
    pub scan: ScanPolicy,
    /// The evaluation.
    pub eval: EvalPolicy,
    /// The memorization audit.
    pub memorization: MemorizationPolicy,
}

/// `[scan]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScanPolicy {
    /// Categories of which a single finding refuses the release.
    pub forbid: Vec<String>,
}

/// `[eval]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalPolicy {
    /// An evaluation must be given.
    pub required: bool,
    /// The split it must be on.
    pub split: String,
    /// It must compare with a baseline.
    pub require_baseline: bool,
    /// Largest loss increase over the baseline allowed on any task (nats per token).
    pub max_loss_increase: f64,
}

/// `[memorization]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemorizationPolicy {
    /// An audit must be given.
    pub required: bool,
    /// Largest exposure allowed for any canary, in bits.
    pub max_exposure_bits: f64,
    /// Largest verbatim extraction rate of training examples beyond that of
    /// validation examples.
    pub max_extraction_gap: f64,
}

impl Default for ScanPolicy {
    fn default() -> Self {
        let forbid = ["address", "zip", "phone", "email", "url", "ip", "id"];
        Self {
            forbid: forbid.map(String::from).into(),
        }
    }
}

impl Default for EvalPolicy {
    fn default() -> Self {
        Self {
            required: true,
            split: "test".into(),
            require_baseline: true,
            max_loss_increase: 0.0,
        }
    }
}

impl Default for MemorizationPolicy {
    fn default() -> Self {
        Self {
            required: true,
            max_exposure_bits: 8.0,
            max_extraction_gap: 0.05,
        }
    }
}

impl ReleasePolicy {
    /// Parses and checks policy text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let policy: Self = ConfigError::parse_toml(text)?;
        policy.validate()?;
        Ok(policy)
    }

    /// Checks values the types allow but a gate cannot use.
    pub fn validate(&self) -> Result<(), Invalid> {
        let known = [
            "name",
            "address",
            "location",
            "zip",
            "date",
            "year",
            "age",
            "phone",
            "email",
            "url",
            "ip",
            "id",
            "unknown-word",
        ];
        if let Some(c) = self
            .scan
            .forbid
            .iter()
            .find(|c| !known.contains(&c.as_str()))
        {
            return Err(Invalid::new(
                "scan.forbid",
                format!("`{c}` is not a category ({})", known.join(", ")),
            ));
        }
        let m = &self.memorization;
        if !(m.max_exposure_bits >= 0.0 && (0.0..=1.0).contains(&m.max_extraction_gap)) {
            return Err(Invalid::new(
                "memorization",
                "max_exposure_bits must be >= 0 and max_extraction_gap within 0..=1",
            ));
        }
        if !self.eval.max_loss_increase.is_finite() {
            return Err(Invalid::new("eval.max_loss_increase", "must be a number"));
        }
        Ok(())
    }
}

/// A file a check relied on, by content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// The file, as given.
    pub path: String,
    /// Its `sha256:`.
    pub sha256: String,
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// `lineage`, `scan`, `eval`, `memorization`.
    pub name: &'static str,
    /// Passed.
    pub passed: bool,
    /// What was found, in a sentence or a few.
    pub detail: String,
    /// The files it relied on.
    pub evidence: Vec<Evidence>,
}

/// What the gate reads.
pub struct GateInputs<'a> {
    /// The export to release.
    pub export: &'a Path,
    /// An `eval` output for it.
    pub eval: Option<&'a Path>,
    /// An `audit` output for it.
    pub audit: Option<&'a Path>,
    /// The detector of the scan.
    pub scrubber: &'a Scrubber,
}

/// Runs every check of `policy` on `inputs`.
pub fn check_all(policy: &ReleasePolicy, inputs: &GateInputs<'_>) -> Vec<Check> {
    let export_id = Manifest::read(inputs.export).ok().map(|m| m.id);
    vec![
        lineage(inputs.export),
        scan(policy, inputs),
        eval(&policy.eval, inputs.eval, export_id.as_deref()),
        memorization(&policy.memorization, inputs.audit, export_id.as_deref()),
    ]
}

fn lineage(export: &Path) -> Check {
    let (passed, detail) = match clintune_export::verify::verify(export) {
        Ok(r) => (
            true,
            format!(
                "{} manifests and {} files verify; {} tensors match config.json",
                r.lineage.manifests, r.lineage.files_checked, r.tensors
            ),
        ),
        Err(e) => (
            false,
            format!("does not verify: {}", clintune_core::with_causes(&e)),
        ),
    };
    Check {
        name: "lineage",
        passed,
        detail,
        evidence: evidence(&[export.join(clintune_lineage::manifest::MANIFEST_FILE)]),
    }
}

fn scan(policy: &ReleasePolicy, inputs: &GateInputs<'_>) -> Check {
    let found = clintune_deid::scan::scan(inputs.export, inputs.scrubber);
    let (passed, detail) = match found {
        Err(e) => (
            false,
            format!("could not scan: {}", clintune_core::with_causes(&e)),
        ),
        Ok(report) => {
            let forbidden: Vec<String> = report
                .findings
                .iter()
                .filter(|f| policy.scan.forbid.iter().any(|c| c == f.category))
                .map(|f| format!("{}: {}: {} {}", f.file, f.place, f.category, f.masked))
                .collect();
            let detail = if forbidden.is_empty() {
                format!(
                    "{} strings in {} files: no finding in {}; {} findings in other categories left to the reviewer",
                    report.strings,
                    report.files,
                    policy.scan.forbid.join(", "),
                    report.findings.len()
                )
            } else {
                format!("forbidden findings: {}", forbidden.join("; "))
            };
            (forbidden.is_empty(), detail)
        }
    };
    Check {
        name: "scan",
        passed,
        detail,
        evidence: Vec::new(),
    }
}

/// A validation output's report, after its manifest chain verifies and it
/// is shown to concern `export_id`.
fn report_of(dir: &Path, file: &str, export_id: Option<&str>) -> Result<(Value, Evidence), String> {
    verify_chain(dir).map_err(|e| {
        format!(
            "{} does not verify: {}",
            dir.display(),
            clintune_core::with_causes(&e)
        )
    })?;
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let report: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let model = report["model"]["id"].as_str();
    if model.is_none() || model != export_id {
        return Err(format!(
            "{} is of model {}, not of this export ({})",
            path.display(),
            model.unwrap_or("without a manifest"),
            export_id.unwrap_or("unknown")
        ));
    }
    let sha = evidence(&[path])
        .pop()
        .map(|e| e.sha256)
        .unwrap_or_default();
    let evidence = Evidence {
        path: dir.join(file).display().to_string(),
        sha256: sha,
    };
    Ok((report, evidence))
}

fn eval(policy: &EvalPolicy, dir: Option<&Path>, export_id: Option<&str>) -> Check {
    let outcome = match dir {
        None if policy.required => {
            Err("no evaluation given (--eval); the policy requires one".into())
        }
        None => Ok(("not required, none given".to_string(), Vec::new())),
        Some(dir) => report_of(dir, crate::eval::REPORT_FILE, export_id)
            .and_then(|(report, ev)| eval_findings(policy, &report).map(|d| (d, vec![ev]))),
    };
    finish("eval", outcome)
}

fn eval_findings(policy: &EvalPolicy, report: &Value) -> Result<String, String> {
    let split = report["config"]["split"].as_str().unwrap_or("?");
    if split != policy.split {
        return Err(format!(
            "the evaluation is on `{split}`, the policy asks for `{}`",
            policy.split
        ));
    }
    if policy.require_baseline && report["baseline"].is_null() {
        return Err("the evaluation has no baseline; the policy requires one".into());
    }
    let mut worse = Vec::new();
    let mut shown = Vec::new();
    for (task, t) in report["tasks"].as_object().into_iter().flatten() {
        let Some(increase) = t["difference"]["loss"]["value"].as_f64() else {
            continue;
        };
        shown.push(format!("{task} {increase:+.4}"));
        if increase > policy.max_loss_increase {
            worse.push(format!(
                "{task}: loss {increase:+.4} against the baseline (allowed {:+.4})",
                policy.max_loss_increase
            ));
        }
    }
    if worse.is_empty() {
        Ok(format!(
            "loss against the baseline on `{split}`: {}",
            shown.join(", ")
        ))
    } else {
        Err(worse.join("; "))
    }
}

fn memorization(policy: &MemorizationPolicy, dir: Option<&Path>, export_id: Option<&str>) -> Check {
    let outcome = match dir {
        None if policy.required => {
            Err("no memorization audit given (--audit); the policy requires one".into())
        }
        None => Ok(("not required, none given".to_string(), Vec::new())),
        Some(dir) => report_of(dir, crate::memorization::REPORT_FILE, export_id)
            .and_then(|(report, ev)| audit_findings(policy, &report).map(|d| (d, vec![ev]))),
    };
    finish("memorization", outcome)
}

fn audit_findings(policy: &MemorizationPolicy, report: &Value) -> Result<String, String> {
    let mut faults = Vec::new();
    let mut highest = 0.0f64;
    for c in report["canaries"].as_array().into_iter().flatten() {
        let exposure = c["exposure"].as_f64().unwrap_or(f64::INFINITY);
        highest = highest.max(exposure);
        if exposure > policy.max_exposure_bits {
            faults.push(format!(
                "{} (planted {}) has exposure {exposure:.2} bits (allowed {:.2})",
                c["id"].as_str().unwrap_or("?"),
                c["repeats"],
                policy.max_exposure_bits
            ));
        }
    }
    let x = &report["extraction"];
    let train = x["train"]["rate"].as_f64().unwrap_or(1.0);
    let validation = x["validation"]["rate"].as_f64().unwrap_or(0.0);
    if train - validation > policy.max_extraction_gap {
        faults.push(format!(
            "training examples are reproduced verbatim {:.1}% of the time, validation examples {:.1}% (gap allowed {:.1} points)",
            100.0 * train,
            100.0 * validation,
            100.0 * policy.max_extraction_gap
        ));
    }
    if faults.is_empty() {
        Ok(format!(
            "highest canary exposure {highest:.2} bits; verbatim extraction train {:.1}%, validation {:.1}%",
            100.0 * train,
            100.0 * validation
        ))
    } else {
        Err(faults.join("; "))
    }
}

fn finish(name: &'static str, outcome: Result<(String, Vec<Evidence>), String>) -> Check {
    match outcome {
        Ok((detail, evidence)) => Check {
            name,
            passed: true,
            detail,
            evidence,
        },
        Err(detail) => Check {
            name,
            passed: false,
            detail,
            evidence: Vec::new(),
        },
    }
}

fn evidence(files: &[PathBuf]) -> Vec<Evidence> {
    files
        .iter()
        .map(|f| Evidence {
            path: f.display().to_string(),
            sha256: file_digest(f)
                .map(|d| format!("sha256:{}", d.sha256))
                .unwrap_or_default(),
        })
        .collect()
}

/// Who decided, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The reviewer's name.
    pub reviewer: String,
    /// Their note, if any.
    pub note: Option<String>,
    /// When, in UTC.
    pub decided_at: String,
}

/// The content of `release.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReleaseRecord {
    /// The export released: its directory and manifest id.
    pub export: crate::eval::Subject,
    /// `approved`: a refusal writes nothing.
    pub decision: &'static str,
    /// Who and when.
    pub decided: Decision,
    /// The policy applied.
    pub policy: ReleasePolicy,
    /// Every check, passed.
    pub checks: Vec<Check>,
}

/// Why a release was refused: every failed check.
#[derive(Debug, thiserror::Error)]
#[error("release refused, nothing written:\n{}", .failures.iter().map(|f| format!("  - {f}")).collect::<Vec<_>>().join("\n"))]
pub struct Refused {
    /// `check: what failed`, one per failed check.
    pub failures: Vec<String>,
}

/// The record of `checks` when all passed, or the refusal naming each one
/// that did not.
pub fn decide(
    export: &Path,
    policy: ReleasePolicy,
    checks: Vec<Check>,
    decided: Decision,
) -> Result<ReleaseRecord, Refused> {
    let failures: Vec<String> = checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect();
    if !failures.is_empty() {
        return Err(Refused { failures });
    }
    let manifest = Manifest::read(export).ok();
    Ok(ReleaseRecord {
        export: crate::eval::Subject::new(export, manifest.as_ref()),
        decision: "approved",
        decided,
        policy,
        checks,
    })
}

/// Writes `record` to `out/release.json` with a manifest whose parents are
/// the export and the reports it relied on, atomically.
pub fn write_record(
    out: &Path,
    record: &ReleaseRecord,
    parents: &[(Manifest, PathBuf)],
) -> Result<Manifest, EvalError> {
    let mut counts = Map::new();
    counts.insert("checks".into(), json!(record.checks.len()));
    let stage = Stage {
        name: STAGE,
        file: RECORD_FILE,
        config: clintune_core::json::to_value("the release policy", &record.policy),
        counts,
    };
    write_stage(out, false, &stage, record, parents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_policy_is_the_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../recipes/release.toml");
        let text = std::fs::read_to_string(path).expect("recipes/release.toml");
        assert_eq!(
            ReleasePolicy::parse(&text).expect("parses"),
            ReleasePolicy::default()
        );
    }

    #[test]
    fn an_unknown_category_is_named() {
        let e = ReleasePolicy::parse("[scan]\nforbid = [\"phone\", \"phones\"]\n").unwrap_err();
        assert!(e.to_string().contains("`phones` is not a category"), "{e}");
    }

    #[test]
    fn eval_thresholds_apply_to_every_task() {
        let report = json!({
            "config": {"split": "test"},
            "baseline": {"path": "base"},
            "tasks": {
                "chat": {"difference": {"loss": {"value": -0.2}}},
                "timeline": {"difference": {"loss": {"value": 0.05}}},
            }
        });
        let mut policy = EvalPolicy::default();
        let e = eval_findings(&policy, &report).unwrap_err();
        assert!(e.contains("timeline") && !e.contains("chat"), "{e}");
        policy.max_loss_increase = 0.1;
        assert!(eval_findings(&policy, &report).is_ok());
        policy.split = "validation".into();
        assert!(
            eval_findings(&policy, &report)
                .unwrap_err()
                .contains("`test`")
        );
    }
}
