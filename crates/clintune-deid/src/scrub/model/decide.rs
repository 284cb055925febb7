//! From the model's token decisions to PHI spans.

use super::features::{View, is_known};
use crate::scrub::lexicon::{EXTRA_NAME, FIRST, LAST};
use crate::scrub::{Category, Rule, Span};

/// The spans to replace, given per token whether it is PHI (`phi`, one per
/// token of `view`): every span of a rule that is never overruled
/// ([`always_kept`]); every
/// other span of `found` with a PHI token in it, whole; each PHI token no
/// kept span covers, alone. A span over no token at all (punctuation a
/// pattern claimed) is kept: there is nothing to decide it by.
///
/// `judged` has a bit for each rule whose spans the model may drop: those
/// it was trained on (see [`super::judged_rules`]). The spans of a rule it
/// never saw fire (a greeting in a corpus of nursing notes) are kept, since
/// it has no evidence to overrule them with.
pub fn spans(view: &View<'_>, found: &[Span], phi: &[bool], judged: u128) -> Vec<Span> {
    let starts: Vec<usize> = view.tokens.iter().map(|t| t.start).collect();
    let mut covered = vec![false; phi.len()];
    let mut out = Vec::with_capacity(found.len());
    for s in found {
        let mut over = token_range(view, &starts, s);
        let unlearned = judged & (1u128 << (s.rule as u8)) == 0;
        let keep =
            always_kept(s.rule) || unlearned || over.is_empty() || over.clone().any(|k| phi[k]);
        if keep {
            over.by_ref().for_each(|k| covered[k] = true);
            out.push(s.clone());
        }
    }
    let alone = |k: usize| phi[k] && !covered[k];
    let mut k = 0;
    while k < view.tokens.len() {
        if !alone(k) {
            k += 1;
            continue;
        }
        // Marked tokens joined by a punctuation mark or two ("5/5",
        // "12-25") are one identifier, replaced as one.
        let mut last = k;
        while last + 1 < view.tokens.len() && alone(last + 1) && joined(view, last) {
            last += 1;
        }
        out.push(Span {
            start: view.tokens[k].start,
            end: view.tokens[last].end,
            category: category_of(view, k..=last),
            rule: Rule::Model,
        });
        k = last + 1;
    }
    out
}

/// Token `k` and the next one stand in one chunk: one or two punctuation
/// marks between them, no space.
fn joined(view: &View<'_>, k: usize) -> bool {
    let gap = &view.bytes[view.tokens[k].end..view.tokens[k + 1].start];
    (1..=2).contains(&gap.len()) && gap.iter().all(u8::is_ascii_punctuation)
}

/// Rules whose matches are Safe Harbor identifiers by definition, not by
/// judgement: the patient's own identifiers, e-mail addresses, URLs, IP
/// addresses, social security numbers, UUIDs and ages over 89. No corpus
/// can teach the model to let these through.
fn always_kept(rule: Rule) -> bool {
    is_known(rule)
        || matches!(
            rule,
            Rule::Email
                | Rule::EmailSpelled
                | Rule::Url
                | Rule::Ip
                | Rule::Ipv6
                | Rule::Ssn
                | Rule::Uuid
                | Rule::Age
                | Rule::AgeCtx
                | Rule::AgeSex
                | Rule::AgeWords
        )
}

/// Indices of the tokens overlapping span `s`.
fn token_range(view: &View<'_>, starts: &[usize], s: &Span) -> std::ops::Range<usize> {
    let end = starts.partition_point(|&st| st < s.end);
    let mut begin = end;
    while begin > 0 && view.tokens[begin - 1].end > s.start {
        begin -= 1;
    }
    begin..end
}

/// Tokens marked by the model alone: with a number in them an identifier, a
/// word on a name list a name (so it gets a surrogate), anything else
/// unclassed.
fn category_of(view: &View<'_>, run: std::ops::RangeInclusive<usize>) -> Category {
    let tokens = &view.tokens[run];
    if tokens.iter().any(|t| t.digits > 0) {
        Category::Id
    } else if tokens.len() == 1 && tokens[0].flags & (FIRST | LAST | EXTRA_NAME) != 0 {
        Category::Name
    } else {
        Category::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrub::dictionary::tests::repo_dictionaries;

    fn span(text: &str, phrase: &str, category: Category, rule: Rule) -> Span {
        let start = text.find(phrase).unwrap();
        Span {
            start,
            end: start + phrase.len(),
            category,
            rule,
        }
    }

    #[test]
    fn a_rule_span_is_kept_whole_when_the_model_marks_a_token_in_it() {
        let text = "Admitted March 3, 2019 to Calvert Hospital by Quaxworth";
        let found = [
            span(text, "March 3, 2019", Category::Date, Rule::MonthDay),
            span(text, "Calvert Hospital", Category::Location, Rule::Facility),
        ];
        let view = View::new(text, &found, repo_dictionaries());
        let words: Vec<&str> = view.tokens.iter().map(|t| &text[t.start..t.end]).collect();
        let phi: Vec<bool> = words
            .iter()
            .map(|w| ["3", "Quaxworth"].contains(w))
            .collect();
        let out = spans(&view, &found, &phi, u128::MAX);
        let got: Vec<(&str, Rule)> = out
            .iter()
            .map(|s| (&text[s.start..s.end], s.rule))
            .collect();
        assert_eq!(
            got,
            [
                ("March 3, 2019", Rule::MonthDay),
                ("Quaxworth", Rule::Model)
            ]
        );
        assert_eq!(out[1].category, Category::Unknown);
    }

    #[test]
    fn marked_tokens_joined_by_punctuation_are_one_span_words_apart_are_not() {
        let text = "Seen 12/25 by Quaxworth and Blenkinsop, 617-555.";
        let view = View::new(text, &[], repo_dictionaries());
        let phi: Vec<bool> = view
            .tokens
            .iter()
            .map(|t| !["Seen", "by", "and"].contains(&&text[t.start..t.end]))
            .collect();
        let out = spans(&view, &[], &phi, u128::MAX);
        let got: Vec<(&str, Category)> = out
            .iter()
            .map(|s| (&text[s.start..s.end], s.category))
            .collect();
        assert_eq!(
            got,
            [
                ("12/25", Category::Id),
                ("Quaxworth", Category::Unknown),
                ("Blenkinsop", Category::Unknown),
                ("617-555", Category::Id)
            ]
        );
    }

    #[test]
    fn the_patients_own_identifiers_stay_whatever_the_model_says() {
        let text = "Spoke with Hortensia today";
        let found = [span(
            text,
            "Hortensia",
            Category::Name,
            Rule::KnownPatientName,
        )];
        let view = View::new(text, &found, repo_dictionaries());
        let out = spans(&view, &found, &vec![false; view.tokens.len()], u128::MAX);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].rule, Rule::KnownPatientName);
    }

    #[test]
    fn a_rule_the_model_never_learned_about_is_not_overruled() {
        let text = "hi kayla how are you";
        let found = [span(text, "kayla", Category::Name, Rule::Greeting)];
        let view = View::new(text, &found, repo_dictionaries());
        let no = vec![false; view.tokens.len()];
        let learned_greetings = 1u128 << (Rule::Greeting as u8);
        assert!(spans(&view, &found, &no, learned_greetings).is_empty());
        assert_eq!(spans(&view, &found, &no, !learned_greetings).len(), 1);
    }
}
