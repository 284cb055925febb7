//! The rules that find PHI, as a type: detectors compare rules, the audit
//! report counts them by name.

/// Declares [`Rule`] with each variant's audit name, so the two cannot drift.
macro_rules! rules {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// Which detector rule found a span.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Rule {
            $($(#[$doc])* $variant,)*
        }

        impl Rule {
            /// Every rule, in declaration order.
            pub const ALL: &'static [Rule] = &[$(Rule::$variant,)*];

            /// The rule with this audit name.
            pub fn from_name(name: &str) -> Option<Rule> {
                Rule::ALL.iter().copied().find(|r| r.as_str() == name)
            }

            /// The stable name used in audit reports and `scan` findings.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Rule::$variant => $name,)*
                }
            }
        }
    };
}

rules! {
    // Patterns (patterns.rs). Their names are also regex group names, so
    // they stay identifiers.
    /// An e-mail address.
    Email => "email",
    /// An e-mail address written out: `name at example dot com`.
    EmailSpelled => "email_spelled",
    /// A URL.
    Url => "url",
    /// An IPv4 address.
    Ip => "ip",
    /// An IPv6 address.
    Ipv6 => "ipv6",
    /// A UUID.
    Uuid => "uuid",
    /// A social security number.
    Ssn => "ssn",
    /// `2019-03-04`, with an optional time.
    IsoDate => "iso_date",
    /// `1950/03/14`.
    YmdSlash => "ymd_slash",
    /// A North American phone number with an area code.
    Phone => "phone",
    /// `555-0199`: a seven-digit local number.
    PhoneLocal => "phone_local",
    /// `3/4-3/6`: a range of month/day dates.
    MdRange => "md_range",
    /// `3/4/2019`, `03-04-19`.
    Mdy => "mdy",
    /// `14-Mar-1950`, `14MAR1950`, `14 Mar 1950` written compactly.
    DayMonYear => "day_mon_year",
    /// A street address.
    Address => "address",
    /// An apartment, suite, unit or box number.
    Unit => "unit",
    /// `March 4`, `Mar 4th, 2019`.
    MonthDay => "month_day",
    /// `4 March`, `4th of March 2019`.
    DayMonth => "day_month",
    /// A month name after "in", "since", "during".
    MonthAlone => "month_alone",
    /// `March 2019`.
    MonthYear => "month_year",
    /// A date spoken in words: `march fourteenth`, `the fourteenth of march`.
    SpokenDate => "spoken_date",
    /// `Boston, MA 02115`.
    CityState => "city_state",
    /// A ZIP code after a state or a ZIP cue.
    Zip => "zip",
    /// `95 yo`, `92-year-old`.
    Age => "age",
    /// `age 95`, `aged 93`.
    AgeCtx => "age_ctx",
    /// `97M`, `92 F`: an age over 89 with a sex.
    AgeSex => "age_sex",
    /// `ninety-seven year old`: an age over 89 in words.
    AgeWords => "age_words",
    /// A number after a phone, pager or extension cue.
    PhoneCtx => "phone_ctx",
    /// An identifier after an MRN, account, licence or ID cue.
    IdCtx => "id_ctx",
    /// `University of X`.
    University => "university",
    /// `MI 98`: a two-digit year after an event.
    EventYear => "event_year",
    /// `98'`.
    AposYearAfter => "apos_year_after",
    /// `3/98`.
    MonthYy => "month_yy",
    /// `7/22`.
    Md => "md",
    /// `1998`, `1990s`.
    Year => "year",
    /// `'98`.
    AposYear => "apos_year",
    /// Seven digits or more.
    LongNumber => "long_number",
    /// `AB12345`.
    AlnumId => "alnum_id",
    /// A vehicle licence plate after a plate cue.
    Plate => "plate",

    // Names and places in context (names.rs, places.rs, context.rs).
    /// After a title: `Dr. Healey`.
    Title => "title",
    /// After a relation: `wife Rose`.
    Relation => "relation",
    /// `my name is X`.
    NameIs => "name-is",
    /// After a cue: `paged Smith`.
    Cue => "cue",
    /// `E. Welsh`.
    Initial => "initial",
    /// Before a credential: `Jones, RRT`.
    Credential => "credential",
    /// A first name followed by a surname.
    NamePair => "name-pair",
    /// A capitalised name-list word on its own.
    NameDictionary => "name-dictionary",
    /// A signature line.
    Signature => "signature",
    /// A name found once, found again in the same text.
    SameNameInText => "same-name-in-text",
    /// A greeting or vocative: `hi michelle`, `thanks, jerry`.
    Greeting => "greeting",
    /// The subject of an age statement: `jerry is a 45-year-old`.
    NameAge => "name-age",
    /// The name before a date of birth or record number cue.
    BeforeIdCue => "before-id-cue",
    /// A name in a list with names: `jerry and kayla`.
    NameList => "name-list",
    /// A word that is not a known safe word, next to a name.
    NameNeighbour => "name-neighbour",
    /// A name-list word that is not a safe word, in any letter case.
    UnsafeName => "unsafe-name",
    /// A place after a movement verb: `transferred to GH`.
    PlaceCue => "place-cue",
    /// `Calvert Hospital`.
    Facility => "facility",
    /// A place-list word or phrase.
    PlaceDictionary => "place-dictionary",
    /// A compass word and a region noun: `the Eastern Shore`.
    Region => "region",
    /// A ward or unit name: `5 North`, `Blake 7`.
    Ward => "ward",
    /// A hospital's initials after a preposition: `transferred to MGH`.
    HospitalInitials => "hospital-initials",
    /// The institution's own place names.
    SiteTerm => "site-term",
    /// Strict mode: a word that is not known to be safe.
    UnsafeWord => "unsafe-word",
    /// A token the learned model marked where no rule had (`model/`).
    Model => "model",

    // The patient's own identifiers (known.rs).
    /// The patient's given or family name.
    KnownPatientName => "known-patient-name",
    /// A relative's name from the record.
    KnownRelativeName => "known-relative-name",
    /// The patient's address parts.
    KnownAddress => "known-address",
    /// The patient's identifiers.
    KnownIdentifier => "known-identifier",
    /// The patient's e-mail.
    KnownEmail => "known-email",
    /// The patient's phone numbers, in any written form.
    KnownPhone => "known-phone",

    // Structured fields (resource.rs, audit.rs).
    /// A structured field replaced whole.
    StructuredField => "structured-field",
    /// An age over the cap in a structured field.
    AgeOverCap => "age-over-cap",
    /// A ZIP code cut to its restricted three digits.
    StructuredZip3 => "structured-zip3",
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = Rule::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }
}
