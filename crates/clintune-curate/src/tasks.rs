//! Building examples from one patient's de-identified records.
//!
//! Each task turns a patient's records into draft examples: plain text
//! (`timeline`), chat messages (`next-diagnosis`, `chat`) or a prompt with a
//! preferred and a rejected answer (`preference`). Drafts are rendered and
//! tokenized later; here only what is said is decided.

use crate::config::{NextDiagnosisConfig, TasksConfig, TimelineConfig};
use crate::events;
use crate::source::Record;
use serde_json::Value;
use std::collections::BTreeMap;

/// The task that built an example.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Task {
    /// A patient's history as text.
    Timeline,
    /// History up to an encounter → its diagnoses.
    NextDiagnosis,
    /// A de-identified chat trace.
    Chat,
    /// A de-identified preference pair.
    Preference,
}

impl Task {
    /// The name used in configs, columns and counts.
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Timeline => "timeline",
            Task::NextDiagnosis => "next-diagnosis",
            Task::Chat => "chat",
            Task::Preference => "preference",
        }
    }

    /// The task of a name.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Task::Timeline,
            Task::NextDiagnosis,
            Task::Chat,
            Task::Preference,
        ]
        .into_iter()
        .find(|t| t.as_str() == name)
    }
}

pub use clintune_text::Message;

/// What an example says, before rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// Plain text, trained on in full.
    Text(String),
    /// A conversation, trained on the assistant's turns.
    Chat(Vec<Message>),
    /// One prompt and two answers to it, the first preferred.
    Pair(Box<Pair>),
}

/// A preference pair: plain text (the answers continue the prompt's text) or
/// chat (the answers are assistant turns after the prompt's messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pair {
    /// Plain-text prompt and continuations.
    Text {
        /// The prompt.
        prompt: String,
        /// The preferred continuation.
        chosen: String,
        /// The continuation not preferred.
        rejected: String,
    },
    /// Messages.
    Chat {
        /// The conversation so far.
        prompt: Vec<Message>,
        /// The preferred turns.
        chosen: Vec<Message>,
        /// The turns not preferred.
        rejected: Vec<Message>,
    },
}

impl Pair {
    /// Every text of the pair, prompt first.
    pub fn texts(&self) -> Vec<&str> {
        match self {
            Pair::Text {
                prompt,
                chosen,
                rejected,
            } => vec![prompt, chosen, rejected],
            Pair::Chat {
                prompt,
                chosen,
                rejected,
            } => [prompt, chosen, rejected]
                .into_iter()
                .flatten()
                .map(|m| m.content.as_str())
                .collect(),
        }
    }
}

impl Content {
    /// What it says: the text, or each message's content.
    pub fn texts(&self) -> Vec<&str> {
        match self {
            Content::Text(t) => vec![t.as_str()],
            Content::Chat(m) => m.iter().map(|m| m.content.as_str()).collect(),
            Content::Pair(p) => p.texts(),
        }
    }

    /// Characters of content (message text only, for chats).
    pub fn chars(&self) -> usize {
        self.texts().iter().map(|t| t.chars().count()).sum()
    }
}

/// An example before rendering and tokenization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// Pseudonymous patient key.
    pub patient_key: String,
    /// The task that built it.
    pub task: Task,
    /// What it says.
    pub content: Content,
    /// The de-identified records it was built from.
    pub record_keys: Vec<String>,
}

/// Counts by reason, for the manifest.
pub type Tally = BTreeMap<String, u64>;

/// Adds one to `tally[key]`.
pub fn bump(tally: &mut Tally, key: &str) {
    *tally.entry(key.to_string()).or_default() += 1;
}

/// Every draft the enabled tasks build for one patient.
pub fn build(
    patient_key: &str,
    records: &[Record],
    cfg: &TasksConfig,
    tally: &mut Tally,
) -> Vec<Draft> {
    let mut drafts = Vec::new();
    if cfg.timeline.enabled {
        drafts.extend(timeline(patient_key, records, &cfg.timeline, tally));
    }
    if cfg.next_diagnosis.enabled {
        drafts.extend(next_diagnosis(
            patient_key,
            records,
            &cfg.next_diagnosis,
            tally,
        ));
    }
    if cfg.chat.enabled {
        drafts.extend(chat(patient_key, records, tally));
    }
    if cfg.preference.enabled {
        drafts.extend(preference(patient_key, records, tally));
    }
    drafts
}

/// One timeline entry: its text and the record it came from.
struct Entry<'a> {
    text: String,
    record: &'a Record,
}

fn timeline_entries<'a>(
    records: &'a [Record],
    cfg: &TimelineConfig,
    tally: &mut Tally,
) -> Vec<Entry<'a>> {
    let mut entries = Vec::new();
    for record in records.iter().filter(|r| r.source == "fhir") {
        let text = if record.resource_type == "DocumentReference" {
            note_entry(record, cfg, tally)
        } else if record.resource_type == "Patient" {
            None
        } else {
            let line = events::line(record);
            if line.is_none() {
                bump(tally, "timeline_events_without_concept");
            }
            line
        };
        if let Some(text) = text {
            entries.push(Entry { text, record });
        }
    }
    entries
}

fn note_entry(record: &Record, cfg: &TimelineConfig, tally: &mut Tally) -> Option<String> {
    if !cfg.notes {
        return None;
    }
    let text = record.text.as_deref().map(str::trim).unwrap_or("");
    if text.is_empty() {
        bump(tally, "notes_empty");
        return None;
    }
    let block = events::note_block(record, text);
    Some(truncate_chars(&block, cfg.max_chars / 2, tally))
}

/// Cuts a block at a character boundary, counting it, so that one note never
/// fills a whole timeline example.
fn truncate_chars(block: &str, max: usize, tally: &mut Tally) -> String {
    match block.char_indices().nth(max) {
        Some((at, _)) => {
            bump(tally, "notes_truncated");
            format!("{} […]", &block[..at])
        }
        None => block.to_string(),
    }
}

/// The patient's history as text, cut into examples of at most `max_chars`.
fn timeline(
    patient_key: &str,
    records: &[Record],
    cfg: &TimelineConfig,
    tally: &mut Tally,
) -> Vec<Draft> {
    let header = events::header(records);
    let entries = timeline_entries(records, cfg, tally);
    let mut drafts = Vec::new();
    let mut text = String::new();
    let mut keys = Vec::new();
    for entry in entries {
        if !keys.is_empty() && text.len() + entry.text.len() + 1 > cfg.max_chars {
            drafts.push(timeline_draft(patient_key, &mut text, &mut keys));
        }
        if keys.is_empty() {
            text.push_str(&header);
            if !drafts.is_empty() {
                text.push_str(" (continued)");
            }
        }
        text.push('\n');
        text.push_str(&entry.text);
        keys.push(entry.record.record_key.clone());
    }
    if !keys.is_empty() {
        drafts.push(timeline_draft(patient_key, &mut text, &mut keys));
    }
    drafts
}

fn timeline_draft(patient_key: &str, text: &mut String, keys: &mut Vec<String>) -> Draft {
    Draft {
        patient_key: patient_key.to_string(),
        task: Task::Timeline,
        content: Content::Text(std::mem::take(text)),
        record_keys: std::mem::take(keys),
    }
}

/// System prompt of next-diagnosis examples.
pub const NEXT_DIAGNOSIS_SYSTEM: &str = "You are a clinical reasoning assistant. Given a patient's de-identified history (dates are shifted), name the diagnoses recorded at their next encounter.";

/// One next-diagnosis example per encounter day at which something was
/// diagnosed: the prompt holds the structured history before that day and the
/// day's encounter type, the answer the day's diagnoses.
fn next_diagnosis(
    patient_key: &str,
    records: &[Record],
    cfg: &NextDiagnosisConfig,
    tally: &mut Tally,
) -> Vec<Draft> {
    let days = group_by_day(records);
    let mut history: Vec<(&Record, String)> = Vec::new();
    let mut drafts = Vec::new();
    for (day, day_records) in &days {
        let diagnoses = unique_concepts(day_records, "Condition");
        if !diagnoses.is_empty() {
            if history.len() >= cfg.min_history_events {
                drafts.push(diagnosis_draft(
                    patient_key,
                    day,
                    day_records,
                    &history,
                    &diagnoses,
                    cfg,
                ));
            } else {
                bump(tally, "next_diagnosis_short_history");
            }
        }
        history.extend(
            day_records
                .iter()
                .filter_map(|r| events::line(r).map(|l| (*r, l))),
        );
    }
    if cfg.max_per_patient > 0 && drafts.len() > cfg.max_per_patient {
        let extra = drafts.len() - cfg.max_per_patient;
        *tally
            .entry("next_diagnosis_over_patient_limit".into())
            .or_default() += extra as u64;
        drafts.drain(..extra);
    }
    drafts
}

/// Structured FHIR events (notes excluded: they can state the diagnosis) by day.
fn group_by_day(records: &[Record]) -> BTreeMap<&str, Vec<&Record>> {
    let mut days: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for r in records {
        if r.source != "fhir" || matches!(r.resource_type.as_str(), "DocumentReference" | "Patient")
        {
            continue;
        }
        if let Some(day) = events::day(r) {
            days.entry(day).or_default().push(r);
        }
    }
    days
}

fn unique_concepts(records: &[&Record], resource_type: &str) -> Vec<String> {
    let mut seen = Vec::new();
    for r in records.iter().filter(|r| r.resource_type == resource_type) {
        let name = events::what(r).and_then(|w| w.split_once(": ").map(|(_, n)| n.to_string()));
        if let Some(name) = name
            && !seen.contains(&name)
        {
            seen.push(name);
        }
    }
    seen
}

fn diagnosis_draft(
    patient_key: &str,
    day: &str,
    day_records: &[&Record],
    history: &[(&Record, String)],
    diagnoses: &[String],
    cfg: &NextDiagnosisConfig,
) -> Draft {
    let recent = &history[history.len().saturating_sub(cfg.max_history_events)..];
    let lines: Vec<&str> = recent.iter().map(|(_, l)| l.as_str()).collect();
    let visit = unique_concepts(day_records, "Encounter");
    let visit = if visit.is_empty() {
        "an encounter".to_string()
    } else {
        visit.join("; ")
    };
    let age = day_records
        .iter()
        .find_map(|r| r.age_years)
        .map(|a| format!(" (age {a})"))
        .unwrap_or_default();
    let prompt = format!(
        "Patient history:\n{}\n\nNext encounter on {day}{age}: {visit}.\nWhat was diagnosed at this encounter?",
        lines.join("\n")
    );
    let answer = crate::diagnoses::answer(diagnoses);
    let mut keys: Vec<String> = recent.iter().map(|(r, _)| r.record_key.clone()).collect();
    keys.extend(
        day_records
            .iter()
            .filter(|r| matches!(r.resource_type.as_str(), "Condition" | "Encounter"))
            .map(|r| r.record_key.clone()),
    );
    Draft {
        patient_key: patient_key.to_string(),
        task: Task::NextDiagnosis,
        content: Content::Chat(vec![
            Message::new("system", NEXT_DIAGNOSIS_SYSTEM.to_string()),
            Message::new("user", prompt),
            Message::new("assistant", answer.join("\n")),
        ]),
        record_keys: keys,
    }
}

/// Roles a chat trace may use.
const ROLES: [&str; 3] = ["system", "user", "assistant"];

/// The patient's chat traces as they are.
fn chat(patient_key: &str, records: &[Record], tally: &mut Tally) -> Vec<Draft> {
    records
        .iter()
        .filter(|r| r.resource_type == "ChatTrace")
        .filter_map(|r| {
            let messages = chat_messages(r);
            if messages.is_none() {
                bump(tally, "chat_invalid_messages");
            }
            let messages = messages?;
            if !messages.iter().any(|m| m.role == "assistant") {
                bump(tally, "chat_without_answer");
                return None;
            }
            Some(Draft {
                patient_key: patient_key.to_string(),
                task: Task::Chat,
                content: Content::Chat(messages),
                record_keys: vec![r.record_key.clone()],
            })
        })
        .collect()
}

/// The trace's messages; `None` when one has a role other than
/// system/user/assistant or a content that is not a string.
fn chat_messages(record: &Record) -> Option<Vec<Message>> {
    chat_list(record.fields.get("messages")?, &ROLES)
}

/// A list of messages whose roles are all in `roles` and whose contents are
/// strings; `None` otherwise.
fn chat_list(value: &Value, roles: &[&str]) -> Option<Vec<Message>> {
    value
        .as_array()?
        .iter()
        .map(|m| {
            let role = m.get("role")?.as_str()?;
            let content = m.get("content")?.as_str()?;
            roles
                .contains(&role)
                .then(|| Message::new(role, content.to_string()))
        })
        .collect()
}

/// Roles an answer of a pair may hold.
const ANSWER_ROLES: [&str; 2] = ["assistant", "tool"];

/// The patient's de-identified preference pairs.
fn preference(patient_key: &str, records: &[Record], tally: &mut Tally) -> Vec<Draft> {
    records
        .iter()
        .filter(|r| r.resource_type == "PreferencePair")
        .filter_map(|r| {
            let pair = pair_of(r, tally)?;
            Some(Draft {
                patient_key: patient_key.to_string(),
                task: Task::Preference,
                content: Content::Pair(Box::new(pair)),
                record_keys: vec![r.record_key.clone()],
            })
        })
        .collect()
}

/// The pair a de-identified record holds; `None`, counted, when
/// de-identification left it without an answer (a policy that drops the
/// assistant role) or made its answers equal.
fn pair_of(record: &Record, tally: &mut Tally) -> Option<Pair> {
    let get = |k: &str| record.fields.get(k);
    let pair = match (get("prompt")?, get("chosen")?, get("rejected")?) {
        (Value::String(p), Value::String(c), Value::String(r)) => Pair::Text {
            prompt: p.clone(),
            chosen: c.clone(),
            rejected: r.clone(),
        },
        (p, c, r) => {
            let messages = |v: &Value, roles: &[&str]| chat_list(v, roles);
            let pair = messages(p, &ROLES)
                .zip(messages(c, &ANSWER_ROLES))
                .zip(messages(r, &ANSWER_ROLES));
            let Some(((prompt, chosen), rejected)) = pair else {
                bump(tally, "preference_invalid_messages");
                return None;
            };
            let answered = |m: &[Message]| m.iter().any(|m| m.role == "assistant");
            if prompt.is_empty() || !answered(&chosen) || !answered(&rejected) {
                bump(tally, "preference_without_answer");
                return None;
            }
            Pair::Chat {
                prompt,
                chosen,
                rejected,
            }
        }
    };
    let same = match &pair {
        Pair::Text {
            chosen, rejected, ..
        } => chosen == rejected,
        Pair::Chat {
            chosen, rejected, ..
        } => chosen == rejected,
    };
    if same {
        bump(tally, "preference_answers_equal_after_deid");
        return None;
    }
    Some(pair)
}
