//! A patient's own identifiers, read from the structured record.
//!
//! These are searched for in the patient's free text in every common written
//! form, whatever the dictionaries and patterns find: a note that names the
//! patient is caught even when the name is not in any name list.

use chrono::NaiveDate;
use serde_json::Value;
use std::collections::BTreeSet;

/// What kind of identifier a known value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KnownKind {
    /// A given name of the patient.
    GivenName,
    /// A family name of the patient.
    FamilyName,
    /// A name of a relative or contact.
    RelativeName,
    /// An address line, city or district.
    Location,
    /// A record number, SSN, licence or other identifier value.
    Identifier,
    /// An email address.
    Email,
}

/// The identifiers known for one patient.
#[derive(Debug, Clone, Default)]
pub struct KnownIdentifiers {
    /// Literal values to search for (case-insensitive, whole words).
    pub values: Vec<(String, KnownKind)>,
    /// Phone and fax numbers as digit strings (last ten digits).
    pub phones: Vec<String>,
    /// Birth date.
    pub birth_date: Option<NaiveDate>,
    /// Date of death.
    pub deceased: Option<NaiveDate>,
}

impl KnownIdentifiers {
    /// Collects identifiers from a FHIR Patient resource.
    pub fn from_patient(patient: &Value) -> Self {
        let mut k = Self::default();
        for name in array(patient, "name") {
            k.add_name(name, KnownKind::GivenName, KnownKind::FamilyName);
        }
        for contact in array(patient, "contact") {
            if let Some(name) = contact.get("name") {
                k.add_name(name, KnownKind::RelativeName, KnownKind::RelativeName);
            }
            k.add_telecoms(contact);
            if let Some(a) = contact.get("address") {
                k.add_address(a);
            }
        }
        for id in array(patient, "identifier") {
            if let Some(v) = id.get("value").and_then(Value::as_str) {
                k.add_identifier(v);
            }
        }
        k.add_telecoms(patient);
        for a in array(patient, "address") {
            k.add_address(a);
        }
        for ext in array(patient, "extension") {
            k.add_extension(ext);
        }
        k.birth_date = date_field(patient, "birthDate");
        k.deceased = date_field(patient, "deceasedDateTime");
        k.values.sort();
        k.values.dedup();
        k
    }

    fn add_name(&mut self, name: &Value, given_kind: KnownKind, family_kind: KnownKind) {
        for g in array(name, "given") {
            if let Some(s) = g.as_str() {
                self.add_words(s, given_kind);
            }
        }
        if let Some(f) = name.get("family").and_then(Value::as_str) {
            self.add_words(f, family_kind);
        }
        if let Some(t) = name.get("text").and_then(Value::as_str) {
            self.add_words(t, family_kind);
        }
    }

    /// Adds each word of a name, each part of a hyphenated or apostrophed
    /// name ("Quaxworth-Smythe" also gives "Smythe", "O'Name" also "Name" and
    /// "OName"), the word without trailing digits when the source system
    /// decorates names that way, and common nicknames of given names.
    fn add_words(&mut self, s: &str, kind: KnownKind) {
        for word in s.split(|c: char| c.is_whitespace() || c == ',') {
            let word = word.trim_matches(|c: char| c == '.' || c == '"');
            if word.chars().count() < 2 {
                continue;
            }
            let bare = word.trim_end_matches(|c: char| c.is_ascii_digit());
            for form in [word, bare] {
                self.add_name_forms(form, kind);
            }
        }
    }

    fn add_name_forms(&mut self, word: &str, kind: KnownKind) {
        if word.chars().count() < 2 {
            return;
        }
        self.values.push((word.to_string(), kind));
        let joiners = |c: char| matches!(c, '-' | '\'' | '’' | 'ʼ');
        if word.contains(joiners) {
            let joined: String = word.chars().filter(|c| !joiners(*c)).collect();
            self.values.push((joined, kind));
            for part in word.split(joiners).filter(|p| p.chars().count() >= 3) {
                self.values.push((part.to_string(), kind));
            }
        }
        if kind == KnownKind::GivenName {
            for nick in nicknames(word) {
                self.values.push(((*nick).to_string(), kind));
            }
        }
    }

    /// The name words (patient's and relatives'), for keeping them out of
    /// places other than text, such as the manifest's input paths.
    pub fn name_words(&self) -> BTreeSet<String> {
        self.values
            .iter()
            .filter(|(v, k)| {
                matches!(
                    k,
                    KnownKind::GivenName | KnownKind::FamilyName | KnownKind::RelativeName
                ) && v.chars().count() >= 3
            })
            .map(|(v, _)| v.clone())
            .collect()
    }

    /// Merges the identifiers of another resource of the same patient (a
    /// stub and a full Patient, or a Patient split across files).
    pub fn merge(&mut self, other: KnownIdentifiers) {
        self.values.extend(other.values);
        self.values.sort();
        self.values.dedup();
        self.phones.extend(other.phones);
        self.phones.sort();
        self.phones.dedup();
        self.birth_date = self.birth_date.or(other.birth_date);
        self.deceased = self.deceased.or(other.deceased);
    }

    fn add_identifier(&mut self, v: &str) {
        let v = v.trim();
        if v.len() < 4 {
            return;
        }
        self.values.push((v.to_string(), KnownKind::Identifier));
        let compact: String = v.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        if compact.len() >= 4 && compact != v {
            self.values.push((compact, KnownKind::Identifier));
        }
    }

    fn add_telecoms(&mut self, holder: &Value) {
        for t in array(holder, "telecom") {
            let Some(v) = t.get("value").and_then(Value::as_str) else {
                continue;
            };
            if v.contains('@') {
                self.values.push((v.trim().to_string(), KnownKind::Email));
                continue;
            }
            let digits: String = v.chars().filter(char::is_ascii_digit).collect();
            if digits.len() >= 7 {
                let tail = &digits[digits.len().saturating_sub(10)..];
                self.phones.push(tail.to_string());
            } else if !v.trim().is_empty() {
                self.values
                    .push((v.trim().to_string(), KnownKind::Identifier));
            }
        }
    }

    fn add_address(&mut self, a: &Value) {
        for line in array(a, "line") {
            if let Some(s) = line.as_str() {
                self.add_address_line(s);
            }
        }
        for key in ["city", "district", "text"] {
            if let Some(s) = a.get(key).and_then(Value::as_str)
                && s.trim().len() >= 2
            {
                self.values
                    .push((s.trim().to_string(), KnownKind::Location));
            }
        }
        if let Some(z) = a.get("postalCode").and_then(Value::as_str)
            && z.trim().len() >= 5
        {
            self.values
                .push((z.trim().to_string(), KnownKind::Identifier));
        }
    }

    /// An address line, and the same line without its house number.
    fn add_address_line(&mut self, s: &str) {
        let s = s.trim();
        if s.len() < 3 {
            return;
        }
        self.values.push((s.to_string(), KnownKind::Location));
        let street = s.trim_start_matches(|c: char| c.is_ascii_digit() || c == ' ' || c == '-');
        if street.len() >= 4 && street.len() != s.len() {
            self.values.push((street.to_string(), KnownKind::Location));
        }
    }

    fn add_extension(&mut self, ext: &Value) {
        let url = ext.get("url").and_then(Value::as_str).unwrap_or("");
        if let Some(s) = ext.get("valueString").and_then(Value::as_str)
            && url.ends_with("mothersMaidenName")
        {
            self.add_words(s, KnownKind::RelativeName);
        }
        if let Some(a) = ext.get("valueAddress") {
            self.add_address(a);
        }
        for inner in array(ext, "extension") {
            self.add_extension(inner);
        }
    }
}

/// Common English nicknames of a given name (any case); empty for others.
/// Nicknames that are also ordinary words ("will", "bill", "pat") are left
/// out: known names are matched in any case.
fn nicknames(given: &str) -> &'static [&'static str] {
    const TABLE: &[(&str, &[&str])] = &[
        ("william", &["billy", "willy", "liam"]),
        ("robert", &["bob", "bobby", "robbie", "bert"]),
        ("richard", &["rick", "ricky"]),
        ("james", &["jim", "jimmy", "jamie"]),
        ("john", &["johnny"]),
        ("joseph", &["joe", "joey"]),
        ("thomas", &["tom", "tommy"]),
        ("charles", &["charlie", "chas"]),
        ("michael", &["mike", "mikey", "mick"]),
        ("christopher", &["chris", "topher"]),
        ("daniel", &["dan", "danny"]),
        ("matthew", &["matt"]),
        ("anthony", &["tony"]),
        ("edward", &["eddie", "ted", "ned"]),
        ("steven", &["steve"]),
        ("stephen", &["steve"]),
        ("kenneth", &["kenny"]),
        ("joshua", &["josh"]),
        ("andrew", &["andy"]),
        ("nicholas", &["nick", "nicky"]),
        ("benjamin", &["ben", "benny"]),
        ("samuel", &["sam", "sammy"]),
        ("alexander", &["alex", "xander"]),
        ("jonathan", &["jon", "jonny"]),
        ("timothy", &["tim", "timmy"]),
        ("gregory", &["greg"]),
        ("patrick", &["paddy"]),
        ("peter", &["pete"]),
        ("lawrence", &["larry"]),
        (
            "elizabeth",
            &["liz", "lizzie", "beth", "betty", "eliza", "libby"],
        ),
        ("margaret", &["maggie", "meg", "peggy", "marge"]),
        ("katherine", &["kate", "katie", "kathy", "kat"]),
        ("catherine", &["cathy", "kate"]),
        ("jennifer", &["jen", "jenny"]),
        ("jessica", &["jess", "jessie"]),
        ("patricia", &["patty", "trish"]),
        ("susan", &["susie"]),
        ("deborah", &["deb", "debbie"]),
        ("barbara", &["babs"]),
        ("rebecca", &["becky", "becca"]),
        ("victoria", &["vicky", "tori"]),
        ("christine", &["chris", "chrissy"]),
        ("kimberly", &["kim"]),
        ("samantha", &["sam", "sammie"]),
        ("dorothy", &["dottie"]),
        ("theresa", &["terry", "tess"]),
        ("abigail", &["abby"]),
        ("alexandra", &["alex", "sasha"]),
        ("josephine", &["josie"]),
    ];
    let lower = given.to_lowercase();
    TABLE
        .iter()
        .find(|(name, _)| *name == lower)
        .map_or(&[], |(_, nicks)| nicks)
}

fn array<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

fn date_field(v: &Value, key: &str) -> Option<NaiveDate> {
    let s = v.get(key)?.as_str()?;
    crate::dates::FhirDate::parse(s).map(|d| d.date())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_names_phones_addresses_and_ids() {
        let p: Value = serde_json::from_str(
            r#"{"resourceType":"Patient","id":"x",
            "name":[{"family":"Medhurst46","given":["Sumiko254","Larue605"]}],
            "telecom":[{"system":"phone","value":"555-810-7203"},{"system":"email","value":"s@m.org"}],
            "identifier":[{"value":"999-94-5397"}],
            "address":[{"line":["12 Main Street"],"city":"Olathe","postalCode":"66061"}],
            "extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName","valueString":"Harold594 VonRueden376"}],
            "birthDate":"1927-05-21"}"#,
        )
        .unwrap();
        let k = KnownIdentifiers::from_patient(&p);
        let has = |s: &str| k.values.iter().any(|(v, _)| v == s);
        for s in [
            "Medhurst46",
            "Medhurst",
            "Sumiko254",
            "Larue",
            "Main Street",
            "Olathe",
            "999-94-5397",
            "999945397",
            "VonRueden376",
            "s@m.org",
        ] {
            assert!(has(s), "missing {s}");
        }
        assert_eq!(k.phones, vec!["5558107203"]);
        assert_eq!(k.birth_date, NaiveDate::from_ymd_opt(1927, 5, 21));
    }
}
