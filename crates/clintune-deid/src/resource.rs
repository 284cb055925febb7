//! Applying the policy to one record: keep, shift, pseudonymize, scrub or drop
//! each field.

use crate::audit::Audit;
use crate::dates::{FhirDate, age_years};
use crate::error::RecordError;
use crate::input::preference::read_pair;
use crate::input::route::patient_id_from_reference;
use crate::output::Row;
use crate::policy::{FieldKind, Policy};
use crate::pseudonym::Pseudonymizer;
use crate::scrub::{Category, KnownMatcher, Rule, ScrubContext, Scrubber};
use base64::Engine;
use chrono::{Datelike, NaiveDate};
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// Stage-wide, read-only state shared by all workers.
#[derive(Debug)]
pub struct Deidentifier<'a> {
    /// The policy.
    pub policy: &'a Policy,
    /// The free-text scrubber.
    pub scrubber: &'a Scrubber,
    /// Keyed pseudonyms.
    pub pseudonymizer: &'a Pseudonymizer,
    /// Date as of which ages of living patients are computed.
    pub as_of: NaiveDate,
    /// The words of the input files' folder names (lower case): a patient
    /// whose name is among them has a folder named after them.
    pub path_words: &'a BTreeSet<String>,
}

/// One patient's de-identification state.
#[derive(Debug)]
pub struct PatientCtx {
    /// Pseudonymous patient key.
    pub patient_key: String,
    /// Date shift in days.
    pub shift_days: i64,
    /// Matcher for the patient's own identifiers.
    pub known: Option<KnownMatcher>,
    /// Original birth date, for ages.
    pub birth_date: Option<NaiveDate>,
    /// True when the patient is at or over the age cap: birth date removed, ages capped.
    pub capped: bool,
}

/// Where a record came from, for error messages.
#[derive(Debug, Clone)]
pub struct Location {
    /// Input file as displayed.
    pub file: String,
    /// `line N` or `entry N`.
    pub record: String,
}

impl Location {
    fn err(&self, field: &str, problem: &str) -> RecordError {
        RecordError {
            file: self.file.clone(),
            record: self.record.clone(),
            field: field.to_string(),
            problem: problem.to_string(),
        }
    }
}

/// De-identifies a record under `d` for patient `p`.
pub struct Applier<'a> {
    /// Shared state.
    pub d: &'a Deidentifier<'a>,
    /// The patient.
    pub p: &'a PatientCtx,
    /// The record's location.
    pub loc: &'a Location,
    /// Counts.
    pub audit: &'a mut Audit,
}

impl Applier<'_> {
    fn scrub(&mut self, text: &str) -> String {
        let policy = self.d.policy;
        let ctx = ScrubContext {
            known: self.p.known.as_ref(),
            shift_days: self.p.shift_days,
            patient_key: &self.p.patient_key,
            pseudonymizer: self.d.pseudonymizer,
            names: policy.text.names,
            dates: policy.dates.text,
            capped_birth_date: if self.p.capped {
                self.p.birth_date
            } else {
                None
            },
            dob_cutoff_year: Some(self.d.as_of.year() - policy.dates.age_cap as i32),
        };
        self.d.scrubber.scrub(text, &ctx, &mut self.audit.phi)
    }

    fn age_at(&self, date: NaiveDate) -> Option<i32> {
        let cap = self.d.policy.dates.age_cap as i32;
        self.p.birth_date.map(|b| age_years(b, date).clamp(0, cap))
    }

    /// De-identifies a FHIR resource.
    pub fn resource(&mut self, value: &Value) -> Result<Row, RecordError> {
        let obj = value
            .as_object()
            .ok_or_else(|| self.loc.err("(record)", "expected a JSON object"))?;
        let rt = obj
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or("");
        let rp = self
            .d
            .policy
            .resources
            .get(rt)
            .ok_or_else(|| self.loc.err("resourceType", "not in policy"))?;
        // Resources without an id are keyed by where they came from, so two
        // of them never share a record key.
        let id = match obj.get("id").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => id.to_string(),
            _ => format!("{}#{}", self.loc.file, self.loc.record),
        };
        let mut fields = Map::new();
        let mut texts = Vec::new();
        for (key, v) in obj {
            if key == "resourceType" || key == "id" {
                continue;
            }
            match rp.fields.get(key) {
                Some(kind) => self.field(rt, key, *kind, v, &mut fields, &mut texts)?,
                None => {
                    self.audit.drop_field(rt, key);
                    if let Some(c) = structured_phi_category(rt, key) {
                        self.audit.structured_phi(c);
                    }
                }
            }
        }
        let time = rp.time.iter().find_map(|path| {
            crate::input::route::dotted(value, path)
                .and_then(Value::as_str)
                .and_then(FhirDate::parse)
        });
        let age = time.as_ref().and_then(|t| self.age_at(t.date()));
        Ok(Row {
            patient_key: self.p.patient_key.clone(),
            source: "fhir",
            resource_type: rt.to_string(),
            record_key: self.d.pseudonymizer.record_key(rt, &id),
            timestamp: time.map(|t| t.shifted(self.p.shift_days).render()),
            age_years: age,
            fields: crate::output::fields_json(fields),
            text: (!texts.is_empty()).then(|| texts.join("\n\n")),
        })
    }

    fn field(
        &mut self,
        rt: &str,
        key: &str,
        kind: FieldKind,
        v: &Value,
        out: &mut Map<String, Value>,
        texts: &mut Vec<String>,
    ) -> Result<(), RecordError> {
        let kept = match kind {
            FieldKind::Code => Some(self.code(key, v)?),
            FieldKind::Structured => Some(self.structured(rt, key, v)),
            FieldKind::Value => Some(self.value(rt, key, v)),
            FieldKind::Text => Some(self.text(key, v)?),
            FieldKind::Date => Some(self.date(rt, key, v)?),
            FieldKind::BirthDate => self.birth_date(key, v, out)?,
            FieldKind::Reference => Some(self.reference(rt, key, v)?),
            FieldKind::Address => Some(self.address(rt, key, v)),
            FieldKind::Attachment => {
                self.attachments(rt, key, v, texts)?;
                None
            }
        };
        if let Some(k) = kept {
            out.insert(key.to_string(), k);
        }
        Ok(())
    }

    fn code(&mut self, key: &str, v: &Value) -> Result<Value, RecordError> {
        match v {
            Value::String(s) if looks_like_code(s) => Ok(v.clone()),
            Value::String(s) => Ok(Value::String(self.scrub(s))),
            Value::Array(items) => items
                .iter()
                .map(|i| self.code(key, i))
                .collect::<Result<_, _>>()
                .map(Value::Array),
            _ => Err(self.loc.err(key, "expected a code (string)")),
        }
    }

    fn structured(&mut self, rt: &str, path: &str, v: &Value) -> Value {
        match v {
            Value::Object(map) => {
                let mut out = Map::new();
                for (k, inner) in map {
                    let inner_path = format!("{path}.{k}");
                    if !self.d.policy.structured.keys.contains(k) {
                        self.audit.drop_field(rt, &inner_path);
                        continue;
                    }
                    let kept = match inner {
                        Value::String(s)
                            if self.d.policy.structured.verbatim.contains(k)
                                && looks_like_code(s) =>
                        {
                            inner.clone()
                        }
                        Value::String(s) => Value::String(self.scrub(s)),
                        other => self.structured(rt, &inner_path, other),
                    };
                    out.insert(k.clone(), kept);
                }
                Value::Object(out)
            }
            Value::Array(items) => {
                Value::Array(items.iter().map(|i| self.structured(rt, path, i)).collect())
            }
            Value::String(s) => Value::String(self.scrub(s)),
            other => other.clone(),
        }
    }

    fn value(&mut self, rt: &str, key: &str, v: &Value) -> Value {
        match v {
            Value::Number(_) | Value::Bool(_) | Value::Null => v.clone(),
            other => self.structured(rt, key, other),
        }
    }

    fn text(&mut self, key: &str, v: &Value) -> Result<Value, RecordError> {
        match v {
            Value::String(s) => Ok(Value::String(self.scrub(s))),
            Value::Array(items) => items
                .iter()
                .map(|i| self.text(key, i))
                .collect::<Result<_, _>>()
                .map(Value::Array),
            Value::Object(o) => {
                // Annotation: { text, time, author... }: keep the scrubbed text only.
                let t = o
                    .get("text")
                    .ok_or_else(|| self.loc.err(key, "expected text"))?;
                self.text(key, t)
            }
            _ => Err(self.loc.err(key, "expected a string")),
        }
    }

    fn shift(&self, field: &str, s: &str) -> Result<Value, RecordError> {
        FhirDate::parse(s)
            .map(|d| Value::String(d.shifted(self.p.shift_days).render()))
            .ok_or_else(|| self.loc.err(field, "not a FHIR date or dateTime"))
    }

    fn date(&mut self, rt: &str, key: &str, v: &Value) -> Result<Value, RecordError> {
        match v {
            Value::String(s) => self.shift(key, s),
            Value::Object(period) => {
                let mut out = Map::new();
                for (k, inner) in period {
                    match (k.as_str(), inner) {
                        ("start" | "end", Value::String(s)) => {
                            out.insert(k.clone(), self.shift(&format!("{key}.{k}"), s)?);
                        }
                        ("start" | "end", _) => {
                            return Err(self
                                .loc
                                .err(&format!("{key}.{k}"), "expected a date string"));
                        }
                        _ => self.audit.drop_field(rt, &format!("{key}.{k}")),
                    }
                }
                Ok(Value::Object(out))
            }
            _ => Err(self.loc.err(key, "expected a date string or a Period")),
        }
    }

    fn birth_date(
        &mut self,
        key: &str,
        v: &Value,
        out: &mut Map<String, Value>,
    ) -> Result<Option<Value>, RecordError> {
        let s = v
            .as_str()
            .ok_or_else(|| self.loc.err(key, "expected a date string"))?;
        if self.p.capped {
            self.audit.phi.add(Category::Age, Rule::AgeOverCap);
            out.insert(
                "ageGroup".into(),
                Value::String(format!("{}+", self.d.policy.dates.age_cap)),
            );
            return Ok(None);
        }
        self.shift(key, s).map(Some)
    }

    fn reference(&mut self, rt: &str, key: &str, v: &Value) -> Result<Value, RecordError> {
        match v {
            Value::Array(items) => items
                .iter()
                .map(|i| self.reference(rt, key, i))
                .collect::<Result<_, _>>()
                .map(Value::Array),
            Value::Object(o) => {
                let r = o.get("reference").and_then(Value::as_str).ok_or_else(|| {
                    self.loc
                        .err(&format!("{key}.reference"), "expected a string reference")
                })?;
                for k in o.keys().filter(|k| *k != "reference") {
                    self.audit.drop_field(rt, &format!("{key}.{k}"));
                }
                let mut out = Map::new();
                out.insert(
                    "reference".into(),
                    Value::String(self.pseudonymous_reference(r)),
                );
                Ok(Value::Object(out))
            }
            _ => Err(self.loc.err(key, "expected a Reference object")),
        }
    }

    fn pseudonymous_reference(&self, r: &str) -> String {
        if r.contains("Patient/")
            && let Some(id) = patient_id_from_reference(r)
        {
            return format!("Patient/{}", self.d.pseudonymizer.patient_key(&id));
        }
        let (ty, id) = match r.strip_prefix("urn:uuid:") {
            Some(id) => ("urn:uuid", id),
            None => r
                .rsplit_once('/')
                .map(|(t, i)| (t.rsplit('/').next().unwrap_or(t), i))
                .unwrap_or(("ref", r)),
        };
        let ty = if ty.bytes().all(|b| b.is_ascii_alphabetic()) {
            ty
        } else {
            "ref"
        };
        format!("{ty}/{}", self.d.pseudonymizer.identifier("reference", id))
    }

    fn address(&mut self, rt: &str, key: &str, v: &Value) -> Value {
        match v {
            Value::Array(items) => {
                Value::Array(items.iter().map(|i| self.address(rt, key, i)).collect())
            }
            Value::Object(a) => {
                let mut out = Map::new();
                for (k, inner) in a {
                    match (k.as_str(), inner) {
                        ("state" | "country", Value::String(_)) => {
                            out.insert(k.clone(), inner.clone());
                        }
                        ("postalCode", Value::String(z)) => {
                            out.insert("postalCode".into(), Value::String(self.zip3(z)));
                            self.audit.phi.add(Category::Zip, Rule::StructuredZip3);
                        }
                        _ => {
                            self.audit.drop_field(rt, &format!("{key}.{k}"));
                            self.audit.structured_phi(Category::Address);
                        }
                    }
                }
                Value::Object(out)
            }
            _ => Value::Null,
        }
    }

    fn zip3(&self, zip: &str) -> String {
        let digits: String = zip.chars().filter(char::is_ascii_digit).take(3).collect();
        if digits.len() < 3 || self.d.policy.geography.restricted_zip3.contains(&digits) {
            "000".into()
        } else {
            digits
        }
    }

    fn attachments(
        &mut self,
        rt: &str,
        key: &str,
        v: &Value,
        texts: &mut Vec<String>,
    ) -> Result<(), RecordError> {
        let items: Vec<&Value> = match v {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for (i, item) in items.into_iter().enumerate() {
            let (att, path) = match item.get("attachment") {
                Some(a) => (a, format!("{key}[{i}].attachment")),
                None => (item, format!("{key}[{i}]")),
            };
            let content_type = att.get("contentType").and_then(Value::as_str).unwrap_or("");
            let Some(data) = att.get("data") else {
                self.audit
                    .drop_field(rt, &format!("{key}.attachment.no_inline_data"));
                continue;
            };
            if !content_type.starts_with("text/plain") {
                self.audit
                    .drop_field(rt, &format!("{key}.attachment.not_text_plain"));
                continue;
            }
            let data = data.as_str().ok_or_else(|| {
                self.loc
                    .err(&format!("{path}.data"), "expected a base64 string")
            })?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .map_err(|_| self.loc.err(&format!("{path}.data"), "invalid base64"))?;
            let text = String::from_utf8(bytes).map_err(|_| {
                self.loc
                    .err(&format!("{path}.data"), "decoded text is not UTF-8")
            })?;
            texts.push(self.scrub(&text));
        }
        Ok(())
    }

    /// De-identifies a chat trace: message contents scrubbed, other roles and keys dropped.
    pub fn chat(&mut self, value: &Value, record_id: &str) -> Result<Row, RecordError> {
        const RT: &str = "ChatTrace";
        let obj = value
            .as_object()
            .ok_or_else(|| self.loc.err("(record)", "expected a JSON object"))?;
        for key in obj.keys().filter(|k| *k != "messages") {
            self.audit.drop_field(RT, key);
        }
        let list = obj
            .get("messages")
            .ok_or_else(|| self.loc.err("messages", "expected an array"))?;
        let messages = self.messages(list, "messages", RT)?;
        let mut fields = Map::new();
        fields.insert("messages".into(), messages);
        Ok(self.trace_row(RT, record_id, fields))
    }

    /// De-identifies a preference pair (checked when it was routed) into one
    /// layout whatever its format: `format`, and `prompt`, `chosen` and
    /// `rejected`, each a list of messages or, for plain-text pairs, a
    /// string; every text scrubbed, other keys dropped and counted.
    pub fn preference(&mut self, value: &Value, record_id: &str) -> Result<Row, RecordError> {
        const RT: &str = "PreferencePair";
        let pair = read_pair(value).map_err(|(field, problem)| self.loc.err(&field, &problem))?;
        let names = pair.format.fields();
        let known: Vec<&str> = names
            .iter()
            .map(|n| n.split('.').next().unwrap_or(n))
            .collect();
        for key in value.as_object().into_iter().flat_map(|o| o.keys()) {
            if !known.contains(&key.as_str()) {
                self.audit.drop_field(RT, key);
            }
        }
        let mut fields = Map::new();
        fields.insert("format".into(), Value::String(pair.format.as_str().into()));
        let parts = [pair.prompt, pair.chosen, pair.rejected];
        for ((part, name), key) in parts
            .into_iter()
            .zip(names)
            .zip(["prompt", "chosen", "rejected"])
        {
            let scrubbed = match part {
                Value::String(text) => Value::String(self.scrub(text)),
                list => self.messages(list, name, RT)?,
            };
            fields.insert(key.into(), scrubbed);
        }
        Ok(self.trace_row(RT, record_id, fields))
    }

    fn trace_row(&self, rt: &str, record_id: &str, fields: Map<String, Value>) -> Row {
        Row {
            patient_key: self.p.patient_key.clone(),
            source: "chat",
            resource_type: rt.into(),
            record_key: self.d.pseudonymizer.record_key(rt, record_id),
            timestamp: None,
            age_years: None,
            fields: crate::output::fields_json(fields),
            text: None,
        }
    }

    /// A list of messages with their contents scrubbed; roles outside the
    /// policy and keys other than `role` and `content` dropped and counted
    /// under `rt`. `field` names the list in errors.
    fn messages(&mut self, list: &Value, field: &str, rt: &str) -> Result<Value, RecordError> {
        let list = list
            .as_array()
            .ok_or_else(|| self.loc.err(field, "expected an array"))?;
        let mut messages = Vec::new();
        for (i, m) in list.iter().enumerate() {
            let at = format!("{field}[{i}]");
            let role = m
                .get("role")
                .and_then(Value::as_str)
                .ok_or_else(|| self.loc.err(&format!("{at}.role"), "expected a string"))?;
            if !self.d.policy.chat.roles.contains(role) {
                self.audit.drop_field(rt, "messages.role_not_in_policy");
                continue;
            }
            let content = match m.get("content") {
                Some(Value::String(s)) => Value::String(self.scrub(s)),
                Some(Value::Array(parts)) => Value::Array(self.content_parts(&at, parts, rt)?),
                Some(Value::Null) | None => Value::Null,
                Some(_) => {
                    return Err(self.loc.err(
                        &format!("{at}.content"),
                        "expected a string or an array of parts",
                    ));
                }
            };
            for k in m
                .as_object()
                .into_iter()
                .flat_map(|o| o.keys())
                .filter(|k| *k != "role" && *k != "content")
            {
                self.audit.drop_field(rt, &format!("messages.{k}"));
            }
            let mut out = Map::new();
            out.insert("role".into(), Value::String(role.to_string()));
            out.insert("content".into(), content);
            messages.push(Value::Object(out));
        }
        Ok(Value::Array(messages))
    }

    fn content_parts(
        &mut self,
        at: &str,
        parts: &[Value],
        rt: &str,
    ) -> Result<Vec<Value>, RecordError> {
        let mut out = Vec::new();
        for (j, part) in parts.iter().enumerate() {
            match (part.get("type").and_then(Value::as_str), part.get("text")) {
                (Some("text"), Some(Value::String(t))) => {
                    let mut p = Map::new();
                    p.insert("type".into(), Value::String("text".into()));
                    p.insert("text".into(), Value::String(self.scrub(t)));
                    out.push(Value::Object(p));
                }
                (Some("text"), _) => {
                    return Err(self
                        .loc
                        .err(&format!("{at}.content[{j}].text"), "expected a string"));
                }
                _ => self.audit.drop_field(rt, "messages.content.not_text_part"),
            }
        }
        Ok(out)
    }
}

/// FHIR codes are short tokens without spaces; anything else may be prose.
fn looks_like_code(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:/|+-#%?=&[]{}*^".contains(&b))
}

/// Identifier kinds of Patient fields dropped by the policy, for the audit.
fn structured_phi_category(rt: &str, key: &str) -> Option<Category> {
    if rt != "Patient" && rt != "RelatedPerson" {
        return None;
    }
    match key {
        "name" | "contact" => Some(Category::Name),
        "telecom" => Some(Category::Phone),
        "identifier" => Some(Category::Id),
        "address" => Some(Category::Address),
        _ => None,
    }
}
