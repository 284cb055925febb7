//! Preference pairs: a prompt, the answer preferred and the one not.
//!
//! Two formats are read, told apart by their keys:
//!
//! - Azure AI Foundry's DPO JSONL: `{"input": {"messages": [...]},
//!   "preferred_output": [...], "non_preferred_output": [...]}`, whose outputs
//!   are lists of assistant (and tool) messages;
//! - TRL's explicit-prompt preference format: `{"prompt": ..., "chosen": ...,
//!   "rejected": ...}`, either conversational (lists of messages) or plain
//!   text (strings).
//!
//! A pair is checked here, before routing, so a bad one is named by file,
//! line and field and never reaches de-identification.

use serde_json::Value;

/// The layout of a preference record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairFormat {
    /// Azure AI Foundry's DPO format.
    AzureDpo,
    /// TRL's preference format with lists of messages.
    TrlConversational,
    /// TRL's preference format with plain strings.
    TrlText,
}

impl PairFormat {
    /// The name written into de-identified records and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            PairFormat::AzureDpo => "azure-dpo",
            PairFormat::TrlConversational => "trl-conversational",
            PairFormat::TrlText => "trl-text",
        }
    }

    /// The `(prompt, chosen, rejected)` field names of the format.
    pub fn fields(self) -> [&'static str; 3] {
        match self {
            PairFormat::AzureDpo => ["input.messages", "preferred_output", "non_preferred_output"],
            PairFormat::TrlConversational | PairFormat::TrlText => ["prompt", "chosen", "rejected"],
        }
    }

    /// Whether the parts are lists of messages (else strings).
    pub fn is_conversational(self) -> bool {
        self != PairFormat::TrlText
    }
}

/// Keys that only Azure's format has.
const AZURE_KEYS: [&str; 3] = ["input", "preferred_output", "non_preferred_output"];
/// Keys that only TRL's format has.
const TRL_KEYS: [&str; 3] = ["prompt", "chosen", "rejected"];

/// True when a JSON object looks like a preference record of either format.
pub fn looks_like_pair(obj: &serde_json::Map<String, Value>) -> bool {
    obj.contains_key("preferred_output")
        || obj.contains_key("non_preferred_output")
        || (obj.contains_key("chosen") && obj.contains_key("rejected"))
}

/// A checked preference record: its format and its three parts.
#[derive(Debug, Clone, Copy)]
pub struct Pair<'a> {
    /// Its format.
    pub format: PairFormat,
    /// The prompt: messages, or a string for [`PairFormat::TrlText`].
    pub prompt: &'a Value,
    /// The preferred answer.
    pub chosen: &'a Value,
    /// The answer not preferred.
    pub rejected: &'a Value,
}

/// What is wrong with a record: the field and the problem, without content.
pub type Problem = (String, String);

fn problem(field: &str, text: impl Into<String>) -> Problem {
    (field.to_string(), text.into())
}

/// Checks a record and finds its parts.
pub fn read_pair(value: &Value) -> Result<Pair<'_>, Problem> {
    let obj = value
        .as_object()
        .ok_or_else(|| problem("(record)", "expected a JSON object"))?;
    let azure: Vec<&str> = AZURE_KEYS
        .into_iter()
        .filter(|k| obj.contains_key(*k))
        .collect();
    let trl: Vec<&str> = TRL_KEYS
        .into_iter()
        .filter(|k| obj.contains_key(*k))
        .collect();
    if !azure.is_empty() && !trl.is_empty() {
        return Err(problem(
            "(record)",
            format!(
                "mixes Azure AI Foundry DPO fields ({}) with TRL preference fields ({}); use one format",
                azure.join(", "),
                trl.join(", ")
            ),
        ));
    }
    let pair = if azure.is_empty() {
        trl_pair(value)?
    } else {
        azure_pair(value)?
    };
    if pair.chosen == pair.rejected {
        let [_, chosen, rejected] = pair.format.fields();
        return Err(problem(
            rejected,
            format!("equals `{chosen}`: a pair needs two different answers"),
        ));
    }
    Ok(pair)
}

fn field<'a>(value: &'a Value, name: &str) -> Result<&'a Value, Problem> {
    crate::input::route::dotted(value, name).ok_or_else(|| problem(name, "missing"))
}

fn azure_pair(value: &Value) -> Result<Pair<'_>, Problem> {
    let [prompt, chosen, rejected] = PairFormat::AzureDpo.fields();
    field(value, "input")?
        .as_object()
        .ok_or_else(|| problem("input", "expected an object with `messages`"))?;
    let pair = Pair {
        format: PairFormat::AzureDpo,
        prompt: field(value, prompt)?,
        chosen: field(value, chosen)?,
        rejected: field(value, rejected)?,
    };
    check_prompt(pair.prompt, prompt)?;
    check_answer(pair.chosen, chosen)?;
    check_answer(pair.rejected, rejected)?;
    Ok(pair)
}

fn trl_pair(value: &Value) -> Result<Pair<'_>, Problem> {
    let Some(prompt) = value.get("prompt") else {
        return Err(problem(
            "prompt",
            "missing (TRL's implicit-prompt form is not read: give the turns both answers share as `prompt`)",
        ));
    };
    let (chosen, rejected) = (field(value, "chosen")?, field(value, "rejected")?);
    let format = match prompt {
        Value::String(_) => PairFormat::TrlText,
        Value::Array(_) => PairFormat::TrlConversational,
        _ => {
            return Err(problem("prompt", "expected a string or a list of messages"));
        }
    };
    let pair = Pair {
        format,
        prompt,
        chosen,
        rejected,
    };
    if format == PairFormat::TrlText {
        for (v, name) in [
            (prompt, "prompt"),
            (chosen, "chosen"),
            (rejected, "rejected"),
        ] {
            match v.as_str() {
                Some(s) if !s.trim().is_empty() || name == "prompt" => {}
                Some(_) => return Err(problem(name, "is empty")),
                None => {
                    return Err(problem(
                        name,
                        "expected a string, as the prompt is one (plain-text format)",
                    ));
                }
            }
        }
        return Ok(pair);
    }
    check_prompt(prompt, "prompt")?;
    check_answer(chosen, "chosen")?;
    check_answer(rejected, "rejected")?;
    Ok(pair)
}

/// Roles an answer may hold: what the model says, and tool results between.
const ANSWER_ROLES: [&str; 2] = ["assistant", "tool"];

fn messages<'a>(value: &'a Value, name: &str) -> Result<&'a [Value], Problem> {
    let list = value
        .as_array()
        .ok_or_else(|| problem(name, "expected a list of messages"))?;
    for (i, m) in list.iter().enumerate() {
        if m.get("role").and_then(Value::as_str).is_none() {
            return Err(problem(
                &format!("{name}[{i}].role"),
                "expected a string role",
            ));
        }
    }
    Ok(list)
}

fn check_prompt(value: &Value, name: &str) -> Result<(), Problem> {
    if messages(value, name)?.is_empty() {
        return Err(problem(name, "has no messages"));
    }
    Ok(())
}

fn check_answer(value: &Value, name: &str) -> Result<(), Problem> {
    let list = messages(value, name)?;
    for (i, m) in list.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        if !ANSWER_ROLES.contains(&role) {
            return Err(problem(
                &format!("{name}[{i}].role"),
                // The role's value is input text and is not echoed: errors carry no content.
                "is not assistant or tool; answers hold only the model's (and tools') messages",
            ));
        }
    }
    if !list
        .iter()
        .any(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))
    {
        return Err(problem(name, "has no assistant message"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> Problem {
        read_pair(&v).unwrap_err()
    }

    #[test]
    fn both_formats_are_read_and_told_apart() {
        let azure = json!({
            "input": {"messages": [{"role": "user", "content": "BP?"}]},
            "preferred_output": [{"role": "assistant", "content": "Please share vitals."}],
            "non_preferred_output": [{"role": "assistant", "content": "It is fine."}]
        });
        let p = read_pair(&azure).unwrap();
        assert_eq!(p.format, PairFormat::AzureDpo);
        assert_eq!(p.prompt, &azure["input"]["messages"]);
        let trl = json!({"prompt": [{"role": "user", "content": "BP?"}],
            "chosen": [{"role": "assistant", "content": "a"}],
            "rejected": [{"role": "assistant", "content": "b"}]});
        assert_eq!(
            read_pair(&trl).unwrap().format,
            PairFormat::TrlConversational
        );
        let text = json!({"prompt": "BP is", "chosen": " unknown", "rejected": " fine"});
        assert_eq!(read_pair(&text).unwrap().format, PairFormat::TrlText);
    }

    #[test]
    fn bad_pairs_name_their_field() {
        let mixed = err(json!({"input": {"messages": []}, "prompt": "x",
            "chosen": "a", "rejected": "b", "preferred_output": []}));
        assert!(mixed.1.contains("mixes"), "{mixed:?}");
        let same = err(json!({"prompt": "x", "chosen": "a", "rejected": "a"}));
        assert_eq!(same.0, "rejected");
        let no_answer = err(json!({"prompt": [{"role": "user", "content": "q"}],
            "chosen": [{"role": "tool", "content": "a"}],
            "rejected": [{"role": "assistant", "content": "b"}]}));
        assert_eq!(no_answer, problem("chosen", "has no assistant message"));
        let user_in_answer = err(json!({
            "input": {"messages": [{"role": "user", "content": "q"}]},
            "preferred_output": [{"role": "user", "content": "a"}],
            "non_preferred_output": [{"role": "assistant", "content": "b"}]}));
        assert_eq!(user_in_answer.0, "preferred_output[0].role");
        assert!(!user_in_answer.1.contains("user"), "{user_in_answer:?}");
        let kinds = err(json!({"prompt": "x", "chosen": [], "rejected": "b"}));
        assert_eq!(kinds.0, "chosen");
        let implicit = err(json!({"chosen": [], "rejected": []}));
        assert_eq!(implicit.0, "prompt");
        let no_input = err(json!({"preferred_output": [], "non_preferred_output": []}));
        assert_eq!(no_input, problem("input", "missing"));
    }
}
