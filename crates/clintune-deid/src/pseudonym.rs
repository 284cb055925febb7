//! Keyed pseudonyms, date shifts and surrogate choices.
//!
//! Everything here is a function of the secret key and the original value:
//! the same input and key always give the same output, and without the key
//! outputs of different keys cannot be linked.

use clintune_core::secret::SecretKey;

/// Derives pseudonyms and per-patient offsets from the de-identification key.
#[derive(Debug, Clone)]
pub struct Pseudonymizer {
    key: SecretKey,
}

impl Pseudonymizer {
    /// Wraps the key.
    pub fn new(key: SecretKey) -> Self {
        Self { key }
    }

    fn tag(&self, domain: &str, parts: &[&str], hex_len: usize) -> String {
        let mut all: Vec<&[u8]> = vec![domain.as_bytes()];
        all.extend(parts.iter().map(|p| p.as_bytes()));
        let mac = self.key.hmac(&all);
        hex::encode(mac)[..hex_len].to_string()
    }

    fn number(&self, domain: &str, parts: &[&str]) -> u64 {
        let mut all: Vec<&[u8]> = vec![domain.as_bytes()];
        all.extend(parts.iter().map(|p| p.as_bytes()));
        let mac = self.key.hmac(&all);
        u64::from_le_bytes(mac[..8].try_into().expect("8 bytes"))
    }

    /// Pseudonymous patient key (stable across runs with the same key).
    pub fn patient_key(&self, patient_id: &str) -> String {
        format!("pt-{}", self.tag("patient", &[patient_id], 20))
    }

    /// Pseudonymous record key for a resource of a patient.
    pub fn record_key(&self, resource_type: &str, id: &str) -> String {
        format!("rec-{}", self.tag("record", &[resource_type, id], 20))
    }

    /// Pseudonym for any other identifier (file names, referenced ids).
    pub fn identifier(&self, kind: &str, value: &str) -> String {
        self.tag("identifier", &[kind, value], 16)
    }

    /// The patient's date shift in days: uniform in `[min, max]` in absolute
    /// value, either direction, never zero.
    pub fn shift_days(&self, patient_id: &str, min: u32, max: u32) -> i64 {
        let n = self.number("date-shift", &[patient_id]);
        let span = u64::from(max - min) + 1;
        let magnitude = i64::from(min) + (n % span) as i64;
        if (n >> 63) == 1 {
            -magnitude
        } else {
            magnitude
        }
    }

    /// Index into a surrogate list of `len` entries for `value` of `category`
    /// within one patient: consistent within the patient, unlinkable across.
    pub fn surrogate_index(
        &self,
        patient_key: &str,
        category: &str,
        value: &str,
        len: usize,
    ) -> usize {
        if len == 0 {
            return 0;
        }
        (self.number("surrogate", &[patient_key, category, value]) % len as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clintune_core::secret::KeySource;

    fn p(k: &str) -> Pseudonymizer {
        Pseudonymizer::new(SecretKey::from_bytes(k.as_bytes(), KeySource::Env("T".into())).unwrap())
    }

    #[test]
    fn stable_and_keyed() {
        let a = p("key-a-0123456789abcdef0123456789abcdef");
        let b = p("key-b-0123456789abcdef0123456789abcdef");
        assert_eq!(a.patient_key("123"), a.patient_key("123"));
        assert_ne!(a.patient_key("123"), b.patient_key("123"));
        assert_ne!(a.patient_key("123"), a.patient_key("124"));
    }

    #[test]
    fn shift_in_range_both_directions() {
        let a = p("key-a-0123456789abcdef0123456789abcdef");
        let shifts: Vec<i64> = (0..500)
            .map(|i| a.shift_days(&i.to_string(), 1, 365))
            .collect();
        assert!(shifts.iter().all(|s| (1..=365).contains(&s.abs())));
        assert!(shifts.iter().any(|s| *s < 0) && shifts.iter().any(|s| *s > 0));
    }
}
