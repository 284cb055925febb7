//! Which coded values may be copied into the output: the policy's allowlist
//! of code systems (`[terminology]`) and the form each system's codes take.
//!
//! A code, a system URI, a version or a unit is written out as it is (never
//! scrubbed: scrubbing would mangle it), so it must be shown to be a code
//! first. An identifier planted where a code belongs (an MRN in a system URL,
//! an SSN as a code, a name as a version or a unit, a phone number as a unit
//! code) has the right type but not the right form, and is dropped. Every
//! check here is fail-closed: it says yes only to what it recognises.
//!
//! Syntax alone cannot tell every code from every identifier (a seven-digit
//! number is a valid LOINC code when its check digit fits); the checks are
//! made as narrow as real codes allow, with check digits where the system
//! has them (LOINC, SNOMED CT).

use chrono::Datelike;
use clintune_core::Invalid;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The form of one code system's codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum CodeSyntax {
    /// LOINC: `NNNNN-N` with its mod-10 check digit; part and answer codes `LPNNN-N`, `LANNN-N`.
    #[serde(rename = "loinc")]
    Loinc,
    /// SNOMED CT concept id: 6 to 18 digits, no leading 0, a concept
    /// partition and a valid Verhoeff check digit.
    #[serde(rename = "snomed")]
    Snomed,
    /// ICD-10-CM and ICD-10: a letter, a digit, a letter or digit, then
    /// optionally `.` and 1 to 4 letters or digits.
    #[serde(rename = "icd-10")]
    Icd10,
    /// ICD-10-PCS: seven characters of its alphabet (digits and letters but I and O).
    #[serde(rename = "icd-10-pcs")]
    Icd10Pcs,
    /// RxNorm RXCUI: 1 to 8 digits, no leading 0.
    #[serde(rename = "rxnorm")]
    RxNorm,
    /// CPT: four digits and a digit or letter (category II and III codes end in a letter).
    #[serde(rename = "cpt")]
    Cpt,
    /// CVX: 1 to 3 digits.
    #[serde(rename = "cvx")]
    Cvx,
    /// NDC: hyphenated 4-4-2, 5-3-2, 5-4-1 or 5-4-2, or 11 digits.
    #[serde(rename = "ndc")]
    Ndc,
    /// UCUM: a unit expression ([`is_ucum`]).
    #[serde(rename = "ucum")]
    Ucum,
    /// HL7 code systems: letters, digits, `-` and `.`, up to 64, no run of 4 digits.
    #[serde(rename = "hl7")]
    Hl7,
    /// BCP-47 language tags (`en`, `en-US`, `zh-Hans-CN`, `es-419`).
    #[serde(rename = "bcp-47")]
    Bcp47,
}

impl CodeSyntax {
    /// Whether `code` has this system's form.
    pub fn accepts(self, code: &str) -> bool {
        match self {
            CodeSyntax::Loinc => is_loinc(code),
            CodeSyntax::Snomed => is_sctid(code),
            CodeSyntax::Icd10 => is_icd10(code),
            CodeSyntax::Icd10Pcs => is_icd10_pcs(code),
            CodeSyntax::RxNorm => is_number_without_leading_zero(code, 1, 8),
            CodeSyntax::Cpt => is_cpt(code),
            CodeSyntax::Cvx => (1..=3).contains(&code.len()) && all_digits(code),
            CodeSyntax::Ndc => is_ndc(code),
            CodeSyntax::Ucum => is_ucum(code),
            CodeSyntax::Hl7 => is_hl7_code(code),
            CodeSyntax::Bcp47 => is_language(code),
        }
    }
}

/// Why a coded value was not kept: the fixed reasons the audit counts them under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// No system, a system that is not a string, or one not on the allowlist.
    NotInTerminology,
    /// The code is missing, not a string, or not of its system's form.
    InvalidCode,
    /// The version is neither a version number, a release date nor a SNOMED CT edition.
    InvalidVersion,
    /// The unit is not a UCUM expression.
    InvalidUnit,
}

impl Rejection {
    /// The reason as counted in `audit.json`.
    pub fn reason(self) -> &'static str {
        match self {
            Rejection::NotInTerminology => "not_in_terminology",
            Rejection::InvalidCode => "invalid_code",
            Rejection::InvalidVersion => "invalid_version",
            Rejection::InvalidUnit => "invalid_unit",
        }
    }
}

/// The policy's `[terminology]` table: the code systems whose codings are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerminologyPolicy {
    /// Exact system URIs, each with the form of its codes.
    pub systems: BTreeMap<String, CodeSyntax>,
    /// Families of code systems: a URI prefix, followed in the system by one
    /// simple name ([`is_code_system_name`]), with the form of their codes.
    #[serde(default)]
    pub prefixes: BTreeMap<String, CodeSyntax>,
}

impl TerminologyPolicy {
    /// The form of `system`'s codes, if the system is on the allowlist.
    pub fn syntax(&self, system: &str) -> Option<CodeSyntax> {
        if let Some(s) = self.systems.get(system) {
            return Some(*s);
        }
        self.prefixes.iter().find_map(|(prefix, s)| {
            system
                .strip_prefix(prefix.as_str())
                .filter(|name| is_code_system_name(name))
                .map(|_| *s)
        })
    }

    /// Checks one coding's system, code and version (each given when
    /// present): a code needs an allowlisted system and its form, a version
    /// its form; a system alone (a coding with only a display) is fine when
    /// allowlisted.
    pub fn check_coding(
        &self,
        system: Option<&str>,
        code: Option<&str>,
        version: Option<&str>,
    ) -> Result<(), Rejection> {
        let syntax = system
            .and_then(|s| self.syntax(s))
            .ok_or(Rejection::NotInTerminology)?;
        if code.is_some_and(|c| !syntax.accepts(c)) {
            return Err(Rejection::InvalidCode);
        }
        if version.is_some_and(|v| !is_version(v)) {
            return Err(Rejection::InvalidVersion);
        }
        Ok(())
    }

    /// Checks the table itself: every URI without spaces and with a scheme,
    /// every prefix ending in `/` so that a name after it is one segment.
    pub fn validate(&self) -> Result<(), Invalid> {
        for uri in self.systems.keys() {
            if !is_uri(uri) {
                return Err(Invalid::new(
                    "terminology.systems",
                    format!("holds {uri:?}, which is not a URI (scheme:rest, no spaces)"),
                ));
            }
        }
        for prefix in self.prefixes.keys() {
            if !is_uri(prefix) || !prefix.ends_with('/') {
                return Err(Invalid::new(
                    "terminology.prefixes",
                    format!("holds {prefix:?}, which is not a URI ending in `/`"),
                ));
            }
        }
        Ok(())
    }
}

fn is_uri(s: &str) -> bool {
    let scheme = s.split(':').next().unwrap_or("");
    s.len() > scheme.len() + 1
        && scheme
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase())
        && s.bytes().all(|b| b.is_ascii_graphic())
}

/// The name of a code system after an allowlisted prefix: lower-case words
/// joined by hyphens (`condition-clinical`, `administrative-gender`), or an
/// HL7 v2 table (`v2-0203`) or v3 code system (`v3-ActCode`). Nothing with a
/// `/`, so `http://hl7.org/fhir/sid/us-ssn` (an identifier system) is not one.
pub fn is_code_system_name(name: &str) -> bool {
    if name.len() > 64 {
        return false;
    }
    if let Some(table) = name.strip_prefix("v2-") {
        return table.len() == 4 && all_digits(table);
    }
    if let Some(system) = name.strip_prefix("v3-") {
        return (2..=40).contains(&system.len()) && system.bytes().all(|b| b.is_ascii_alphabetic());
    }
    is_short_code_of(name, 64)
}

/// A FHIR `code` from one of FHIR's own value sets (`status`, `kind`,
/// `gender`, `intent`): lower-case words joined by hyphens, at most 32 bytes.
pub fn is_short_code(s: &str) -> bool {
    is_short_code_of(s, 32)
}

fn is_short_code_of(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.split('-')
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
}

/// `Quantity.comparator`: one of FHIR's four.
pub fn is_comparator(s: &str) -> bool {
    matches!(s, "<" | "<=" | ">=" | ">")
}

/// `Timing.repeat.periodUnit` and `durationUnit`: FHIR's units of time.
pub fn is_unit_of_time(s: &str) -> bool {
    matches!(s, "s" | "min" | "h" | "d" | "wk" | "mo" | "a")
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_number_without_leading_zero(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && all_digits(s) && !s.starts_with('0')
}

/// The longest run of consecutive ASCII digits in `s`.
fn longest_digit_run(s: &str) -> usize {
    s.split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0)
}

/// The mod-10 (Luhn) check digit LOINC uses, of a string of digits.
fn luhn_check_digit(digits: &str) -> Option<u32> {
    let mut sum = 0;
    for (i, c) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(c.checked_sub(b'0').filter(|d| *d <= 9)?);
        if i % 2 == 0 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    Some((10 - sum % 10) % 10)
}

/// A LOINC code: `\d{1,7}-\d` whose last digit is the check digit of the
/// others, or a part or answer code `LP\d+-\d`, `LA\d+-\d`.
pub fn is_loinc(code: &str) -> bool {
    let Some((number, check)) = code.split_once('-') else {
        return false;
    };
    if check.len() != 1 || !all_digits(check) {
        return false;
    }
    if let Some(part) = number
        .strip_prefix("LP")
        .or_else(|| number.strip_prefix("LA"))
    {
        return (1..=8).contains(&part.len()) && all_digits(part);
    }
    (1..=7).contains(&number.len())
        && all_digits(number)
        && luhn_check_digit(number) == check.parse().ok()
}

/// Verhoeff's dihedral-group multiplication table.
const VERHOEFF_D: [[u8; 10]; 10] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
];

/// Verhoeff's position permutation table.
const VERHOEFF_P: [[u8; 10]; 8] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
];

/// Whether a string of digits ends in its valid Verhoeff check digit.
fn verhoeff_valid(digits: &str) -> bool {
    let mut c = 0usize;
    for (i, b) in digits.bytes().rev().enumerate() {
        let d = usize::from(b - b'0');
        c = usize::from(VERHOEFF_D[c][usize::from(VERHOEFF_P[i % 8][d])]);
    }
    c == 0
}

/// A SNOMED CT concept id: 6 to 18 digits, no leading 0, partition `00`
/// (international) or `10` (an extension's namespace) before the check
/// digit, and the Verhoeff check digit. Nine random digits (an SSN) pass
/// one time in 500.
pub fn is_sctid(code: &str) -> bool {
    if !is_number_without_leading_zero(code, 6, 18) {
        return false;
    }
    let n = code.len();
    matches!(&code[n - 3..n - 1], "00" | "10") && verhoeff_valid(code)
}

/// An ICD-10-CM (or WHO ICD-10) code: `E11.9`, `I10`, `S72.001A`.
pub fn is_icd10(code: &str) -> bool {
    let (category, sub) = match code.split_once('.') {
        Some((c, s)) => (c, Some(s)),
        None => (code, None),
    };
    let b = category.as_bytes();
    let category_ok = b.len() == 3
        && b[0].is_ascii_uppercase()
        && b[1].is_ascii_digit()
        && (b[2].is_ascii_digit() || b[2].is_ascii_uppercase());
    let sub_ok = sub.is_none_or(|s| {
        (1..=4).contains(&s.len())
            && s.bytes()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    });
    category_ok && sub_ok
}

/// An ICD-10-PCS code: seven of `0-9` and `A-Z` but `I` and `O`.
pub fn is_icd10_pcs(code: &str) -> bool {
    code.len() == 7
        && code
            .bytes()
            .all(|c| c.is_ascii_digit() || (c.is_ascii_uppercase() && c != b'I' && c != b'O'))
}

/// A CPT code: four digits and a digit or a letter (`99213`, `3074F`, `0042T`).
pub fn is_cpt(code: &str) -> bool {
    let b = code.as_bytes();
    b.len() == 5
        && b[..4].iter().all(u8::is_ascii_digit)
        && (b[4].is_ascii_digit() || b[4].is_ascii_uppercase())
}

/// An NDC: 10 digits in one of the three hyphenated layouts, 11 hyphenated
/// 5-4-2, or 11 digits unhyphenated (the HIPAA form). Ten digits without
/// hyphens are refused: they cannot be told from a phone number.
pub fn is_ndc(code: &str) -> bool {
    if !code.contains('-') {
        return code.len() == 11 && all_digits(code);
    }
    let groups: Vec<usize> = code.split('-').map(str::len).collect();
    code.split('-').all(all_digits)
        && matches!(
            groups.as_slice(),
            [4, 4, 2] | [5, 3, 2] | [5, 4, 1] | [5, 4, 2]
        )
}

/// A HL7 code (`AMB`, `encounter-diagnosis`, `confirmed`, `LAB`): letters,
/// digits, `-` and `.`, at most 64 bytes, starting with a letter or digit,
/// no run of 4 or more digits.
pub fn is_hl7_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && longest_digit_run(code) < 4
}

/// Scripts a language tag may name (ISO 15924), those clinical records use.
const SCRIPTS: [&str; 14] = [
    "Arab", "Beng", "Cyrl", "Deva", "Ethi", "Grek", "Hans", "Hant", "Hebr", "Jpan", "Kore", "Latn",
    "Taml", "Thai",
];

/// A BCP-47 language tag of the forms records use: a language of 2 or 3
/// lower-case letters, then optionally a known script (`Hans`) and a region
/// (2 upper-case letters or 3 digits). Variants and extensions, which can
/// hold free text, are refused.
pub fn is_language(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let language_ok = parts
        .next()
        .is_some_and(|l| (2..=3).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_lowercase()));
    if !language_ok {
        return false;
    }
    let mut rest: Vec<&str> = parts.collect();
    if rest.first().is_some_and(|s| SCRIPTS.contains(s)) {
        rest.remove(0);
    }
    match rest.as_slice() {
        [] => true,
        [region] => {
            (region.len() == 2 && region.bytes().all(|b| b.is_ascii_uppercase()))
                || (region.len() == 3 && all_digits(region))
        }
        _ => false,
    }
}

/// A release date written `YYYYMMDD` or `YYYY-MM-DD`: a real calendar day
/// of 2000 or later. (Terminology releases are that recent; the year bound
/// keeps most birth dates out, though not those of children.)
fn is_release_date(s: &str) -> bool {
    let compact = match s.len() {
        8 => s.to_string(),
        10 if s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-' => s.replace('-', ""),
        _ => return false,
    };
    all_digits(&compact)
        && chrono::NaiveDate::parse_from_str(&compact, "%Y%m%d").is_ok_and(|d| d.year() >= 2000)
}

/// A dotted version number (`2.74`, `4.0.1`, `2024`): at most four parts,
/// the first of at most 4 digits, the others of at most 3, 8 digits in all,
/// so that no SSN or phone number fits.
fn is_version_number(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() <= 4
        && parts.iter().all(|p| all_digits(p))
        && parts.first().is_some_and(|p| p.len() <= 4)
        && parts.iter().skip(1).all(|p| p.len() <= 3)
        && parts.iter().map(|p| p.len()).sum::<usize>() <= 8
}

/// A SNOMED CT edition: `http://snomed.info/sct/MODULE` with an optional
/// `/version/YYYYMMDD`, the module a valid concept id.
fn is_snomed_edition(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("http://snomed.info/sct/") else {
        return false;
    };
    match rest.split_once("/version/") {
        Some((module, date)) => is_sctid(module) && date.len() == 8 && is_release_date(date),
        None => is_sctid(rest),
    }
}

/// A `Coding.version`: a version number, a release date or a SNOMED CT edition.
pub fn is_version(s: &str) -> bool {
    is_version_number(s) || is_release_date(s) || is_snomed_edition(s)
}

/// UCUM atoms that take a metric prefix (`mg`, `mL`, `kU`, `mm[Hg]`, `m[IU]`).
#[rustfmt::skip]
const UCUM_METRIC: &[&str] = &[
    "m", "s", "g", "rad", "K", "C", "cd", "mol", "sr", "Hz", "N", "Pa", "J", "W", "A", "V", "F",
    "Ohm", "S", "Wb", "Cel", "T", "H", "lm", "lx", "Bq", "Gy", "Sv", "l", "L", "ar", "t", "bar",
    "u", "eV", "pc", "gf", "Ky", "Gal", "dyn", "erg", "P", "St", "Mx", "G", "Oe", "Gb", "sb",
    "Lmb", "ph", "Ci", "R", "RAD", "REM", "cal", "cal_th", "cal_IT", "cal_m", "tex", "m[H2O]",
    "m[Hg]", "eq", "osm", "g%", "kat", "U", "[iU]", "[IU]", "mho", "B", "st", "Np", "bit", "By",
    "Bd", "[g]", "[c]", "[h]", "[k]", "[e]", "[G]", "[ly]",
];

/// UCUM atoms without a prefix: time, counts, customary units, arbitrary
/// units. `10*` and `10^` (powers of ten) are handled by the parser.
#[rustfmt::skip]
const UCUM_PLAIN: &[&str] = &[
    "%", "[pi]", "[ppth]", "[ppm]", "[ppb]", "[pptr]", "min", "h", "d", "wk", "mo", "mo_s", "mo_j",
    "mo_g", "a", "a_t", "a_j", "a_g", "deg", "gon", "'", "''", "circ", "sph", "atm", "att", "Ao",
    "AU", "b", "[in_i]", "[ft_i]", "[yd_i]", "[mi_i]", "[nmi_i]", "[mil_i]", "[in_us]", "[ft_us]",
    "[lb_av]", "[oz_av]", "[dr_av]", "[gr]", "[ston_av]", "[oz_tr]", "[lb_tr]", "[pwt_tr]",
    "[degF]", "[degR]", "[degRe]", "[pH]", "[drp]", "[HPF]", "[LPF]", "[CFU]", "[PFU]", "[FFU]",
    "[BAU]", "[AU]", "[arb'U]", "[USP'U]", "[GPL'U]", "[MPL'U]", "[APL'U]", "[beth'U]",
    "[anti'Xa'U]", "[todd'U]", "[dye'U]", "[smgy'U]", "[bdsk'U]", "[ka'U]", "[knk'U]", "[mclg'U]",
    "[tb'U]", "[hp'U]", "[ELU]", "[EU]", "[Lf]", "[D'ag'U]", "[tbs_us]", "[tsp_us]", "[foz_us]",
    "[pt_us]", "[qt_us]", "[gal_us]", "[cup_us]", "[foz_br]", "[pt_br]", "[in_i'Hg]", "[in_i'H2O]",
    "[MET]", "[mesh_i]", "[Ch]", "[diop]", "[hnsf'U]", "[kp_C]", "[S]", "[PRU]", "[wood'U]",
    "[psi]", "[NTU]", "[IR]", "[TCID_50]", "[CCID_50]", "[EID_50]", "[PNU]", "[FEU]", "[Btu]",
    "[HP]", "[mu_0]", "[eps_0]", "[m_e]", "[m_p]", "[m_u]",
];

/// UCUM's metric prefixes, two-letter ones first so that `da` wins over `d`.
const UCUM_PREFIXES: [&str; 20] = [
    "da", "Y", "Z", "E", "P", "T", "G", "M", "k", "h", "d", "c", "m", "u", "n", "p", "f", "a", "z",
    "y",
];

/// Binary prefixes, for bits and bytes only.
const UCUM_BINARY_PREFIXES: [&str; 4] = ["Ki", "Mi", "Gi", "Ti"];

/// Whether `symbol` is a UCUM unit: an atom, or a metric atom with a prefix.
fn is_ucum_symbol(symbol: &str) -> bool {
    if UCUM_METRIC.contains(&symbol) || UCUM_PLAIN.contains(&symbol) {
        return true;
    }
    let prefixed = UCUM_PREFIXES.iter().any(|p| {
        symbol
            .strip_prefix(p)
            .is_some_and(|rest| UCUM_METRIC.contains(&rest))
    });
    prefixed
        || UCUM_BINARY_PREFIXES.iter().any(|p| {
            symbol
                .strip_prefix(p)
                .is_some_and(|rest| rest == "bit" || rest == "By")
        })
}

/// A small recursive-descent reader of UCUM's grammar (term, component,
/// annotation), byte by byte.
struct UcumReader<'a> {
    s: &'a [u8],
    i: usize,
    depth: u8,
}

impl UcumReader<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    /// `term := ['/'] component (('.' | '/') component)*`
    fn term(&mut self) -> bool {
        if self.peek() == Some(b'/') {
            self.i += 1;
        }
        if !self.component() {
            return false;
        }
        while matches!(self.peek(), Some(b'.' | b'/')) {
            self.i += 1;
            if !self.component() {
                return false;
            }
        }
        true
    }

    /// A unit with an optional exponent and annotation, a power of ten, a
    /// small factor, an annotation alone, or a parenthesised term.
    fn component(&mut self) -> bool {
        match self.peek() {
            Some(b'(') => self.group(),
            Some(b'{') => self.annotation(),
            Some(b'0'..=b'9') => self.number(),
            Some(_) => self.unit(),
            None => false,
        }
    }

    /// `(term)`; or `(word)` of lower-case letters, a non-standard spelling
    /// of an annotation that Synthea writes for scores (`(score)`).
    fn group(&mut self) -> bool {
        if self.depth >= 4 {
            return false;
        }
        let start = self.i;
        self.i += 1;
        self.depth += 1;
        let ok = self.term() && self.peek() == Some(b')');
        self.depth -= 1;
        if ok {
            self.i += 1;
            return true;
        }
        self.i = start + 1;
        let word = self.take_while(|b| b.is_ascii_lowercase());
        if (1..=16).contains(&word) && self.peek() == Some(b')') {
            self.i += 1;
            return true;
        }
        false
    }

    /// `{...}`: printable ASCII but braces and `@`, at most 32 bytes (the
    /// digit-run rule of [`is_ucum`] applies inside too).
    fn annotation(&mut self) -> bool {
        self.i += 1;
        let n = self.take_while(|b| b.is_ascii_graphic() && !matches!(b, b'{' | b'}' | b'@'));
        if n == 0 || n > 32 || self.peek() != Some(b'}') {
            return false;
        }
        self.i += 1;
        true
    }

    /// `10*N` or `10^N` (a power of ten), or a factor of digits; either may
    /// carry an annotation.
    fn number(&mut self) -> bool {
        let rest = &self.s[self.i..];
        if rest.starts_with(b"10*") || rest.starts_with(b"10^") {
            self.i += 3;
            if !self.exponent() {
                return false;
            }
        } else {
            self.take_while(|b| b.is_ascii_digit());
        }
        self.optional_annotation()
    }

    /// A unit symbol (letters, `%`, `'`, `_` and bracketed parts such as
    /// `[Hg]`), then an optional exponent and annotation.
    fn unit(&mut self) -> bool {
        let start = self.i;
        while let Some(b) = self.peek() {
            if b.is_ascii_alphabetic() || matches!(b, b'%' | b'\'' | b'_') {
                self.i += 1;
            } else if b == b'[' {
                let n = self.take_while_after(1, |b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'\'' | b'.')
                });
                if self.s.get(self.i + 1 + n) != Some(&b']') {
                    return false;
                }
                self.i += n + 2;
            } else {
                break;
            }
        }
        let symbol = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
        if !is_ucum_symbol(symbol) {
            return false;
        }
        if matches!(self.peek(), Some(b'+' | b'-' | b'0'..=b'9')) && !self.exponent() {
            return false;
        }
        self.optional_annotation()
    }

    /// `[+-]?\d{1,2}`
    fn exponent(&mut self) -> bool {
        if matches!(self.peek(), Some(b'+' | b'-')) {
            self.i += 1;
        }
        (1..=2).contains(&self.take_while(|b| b.is_ascii_digit()))
    }

    fn optional_annotation(&mut self) -> bool {
        self.peek() != Some(b'{') || self.annotation()
    }

    /// Advances over bytes matching `f`; returns how many.
    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> usize {
        let n = self.take_while_after(0, f);
        self.i += n;
        n
    }

    /// How many bytes from `self.i + skip` match `f` (without advancing).
    fn take_while_after(&self, skip: usize, f: impl Fn(u8) -> bool) -> usize {
        self.s
            .get(self.i + skip..)
            .unwrap_or_default()
            .iter()
            .take_while(|b| f(**b))
            .count()
    }
}

/// A UCUM unit expression (`mg`, `mL`, `/min`, `{beats}/min`, `mm[Hg]`,
/// `%`, `10*3/uL`, `kg/m2`, `mL/min/{1.73_m2}`): known atoms with optional
/// metric prefixes, exponents, annotations, `.` and `/`. Never a run of 3 or
/// more digits (powers of ten are written `10*3`), a space or an `@`, so a
/// phone number, an SSN or an e-mail address is not a unit; nor a word that
/// is not a unit (a name).
pub fn is_ucum(s: &str) -> bool {
    if s.is_empty() || s.len() > 64 || !s.is_ascii() || longest_digit_run(s) >= 3 {
        return false;
    }
    let mut r = UcumReader {
        s: s.as_bytes(),
        i: 0,
        depth: 0,
    };
    r.term() && r.i == s.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Identifiers a red team plants in coded fields: none is any system's code.
    const PLANTED: [&str; 9] = [
        "123-45-6789",
        "123456789",
        "617-555-0199",
        "(617) 555-0199",
        "6175550199",
        "Blenkinsop",
        "Hortensia Blenkinsop",
        "MRN00482913",
        "jsmith@example.org",
    ];

    fn rejects_planted(syntax: CodeSyntax) {
        for p in PLANTED {
            assert!(!syntax.accepts(p), "{syntax:?} accepted {p:?}");
        }
    }

    #[test]
    fn loinc_codes_need_their_check_digit() {
        for real in [
            "8867-4",
            "2085-9",
            "18262-6",
            "72166-2",
            "LA6576-8",
            "LP12345-6",
        ] {
            assert!(is_loinc(real), "{real}");
        }
        // A wrong check digit, an SSN's shape, no check digit.
        for bad in ["8867-5", "123-45-6789", "88674", "12345678-9", "LX123-4"] {
            assert!(!is_loinc(bad), "{bad}");
        }
        rejects_planted(CodeSyntax::Loinc);
    }

    #[test]
    fn snomed_ids_need_partition_and_verhoeff_digit() {
        for real in [
            "44054006",
            "38341003",
            "10509002",
            "1015401000000102",
            "10939881000119105",
            "162864005",
        ] {
            assert!(is_sctid(real), "{real}");
        }
        // LOINC in a SNOMED coding (Synthea's 34552-0), a changed digit, a
        // leading zero, too short.
        for bad in ["34552-0", "44054007", "044054006", "12345"] {
            assert!(!is_sctid(bad), "{bad}");
        }
        rejects_planted(CodeSyntax::Snomed);
    }

    #[test]
    fn icd_10_codes() {
        for real in ["E11.9", "I10", "S72.001A", "Z79.4", "U07.1"] {
            assert!(is_icd10(real), "{real}");
        }
        for bad in ["e11.9", "E1.9", "E11.", "E11.12345", "11.9"] {
            assert!(!is_icd10(bad), "{bad}");
        }
        rejects_planted(CodeSyntax::Icd10);
        assert!(is_icd10_pcs("0DT70ZZ") && is_icd10_pcs("02703ZZ"));
        assert!(!is_icd10_pcs("0DT70ZI") && !is_icd10_pcs("0DT70Z"));
        rejects_planted(CodeSyntax::Icd10Pcs);
    }

    #[test]
    fn rxnorm_cvx_cpt_and_ndc_codes() {
        for real in ["860975", "10831", "1049221", "197591"] {
            assert!(CodeSyntax::RxNorm.accepts(real), "{real}");
        }
        assert!(!CodeSyntax::RxNorm.accepts("0860975"));
        assert!(!CodeSyntax::RxNorm.accepts("8609751234"));
        rejects_planted(CodeSyntax::RxNorm);
        for real in ["03", "08", "140", "207"] {
            assert!(CodeSyntax::Cvx.accepts(real), "{real}");
        }
        assert!(!CodeSyntax::Cvx.accepts("1400"));
        rejects_planted(CodeSyntax::Cvx);
        for real in ["99213", "3074F", "0042T"] {
            assert!(is_cpt(real), "{real}");
        }
        assert!(!is_cpt("9921") && !is_cpt("99213-1"));
        rejects_planted(CodeSyntax::Cpt);
        for real in [
            "0777-3105-02",
            "50090-1234-5",
            "12345-678-90",
            "00777310502",
        ] {
            assert!(is_ndc(real), "{real}");
        }
        assert!(!is_ndc("123-45-6789") && !is_ndc("6175550199"));
        rejects_planted(CodeSyntax::Ndc);
    }

    #[test]
    fn ucum_units_of_real_records_and_no_identifiers() {
        for real in [
            "mg",
            "mL",
            "/min",
            "{beats}/min",
            "mm[Hg]",
            "%",
            "10*3/uL",
            "10*6/uL",
            "kg/m2",
            "mL/min/{1.73_m2}",
            "{score}",
            "(score)",
            "{T-score}",
            "Cel",
            "kU/L",
            "m[IU]/L",
            "ng/dl",
            "mmol/L",
            "g/dL",
            "fL",
            "pg",
            "[lb_av]",
            "[in_i]",
            "cm[H2O]",
            "s-1",
            "mg/(24.h)",
            "[arb'U]/mL",
        ] {
            assert!(is_ucum(real), "{real}");
        }
        for bad in [
            "555-0199",
            "1234",
            "mg 5",
            "{John Smith}",
            "{a@b}",
            "{12345}",
            "Smith",
            "beats/minute",
            "mmHg",
            "",
            "mg/",
            "{score",
            "(Blenkinsop)",
        ] {
            assert!(!is_ucum(bad), "{bad}");
        }
        rejects_planted(CodeSyntax::Ucum);
    }

    #[test]
    fn hl7_codes_and_system_names() {
        for real in [
            "AMB",
            "EMER",
            "encounter-diagnosis",
            "confirmed",
            "LAB",
            "2.16.840",
        ] {
            assert!(is_hl7_code(real), "{real}");
        }
        for bad in ["MRN00482913", "123456789", "a b", "-x", "x_y"] {
            assert!(!is_hl7_code(bad), "{bad}");
        }
        for name in [
            "condition-clinical",
            "v3-ActCode",
            "v2-0203",
            "administrative-gender",
        ] {
            assert!(is_code_system_name(name), "{name}");
        }
        for bad in [
            "sid/us-ssn",
            "v2-00482913",
            "JohnSmith",
            "mrn-00482913",
            "",
            "a--b",
        ] {
            assert!(!is_code_system_name(bad), "{bad}");
        }
    }

    #[test]
    fn languages_versions_and_short_codes() {
        for real in ["en", "en-US", "pt", "ru-RU", "es-419", "zh-Hans-CN"] {
            assert!(is_language(real), "{real}");
        }
        for bad in [
            "English",
            "en-Blenkinsop",
            "en-us",
            "x-private",
            "en-US-x-smith",
        ] {
            assert!(!is_language(bad), "{bad}");
        }
        rejects_planted(CodeSyntax::Bcp47);
        for real in [
            "2.74",
            "4.0.1",
            "2024",
            "20230901",
            "2023-09-01",
            "http://snomed.info/sct/731000124108/version/20230901",
        ] {
            assert!(is_version(real), "{real}");
        }
        for bad in [
            "Blenkinsop",
            "123.45.6789",
            "617.555.0199",
            "123456789",
            "20231301",
            "19610402",
            "http://snomed.info/sct/00482913/version/20230901",
            "2.74-beta",
        ] {
            assert!(!is_version(bad), "{bad}");
        }
        for real in ["final", "entered-in-error", "in-progress"] {
            assert!(is_short_code(real), "{real}");
        }
        for bad in ["Final", "in_progress", "mrn-0048", "a-", &"x".repeat(33)] {
            assert!(!is_short_code(bad), "{bad}");
        }
        assert!(is_comparator("<=") && !is_comparator("=<"));
        assert!(is_unit_of_time("d") && !is_unit_of_time("days"));
    }

    #[test]
    fn allowlist_by_exact_system_and_by_prefix() {
        let t = TerminologyPolicy {
            systems: [("http://loinc.org".to_string(), CodeSyntax::Loinc)].into(),
            prefixes: [(
                "http://terminology.hl7.org/CodeSystem/".to_string(),
                CodeSyntax::Hl7,
            )]
            .into(),
        };
        assert_eq!(t.syntax("http://loinc.org"), Some(CodeSyntax::Loinc));
        assert_eq!(t.syntax("http://loinc.org/"), None);
        assert_eq!(
            t.syntax("http://terminology.hl7.org/CodeSystem/v3-ActCode"),
            Some(CodeSyntax::Hl7)
        );
        assert_eq!(
            t.syntax("http://terminology.hl7.org/CodeSystem/mrn/00482913"),
            None
        );
        assert_eq!(t.syntax("http://hospital.example.org/mrn/00482913"), None);
        assert!(
            t.check_coding(Some("http://loinc.org"), Some("8867-4"), None)
                .is_ok()
        );
        assert_eq!(
            t.check_coding(Some("http://loinc.org"), Some("123-45-6789"), None),
            Err(Rejection::InvalidCode)
        );
        assert_eq!(
            t.check_coding(None, Some("8867-4"), None),
            Err(Rejection::NotInTerminology)
        );
        assert_eq!(
            t.check_coding(Some("http://loinc.org"), Some("8867-4"), Some("Blenkinsop")),
            Err(Rejection::InvalidVersion)
        );
        assert!(t.validate().is_ok());
        let bad = TerminologyPolicy {
            systems: [("not a uri".to_string(), CodeSyntax::Loinc)].into(),
            prefixes: BTreeMap::new(),
        };
        assert_eq!(bad.validate().unwrap_err().field, "terminology.systems");
    }
}
