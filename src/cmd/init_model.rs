//! `clintune init-model`: a new, randomly initialised Llama-family model in
//! Hugging Face's format, for a tokenizer, so a pipeline can start without
//! downloading anything.

use anyhow::{Context, bail};
use clap::Args;
use clintune_model::init::DEFAULT_STD;
use clintune_model::save::{SaveDtype, write_safetensors};
use clintune_model::{Cpu, Llama, ModelConfig};
use clintune_text::tokenizer::{TOKENIZER_FILES, Tokenizer};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Arguments of `clintune init-model`.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  \
    clintune init-model --tokenizer datasets/curated --out models/tiny --layers 4 --hidden 256\n\n\
    The directory holds config.json, generation_config.json, model.safetensors (f32) and the\n\
    tokenizer files; transformers loads it as it is. The weights are random: train it before use.")]
pub struct InitModelArgs {
    /// A directory with tokenizer.json (and tokenizer_config.json): a curated
    /// dataset, or a `clintune tokenizer train` output.
    #[arg(long, short = 't', value_name = "DIR")]
    tokenizer: PathBuf,
    /// The new model directory.
    #[arg(long, short = 'o', value_name = "DIR")]
    out: PathBuf,
    /// Decoder layers.
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// Hidden width.
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    /// Attention heads.
    #[arg(long, default_value_t = 4)]
    heads: usize,
    /// Key/value heads (grouped-query attention when fewer than heads).
    #[arg(long, default_value_t = 2)]
    kv_heads: usize,
    /// MLP width; default: about 8/3 of hidden, rounded up to 32.
    #[arg(long)]
    intermediate: Option<usize>,
    /// Longest sequence the model takes.
    #[arg(long, default_value_t = 1024)]
    max_positions: usize,
    /// Seed of the weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Replace the output directory if it exists.
    #[arg(long)]
    force: bool,
}

/// Runs `clintune init-model`.
pub fn run(a: InitModelArgs) -> anyhow::Result<()> {
    if a.heads == 0
        || a.kv_heads == 0
        || !a.hidden.is_multiple_of(a.heads)
        || !a.heads.is_multiple_of(a.kv_heads)
    {
        bail!("--hidden must be a multiple of --heads, and --heads a multiple of --kv-heads");
    }
    let tokenizer = Tokenizer::load(&a.tokenizer)
        .with_context(|| format!("loading the tokenizer in {}", a.tokenizer.display()))?;
    let intermediate = a
        .intermediate
        .unwrap_or((a.hidden * 8 / 3).div_ceil(32) * 32);
    let eos = tokenizer.eos_id();
    let bos = tokenizer.bos_token().and_then(|t| tokenizer.token_id(t));
    let config = json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": tokenizer.vocab_size(),
        "hidden_size": a.hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": a.layers,
        "num_attention_heads": a.heads,
        "num_key_value_heads": a.kv_heads,
        "max_position_embeddings": a.max_positions,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": false,
        "initializer_range": DEFAULT_STD,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "torch_dtype": "float32",
    });
    let text = serde_json::to_string_pretty(&config)? + "\n";
    let parsed = ModelConfig::parse(&text)?;
    let staging = clintune_core::staging::StagingDir::new(&a.out, a.force)?;
    let dir = staging.path();
    std::fs::write(dir.join("config.json"), &text)?;
    let generation = json!({"bos_token_id": bos, "eos_token_id": eos, "do_sample": false});
    std::fs::write(
        dir.join("generation_config.json"),
        serde_json::to_string_pretty(&generation)? + "\n",
    )?;
    for name in TOKENIZER_FILES {
        let from = a.tokenizer.join(name);
        if from.is_file() {
            std::fs::copy(&from, dir.join(name))
                .with_context(|| format!("copying {}", from.display()))?;
        }
    }
    let model = Llama::<Cpu>::random(&parsed, a.seed, DEFAULT_STD, &Default::default());
    let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    write_safetensors(
        &dir.join("model.safetensors"),
        model.weight_entries(),
        SaveDtype::F32,
        &meta,
    )?;
    let out = staging.commit()?;
    let params: usize = parsed
        .expected_tensors()
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .sum();
    tracing::info!(
        "initialised a {}-layer Llama ({:.2} M parameters, vocabulary {}) in {}",
        a.layers,
        params as f64 / 1e6,
        tokenizer.vocab_size(),
        out.display()
    );
    Ok(())
}
