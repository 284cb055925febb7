//! The audit report: what the stage replaced, dropped and skipped, by count.
//!
//! Only counts and schema names go in: never a value from a record, and
//! never a key from one either, since a key can itself be PHI (a trace keyed
//! by a patient's name). A dropped key is named only when it is schema: a
//! field or structured member the policy lists, a FHIR R4 element name
//! ([`is_fhir_element`]), or a reason the stage writes itself; any other key
//! is counted under a fixed bucket ([`unknown_field`]) with at most a short
//! keyed hash of it. Resource types are named only when they are FHIR R4's
//! ([`FHIR_R4_RESOURCE_TYPES`]) or the stage's own record kinds.

use crate::scrub::{Category, Rule, Tally};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

/// Counts gathered while de-identifying.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    /// Files read, by detected kind.
    pub files: BTreeMap<String, u64>,
    /// Patients written (a chat trace without a patient id counts as one).
    pub patients: u64,
    /// Of those, patients with a FHIR Patient resource.
    pub patients_with_record: u64,
    /// Records written for patients without a Patient resource (notes given
    /// without their Patient file, chat traces): their text was scrubbed
    /// without the patient's own identifiers.
    pub records_without_patient_record: u64,
    /// Records read, by resource type.
    pub records_in: BTreeMap<String, u64>,
    /// Records written, by resource type.
    pub records_out: BTreeMap<String, u64>,
    /// Whole records dropped: reason -> resource type -> count.
    pub records_dropped: BTreeMap<String, BTreeMap<String, u64>>,
    /// Fields dropped, by `Type.path`.
    pub fields_dropped: BTreeMap<String, u64>,
    /// PHI replaced in free text and structured fields.
    pub phi: Tally,
    /// Invalid records skipped under `--skip-invalid`, by field and problem.
    pub invalid: BTreeMap<String, u64>,
}

/// The bucket resource types that are not FHIR R4's are counted under.
pub const UNKNOWN_RESOURCE_TYPE: &str = "<unknown-resource-type>";

/// The bucket a path that is not made of schema names is counted under (a
/// guard: the stage builds its paths from schema names only).
pub const UNRECOGNIZED_NAME: &str = "<unrecognized-name>";

/// The record kinds the stage makes of inputs that are not FHIR.
const OWN_RECORD_KINDS: [&str; 2] = ["ChatTrace", "PreferencePair"];

/// The name a resource type is counted under: a FHIR R4 resource type or one
/// of the stage's own record kinds as it is, anything else (which could be
/// anything the input holds) as [`UNKNOWN_RESOURCE_TYPE`].
pub fn safe_name(resource_type: &str) -> String {
    if OWN_RECORD_KINDS.contains(&resource_type) || FHIR_R4.contains(resource_type) {
        resource_type.to_string()
    } else {
        UNKNOWN_RESOURCE_TYPE.to_string()
    }
}

/// The bucket an input key that is not schema is counted under, with a short
/// keyed hash of it when given (so a reviewer can tell distinct keys apart
/// without seeing them): `<unknown-field>` or `<unknown-field:1a2b3c4d>`.
pub fn unknown_field(tag: Option<&str>) -> String {
    match tag {
        Some(t) => format!("<unknown-field:{t}>"),
        None => "<unknown-field>".to_string(),
    }
}

/// Whether `name` is a FHIR R4 element name (of the resources and data types
/// records carry): such a name is schema, not something a record made up.
pub fn is_fhir_element(name: &str) -> bool {
    FHIR_ELEMENTS.contains(name)
}

/// One segment of a counted path: a name of schema form, a bucket, or a
/// stage reason.
fn is_path_segment(seg: &str) -> bool {
    let schema_like = !seg.is_empty()
        && seg.len() <= 64
        && seg.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'[' || b == b']');
    let bucket = seg == unknown_field(None)
        || seg
            .strip_prefix("<unknown-field:")
            .and_then(|t| t.strip_suffix('>'))
            .is_some_and(|t| t.len() <= 16 && t.bytes().all(|b| b.is_ascii_hexdigit()));
    schema_like || bucket
}

/// `path` if every segment of it is a schema name or a bucket, else
/// [`UNRECOGNIZED_NAME`]: a last guard, since callers name only schema.
fn guarded_path(path: &str) -> String {
    if path.len() <= 256 && path.split('.').all(is_path_segment) {
        path.to_string()
    } else {
        UNRECOGNIZED_NAME.to_string()
    }
}

impl Audit {
    /// Counts a dropped field. `path` must be built from schema names, the
    /// stage's own reasons and [`unknown_field`] buckets, never from an input
    /// key as it is; the resource type goes through [`safe_name`].
    pub fn drop_field(&mut self, resource_type: &str, path: &str) {
        *self
            .fields_dropped
            .entry(format!(
                "{}.{}",
                safe_name(resource_type),
                guarded_path(path)
            ))
            .or_default() += 1;
    }

    /// Counts a dropped record.
    pub fn drop_record(&mut self, reason: &str, resource_type: &str) {
        *self
            .records_dropped
            .entry(reason.to_string())
            .or_default()
            .entry(safe_name(resource_type))
            .or_default() += 1;
    }

    /// Counts a structured identifier removed (e.g. `Patient.name`).
    pub fn structured_phi(&mut self, category: Category) {
        self.phi.add(category, Rule::StructuredField);
    }

    /// Adds another audit into this one.
    pub fn merge(&mut self, o: &Audit) {
        fn add(a: &mut BTreeMap<String, u64>, b: &BTreeMap<String, u64>) {
            for (k, v) in b {
                *a.entry(k.clone()).or_default() += v;
            }
        }
        add(&mut self.files, &o.files);
        self.patients += o.patients;
        self.patients_with_record += o.patients_with_record;
        self.records_without_patient_record += o.records_without_patient_record;
        add(&mut self.records_in, &o.records_in);
        add(&mut self.records_out, &o.records_out);
        for (reason, m) in &o.records_dropped {
            add(self.records_dropped.entry(reason.clone()).or_default(), m);
        }
        add(&mut self.fields_dropped, &o.fields_dropped);
        self.phi.merge(&o.phi);
        add(&mut self.invalid, &o.invalid);
    }

    fn phi_json(&self) -> Value {
        let mut by_cat: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
        for ((cat, rule), n) in &self.phi.counts {
            *by_cat.entry(cat).or_default().entry(rule).or_default() += n;
        }
        json!(by_cat)
    }

    /// The full report as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "files": self.files,
            "patients": self.patients,
            "patients_with_record": self.patients_with_record,
            "records_without_patient_record": self.records_without_patient_record,
            "records_in": self.records_in,
            "records_out": self.records_out,
            "records_dropped": self.records_dropped,
            "fields_dropped": self.fields_dropped,
            "phi_replaced": self.phi_json(),
            "phi_replaced_total": self.phi.total(),
            "invalid_records_skipped": self.invalid,
        })
    }

    /// The summary counts that go into the lineage manifest.
    pub fn manifest_counts(&self) -> Map<String, Value> {
        let mut m = Map::new();
        let sum = |x: &BTreeMap<String, u64>| x.values().sum::<u64>();
        m.insert("patients".into(), self.patients.into());
        m.insert(
            "patients_with_record".into(),
            self.patients_with_record.into(),
        );
        m.insert(
            "records_without_patient_record".into(),
            self.records_without_patient_record.into(),
        );
        m.insert("records_in".into(), sum(&self.records_in).into());
        m.insert("records_out".into(), sum(&self.records_out).into());
        m.insert("records_out_by_type".into(), json!(self.records_out));
        m.insert(
            "records_dropped".into(),
            self.records_dropped.values().map(sum).sum::<u64>().into(),
        );
        m.insert("fields_dropped".into(), sum(&self.fields_dropped).into());
        let mut by_cat: BTreeMap<&str, u64> = BTreeMap::new();
        for ((cat, _), n) in &self.phi.counts {
            *by_cat.entry(cat).or_default() += n;
        }
        m.insert("phi_replaced".into(), json!(by_cat));
        m.insert("invalid_records_skipped".into(), sum(&self.invalid).into());
        m
    }
}

/// The resource type names of FHIR R4 (4.0.1).
#[rustfmt::skip]
pub const FHIR_R4_RESOURCE_TYPES: &[&str] = &[
    "Account", "ActivityDefinition", "AdverseEvent", "AllergyIntolerance", "Appointment",
    "AppointmentResponse", "AuditEvent", "Basic", "Binary", "BiologicallyDerivedProduct",
    "BodyStructure", "Bundle", "CapabilityStatement", "CarePlan", "CareTeam", "CatalogEntry",
    "ChargeItem", "ChargeItemDefinition", "Claim", "ClaimResponse", "ClinicalImpression",
    "CodeSystem", "Communication", "CommunicationRequest", "CompartmentDefinition", "Composition",
    "ConceptMap", "Condition", "Consent", "Contract", "Coverage", "CoverageEligibilityRequest",
    "CoverageEligibilityResponse", "DetectedIssue", "Device", "DeviceDefinition", "DeviceMetric",
    "DeviceRequest", "DeviceUseStatement", "DiagnosticReport", "DocumentManifest",
    "DocumentReference", "EffectEvidenceSynthesis", "Encounter", "Endpoint", "EnrollmentRequest",
    "EnrollmentResponse", "EpisodeOfCare", "EventDefinition", "Evidence", "EvidenceVariable",
    "ExampleScenario", "ExplanationOfBenefit", "FamilyMemberHistory", "Flag", "Goal",
    "GraphDefinition", "Group", "GuidanceResponse", "HealthcareService", "ImagingStudy",
    "Immunization", "ImmunizationEvaluation", "ImmunizationRecommendation", "ImplementationGuide",
    "InsurancePlan", "Invoice", "Library", "Linkage", "List", "Location", "Measure",
    "MeasureReport", "Media", "Medication", "MedicationAdministration", "MedicationDispense",
    "MedicationKnowledge", "MedicationRequest", "MedicationStatement", "MedicinalProduct",
    "MedicinalProductAuthorization", "MedicinalProductContraindication",
    "MedicinalProductIndication", "MedicinalProductIngredient", "MedicinalProductInteraction",
    "MedicinalProductManufactured", "MedicinalProductPackaged", "MedicinalProductPharmaceutical",
    "MedicinalProductUndesirableEffect", "MessageDefinition", "MessageHeader", "MolecularSequence",
    "NamingSystem", "NutritionOrder", "Observation", "ObservationDefinition",
    "OperationDefinition", "OperationOutcome", "Organization", "OrganizationAffiliation",
    "Parameters", "Patient", "PaymentNotice", "PaymentReconciliation", "Person", "PlanDefinition",
    "Practitioner", "PractitionerRole", "Procedure", "Provenance", "Questionnaire",
    "QuestionnaireResponse", "RelatedPerson", "RequestGroup", "ResearchDefinition",
    "ResearchElementDefinition", "ResearchStudy", "ResearchSubject", "RiskAssessment",
    "RiskEvidenceSynthesis", "Schedule", "SearchParameter", "ServiceRequest", "Slot", "Specimen",
    "SpecimenDefinition", "StructureDefinition", "StructureMap", "Subscription", "Substance",
    "SubstanceNucleicAcid", "SubstancePolymer", "SubstanceProtein",
    "SubstanceReferenceInformation", "SubstanceSourceMaterial", "SubstanceSpecification",
    "SupplyDelivery", "SupplyRequest", "Task", "TerminologyCapabilities", "TestReport",
    "TestScript", "ValueSet", "VerificationResult", "VisionPrescription",
];

static FHIR_R4: LazyLock<BTreeSet<&'static str>> =
    LazyLock::new(|| FHIR_R4_RESOURCE_TYPES.iter().copied().collect());

/// FHIR R4 element names of the resources clinical exports carry (those the
/// default policy keeps, and their data types: Reference, Identifier,
/// HumanName, ContactPoint, Address, Attachment, Annotation, Meta, Dosage,
/// Timing, Quantity, ...) and of the chat formats' own keys. Dropping one is
/// worth naming (`Patient.name`); none can be PHI.
#[rustfmt::skip]
const FHIR_ELEMENT_NAMES: &[&str] = &[
    // Resource, DomainResource, Extension, Meta, Narrative
    "id", "meta", "implicitRules", "language", "text", "contained", "extension",
    "modifierExtension", "url", "versionId", "lastUpdated", "source", "profile", "security", "tag",
    "div", "status",
    // Data types
    "reference", "type", "identifier", "display", "start", "end", "use", "system", "value",
    "period", "assigner", "family", "given", "prefix", "suffix", "rank", "line", "city",
    "district", "state", "postalCode", "country", "contentType", "data", "size", "hash", "title",
    "creation", "authorReference", "authorString", "time", "version", "code", "userSelected",
    "coding", "comparator", "unit", "low", "high", "numerator", "denominator", "sequence",
    "additionalInstruction", "patientInstruction", "timing", "asNeededBoolean",
    "asNeededCodeableConcept", "site", "route", "method", "doseAndRate", "maxDosePerPeriod",
    "maxDosePerAdministration", "maxDosePerLifetime", "event", "repeat", "boundsDuration",
    "boundsRange", "boundsPeriod", "count", "countMax", "duration", "durationMax", "durationUnit",
    "frequency", "frequencyMax", "periodMax", "periodUnit", "dayOfWeek", "timeOfDay", "when",
    "offset", "doseRange", "doseQuantity", "rateRatio", "rateRange", "rateQuantity",
    // Patient
    "active", "name", "telecom", "gender", "birthDate", "deceasedBoolean", "deceasedDateTime",
    "address", "maritalStatus", "multipleBirthBoolean", "multipleBirthInteger", "photo", "contact",
    "communication", "generalPractitioner", "managingOrganization", "link", "relationship",
    "organization", "preferred", "other",
    // Encounter
    "statusHistory", "class", "classHistory", "serviceType", "priority", "subject",
    "episodeOfCare", "basedOn", "participant", "appointment", "length", "reasonCode",
    "reasonReference", "diagnosis", "account", "hospitalization", "location", "serviceProvider",
    "partOf", "individual", "preAdmissionIdentifier", "origin", "admitSource", "reAdmission",
    "dietPreference", "specialCourtesy", "specialArrangement", "destination",
    "dischargeDisposition", "physicalType", "condition",
    // Condition, AllergyIntolerance
    "clinicalStatus", "verificationStatus", "category", "severity", "bodySite", "encounter",
    "onsetDateTime", "onsetAge", "onsetPeriod", "onsetRange", "onsetString", "abatementDateTime",
    "abatementAge", "abatementPeriod", "abatementRange", "abatementString", "recordedDate",
    "recorder", "asserter", "stage", "evidence", "note", "criticality", "patient",
    "lastOccurrence", "reaction", "substance", "manifestation", "description", "onset",
    "exposureRoute", "summary", "assessment", "detail",
    // Observation, DiagnosticReport
    "focus", "effectiveDateTime", "effectivePeriod", "effectiveTiming", "effectiveInstant",
    "issued", "performer", "valueQuantity", "valueCodeableConcept", "valueString", "valueBoolean",
    "valueInteger", "valueDecimal", "valueRange", "valueRatio", "valueSampledData", "valueTime",
    "valueDateTime", "valuePeriod", "valueCode", "valueCoding", "valueUri", "valueUrl",
    "valueReference", "valueDate", "valueInstant", "valueAddress", "valueAttachment",
    "valueIdentifier", "dataAbsentReason", "interpretation", "specimen", "device",
    "referenceRange", "hasMember", "derivedFrom", "component", "appliesTo", "age",
    "resultsInterpreter", "result", "imagingStudy", "media", "conclusion", "conclusionCode",
    "presentedForm",
    // DocumentReference
    "masterIdentifier", "docStatus", "date", "author", "authenticator", "custodian", "relatesTo",
    "target", "securityLabel", "content", "attachment", "format", "context", "facilityType",
    "practiceSetting", "sourcePatientInfo", "related",
    // MedicationRequest, Immunization, Procedure
    "statusReason", "intent", "doNotPerform", "reportedBoolean", "reportedReference",
    "medicationCodeableConcept", "medicationReference", "supportingInformation", "authoredOn",
    "requester", "performerType", "instantiatesCanonical", "instantiatesUri", "groupIdentifier",
    "courseOfTherapyType", "insurance", "dosageInstruction", "dispenseRequest", "substitution",
    "priorPrescription", "detectedIssue", "eventHistory", "vaccineCode", "occurrenceDateTime",
    "occurrenceString", "recorded", "primarySource", "reportOrigin", "manufacturer", "lotNumber",
    "expirationDate", "isSubpotent", "subpotentReason", "education", "programEligibility",
    "fundingSource", "protocolApplied", "performedDateTime", "performedPeriod", "performedString",
    "performedAge", "performedRange", "outcome", "report", "complication", "complicationDetail",
    "followUp", "focalDevice", "usedReference", "usedCode", "actor", "function", "onBehalfOf",
    // CarePlan, Goal
    "replaces", "created", "contributor", "careTeam", "addresses", "supportingInfo", "goal",
    "activity", "outcomeCodeableConcept", "outcomeReference", "progress", "kind",
    "scheduledTiming", "scheduledPeriod", "scheduledString", "productCodeableConcept",
    "productReference", "dailyAmount", "quantity", "lifecycleStatus", "achievementStatus",
    "startDate", "startCodeableConcept", "statusDate", "expressedBy", "outcomeCode", "measure",
    "detailQuantity", "detailRange", "detailCodeableConcept", "dueDate",
    // Chat and preference formats (OpenAI, Azure AI Foundry, TRL)
    "messages", "role", "tool_calls", "tool_call_id", "function_call", "refusal", "weight",
    "tools", "functions", "parallel_tool_calls", "metadata",
];

static FHIR_ELEMENTS: LazyLock<BTreeSet<&'static str>> =
    LazyLock::new(|| FHIR_ELEMENT_NAMES.iter().copied().collect());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_types_are_named_only_when_fhir_r4_or_the_stages_own() {
        for known in [
            "Observation",
            "FamilyMemberHistory",
            "ChatTrace",
            "PreferencePair",
        ] {
            assert_eq!(safe_name(known), known);
        }
        for made_up in ["Zorblatt", "HortensiaBlenkinsop", "John Smith 555-1234", ""] {
            assert_eq!(safe_name(made_up), UNKNOWN_RESOURCE_TYPE);
        }
    }

    #[test]
    fn counted_paths_are_schema_names_buckets_or_own_reasons() {
        let mut a = Audit::default();
        // The reasons the stage itself writes survive.
        for own in [
            "content.attachment.not_text_plain",
            "messages.role_not_in_policy",
            "period.start",
            "code.coding.not_in_terminology",
            "valueQuantity.unit.invalid_unit",
        ] {
            a.drop_field("Observation", own);
            assert_eq!(a.fields_dropped[&format!("Observation.{own}")], 1);
        }
        let bucket = unknown_field(Some("1a2b3c4d"));
        assert_eq!(bucket, "<unknown-field:1a2b3c4d>");
        a.drop_field("ChatTrace", &bucket);
        a.drop_field("Zorblatt", &format!("code.{}", unknown_field(None)));
        assert_eq!(a.fields_dropped["ChatTrace.<unknown-field:1a2b3c4d>"], 1);
        assert_eq!(
            a.fields_dropped["<unknown-resource-type>.code.<unknown-field>"],
            1
        );
        // A path that is not of schema form (a caller's slip) is not echoed.
        a.drop_field("Patient", "John Smith 555-1234");
        a.drop_field("Patient", "code.<unknown-field:Blenkinsop>");
        assert_eq!(a.fields_dropped["Patient.<unrecognized-name>"], 2);
        let json = a.to_json().to_string();
        for planted in ["Zorblatt", "John", "Blenkinsop"] {
            assert!(!json.contains(planted), "{json}");
        }
    }

    #[test]
    fn fhir_element_names_are_schema_and_names_of_people_are_not() {
        for element in [
            "name",
            "telecom",
            "identifier",
            "meta",
            "valueQuantity",
            "tool_calls",
        ] {
            assert!(is_fhir_element(element), "{element}");
        }
        for other in ["HortensiaBlenkinsop", "Quaxworth", "unknownExtensionField"] {
            assert!(!is_fhir_element(other), "{other}");
        }
        assert_eq!(FHIR_R4_RESOURCE_TYPES.len(), FHIR_R4.len(), "duplicates");
    }
}
