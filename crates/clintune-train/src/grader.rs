//! Graders: rewards for sampled completions, for reinforcement fine-tuning
//! (`[[grader]]` tables of a GRPO recipe).
//!
//! Built in: `diagnosis-f1` (the next-diagnosis task's answer against the
//! diagnoses recorded, read as the evaluation reads them), `regex` (a format)
//! and `exact`. `command` runs an institution's own program: it reads JSON
//! lines `{"prompt", "completion", "reference"}` on stdin and writes one
//! `{"reward": number}` line for each, within a time limit. Several graders
//! combine as a weighted sum, as TRL's `reward_weights`.

use regex::Regex;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// One `[[grader]]` table: `kind` and its own keys, and `weight`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawSpec", into = "RawSpec")]
pub struct GraderSpec {
    /// What it checks.
    pub kind: GraderKind,
    /// Its weight in the reward (default 1).
    pub weight: f64,
}

/// The graders there are, by their `kind` in a recipe.
#[derive(Debug, Clone, PartialEq)]
pub enum GraderKind {
    /// F1 of the diagnoses the completion names against the reference's.
    DiagnosisF1,
    /// 1 when `pattern` matches somewhere in the completion (anchor it with
    /// `^…$` for the whole), else 0.
    Regex {
        /// A Rust `regex` pattern.
        pattern: String,
    },
    /// 1 when the completion equals the reference, surrounding whitespace
    /// aside, else 0.
    Exact,
    /// An external program.
    Command {
        /// The program and its arguments.
        argv: Vec<String>,
        /// Seconds it may take for one batch before it is stopped.
        timeout_s: f64,
    },
}

/// A `[[grader]]` table as written: every key any kind takes, so that a key
/// the kind does not take is named in the error.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    weight: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    argv: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout_s: Option<f64>,
}

/// Seconds a command grader may take per batch unless told.
const DEFAULT_TIMEOUT_S: f64 = 60.0;

impl TryFrom<RawSpec> for GraderSpec {
    type Error = String;

    fn try_from(raw: RawSpec) -> Result<Self, String> {
        let stray = |key: &str, present: bool| {
            if present {
                Err(format!("`{key}` does not apply to kind = \"{}\"", raw.kind))
            } else {
                Ok(())
            }
        };
        let kind = match raw.kind.as_str() {
            "regex" => GraderKind::Regex {
                pattern: raw
                    .pattern
                    .clone()
                    .ok_or("kind = \"regex\" needs a `pattern`")?,
            },
            "command" => GraderKind::Command {
                argv: raw.argv.clone().ok_or("kind = \"command\" needs `argv`")?,
                timeout_s: raw.timeout_s.unwrap_or(DEFAULT_TIMEOUT_S),
            },
            "diagnosis-f1" => GraderKind::DiagnosisF1,
            "exact" => GraderKind::Exact,
            other => {
                return Err(format!(
                    "unknown grader kind \"{other}\": diagnosis-f1, regex, exact or command"
                ));
            }
        };
        let command = matches!(kind, GraderKind::Command { .. });
        stray(
            "pattern",
            raw.pattern.is_some() && !matches!(kind, GraderKind::Regex { .. }),
        )?;
        stray("argv", raw.argv.is_some() && !command)?;
        stray("timeout_s", raw.timeout_s.is_some() && !command)?;
        Ok(Self {
            kind,
            weight: raw.weight.unwrap_or(1.0),
        })
    }
}

impl From<GraderSpec> for RawSpec {
    fn from(spec: GraderSpec) -> Self {
        let mut raw = RawSpec {
            kind: spec.kind.name().into(),
            weight: Some(spec.weight),
            pattern: None,
            argv: None,
            timeout_s: None,
        };
        match spec.kind {
            GraderKind::Regex { pattern } => raw.pattern = Some(pattern),
            GraderKind::Command { argv, timeout_s } => {
                raw.argv = Some(argv);
                raw.timeout_s = Some(timeout_s);
            }
            GraderKind::DiagnosisF1 | GraderKind::Exact => {}
        }
        raw
    }
}

/// What a grader judges.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Graded<'a> {
    /// The prompt, as text.
    pub prompt: &'a str,
    /// The sampled completion, as text.
    pub completion: &'a str,
    /// The recorded answer.
    pub reference: &'a str,
}

/// A grader that could not give its rewards; the step stops with it.
#[derive(Debug, thiserror::Error)]
#[error("grader {index} ({name}): {detail}")]
pub struct GraderError {
    /// Its place among the recipe's `[[grader]]` tables, from 1.
    pub index: usize,
    /// Its kind, and for a command its program.
    pub name: String,
    /// What went wrong (never the completions: they are model text).
    pub detail: String,
}

/// The recipe's graders, ready to grade.
#[derive(Debug)]
pub struct Graders {
    graders: Vec<(Grader, f64)>,
    kinds: Vec<&'static str>,
}

#[derive(Debug)]
enum Grader {
    DiagnosisF1,
    Regex(Regex),
    Exact,
    Command {
        argv: Vec<String>,
        timeout: Duration,
    },
}

/// Each completion's reward, and each grader's rewards.
#[derive(Debug, Clone, PartialEq)]
pub struct Rewards {
    /// The weighted sum, per completion.
    pub total: Vec<f64>,
    /// Per grader (in recipe order), per completion, unweighted.
    pub per_grader: Vec<Vec<f64>>,
}

impl Graders {
    /// Compiles `specs`; a bad pattern, an empty command, a weight or time
    /// limit that is not a positive number is an error naming the grader.
    pub fn new(specs: &[GraderSpec]) -> Result<Self, GraderError> {
        if specs.is_empty() {
            return Err(GraderError {
                index: 0,
                name: "[[grader]]".into(),
                detail: "a GRPO recipe needs at least one [[grader]] table".into(),
            });
        }
        let graders = specs
            .iter()
            .enumerate()
            .map(|(i, spec)| compile(i + 1, spec).map(|g| (g, spec.weight)))
            .collect::<Result<_, _>>()?;
        let kinds = specs.iter().map(|s| s.kind.name()).collect();
        Ok(Self { graders, kinds })
    }

    /// Grades `items`: every grader sees all of them at once (a command runs
    /// once per batch).
    pub fn grade(&self, items: &[Graded<'_>]) -> Result<Rewards, GraderError> {
        let mut total = vec![0.0; items.len()];
        let mut per_grader = Vec::with_capacity(self.graders.len());
        for (i, (grader, weight)) in self.graders.iter().enumerate() {
            let rewards = grader.grade(items).map_err(|detail| GraderError {
                index: i + 1,
                name: grader.name(),
                detail,
            })?;
            for (t, r) in total.iter_mut().zip(&rewards) {
                *t += weight * r;
            }
            per_grader.push(rewards);
        }
        Ok(Rewards { total, per_grader })
    }

    /// Each grader's name for figures (`rewards/NAME/mean`): its kind, and
    /// its place in the recipe when two share a kind (`regex-2`).
    pub fn names(&self) -> Vec<String> {
        let kinds = &self.kinds;
        let shared = |k: &&str| kinds.iter().filter(|x| *x == k).count() > 1;
        kinds
            .iter()
            .enumerate()
            .map(|(i, k)| match shared(k) {
                true => format!("{k}-{}", i + 1),
                false => (*k).to_string(),
            })
            .collect()
    }
}

fn compile(index: usize, spec: &GraderSpec) -> Result<Grader, GraderError> {
    let fail = |detail: String| GraderError {
        index,
        name: spec.kind.name().into(),
        detail,
    };
    if !spec.weight.is_finite() {
        return Err(fail(format!(
            "weight must be a number, got {}",
            spec.weight
        )));
    }
    Ok(match &spec.kind {
        GraderKind::DiagnosisF1 => Grader::DiagnosisF1,
        GraderKind::Exact => Grader::Exact,
        GraderKind::Regex { pattern } => Grader::Regex(
            Regex::new(pattern).map_err(|e| fail(format!("pattern does not compile: {e}")))?,
        ),
        GraderKind::Command { argv, timeout_s } => {
            if argv.is_empty() {
                return Err(fail("argv is empty: name the program to run".into()));
            }
            if !(timeout_s.is_finite() && *timeout_s > 0.0) {
                return Err(fail(format!("timeout_s must be positive, got {timeout_s}")));
            }
            Grader::Command {
                argv: argv.clone(),
                timeout: Duration::from_secs_f64(*timeout_s),
            }
        }
    })
}

impl GraderKind {
    /// The kind as a recipe names it.
    pub fn name(&self) -> &'static str {
        match self {
            GraderKind::DiagnosisF1 => "diagnosis-f1",
            GraderKind::Regex { .. } => "regex",
            GraderKind::Exact => "exact",
            GraderKind::Command { .. } => "command",
        }
    }
}

impl Grader {
    fn name(&self) -> String {
        match self {
            Grader::DiagnosisF1 => "diagnosis-f1".into(),
            Grader::Regex(_) => "regex".into(),
            Grader::Exact => "exact".into(),
            Grader::Command { argv, .. } => format!("command `{}`", argv[0]),
        }
    }

    fn grade(&self, items: &[Graded<'_>]) -> Result<Vec<f64>, String> {
        let each = |f: &dyn Fn(&Graded<'_>) -> f64| Ok(items.iter().map(f).collect());
        match self {
            Grader::DiagnosisF1 => {
                each(&|g| clintune_curate::diagnoses::f1(g.completion, g.reference))
            }
            Grader::Regex(re) => each(&|g| f64::from(u8::from(re.is_match(g.completion)))),
            Grader::Exact => {
                each(&|g| f64::from(u8::from(g.completion.trim() == g.reference.trim())))
            }
            Grader::Command { argv, timeout } => run_command(argv, *timeout, items),
        }
    }
}

/// Runs the program once over `items`: their JSON lines in, one reward line
/// out for each, within `timeout`.
fn run_command(
    argv: &[String],
    timeout: Duration,
    items: &[Graded<'_>],
) -> Result<Vec<f64>, String> {
    let mut input = String::new();
    for item in items {
        input.push_str(&serde_json::to_string(item).map_err(|e| e.to_string())?);
        input.push('\n');
    }
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    // Written from a thread: a program that does not read must not block us.
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let reader = thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .collect::<Result<Vec<_>, _>>()
    });
    let status = wait(&mut child, timeout)?;
    let _ = writer.join();
    let lines = reader
        .join()
        .map_err(|_| "reading its output failed".to_string())?
        .map_err(|e| format!("reading its output: {e}"))?;
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        return Err(format!("exited with {status}: {}", clip(err.trim())));
    }
    parse_rewards(&lines, items.len())
}

/// Waits for `child`, killing it after `timeout`.
fn wait(child: &mut Child, timeout: Duration) -> Result<std::process::ExitStatus, String> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(status);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "took longer than timeout_s = {} and was stopped",
                timeout.as_secs_f64()
            ));
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// One `{"reward": number}` per line, as many as items.
fn parse_rewards(lines: &[String], expected: usize) -> Result<Vec<f64>, String> {
    let lines: Vec<&String> = lines.iter().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() != expected {
        return Err(format!(
            "wrote {} reward lines for {expected} completions",
            lines.len()
        ));
    }
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("reward").and_then(serde_json::Value::as_f64))
                .filter(|r| r.is_finite())
                .ok_or_else(|| {
                    format!(
                        "line {}: expected {{\"reward\": number}}, got {}",
                        i + 1,
                        clip(line)
                    )
                })
        })
        .collect()
}

/// At most 80 characters of a program's output, for a message.
fn clip(text: &str) -> String {
    let mut out: String = text.chars().take(80).collect();
    if text.chars().count() > 80 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items() -> Vec<Graded<'static>> {
        vec![
            Graded {
                prompt: "What was diagnosed?",
                completion: "- Asthma\n- Hypertension",
                reference: "- hypertension\n- asthma",
            },
            Graded {
                prompt: "What was diagnosed?",
                completion: "Asthma, I think.",
                reference: "- Asthma",
            },
        ]
    }

    fn graders(toml: &str) -> Result<Graders, GraderError> {
        #[derive(Deserialize)]
        struct Recipe {
            grader: Vec<GraderSpec>,
        }
        let recipe: Recipe = toml::from_str(toml).unwrap();
        Graders::new(&recipe.grader)
    }

    #[test]
    fn built_in_graders_combine_by_weight() {
        let g = graders(
            "[[grader]]\nkind = \"diagnosis-f1\"\n\
             [[grader]]\nkind = \"regex\"\npattern = '^(- [^\\n]+\\n?)+$'\nweight = 0.5\n\
             [[grader]]\nkind = \"exact\"\n",
        )
        .unwrap();
        let r = g.grade(&items()).unwrap();
        assert_eq!(
            r.per_grader,
            [vec![1.0, 0.0], vec![1.0, 0.0], vec![0.0, 0.0]]
        );
        assert_eq!(r.total, [1.5, 0.0]);
        assert_eq!(g.names(), ["diagnosis-f1", "regex", "exact"]);
        let two = graders(
            "[[grader]]\nkind = \"regex\"\npattern = \"a\"\n\
             [[grader]]\nkind = \"exact\"\n\
             [[grader]]\nkind = \"regex\"\npattern = \"b\"\n",
        )
        .unwrap();
        assert_eq!(two.names(), ["regex-1", "exact", "regex-3"]);
    }

    #[test]
    fn bad_specs_are_named() {
        let err = graders("[[grader]]\nkind = \"regex\"\npattern = \"(\"\n").unwrap_err();
        assert!(
            err.to_string().starts_with("grader 1 (regex): pattern"),
            "{err}"
        );
        let err =
            graders("[[grader]]\nkind = \"exact\"\n[[grader]]\nkind = \"command\"\nargv = []\n")
                .unwrap_err();
        assert!(err.to_string().starts_with("grader 2 (command)"), "{err}");
        assert!(Graders::new(&[]).is_err());
        let spec = |text: &str| toml::from_str::<GraderSpec>(text).unwrap_err().to_string();
        assert!(spec("kind = \"exact\"\nweigth = 2\n").contains("weigth"));
        assert!(spec("kind = \"exact\"\npattern = \"x\"\n").contains("`pattern` does not apply"));
        assert!(spec("kind = \"regex\"\n").contains("needs a `pattern`"));
        assert!(spec("kind = \"bleu\"\n").contains("unknown grader kind"));
        // What a recipe records reads back the same.
        let back: GraderSpec = toml::from_str("kind = \"command\"\nargv = [\"g\"]\n").unwrap();
        let text = toml::to_string(&back).unwrap();
        assert_eq!(toml::from_str::<GraderSpec>(&text).unwrap(), back);
    }

    fn command(script: &str, timeout_s: f64) -> Graders {
        Graders::new(&[GraderSpec {
            kind: GraderKind::Command {
                argv: vec!["sh".into(), "-c".into(), script.into()],
                timeout_s,
            },
            weight: 2.0,
        }])
        .unwrap()
    }

    #[test]
    fn a_command_grades_json_lines() {
        // Reward: the completion's length, read from each JSON line.
        let g = command(
            "while IFS= read -r line; do n=$(printf '%s' \"$line\" | sed 's/.*\"completion\":\"\\([^\"]*\\)\".*/\\1/' | wc -c); \
             echo \"{\\\"reward\\\": $n}\"; done",
            10.0,
        );
        let r = g.grade(&items()).unwrap();
        // The first completion's JSON string holds `\n` as two characters.
        assert_eq!(r.per_grader[0], [24.0, 16.0]);
        assert_eq!(r.total, [48.0, 32.0]);
    }

    #[test]
    fn a_command_that_fails_hangs_or_writes_garbage_is_an_error_naming_it() {
        let cases = [
            (
                "cat >/dev/null; echo '{\"reward\": 1}'; echo 'oops'",
                "line 2",
            ),
            (
                "cat >/dev/null; echo '{\"reward\": 1}'",
                "wrote 1 reward lines for 2",
            ),
            ("cat >/dev/null; echo boom >&2; exit 3", "boom"),
            ("sleep 5", "timeout_s = 0.3"),
        ];
        for (script, want) in cases {
            let err = command(script, 0.3)
                .grade(&items())
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("grader 1 (command `sh`)") && err.contains(want),
                "{err}"
            );
        }
    }
}
