//! Drafts become examples: rendered, tokenized, masked, keyed for dedup.

use crate::dedup::{DedupConfig, MinHasher, exact_key_of_normalized, normalize};
use crate::error::CurateError;
use crate::tasks::{Content, Draft, Message, Pair};
use clintune_text::template::{ChatTemplate, Rendered, TemplateError};
use clintune_text::tokenizer::Tokenizer;
use sha2::{Digest, Sha256};
use std::ops::Range;

/// A tokenized example, with what dedup and the split need.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Example {
    /// `ex-` and 32 hex digits of a SHA-256 over task, patient key and text.
    pub example_id: String,
    /// Pseudonymous patient key.
    pub patient_key: String,
    /// `train`, `validation` or `test`.
    pub split: String,
    /// Task name.
    pub task: String,
    /// Rendered text.
    pub text: String,
    /// Token ids (of a pair: its prompt, then the chosen answer).
    pub input_ids: Vec<u32>,
    /// 1 where the token is trained on.
    pub loss_mask: Vec<u8>,
    /// Of a pair: how many leading `input_ids` are its prompt; 0 otherwise.
    pub prompt_tokens: usize,
    /// Of a pair: the rejected answer's ids, after the prompt; empty otherwise.
    pub rejected_ids: Vec<u32>,
    /// Of a pair: 1 where the rejected answer's token is scored.
    pub rejected_mask: Vec<u8>,
    /// Records it was built from.
    pub record_keys: Vec<String>,
    /// Exact-dedup key of the text.
    pub exact_key: u128,
    /// MinHash signature of the text (empty when near dedup is off or does
    /// not apply to the example's task).
    pub signature: Vec<u32>,
}

/// Renders and tokenizes drafts with one tokenizer and its chat template.
pub struct Encoder<'a> {
    tokenizer: &'a Tokenizer,
    template: ChatTemplate,
    /// MinHash, and the tasks whose examples get a signature.
    minhash: Option<(MinHasher, Vec<String>)>,
    /// The tokenizer's post-processor appends the end-of-sequence token.
    eos_added: bool,
}

impl<'a> Encoder<'a> {
    /// An encoder for `tokenizer`; with near dedup on, it computes MinHash
    /// signatures of the examples of `dedup.near_tasks`.
    pub fn new(tokenizer: &'a Tokenizer, dedup: &DedupConfig) -> Result<Self, CurateError> {
        let minhash = dedup
            .near
            .then(|| (MinHasher::new(dedup), dedup.near_tasks.clone()));
        let template = ChatTemplate::for_tokenizer(tokenizer)?;
        let eos_added = tokenizer.eos_id().is_some()
            && tokenizer.encode_document_ids("")?.last() == tokenizer.eos_id().as_ref();
        Ok(Self {
            tokenizer,
            template,
            minhash,
            eos_added,
        })
    }

    /// The text of a draft and the byte ranges trained on: all of a plain
    /// text (which ends with the end-of-text token, so the model learns where
    /// a document ends), the assistant turns of a chat.
    pub fn render(&self, content: &Content) -> Result<Rendered, CurateError> {
        match content {
            Content::Text(text) => {
                // Unless the post-processor already ends documents with it.
                let eos = self.tokenizer.eos_token().filter(|_| !self.eos_added);
                let text = format!("{text}{}", eos.unwrap_or(""));
                let whole = 0..text.len();
                Ok(Rendered {
                    text,
                    answers: vec![whole],
                })
            }
            Content::Chat(messages) => Ok(self.template.render_with_answers(messages)?),
            Content::Pair(_) => Err(pair_error("renders as two conversations, not one")),
        }
    }

    /// Renders, tokenizes and keys one draft.
    pub fn encode(&self, draft: Draft, split: &str) -> Result<Example, CurateError> {
        let encoded = match &draft.content {
            Content::Pair(pair) => self.encode_pair(pair)?,
            content => {
                let rendered = self.render(content)?;
                // A document gets the special tokens `tokenizer(text)` adds
                // (Llama 3's BOS); a chat's template wrote its own.
                let (input_ids, offsets) = match content {
                    Content::Text(_) => self.tokenizer.encode_document(&rendered.text)?,
                    _ => self.tokenizer.encode_with_offsets(&rendered.text)?,
                };
                let loss_mask = mask(&offsets, &rendered.answers);
                Encoded {
                    text: rendered.text,
                    prompt: None,
                    rejected_text: None,
                    input_ids,
                    loss_mask,
                    prompt_tokens: 0,
                    rejected_ids: Vec::new(),
                    rejected_mask: Vec::new(),
                }
            }
        };
        let task = draft.task.as_str();
        // Both dedup keys start from the same normalised text: a pair's
        // prompt, else the text itself (borrowed: texts can be megabytes).
        let norm = normalize(encoded.prompt.as_deref().unwrap_or(&encoded.text));
        let signature = match &self.minhash {
            Some((m, tasks)) if tasks.iter().any(|t| t == task) => m.signature_of_normalized(&norm),
            _ => Vec::new(),
        };
        let id = match &encoded.rejected_text {
            Some(rejected) => example_id(
                task,
                &draft.patient_key,
                &format!("{}\0{rejected}", encoded.text),
            ),
            None => example_id(task, &draft.patient_key, &encoded.text),
        };
        Ok(Example {
            example_id: id,
            exact_key: exact_key_of_normalized(&norm),
            signature,
            patient_key: draft.patient_key,
            split: split.to_string(),
            task: task.to_string(),
            text: encoded.text,
            input_ids: encoded.input_ids,
            loss_mask: encoded.loss_mask,
            prompt_tokens: encoded.prompt_tokens,
            rejected_ids: encoded.rejected_ids,
            rejected_mask: encoded.rejected_mask,
            record_keys: draft.record_keys,
        })
    }

    /// A pair's prompt, rendered once, and its two answers after it. Each
    /// answer is tokenized with the prompt (as a model reads it), and the
    /// prompt's tokens must come out the same both times: the prompt ends
    /// where the template starts the answer, after a special token or a
    /// newline, where byte-level pre-tokenization always splits.
    fn encode_pair(&self, pair: &Pair) -> Result<Encoded, CurateError> {
        let (prompt, chosen, rejected) = self.render_pair(pair)?;
        let split = |rendered: &Rendered| -> Result<(Vec<u32>, Vec<u8>, usize), CurateError> {
            let (ids, offsets) = self.tokenizer.encode_with_offsets(&rendered.text)?;
            let answer_mask = mask(&offsets, &rendered.answers);
            let cut = offsets
                .iter()
                .take_while(|(start, _)| *start < prompt.len())
                .count();
            if offsets[..cut]
                .last()
                .is_some_and(|&(_, end)| end > prompt.len())
            {
                return Err(pair_error("a token runs across the end of the prompt"));
            }
            Ok((ids, answer_mask, cut))
        };
        let (input_ids, loss_mask, cut) = split(&chosen)?;
        let (ids_r, mask_r, cut_r) = split(&rejected)?;
        if cut != cut_r || input_ids[..cut] != ids_r[..cut] {
            return Err(pair_error(
                "the prompt tokenizes differently before the two answers",
            ));
        }
        if cut == 0 || cut == input_ids.len() || cut == ids_r.len() {
            return Err(pair_error("the prompt or an answer has no tokens"));
        }
        Ok(Encoded {
            text: chosen.text,
            prompt: Some(prompt),
            rejected_text: Some(rejected.text),
            input_ids,
            loss_mask,
            prompt_tokens: cut,
            rejected_ids: ids_r[cut..].to_vec(),
            rejected_mask: mask_r[cut..].to_vec(),
        })
    }

    /// The prompt as the model sees it before answering, and the whole text
    /// with each answer, whose spans lie after the prompt: a chat prompt's
    /// own assistant turns are context, not scored.
    fn render_pair(&self, pair: &Pair) -> Result<(String, Rendered, Rendered), CurateError> {
        match pair {
            Pair::Text {
                prompt,
                chosen,
                rejected,
            } => {
                let eos = self.tokenizer.eos_token().unwrap_or("");
                let whole = |answer: &str| {
                    let text = format!("{prompt}{answer}{eos}");
                    let answer = prompt.len()..text.len();
                    Rendered {
                        text,
                        answers: std::iter::once(answer).collect(),
                    }
                };
                Ok((prompt.clone(), whole(chosen), whole(rejected)))
            }
            Pair::Chat {
                prompt,
                chosen,
                rejected,
            } => {
                let head = self.template.render(prompt, true)?;
                let whole = |answer: &[Message]| -> Result<Rendered, CurateError> {
                    let messages: Vec<Message> = prompt.iter().chain(answer).cloned().collect();
                    let mut r = self.template.render_with_answers(&messages)?;
                    if !r.text.starts_with(&head) {
                        return Err(pair_error(
                            "the template renders the prompt differently once answered",
                        ));
                    }
                    r.answers.retain(|a| a.start >= head.len());
                    Ok(r)
                };
                Ok((head.clone(), whole(chosen)?, whole(rejected)?))
            }
        }
    }
}

/// What encoding one draft gives.
struct Encoded {
    /// The `text` column: the rendered example (of a pair: prompt and chosen).
    text: String,
    /// Of a pair: its rendered prompt, which the dedup keys hash instead of
    /// `text`, so that one prompt is kept once.
    prompt: Option<String>,
    /// Of a pair: the whole text with the rejected answer, which the example
    /// id hashes after `text`.
    rejected_text: Option<String>,
    input_ids: Vec<u32>,
    loss_mask: Vec<u8>,
    prompt_tokens: usize,
    rejected_ids: Vec<u32>,
    rejected_mask: Vec<u8>,
}

fn pair_error(detail: &str) -> CurateError {
    CurateError::Template(TemplateError {
        detail: format!("preference pair: {detail}"),
        source: None,
    })
}

/// 1 for each token that starts inside an answer span. A byte-level token
/// never straddles a span start in practice (spans start after a special
/// token or a newline, where pre-tokenization splits), so "starts inside" is
/// the same as "lies inside".
pub fn mask(offsets: &[(usize, usize)], answers: &[Range<usize>]) -> Vec<u8> {
    offsets
        .iter()
        .map(|&(start, _)| u8::from(answers.iter().any(|a| a.contains(&start))))
        .collect()
}

/// The example id: a content hash, so the same example is the same id in
/// every run, shard and merge.
pub fn example_id(task: &str, patient_key: &str, text: &str) -> String {
    let mut h = Sha256::new();
    for part in [task, patient_key, text] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    format!("ex-{}", &hex::encode(h.finalize())[..32])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::Task;
    use clintune_text::tokenizer::TrainConfig;

    fn tokenizer() -> Tokenizer {
        let texts = [
            "The patient was seen for acute bronchitis and given rest advice.",
            "Medication reconciliation: naproxen 220 mg as needed for knee pain.",
            "Follow up in two weeks. Blood pressure 128/82 mmHg.",
        ];
        let cfg = TrainConfig {
            vocab_size: 400,
            min_frequency: 1,
        };
        Tokenizer::train(texts.iter().cycle().take(30), &cfg).unwrap()
    }

    fn msg(role: &str, content: &str) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }

    #[test]
    fn loss_mask_covers_exactly_the_answer_tokens() {
        let tok = tokenizer();
        let enc = Encoder::new(&tok, &DedupConfig::default()).unwrap();
        let draft = Draft {
            patient_key: "pt-1".into(),
            task: Task::Chat,
            content: Content::Chat(vec![
                msg("system", "Be brief."),
                msg("user", "What dose of naproxen?"),
                msg("assistant", "220 mg as needed for knee pain."),
                msg("user", "Follow up?"),
                msg("assistant", "In two weeks."),
            ]),
            record_keys: vec!["rec-1".into()],
        };
        let ex = enc.encode(draft, "train").unwrap();
        assert_eq!(ex.input_ids.len(), ex.loss_mask.len());
        let masked: Vec<u32> = ex
            .input_ids
            .iter()
            .zip(&ex.loss_mask)
            .filter(|(_, m)| **m == 1)
            .map(|(i, _)| *i)
            .collect();
        let unmasked: Vec<u32> = ex
            .input_ids
            .iter()
            .zip(&ex.loss_mask)
            .filter(|(_, m)| **m == 0)
            .map(|(i, _)| *i)
            .collect();
        let answer = tok.decode(&masked).unwrap();
        assert_eq!(
            answer,
            "220 mg as needed for knee pain.<|im_end|>\nIn two weeks.<|im_end|>\n"
        );
        let prompt = tok.decode(&unmasked).unwrap();
        assert!(
            prompt.contains("What dose of naproxen?") && !prompt.contains("220 mg"),
            "{prompt}"
        );
        // The answer tokens are exactly those of the answer text: tokenizing
        // the answer alone gives the same ids.
        let alone = tok.encode("In two weeks.<|im_end|>\n").unwrap();
        assert!(masked.ends_with(&alone));
    }

    #[test]
    fn text_examples_train_on_everything_and_end_with_eos() {
        let tok = tokenizer();
        let enc = Encoder::new(&tok, &DedupConfig::default()).unwrap();
        let draft = Draft {
            patient_key: "pt-1".into(),
            task: Task::Timeline,
            content: Content::Text("Follow up in two weeks.".into()),
            record_keys: vec![],
        };
        let ex = enc.encode(draft, "test").unwrap();
        assert!(ex.loss_mask.iter().all(|&m| m == 1));
        assert_eq!(ex.input_ids.last().copied(), tok.eos_id());
        assert_eq!(ex.example_id, example_id("timeline", "pt-1", &ex.text));
        assert_ne!(ex.example_id, example_id("timeline", "pt-2", &ex.text));
    }

    fn encode_pair(tok: &Tokenizer, pair: Pair) -> Example {
        let draft = Draft {
            patient_key: "pt-1".into(),
            task: Task::Preference,
            content: Content::Pair(Box::new(pair)),
            record_keys: vec!["rec-1".into()],
        };
        Encoder::new(tok, &DedupConfig::default())
            .unwrap()
            .encode(draft, "train")
            .unwrap()
    }

    fn scored(tok: &Tokenizer, ids: &[u32], mask: &[u8]) -> String {
        let kept: Vec<u32> = ids
            .iter()
            .zip(mask)
            .filter(|(_, m)| **m == 1)
            .map(|(t, _)| *t)
            .collect();
        tok.decode(&kept).unwrap()
    }

    #[test]
    fn a_text_pair_continues_its_prompt_with_each_answer_and_the_end_of_text() {
        let tok = tokenizer();
        let ex = encode_pair(
            &tok,
            Pair::Text {
                prompt: "The patient on metoprolol feels dizzy.".into(),
                chosen: " Blood pressure and heart rate, please.".into(),
                rejected: " It is probably fine.".into(),
            },
        );
        let cut = ex.prompt_tokens;
        assert_eq!(
            tok.decode(&ex.input_ids[..cut]).unwrap(),
            "The patient on metoprolol feels dizzy."
        );
        assert!(ex.loss_mask[..cut].iter().all(|&m| m == 0));
        let eos = tok.eos_token().unwrap();
        assert_eq!(
            scored(&tok, &ex.input_ids, &ex.loss_mask),
            format!(" Blood pressure and heart rate, please.{eos}")
        );
        assert_eq!(
            scored(&tok, &ex.rejected_ids, &ex.rejected_mask),
            format!(" It is probably fine.{eos}")
        );
    }

    #[test]
    fn a_chat_pair_scores_its_answers_only_not_the_prompts_own_assistant_turns() {
        let tok = tokenizer();
        let msg = |role: &str, text: &str| Message::new(role, text.into());
        let question = vec![
            msg("user", "Dizzy on metoprolol?"),
            msg("assistant", "Since when?"),
            msg("user", "This morning."),
        ];
        let ex = encode_pair(
            &tok,
            Pair::Chat {
                prompt: question.clone(),
                chosen: vec![msg(
                    "assistant",
                    "Blood pressure lying and standing, please.",
                )],
                rejected: vec![msg("assistant", "Give the next dose as usual.")],
            },
        );
        assert_eq!(
            scored(&tok, &ex.input_ids, &ex.loss_mask),
            "Blood pressure lying and standing, please.<|im_end|>\n"
        );
        assert_eq!(
            scored(&tok, &ex.rejected_ids, &ex.rejected_mask),
            "Give the next dose as usual.<|im_end|>\n"
        );
        let prompt = tok.decode(&ex.input_ids[..ex.prompt_tokens]).unwrap();
        assert!(prompt.contains("Since when?") && prompt.ends_with("<|im_start|>assistant\n"));
        // Dedup looks at the prompt: the same prompt with other answers is a duplicate.
        let other = encode_pair(
            &tok,
            Pair::Chat {
                prompt: question,
                chosen: vec![msg("assistant", "Heart rate, please.")],
                rejected: vec![msg("assistant", "Fine.")],
            },
        );
        assert_eq!(other.exact_key, ex.exact_key);
        assert_ne!(other.example_id, ex.example_id);
    }
}
