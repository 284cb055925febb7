//! `clintune generate`: continue a prompt with a model (and adapter).

use anyhow::{Context, bail};
use burn::tensor::backend::Backend;
use clap::{Args, ValueEnum};
use clintune_model::{
    Device, GenerateConfig, Generation, ModelConfig, OnDevice, Sampling, on_device,
};
use clintune_text::Message;
use clintune_text::template::ChatTemplate;
use clintune_text::tokenizer::Tokenizer;
use serde_json::json;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Arguments of `clintune generate`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    clintune generate --model checkpoints/notes/v1 --chat --prompt 'Summarise the last encounter.'\n  \
    clintune generate -m base/ --adapter run/adapter --prompt-file note.txt --temperature 0.7 --top-p 0.9\n\n\
    Generation stops at the model's end-of-sequence tokens (config.json, generation_config.json,\n\
    tokenizer_config.json), with --chat also at the template's end-of-turn token, at --stop tokens,\n\
    after --max-new-tokens, or when the context (max_position_embeddings) is full.")]
pub struct GenerateArgs {
    /// A Hugging Face model directory (config.json, safetensors weights,
    /// tokenizer.json, tokenizer_config.json).
    #[arg(long, short = 'm', value_name = "DIR")]
    model: PathBuf,
    /// A LoRA adapter in PEFT's format to apply (adapter_config.json,
    /// adapter_model.safetensors).
    #[arg(long, value_name = "DIR")]
    adapter: Option<PathBuf>,
    /// The prompt.
    #[arg(
        long,
        short = 'p',
        conflicts_with_all = ["prompt_file", "prompt_ids"],
        required_unless_present_any = ["prompt_file", "prompt_ids"]
    )]
    prompt: Option<String>,
    /// Read the prompt from a file.
    #[arg(long, value_name = "FILE", conflicts_with = "prompt_ids")]
    prompt_file: Option<PathBuf>,
    /// The prompt as token ids, a JSON array (`[1, 86, 92]`), used as given:
    /// to compare with another implementation.
    #[arg(long, value_name = "JSON", conflicts_with = "chat")]
    prompt_ids: Option<String>,
    /// Send the prompt as a user turn through the tokenizer's chat template,
    /// ending with the assistant's generation prompt.
    #[arg(long)]
    chat: bool,
    /// A system turn before the prompt (with --chat).
    #[arg(long, requires = "chat")]
    system: Option<String>,
    /// At most this many new tokens.
    #[arg(long, default_value_t = 256)]
    max_new_tokens: usize,
    /// Sampling temperature; 0 always picks the most likely token (greedy).
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    /// Nucleus sampling: draw from the most likely tokens holding this much
    /// probability (1 = all).
    #[arg(long, default_value_t = 1.0)]
    top_p: f64,
    /// Seed of the sampling draws; the same seed gives the same text.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also stop after this token (repeatable), e.g. `--stop '<|im_end|>'`.
    #[arg(long, value_name = "TOKEN")]
    stop: Vec<String>,
    /// `text` streams the continuation; `json` prints one object with ids,
    /// text, why it stopped and timings.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// `cpu` or `cuda:N` (a build with the cuda feature).
    #[arg(long, default_value = "cpu", value_name = "DEVICE")]
    device: Device,
}

/// Output of `clintune generate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// Runs `clintune generate`.
pub fn run(a: GenerateArgs) -> anyhow::Result<()> {
    check_sampling(&a)?;
    on_device(a.device, Generate(a))?
}

/// Generation, on whichever backend the device calls for.
struct Generate(GenerateArgs);

impl OnDevice for Generate {
    type Output = anyhow::Result<()>;

    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        generate::<B>(self.0, &device)
    }
}

fn generate<B: Backend>(a: GenerateArgs, device: &B::Device) -> anyhow::Result<()> {
    let tokenizer = Tokenizer::load(&a.model)
        .with_context(|| format!("loading the tokenizer of {}", a.model.display()))?;
    let (config, mut model) = super::load_model::<B>(&a.model, device)?;
    if let Some(adapter) = &a.adapter {
        model = model
            .with_peft_adapter(adapter)
            .with_context(|| format!("loading the adapter {}", adapter.display()))?;
    }
    let prompt = match &a.prompt_ids {
        Some(json) => given_ids(json, config.vocab_size)?,
        None => prompt_ids(&prompt_text(&a, &tokenizer)?, &tokenizer, a.chat)?,
    };
    if prompt.len() >= config.max_position_embeddings {
        bail!(
            "the prompt has {} tokens; the model's context holds {}",
            prompt.len(),
            config.max_position_embeddings
        );
    }
    let cfg = GenerateConfig {
        max_new_tokens: a.max_new_tokens,
        stop_tokens: stop_tokens(&a, &config, &tokenizer)?,
        sampling: Sampling {
            temperature: a.temperature,
            top_p: a.top_p,
            seed: a.seed,
        },
    };
    let mut stream = Stream::new(&tokenizer, a.format == Format::Text);
    let generation = model.generate(&prompt, &cfg, config.max_position_embeddings, |t| {
        stream.push(t)
    });
    let text = tokenizer.decode(&generation.tokens)?;
    match a.format {
        Format::Text => stream.finish(&text)?,
        Format::Json => println!("{}", report(&prompt, &generation, &text)),
    }
    summarise(&prompt, &generation);
    Ok(())
}

fn check_sampling(a: &GenerateArgs) -> anyhow::Result<()> {
    if !(a.temperature.is_finite() && a.temperature >= 0.0) {
        bail!(
            "--temperature must be 0 (greedy) or positive, got {}",
            a.temperature
        );
    }
    if !(a.top_p > 0.0 && a.top_p <= 1.0) {
        bail!("--top-p must be in (0, 1], got {}", a.top_p);
    }
    Ok(())
}

fn prompt_text(a: &GenerateArgs, tokenizer: &Tokenizer) -> anyhow::Result<String> {
    let raw = match (&a.prompt, &a.prompt_file) {
        (Some(p), _) => p.clone(),
        (None, Some(file)) => {
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
        }
        (None, None) => bail!("give --prompt, --prompt-file or --prompt-ids"),
    };
    if !a.chat {
        return Ok(raw);
    }
    let template = chat_template(tokenizer)?;
    let mut messages = Vec::new();
    if let Some(system) = &a.system {
        messages.push(message("system", system));
    }
    messages.push(message("user", &raw));
    Ok(template.render(&messages, true)?)
}

fn message(role: &str, content: &str) -> Message {
    Message {
        role: role.into(),
        content: content.into(),
    }
}

fn chat_template(tokenizer: &Tokenizer) -> anyhow::Result<ChatTemplate> {
    Ok(ChatTemplate::new(
        tokenizer.chat_template(),
        tokenizer.bos_token(),
        tokenizer.eos_token(),
    )?)
}

/// Prompt ids: with the BOS token the tokenizer names, unless a chat
/// template already wrote it.
fn prompt_ids(text: &str, tokenizer: &Tokenizer, chat: bool) -> anyhow::Result<Vec<u32>> {
    let bos = tokenizer.bos_token();
    let written = chat && bos.is_some_and(|b| text.starts_with(b));
    let bos = bos.filter(|_| !written).and_then(|b| tokenizer.token_id(b));
    let ids: Vec<u32> = bos.into_iter().chain(tokenizer.encode(text)?).collect();
    if ids.is_empty() {
        bail!("the prompt is empty");
    }
    Ok(ids)
}

/// `--prompt-ids`, checked against the vocabulary.
fn given_ids(json: &str, vocab: usize) -> anyhow::Result<Vec<u32>> {
    let ids: Vec<u32> = serde_json::from_str(json)
        .with_context(|| format!("--prompt-ids {json}: not a JSON array of token ids"))?;
    if let Some(bad) = ids.iter().find(|&&t| t as usize >= vocab) {
        bail!("--prompt-ids: token id {bad} is outside the vocabulary ({vocab})");
    }
    if ids.is_empty() {
        bail!("--prompt-ids: the prompt is empty");
    }
    Ok(ids)
}

/// End-of-sequence ids from every file that names them, the chat template's
/// end-of-turn token with `--chat`, and `--stop`.
fn stop_tokens(
    a: &GenerateArgs,
    config: &ModelConfig,
    tokenizer: &Tokenizer,
) -> anyhow::Result<Vec<u32>> {
    let mut stops: BTreeSet<u32> = config.eos_token_ids.iter().copied().collect();
    stops.extend(generation_config_eos(&a.model)?);
    stops.extend(tokenizer.eos_id());
    if a.chat {
        stops.extend(clintune_text::template::end_of_turn(tokenizer)?);
    }
    for token in &a.stop {
        let id = tokenizer
            .token_id(token)
            .with_context(|| format!("--stop {token}: not a token of the tokenizer"))?;
        stops.insert(id);
    }
    Ok(stops.into_iter().collect())
}

/// `eos_token_id` (a number or a list) of `generation_config.json`, if any.
fn generation_config_eos(dir: &Path) -> anyhow::Result<Vec<u32>> {
    let path = dir.join("generation_config.json");
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&path)?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let ids = match &value["eos_token_id"] {
        serde_json::Value::Null => Vec::new(),
        v @ serde_json::Value::Number(_) => vec![v.clone()],
        serde_json::Value::Array(list) => list.clone(),
        other => bail!("{}: eos_token_id is {other}", path.display()),
    };
    ids.iter()
        .map(|v| {
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .with_context(|| format!("{}: eos_token_id {v} is not a token id", path.display()))
        })
        .collect()
}

/// Prints the continuation as it grows, holding back text that ends inside
/// a character (byte-level tokens can split one).
struct Stream<'a> {
    tokenizer: &'a Tokenizer,
    ids: Vec<u32>,
    printed: usize,
    live: bool,
}

impl<'a> Stream<'a> {
    fn new(tokenizer: &'a Tokenizer, live: bool) -> Self {
        Self {
            tokenizer,
            ids: Vec::new(),
            printed: 0,
            live,
        }
    }

    fn push(&mut self, id: u32) {
        self.ids.push(id);
        if !self.live {
            return;
        }
        let Ok(text) = self.tokenizer.decode(&self.ids) else {
            return;
        };
        if text.ends_with('\u{FFFD}') || text.len() < self.printed {
            return;
        }
        if let Some(new) = text.get(self.printed..) {
            print!("{new}");
            let _ = std::io::stdout().flush();
            self.printed = text.len();
        }
    }

    fn finish(&self, text: &str) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", text.get(self.printed..).unwrap_or_default())?;
        Ok(())
    }
}

fn report(prompt: &[u32], g: &Generation, text: &str) -> serde_json::Value {
    json!({
        "prompt_tokens": prompt,
        "tokens": g.tokens,
        "text": text,
        "stop": format!("{:?}", g.stop),
        "prefill_ms": g.prefill.as_secs_f64() * 1e3,
        "decode_tokens_per_s": tokens_per_s(g),
    })
}

fn tokens_per_s(g: &Generation) -> f64 {
    g.tokens.len().saturating_sub(1) as f64 / g.decode.as_secs_f64().max(1e-9)
}

fn summarise(prompt: &[u32], g: &Generation) {
    tracing::info!(
        "{} prompt tokens in {:.0} ms; {} new tokens at {:.1} tokens/s; stopped: {:?}",
        prompt.len(),
        g.prefill.as_secs_f64() * 1e3,
        g.tokens.len(),
        tokens_per_s(g),
        g.stop
    );
}
