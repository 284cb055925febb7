//! The weights file: plain text, one feature a line, so a reviewer can read
//! what the model weighs and a diff shows what a retraining changed.
//!
//! ```text
//! # clintune PHI model
//! format 1
//! table_bits 20
//! threshold balanced 0.3125
//! threshold strict 0.0625
//! about trained on ...
//! 1.25<TAB>rule<TAB>title
//! ```
//!
//! Values are written byte by byte, `%XX` for anything but printable ASCII
//! (and `%` itself), so that a value reads back to the bytes it was hashed
//! from. Weights are written in Rust's shortest round-trip form: a file read
//! back gives the model that wrote it, bit for bit.

use super::PhiModel;
use super::features::{self, Template};
use std::fmt::Write as _;

const FORMAT: &str = "1";

impl PhiModel {
    /// The model as its weights file. Slots without a name (never seen in
    /// training) hold zero and are not written.
    pub fn render(&self) -> String {
        let mut out =
            String::from("# clintune PHI model: logistic regression over hashed token features\n");
        let _ = writeln!(out, "format {FORMAT}");
        let _ = writeln!(out, "table_bits {}", features::TABLE_BITS);
        let _ = writeln!(out, "threshold balanced {}", self.balanced);
        let _ = writeln!(out, "threshold strict {}", self.strict);
        for line in &self.about {
            let _ = writeln!(out, "about {}", line.replace('\n', " "));
        }
        let mut rows: Vec<(&Template, &Vec<u8>, f32)> = self
            .names
            .iter()
            .zip(&self.weights)
            .filter_map(|(n, w)| n.as_ref().map(|(t, v)| (t, v, *w)))
            .filter(|(_, _, w)| *w != 0.0)
            .collect();
        rows.sort_by(|a, b| (a.0.name(), a.1).cmp(&(b.0.name(), b.1)));
        for (t, v, w) in rows {
            let _ = writeln!(out, "{w}\t{}\t{}", t.name(), escape(v));
        }
        out
    }

    /// Reads a weights file; `what` names it in errors.
    pub fn parse(text: &str, what: &str) -> Result<Self, String> {
        let mut model = PhiModel::zeros();
        let mut format = None;
        for (n, line) in text.lines().enumerate() {
            let bad = |why: &str| format!("{what}: line {}: {why}", n + 1);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(rest) = line.strip_prefix("format ") {
                format = Some(rest.to_string());
            } else if let Some(rest) = line.strip_prefix("table_bits ") {
                if rest != features::TABLE_BITS.to_string() {
                    return Err(bad("table_bits differs from this build's"));
                }
            } else if let Some(rest) = line.strip_prefix("threshold ") {
                let (mode, p) = rest
                    .split_once(' ')
                    .ok_or_else(|| bad("expected a mode and a value"))?;
                let p: f32 = p.parse().map_err(|_| bad("threshold is not a number"))?;
                if !(0.0..=1.0).contains(&p) {
                    return Err(bad("threshold must lie between 0 and 1"));
                }
                match mode {
                    "balanced" => model.balanced = p,
                    "strict" => model.strict = p,
                    _ => return Err(bad("unknown mode")),
                }
            } else if let Some(rest) = line.strip_prefix("about ") {
                model.about.push(rest.to_string());
            } else {
                let mut f = line.splitn(3, '\t');
                let (Some(w), Some(t), Some(v)) = (f.next(), f.next(), f.next()) else {
                    return Err(bad("expected weight, template and value"));
                };
                let w: f32 = w.parse().map_err(|_| bad("weight is not a number"))?;
                let t = Template::from_name(t).ok_or_else(|| bad("unknown feature template"))?;
                let v = unescape(v).ok_or_else(|| bad("bad %-escape in the value"))?;
                model.weights[features::slot(t, &v) as usize] += w;
            }
        }
        match format.as_deref() {
            Some(FORMAT) => Ok(model),
            Some(_) => Err(format!(
                "{what}: unsupported format (this build reads {FORMAT})"
            )),
            None => Err(format!("{what}: no `format` line: not a PHI model file")),
        }
    }
}

fn escape(v: &[u8]) -> String {
    let mut s = String::with_capacity(v.len());
    for &b in v {
        if b.is_ascii_graphic() && b != b'%' {
            s.push(b as char);
        } else {
            let _ = write!(s, "%{b:02X}");
        }
    }
    s
}

fn unescape(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rendered_model_reads_back_bit_for_bit() {
        let mut m = PhiModel::zeros();
        m.names = vec![None; m.weights.len()];
        for (t, v, w) in [
            (Template::Rule, b"title".to_vec(), 1.25f32),
            (Template::PunctBefore, b"%\t".to_vec(), -0.1f32 / 3.0),
            (Template::Word, "café".as_bytes().to_vec(), 7e-8),
        ] {
            let s = features::slot(t, &v) as usize;
            m.weights[s] = w;
            m.names[s] = Some((t, v));
        }
        m.balanced = 0.3;
        m.strict = 0.05;
        m.about.push("test model".into());
        let back = PhiModel::parse(&m.render(), "m").unwrap();
        assert_eq!(back.weights, m.weights);
        assert_eq!((back.balanced, back.strict), (0.3, 0.05));
        assert_eq!(back.about, ["test model"]);
    }

    #[test]
    fn broken_files_are_refused_with_the_line() {
        let err = PhiModel::parse("format 1\n0.5\tnope\tx\n", "m.txt").unwrap_err();
        assert!(
            err.contains("m.txt: line 2") && err.contains("template"),
            "{err}"
        );
        let err = PhiModel::parse("0.5\trule\tx\n", "m.txt").unwrap_err();
        assert!(err.contains("not a PHI model"), "{err}");
        let err = PhiModel::parse("format 1\nthreshold strict 2\n", "m.txt").unwrap_err();
        assert!(err.contains("between 0 and 1"), "{err}");
    }
}
