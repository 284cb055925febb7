//! Chat examples rendered through a chat template, with the answer spans.

/// The chat template used when the tokenizer brings none: ChatML, as used by
/// Qwen2 and SmolLM. Each message becomes
/// `<|im_start|>ROLE\nCONTENT<|im_end|>\n`; with `add_generation_prompt`
/// the text ends with `<|im_start|>assistant\n`.
pub const DEFAULT_CHAT_TEMPLATE: &str = "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

use crate::Message;
use crate::tokenizer::{Tokenizer, TokenizerError};
use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, ErrorKind, context};
use std::ops::Range;

/// A chat template that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("chat template: {detail}")]
pub struct TemplateError {
    /// What went wrong, with the template line when the engine gives it.
    pub detail: String,
    /// The template engine's error, when it raised one.
    #[source]
    pub source: Option<minijinja::Error>,
}

/// A template or tokenizer failure.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// The chat template failed.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// The tokenizer failed.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
}

/// Name of the one template in the environment.
const NAME: &str = "chat";

/// A compiled chat template, rendered the way transformers renders
/// `apply_chat_template`: Jinja with `trim_blocks` and `lstrip_blocks`, Python
/// string methods, the functions `raise_exception` and `strftime_now`,
/// transformers' `tojson` (Python's `json.dumps`, not HTML-escaped), and the
/// tokenizer's special tokens (`bos_token`, `eos_token`, `pad_token`) defined.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
    pad_token: Option<String>,
}

/// A rendered conversation and where the assistant's turns are in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The whole conversation as text.
    pub text: String,
    /// Byte ranges of `text` trained on: each assistant turn from the end of
    /// the generation prompt to the end of the turn (its end-of-turn marker
    /// included, so the model learns to stop).
    pub answers: Vec<Range<usize>>,
}

impl ChatTemplate {
    /// Compiles `source` with the tokenizer's special tokens.
    pub fn new(
        source: &str,
        bos_token: Option<&str>,
        eos_token: Option<&str>,
    ) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(template_err)?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", crate::pyjson::tojson_filter);
        env.add_template_owned(NAME, source.to_string())
            .map_err(template_err)?;
        Ok(Self {
            env,
            bos_token: bos_token.unwrap_or_default().to_string(),
            eos_token: eos_token.unwrap_or_default().to_string(),
            pad_token: None,
        })
    }

    /// The tokenizer's own template with its special tokens.
    pub fn for_tokenizer(tokenizer: &Tokenizer) -> Result<Self, TemplateError> {
        let mut template = Self::new(
            tokenizer.chat_template(),
            tokenizer.bos_token(),
            tokenizer.eos_token(),
        )?;
        template.pad_token = tokenizer.config().pad_token.clone();
        Ok(template)
    }

    /// Renders `messages`; with `add_generation_prompt` the text ends where
    /// the assistant's next turn begins.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, TemplateError> {
        let template = self.env.get_template(NAME).map_err(template_err)?;
        template
            .render(context! {
                messages => minijinja::value::Serde(messages),
                add_generation_prompt => add_generation_prompt,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
                pad_token => &self.pad_token,
            })
            .map_err(template_err)
    }

    /// Renders the conversation and finds each assistant turn by rendering
    /// the prefixes around it: the turn is what rendering it adds after the
    /// generation prompt.
    ///
    /// Some templates render a turn differently once later turns follow
    /// (Qwen3 drops the `<think>` block of earlier answers), so the prefix
    /// is not a prefix of the whole. Such a turn is located by its words,
    /// after the previous turn, followed by the same end-of-turn text; a turn
    /// that cannot be found that way is an error, never a guess.
    pub fn render_with_answers(&self, messages: &[Message]) -> Result<Rendered, TemplateError> {
        let text = self.render(messages, false)?;
        let mut answers: Vec<Range<usize>> = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            if m.role != "assistant" {
                continue;
            }
            let prompt = self.render(&messages[..i], true)?;
            let through = self.render(&messages[..=i], false)?;
            let Some(turn) = through.strip_prefix(prompt.as_str()) else {
                return Err(unlocatable(
                    i,
                    "the generation prompt is not where the answer starts",
                ));
            };
            let span = if text.starts_with(&through) {
                prompt.len()..through.len()
            } else {
                let before = self.render(&messages[..i], false)?;
                let header = prompt.strip_prefix(before.as_str()).unwrap_or_default();
                let after = answers.last().map_or(0, |a| a.end);
                by_words(&text, after, header, turn, &m.content).ok_or_else(|| {
                    unlocatable(i, "the template rewrites it and its words are not found")
                })?
            };
            answers.push(span);
        }
        Ok(Rendered { text, answers })
    }
}

/// The span in `text`, after `after`, of an answer whose words are
/// `content`: right after the assistant's turn `header` (what the
/// generation prompt adds) and followed by what follows `content` in its own
/// rendering `turn` (the end-of-turn marker), so that the same words in a
/// user's turn are not taken for it.
fn by_words(
    text: &str,
    after: usize,
    header: &str,
    turn: &str,
    content: &str,
) -> Option<Range<usize>> {
    if content.is_empty() || header.is_empty() {
        return None;
    }
    let ending = &turn[turn.find(content)? + content.len()..];
    text.get(after..)?
        .match_indices(header)
        .map(|(at, _)| after + at + header.len())
        .find(|&start| {
            text[start..]
                .strip_prefix(content)
                .is_some_and(|rest| rest.starts_with(ending))
        })
        .map(|start| start..start + content.len() + ending.len())
}

fn unlocatable(i: usize, why: &str) -> TemplateError {
    TemplateError {
        detail: format!(
            "assistant message {i} cannot be located in the rendered conversation ({why}), \
             so no loss mask can be made"
        ),
        source: None,
    }
}

/// The first token a tokenizer's chat template writes after an assistant's
/// words, when it is a special token (`<|im_end|>` for ChatML): where a
/// generated answer ends.
pub fn end_of_turn(tokenizer: &Tokenizer) -> Result<Option<u32>, TextError> {
    const PROBE: &str = "PROBE";
    let template = ChatTemplate::for_tokenizer(tokenizer)?;
    let messages = [
        Message::new("user", "hi".into()),
        Message::new("assistant", PROBE.into()),
    ];
    let rendered = template.render_with_answers(&messages)?;
    let Some(span) = rendered.answers.first() else {
        return Ok(None);
    };
    let answer = &rendered.text[span.clone()];
    let after = answer
        .find(PROBE)
        .map_or("", |i| &answer[i + PROBE.len()..]);
    let first = tokenizer.encode(after)?.first().copied();
    let special = tokenizer.inner().get_added_tokens_decoder();
    Ok(first.filter(|id| special.get(id).is_some_and(|t| t.special)))
}

/// transformers' `strftime_now`: the local time in a `strftime` format
/// (Llama 3.2's template writes today's date with it).
fn strftime_now(format: String) -> Result<String, minijinja::Error> {
    use std::fmt::Write;
    let mut out = String::new();
    write!(out, "{}", chrono::Local::now().format(&format)).map_err(|_| {
        minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("strftime_now: {format:?} is not a strftime format"),
        )
    })?;
    Ok(out)
}

fn template_err(e: minijinja::Error) -> TemplateError {
    // The alternate form adds the template's source around the fault.
    TemplateError {
        detail: format!("{e:#}"),
        source: Some(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(role: &str, content: &str) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }

    #[test]
    fn chatml_answer_spans_cover_assistant_turns_only() {
        let t = ChatTemplate::new(DEFAULT_CHAT_TEMPLATE, None, Some("<|endoftext|>")).unwrap();
        let conv = [
            msg("system", "Be brief."),
            msg("user", "Dose?"),
            msg("assistant", "5 mg daily."),
            msg("user", "And?"),
            msg("assistant", "Recheck in 2 weeks."),
        ];
        let r = t.render_with_answers(&conv).unwrap();
        let spans: Vec<&str> = r.answers.iter().map(|s| &r.text[s.clone()]).collect();
        assert_eq!(
            spans,
            ["5 mg daily.<|im_end|>\n", "Recheck in 2 weeks.<|im_end|>\n"]
        );
        assert!(
            r.text
                .starts_with("<|im_start|>system\nBe brief.<|im_end|>\n")
        );
    }

    #[test]
    fn llama3_style_template_with_bos_and_python_methods() {
        let src = "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'] | trim }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}";
        let t = ChatTemplate::new(src, Some("<|begin_of_text|>"), None).unwrap();
        let r = t
            .render_with_answers(&[msg("user", " hi "), msg("assistant", "hello")])
            .unwrap();
        assert!(
            r.text
                .starts_with("<|begin_of_text|><|start_header_id|>user")
        );
        assert_eq!(&r.text[r.answers[0].clone()], "hello<|eot_id|>");
        let py =
            ChatTemplate::new("{{ messages[0]['content'].strip().upper() }}", None, None).unwrap();
        assert_eq!(py.render(&[msg("user", " x ")], false).unwrap(), "X");
    }

    #[test]
    fn raise_exception_and_syntax_errors_are_errors() {
        let t =
            ChatTemplate::new("{{ raise_exception('roles must alternate') }}", None, None).unwrap();
        let err = t.render(&[], false).unwrap_err().to_string();
        assert!(err.contains("roles must alternate"), "{err}");
        assert!(ChatTemplate::new("{% for %}", None, None).is_err());
    }

    #[test]
    fn a_template_that_rewrites_history_is_refused() {
        // Renders only the last message: prefixes are not prefixes of the whole.
        let t = ChatTemplate::new(
            "{{ messages[-1]['content'] if messages else '' }}",
            None,
            None,
        )
        .unwrap();
        let err = t
            .render_with_answers(&[msg("user", "a"), msg("assistant", "b"), msg("user", "c")])
            .unwrap_err();
        assert!(err.to_string().contains("cannot be located"), "{err}");
    }

    #[test]
    fn an_answer_the_template_rewrites_later_is_found_by_its_words() {
        // As Qwen3's: the last answer gets an empty reasoning block, earlier
        // ones do not.
        let src = "{% for m in messages %}<|im_start|>{{ m.role }}\n\
            {% if m.role == 'assistant' and loop.last %}<think></think>{% endif %}\
            {{ m.content }}<|im_end|>\n{% endfor %}\
            {% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
        let t = ChatTemplate::new(src, None, None).unwrap();
        let conv = [
            msg("user", "Dose?"),
            msg("assistant", "5 mg."),
            msg("user", "Dose? 5 mg."),
            msg("assistant", "Recheck."),
        ];
        let r = t.render_with_answers(&conv).unwrap();
        let spans: Vec<&str> = r.answers.iter().map(|s| &r.text[s.clone()]).collect();
        assert_eq!(
            spans,
            ["5 mg.<|im_end|>\n", "<think></think>Recheck.<|im_end|>\n"]
        );
        // The second answer's words first appear in the user's quote; the
        // search starts after the first answer, and the end marker must follow.
        let quoted = [
            msg("user", "Dose?"),
            msg("assistant", "Hold."),
            msg("user", "Hold."),
            msg("assistant", "Hold."),
            msg("user", "ok"),
        ];
        let r = t.render_with_answers(&quoted).unwrap();
        let starts: Vec<usize> = r.answers.iter().map(|s| s.start).collect();
        assert!(
            r.text[starts[1]..].starts_with("Hold.<|im_end|>\n<|im_start|>user\nok"),
            "{r:?}"
        );
    }
}
