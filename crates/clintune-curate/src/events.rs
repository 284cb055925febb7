//! One de-identified FHIR record as one line of a patient's timeline.

use crate::source::Record;
use serde_json::Value;

/// What a FHIR resource type is called in a timeline, and where its concept is.
fn label_and_concept(resource_type: &str) -> (&str, &'static str) {
    match resource_type {
        "Encounter" => ("Encounter", "type"),
        "Condition" => ("Diagnosis", "code"),
        "MedicationRequest" | "MedicationStatement" => ("Medication", "medicationCodeableConcept"),
        "Procedure" => ("Procedure", "code"),
        "Immunization" => ("Immunization", "vaccineCode"),
        "Observation" => ("Observation", "code"),
        "DiagnosticReport" => ("Report", "code"),
        "AllergyIntolerance" => ("Allergy", "code"),
        "CarePlan" => ("Care plan", "category"),
        "DocumentReference" => ("Note", "type"),
        other => (other, "code"),
    }
}

/// The readable name of a CodeableConcept (or the first of a list of them):
/// its `text`, else its first coding's `display`.
pub fn concept(value: &Value) -> Option<String> {
    let v = match value {
        Value::Array(items) => items.first()?,
        v => v,
    };
    let text = v.get("text").and_then(Value::as_str).or_else(|| {
        v.get("coding")?
            .as_array()?
            .iter()
            .find_map(|c| c.get("display")?.as_str())
    })?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// The calendar day of a record (`YYYY-MM-DD`), if it has a time.
pub fn day(record: &Record) -> Option<&str> {
    record.timestamp.as_deref().and_then(|t| t.get(..10))
}

/// `DATE (age N)`, the prefix of every timeline line.
pub fn when(record: &Record) -> String {
    let date = day(record).unwrap_or("undated");
    match record.age_years {
        Some(age) => format!("{date} (age {age})"),
        None => date.to_string(),
    }
}

/// What happened, without date: `Diagnosis: Acute bronchitis`.
pub fn what(record: &Record) -> Option<String> {
    let (label, field) = label_and_concept(&record.resource_type);
    let mut name = concept(record.fields.get(field)?).or_else(|| encounter_class(record))?;
    if record.resource_type == "Observation"
        && let Some(value) = observation_value(&record.fields)
    {
        name = format!("{name} = {value}");
    }
    Some(format!("{label}: {name}"))
}

fn encounter_class(record: &Record) -> Option<String> {
    let class = record.fields.get("class")?;
    let code = class.get("display").or_else(|| class.get("code"))?;
    code.as_str().map(str::to_string)
}

/// The value of an observation; for one made of components (blood pressure),
/// each component's name and value.
fn observation_value(fields: &Value) -> Option<String> {
    if let Some(v) = single_value(fields) {
        return Some(v);
    }
    let parts: Vec<String> = fields
        .get("component")?
        .as_array()?
        .iter()
        .filter_map(|c| Some(format!("{} {}", concept(c.get("code")?)?, single_value(c)?)))
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn single_value(fields: &Value) -> Option<String> {
    if let Some(q) = fields.get("valueQuantity") {
        let value = q.get("value")?.as_f64()?;
        let unit = q.get("unit").and_then(Value::as_str).unwrap_or("");
        let number = format!("{value:.2}");
        let number = number.trim_end_matches('0').trim_end_matches('.');
        return Some(format!("{number} {unit}").trim_end().to_string());
    }
    if let Some(c) = fields.get("valueCodeableConcept") {
        return concept(c);
    }
    fields
        .get("valueString")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// A structured event as one line: `2012-06-02 (age 35) Medication: Naproxen`.
/// Records without a readable concept give `None`.
pub fn line(record: &Record) -> Option<String> {
    Some(format!("{} {}", when(record), what(record)?))
}

/// A clinical note as a block: a heading line, then its text.
pub fn note_block(record: &Record, text: &str) -> String {
    let kind = record
        .fields
        .get("type")
        .and_then(concept)
        .unwrap_or_else(|| "clinical note".into());
    format!("{} Note ({kind}):\n{}", when(record), text.trim())
}

/// The timeline header: what kind of record this is and the patient's sex.
pub fn header(records: &[Record]) -> String {
    let patient = records.iter().find(|r| r.resource_type == "Patient");
    let sex = patient
        .and_then(|p| p.fields.get("gender")?.as_str())
        .unwrap_or("unknown");
    let over_89 = patient
        .and_then(|p| p.fields.get("ageGroup")?.as_str())
        .map(|g| format!(", age group {g}"))
        .unwrap_or_default();
    format!("Patient record (de-identified, dates shifted). Sex: {sex}{over_89}.")
}
