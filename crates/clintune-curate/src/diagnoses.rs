//! The next-diagnosis task's answer format: one diagnosis a line
//! (`- Acute bronchitis`), written by [`crate::tasks`] and read back here by
//! whatever judges an answer (the evaluation, GRPO's `diagnosis-f1` grader),
//! so both read a model's answer the same way.

use std::collections::BTreeSet;

/// An answer's lines for `diagnoses`.
pub fn answer<S: AsRef<str>>(diagnoses: &[S]) -> Vec<String> {
    diagnoses
        .iter()
        .map(|d| format!("- {}", d.as_ref()))
        .collect()
}

/// The diagnoses an answer names, one per line, normalised: bullet and
/// final period dropped, lower case, single spaces.
pub fn names(answer: &str) -> BTreeSet<String> {
    answer
        .lines()
        .map(|line| {
            let line = line.trim().trim_start_matches(['-', '*', '•']).trim();
            let line = line.trim_end_matches('.').to_lowercase();
            line.split_whitespace().collect::<Vec<_>>().join(" ")
        })
        .filter(|name| !name.is_empty())
        .collect()
}

/// F1 of the diagnoses `answer` names against those `reference` names: 1
/// when both name none.
pub fn f1(answer: &str, reference: &str) -> f64 {
    let (named, truth) = (names(answer), names(reference));
    let hits = named.intersection(&truth).count();
    let all = named.len() + truth.len();
    if all == 0 {
        1.0
    } else {
        2.0 * hits as f64 / all as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_lines() {
        let got =
            names("- Acute  bronchitis.\n* Hypertension\n\n  -   viral sinusitis (disorder)\n");
        let want: BTreeSet<String> = [
            "acute bronchitis",
            "hypertension",
            "viral sinusitis (disorder)",
        ]
        .map(String::from)
        .into();
        assert_eq!(got, want);
    }

    #[test]
    fn f1_counts_names_not_spelling() {
        assert_eq!(
            f1("- Hypertension.\n- Asthma", "* asthma\n- hypertension"),
            1.0
        );
        assert_eq!(f1("- Asthma", "- Asthma\n- Hypertension"), 2.0 / 3.0);
        assert_eq!(f1("", ""), 1.0);
        assert_eq!(f1("I cannot say.", "- Asthma"), 0.0);
    }

    #[test]
    fn written_answers_read_back() {
        let lines = answer(&["Acute bronchitis (disorder)", "Hypertension"]);
        let read = names(&lines.join("\n"));
        assert_eq!(read.len(), 2);
        assert!(read.contains("acute bronchitis (disorder)"));
    }
}
