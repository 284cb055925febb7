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
    after --max-new-tokens, or when the context (max_position_embeddings) is full.\n\n\
    Sampling settings not given here come from the model's generation_config.json as transformers\n\
    reads it: with do_sample true, its temperature, top_p and top_k (50 when it names none),\n\
    otherwise greedy; its repetition_penalty either way.\n\n\
    Prompts are tokenized as transformers does: --chat as apply_chat_template (the template\n\
    writes the special tokens), plain text as tokenizer(text).")]
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
    /// Default: generation_config.json's when it samples, else 0.
    #[arg(long)]
    temperature: Option<f64>,
    /// Nucleus sampling: draw from the most likely tokens holding this much
    /// probability (1 = all). Default: generation_config.json's, else 1.
    #[arg(long)]
    top_p: Option<f64>,
    /// Draw from the k most likely tokens only (0 = all). Default:
    /// generation_config.json's, else 50 as in transformers.
    #[arg(long)]
    top_k: Option<usize>,
    /// Divide the logits of tokens already seen by this (1 = off), greedy
    /// included. Default: generation_config.json's, else 1.
    #[arg(long)]
    repetition_penalty: Option<f64>,
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
    check_sampling(a.temperature.unwrap_or(0.0), a.top_p.unwrap_or(1.0))?;
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
    let defaults = GenerationDefaults::read(&a.model)?;
    let cfg = GenerateConfig {
        max_new_tokens: a.max_new_tokens,
        stop_tokens: stop_tokens(&a, &config, &tokenizer, &defaults)?,
        sampling: defaults.sampling(&a)?,
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

fn check_sampling(temperature: f64, top_p: f64) -> anyhow::Result<()> {
    if !(temperature.is_finite() && temperature >= 0.0) {
        bail!("--temperature must be 0 (greedy) or positive, got {temperature}");
    }
    if !(top_p > 0.0 && top_p <= 1.0) {
        bail!("--top-p must be in (0, 1], got {top_p}");
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
    Ok(ChatTemplate::for_tokenizer(tokenizer)?)
}

/// Prompt ids as transformers makes them: a chat as `apply_chat_template`
/// (the template writes every special token), plain text as `tokenizer(text)`
/// (with what the post-processor adds).
fn prompt_ids(text: &str, tokenizer: &Tokenizer, chat: bool) -> anyhow::Result<Vec<u32>> {
    let ids = if chat {
        tokenizer.encode(text)?
    } else {
        tokenizer.encode_document_ids(text)?
    };
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
    defaults: &GenerationDefaults,
) -> anyhow::Result<Vec<u32>> {
    let mut stops: BTreeSet<u32> = config.eos_token_ids.iter().copied().collect();
    stops.extend(defaults.eos_token_ids.iter().copied());
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

/// What a model's `generation_config.json` says about generating, with
/// transformers' defaults for what it leaves out.
#[derive(Debug, Default)]
struct GenerationDefaults {
    /// `eos_token_id`, a number or a list.
    eos_token_ids: Vec<u32>,
    /// `do_sample`: sample with the settings below, else greedy.
    do_sample: bool,
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<usize>,
    repetition_penalty: Option<f64>,
}

/// transformers' `top_k` when a generation config names none.
const TRANSFORMERS_TOP_K: usize = 50;

impl GenerationDefaults {
    /// Reads `dir/generation_config.json`; a model without one has none.
    fn read(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("generation_config.json");
        if !path.is_file() {
            return Ok(Self::default());
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
        let field = |key: &str| match &value[key] {
            serde_json::Value::Null => Ok(None),
            v => v
                .as_f64()
                .map(Some)
                .with_context(|| format!("{}: {key} is {v}, not a number", path.display())),
        };
        Ok(Self {
            eos_token_ids: eos_ids(&value["eos_token_id"])
                .with_context(|| format!("{}: eos_token_id", path.display()))?,
            do_sample: value["do_sample"].as_bool().unwrap_or(false),
            temperature: field("temperature")?,
            top_p: field("top_p")?,
            top_k: field("top_k")?.map(|k| k as usize),
            repetition_penalty: field("repetition_penalty")?,
        })
    }

    /// The command line's settings, the rest from here.
    fn sampling(&self, a: &GenerateArgs) -> anyhow::Result<Sampling> {
        let sample = |given: Option<f64>, configured: Option<f64>, off: f64, on: f64| {
            given.unwrap_or(if self.do_sample {
                configured.unwrap_or(on)
            } else {
                off
            })
        };
        let temperature = sample(a.temperature, self.temperature, 0.0, 1.0);
        let top_p = sample(a.top_p, self.top_p, 1.0, 1.0);
        check_sampling(temperature, top_p)
            .context("in the sampling settings of generation_config.json")?;
        let repetition_penalty = a
            .repetition_penalty
            .or(self.repetition_penalty)
            .unwrap_or(1.0);
        if !(repetition_penalty.is_finite() && repetition_penalty > 0.0) {
            bail!("the repetition penalty must be positive, got {repetition_penalty}");
        }
        Ok(Sampling {
            temperature,
            top_p,
            top_k: a.top_k.or(self.top_k).unwrap_or(TRANSFORMERS_TOP_K),
            repetition_penalty,
            seed: a.seed,
        })
    }
}

/// `eos_token_id` as a number, a list of numbers or null.
fn eos_ids(value: &serde_json::Value) -> anyhow::Result<Vec<u32>> {
    let ids = match value {
        serde_json::Value::Null => Vec::new(),
        v @ serde_json::Value::Number(_) => vec![v.clone()],
        serde_json::Value::Array(list) => list.clone(),
        other => bail!("is {other}, not a token id or a list of them"),
    };
    ids.iter()
        .map(|v| {
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .with_context(|| format!("{v} is not a token id"))
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
