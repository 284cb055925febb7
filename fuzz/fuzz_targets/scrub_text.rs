//! The free-text detector and replacer, both modes, on any UTF-8 text: it
//! indexes bytes around every word, so no text may make it panic, and every
//! span must lie on character boundaries inside the text.
#![no_main]

use clintune_deid::policy::{Replacement, TextMode};
use clintune_deid::pseudonym::Pseudonymizer;
use clintune_deid::scrub::{ScrubContext, Scrubber, Tally};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

struct Setup {
    balanced: Scrubber,
    strict: Scrubber,
    pseudonymizer: Pseudonymizer,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let policy = clintune_fuzz::builtin_policy();
        let scrubber = |mode| policy.scrubber().expect("scrubber").with_mode(mode);
        Setup {
            balanced: scrubber(TextMode::Balanced),
            strict: scrubber(TextMode::Strict),
            pseudonymizer: clintune_fuzz::pseudonymizer(),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let s = setup();
    for scrubber in [&s.balanced, &s.strict] {
        for span in scrubber.detect(text, None) {
            assert!(span.start < span.end && span.end <= text.len());
            assert!(text.is_char_boundary(span.start) && text.is_char_boundary(span.end));
        }
        let ctx = ScrubContext {
            known: None,
            shift_days: -17,
            patient_key: "p",
            pseudonymizer: &s.pseudonymizer,
            names: Replacement::Surrogate,
            dates: Replacement::Surrogate,
            capped_birth_date: None,
            dob_cutoff_year: Some(1936),
        };
        let _ = scrubber.scrub(text, &ctx, &mut Tally::default());
    }
});
