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
use crate::terminology::{self, CodeSyntax, Rejection};
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
                    self.drop_key(rt, None, key);
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
            FieldKind::Code => self.code(rt, key, v)?,
            FieldKind::Structured => self.structured(rt, key, v),
            FieldKind::Value => self.value(rt, key, v),
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

    /// Counts a dropped input key under `parent` (a schema path, or none for
    /// a top-level key): by its name when the name is schema
    /// ([`Self::is_schema_name`]), else under a fixed bucket with a short
    /// keyed hash, so that a key that is itself PHI never reaches the audit.
    fn drop_key(&mut self, rt: &str, parent: Option<&str>, key: &str) {
        let name = if self.is_schema_name(rt, key) {
            key.to_string()
        } else {
            crate::audit::unknown_field(Some(&self.key_tag(key)))
        };
        let path = match parent {
            Some(p) => format!("{p}.{name}"),
            None => name,
        };
        self.audit.drop_field(rt, &path);
    }

    /// Whether an input key is schema, and so may be named in the audit: a
    /// field or patient or time field the policy lists for `rt`, a
    /// structured member, a chat patient field, or a FHIR R4 element name.
    fn is_schema_name(&self, rt: &str, key: &str) -> bool {
        let p = self.d.policy;
        let head = |path: &String| path.split('.').next() == Some(key);
        crate::audit::is_fhir_element(key)
            || p.structured.keys.contains(key)
            || p.resources.get(rt).is_some_and(|r| {
                r.fields.contains_key(key) || r.patient.iter().any(head) || r.time.iter().any(head)
            })
            || p.chat.patient_fields.iter().any(head)
    }

    /// A short keyed hash of an unknown key: distinct keys can be told apart
    /// in the audit, but not read or guessed without the key.
    fn key_tag(&self, key: &str) -> String {
        self.d
            .pseudonymizer
            .identifier("audit-unknown-field", key)
            .chars()
            .take(8)
            .collect()
    }

    /// Counts a coded value dropped at `path` for `why`.
    fn reject(&mut self, rt: &str, path: &str, why: Rejection) {
        self.audit
            .drop_field(rt, &format!("{path}.{}", why.reason()));
    }

    /// A FHIR `code` primitive (or a list of them): kept when it has a
    /// code's form, else dropped and counted. Never scrubbed into the
    /// output: a scrubbed code is no code, and a code-shaped name would pass.
    fn code(&mut self, rt: &str, key: &str, v: &Value) -> Result<Option<Value>, RecordError> {
        match v {
            Value::String(s) if is_code_primitive(key, s) => Ok(Some(v.clone())),
            Value::String(_) => {
                self.reject(rt, key, Rejection::InvalidCode);
                Ok(None)
            }
            Value::Array(items) => {
                let mut kept = Vec::new();
                for i in items {
                    kept.extend(self.code(rt, key, i)?);
                }
                Ok(Some(Value::Array(kept)))
            }
            _ => Err(self.loc.err(key, "expected a code (string)")),
        }
    }

    /// A structured value at `path`, or `None` when it is dropped whole (a
    /// Coding that fails validation; counted).
    fn structured(&mut self, rt: &str, path: &str, v: &Value) -> Option<Value> {
        match v {
            Value::Object(map) => self.structured_object(rt, path, map).map(Value::Object),
            Value::Array(items) => Some(Value::Array(
                items
                    .iter()
                    .filter_map(|i| self.structured(rt, path, i))
                    .collect(),
            )),
            Value::String(s) => Some(Value::String(self.scrub(s))),
            other => Some(other.clone()),
        }
    }

    /// An object inside a structured field: a Coding is validated whole, a
    /// Quantity member by member, anything else (a CodeableConcept, a
    /// Dosage) member by member.
    fn structured_object(
        &mut self,
        rt: &str,
        path: &str,
        map: &Map<String, Value>,
    ) -> Option<Map<String, Value>> {
        let kind = if !is_coded(map) {
            Coded::Plain
        } else if is_quantity(path, map) {
            let system = map.get("system").and_then(Value::as_str);
            Coded::Quantity(system.and_then(|s| self.d.policy.terminology.syntax(s)))
        } else {
            if let Err(why) = self.check_coding(map) {
                self.reject(rt, path, why);
                return None;
            }
            Coded::Coding
        };
        let mut out = Map::new();
        for (k, inner) in map {
            if !self.d.policy.structured.keys.contains(k) {
                self.drop_key(rt, Some(path), k);
                continue;
            }
            let inner_path = format!("{path}.{k}");
            if let Some(kept) = self.member(rt, &inner_path, k, inner, kind) {
                out.insert(k.clone(), kept);
            }
        }
        Some(out)
    }

    /// A Coding's system, code and version against the policy's terminology.
    fn check_coding(&self, map: &Map<String, Value>) -> Result<(), Rejection> {
        let member = |k: &str, why: Rejection| match map.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(why),
        };
        let system = member("system", Rejection::NotInTerminology)?;
        let code = member("code", Rejection::InvalidCode)?;
        let version = member("version", Rejection::InvalidVersion)?;
        self.d
            .policy
            .terminology
            .check_coding(system, code, version)
    }

    /// One member of a structured object: a coded member kept only when
    /// validated (else dropped and counted), free text scrubbed, anything
    /// else walked.
    fn member(
        &mut self,
        rt: &str,
        path: &str,
        key: &str,
        inner: &Value,
        kind: Coded,
    ) -> Option<Value> {
        let Some(verdict) = coded_member(key, inner, kind) else {
            return match inner {
                Value::String(s) => Some(Value::String(self.scrub(s))),
                other => self.structured(rt, path, other),
            };
        };
        match verdict {
            Ok(()) => Some(inner.clone()),
            Err(why) => {
                self.reject(rt, path, why);
                None
            }
        }
    }

    /// A `value` field: numbers and booleans cannot carry a name, so they
    /// stay; anything else is walked as a structured value.
    fn value(&mut self, rt: &str, key: &str, v: &Value) -> Option<Value> {
        match v {
            Value::Number(_) | Value::Bool(_) | Value::Null => Some(v.clone()),
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
                        _ => self.drop_key(rt, Some(key), k),
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
                    self.drop_key(rt, Some(key), k);
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
                            self.drop_key(rt, Some(key), k);
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
            self.drop_key(RT, None, key);
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
                self.drop_key(RT, None, key);
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
                self.drop_key(rt, Some("messages"), k);
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

/// What kind of object a structured member belongs to, for validating it.
#[derive(Debug, Clone, Copy)]
enum Coded {
    /// No coded members (a CodeableConcept, a Dosage, a component).
    Plain,
    /// A Coding whose system, code and version were validated together.
    Coding,
    /// A Quantity, with the form of its system's codes when the system is allowlisted.
    Quantity(Option<CodeSyntax>),
}

/// Whether an object carries coded members (a Coding or a Quantity), which
/// must be validated: `code` counts unless it is an object (a
/// CodeableConcept, as in `component.code`).
fn is_coded(map: &Map<String, Value>) -> bool {
    ["system", "version", "unit", "comparator"]
        .iter()
        .any(|k| map.contains_key(*k))
        || map.get("code").is_some_and(|c| !c.is_object())
}

/// Whether a coded object is a Quantity (validated member by member) rather
/// than a Coding (validated whole): it has a value, a unit or a comparator,
/// and is not an element of a `coding` list.
fn is_quantity(path: &str, map: &Map<String, Value>) -> bool {
    path.rsplit('.').next() != Some("coding")
        && ["value", "unit", "comparator"]
            .iter()
            .any(|k| map.contains_key(*k))
}

/// The verdict on a coded member, or `None` for a member that is not coded
/// (free text, numbers, nested structures). Only strings are ever codes.
fn coded_member(key: &str, inner: &Value, kind: Coded) -> Option<Result<(), Rejection>> {
    let s = inner.as_str();
    let check = |ok: bool, why: Rejection| Some(if ok { Ok(()) } else { Err(why) });
    match (key, kind) {
        ("system" | "code" | "version", Coded::Coding) => Some(Ok(())),
        ("system", Coded::Quantity(syntax)) => check(syntax.is_some(), Rejection::NotInTerminology),
        ("code", Coded::Quantity(None)) => Some(Err(Rejection::NotInTerminology)),
        ("code", Coded::Quantity(Some(syntax))) => {
            check(s.is_some_and(|c| syntax.accepts(c)), Rejection::InvalidCode)
        }
        ("version", Coded::Quantity(syntax)) => check(
            syntax.is_some() && s.is_some_and(terminology::is_version),
            Rejection::InvalidVersion,
        ),
        ("system" | "code" | "version", Coded::Plain) if !inner.is_object() => {
            Some(Err(Rejection::InvalidCode))
        }
        ("unit", _) => check(s.is_some_and(terminology::is_ucum), Rejection::InvalidUnit),
        ("comparator", _) => check(
            s.is_some_and(terminology::is_comparator),
            Rejection::InvalidCode,
        ),
        ("periodUnit", _) => check(
            s.is_some_and(terminology::is_unit_of_time),
            Rejection::InvalidCode,
        ),
        ("status" | "kind", _) => check(
            s.is_some_and(terminology::is_short_code),
            Rejection::InvalidCode,
        ),
        ("language", _) if !inner.is_object() => check(
            s.is_some_and(terminology::is_language),
            Rejection::InvalidCode,
        ),
        _ => None,
    }
}

/// Whether a FHIR `code` primitive has a code's form: a language tag for
/// `language`, else a code of FHIR's own value sets.
fn is_code_primitive(key: &str, s: &str) -> bool {
    if key == "language" {
        terminology::is_language(s)
    } else {
        terminology::is_short_code(s)
    }
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
