//! Making one export version from a finished training run.

use crate::card;
use crate::error::ExportError;
use crate::registry::{Index, Version, check_name};
use clintune_core::WithContext;
use clintune_core::staging::StagingDir;
use clintune_lineage::manifest::absolute_path;
use clintune_lineage::{FileEntry, Manifest, ManifestBuilder, ParentRef, verify_chain};
use clintune_model::save::{SaveDtype, write_safetensors};
use clintune_model::{Cpu, Llama, peft};
use clintune_text::tokenizer::{CHAT_TEMPLATE_FILE, TOKENIZER_CONFIG_FILE, Tokenizer};
use clintune_train::Recipe;
use clintune_train::recipe::Method;
use clintune_train::trainer::load_model;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where and how to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The export root (`checkpoints`).
    pub root: PathBuf,
    /// The model name: versions go to `root/name/vN/`.
    pub name: String,
    /// Element type of the weights.
    pub dtype: SaveDtype,
    /// Split the weights into shards of at most this many bytes (with
    /// `model.safetensors.index.json`, as transformers does); 0 = one file.
    pub max_shard_bytes: u64,
}

/// What an export made.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The version directory.
    pub dir: PathBuf,
    /// Its version number.
    pub version: u32,
    /// Its manifest's content id.
    pub manifest_id: String,
    /// Whether a PEFT adapter was written beside the merged model.
    pub adapter: bool,
}

/// Files of the base model directory carried into the export as they are.
const CARRIED: [&str; 4] = [
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
];

/// The subdirectory holding a LoRA run's adapter in PEFT's format.
pub const ADAPTER_DIR: &str = "adapter";

/// Exports the finished run in `run_dir` as the next version of
/// `opts.name`. The run's lineage is verified first; the version appears
/// only when complete, and existing versions are never touched.
pub fn export(run_dir: &Path, opts: &ExportOptions) -> Result<Exported, ExportError> {
    check_name(&opts.name).map_err(|e| ExportError::write(&opts.root, e))?;
    let run = Manifest::read(run_dir).map_err(|e| ExportError::run(run_dir, e))?;
    if run.stage != "train" {
        return Err(ExportError::run(
            run_dir,
            format!(
                "manifest stage is `{}`; export reads a finished `clintune train` run",
                run.stage
            ),
        ));
    }
    verify_chain(run_dir)
        .map_err(|e| ExportError::run(run_dir, WithContext::new("lineage does not verify", e)))?;
    let recipe: Recipe = serde_json::from_value(run.config["recipe"].clone()).map_err(|e| {
        ExportError::run(
            run_dir,
            WithContext::new("manifest holds no usable recipe", e),
        )
    })?;
    let checkpoint = final_checkpoint(run_dir, &run)?;
    let name_dir = opts.root.join(&opts.name);
    let mut index = Index::read(&name_dir, &opts.name)?;
    let version = index.next_version(&name_dir);
    let target = name_dir.join(format!("v{version}"));
    let staging = StagingDir::new(&target, false).map_err(|e| ExportError::write(&target, e))?;
    let adapter = write_model(&recipe, &checkpoint, staging.path(), opts, &run.id)?;
    let chain = card::Chain::read(run_dir, &run);
    let card = card::render(&opts.name, version, &recipe, &chain, adapter);
    write(&staging.path().join("README.md"), card.as_bytes())?;
    let manifest = manifest(staging.path(), &run, run_dir, &target, opts, version)?;
    let dir = staging
        .commit()
        .map_err(|e| ExportError::write(&target, e))?;
    index.add(
        &name_dir,
        Version {
            version,
            path: format!("v{version}"),
            manifest_id: manifest.id.clone(),
            parent_id: run.id.clone(),
            created_at: manifest.created_at.clone(),
        },
    )?;
    Ok(Exported {
        dir,
        version,
        manifest_id: manifest.id,
        adapter,
    })
}

/// The checkpoint the run's manifest lists as its output.
fn final_checkpoint(run_dir: &Path, run: &Manifest) -> Result<PathBuf, ExportError> {
    let entry = run
        .outputs
        .iter()
        .find(|f| f.kind.as_deref() == Some("checkpoint"))
        .ok_or_else(|| ExportError::run(run_dir, "the manifest lists no checkpoint"))?;
    let file = run_dir.join(&entry.path);
    file.parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| ExportError::run(run_dir, "checkpoint path has no directory"))
}

/// Writes the merged weights, configs, tokenizer and (LoRA) the adapter;
/// returns whether an adapter was written.
fn write_model(
    recipe: &Recipe,
    checkpoint: &Path,
    out: &Path,
    opts: &ExportOptions,
    run_id: &str,
) -> Result<bool, ExportError> {
    let base = &recipe.model.base;
    let model = load_model::<Cpu>(recipe, Some(checkpoint), &Default::default())
        .map_err(|e| ExportError::run(checkpoint, e))?;
    let lora = recipe.method.kind == Method::Lora;
    let model = if lora {
        let adapted = model;
        let adapter_dir = out.join(ADAPTER_DIR);
        std::fs::create_dir_all(&adapter_dir).map_err(|e| ExportError::write(&adapter_dir, e))?;
        let cfg = peft::read_config(checkpoint).map_err(|e| ExportError::run(checkpoint, e))?;
        adapted
            .save_peft_adapter(&adapter_dir, &cfg, &absolute_path(base))
            .map_err(|e| ExportError::write(&adapter_dir, e))?;
        adapted.merge_lora()
    } else {
        model
    };
    let meta = BTreeMap::from([
        ("format".to_string(), "pt".to_string()),
        ("clintune_run".to_string(), run_id.to_string()),
    ]);
    write_weights(&model, out, opts, &meta)?;
    write_config(base, out, opts.dtype)?;
    for name in CARRIED {
        let from = base.join(name);
        if from.is_file() {
            std::fs::copy(&from, out.join(name)).map_err(|e| ExportError::write(&from, e))?;
        }
    }
    write_chat_template(base, out)?;
    Ok(lora)
}

/// Writes the chat template the run was trained with (the base's, wherever
/// it kept it, or clintune's default) both where transformers 5 reads it
/// ([`CHAT_TEMPLATE_FILE`]) and into `tokenizer_config.json` for older
/// readers, keeping that file's other keys; without it, transformers'
/// `apply_chat_template` on the export fails.
fn write_chat_template(base: &Path, out: &Path) -> Result<(), ExportError> {
    let tokenizer = Tokenizer::load(base).map_err(|e| ExportError::run(base, e))?;
    let template = tokenizer.chat_template();
    write(&out.join(CHAT_TEMPLATE_FILE), template.as_bytes())?;
    let path = out.join(TOKENIZER_CONFIG_FILE);
    let mut config = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice::<Map<String, Value>>(&bytes)
            .map_err(|e| ExportError::run(&base.join(TOKENIZER_CONFIG_FILE), e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
        Err(e) => return Err(ExportError::write(&path, e)),
    };
    config.insert("chat_template".into(), template.into());
    let mut text = serde_json::to_vec_pretty(&config).map_err(|e| ExportError::write(&path, e))?;
    text.push(b'\n');
    write(&path, &text)
}

/// Writes `model.safetensors`, or shards and their index when the weights
/// exceed `opts.max_shard_bytes`.
fn write_weights(
    model: &Llama<Cpu>,
    out: &Path,
    opts: &ExportOptions,
    meta: &BTreeMap<String, String>,
) -> Result<(), ExportError> {
    let mut entries = model.weight_entries();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let bytes = |e: &clintune_model::save::Entry<'_>| {
        e.shape.iter().product::<usize>() as u64 * opts.dtype.size() as u64
    };
    let total: u64 = entries.iter().map(bytes).sum();
    if opts.max_shard_bytes == 0 || total <= opts.max_shard_bytes {
        let path = out.join("model.safetensors");
        return write_safetensors(&path, entries, opts.dtype, meta)
            .map_err(|e| ExportError::write(&path, e));
    }
    let mut shards: Vec<Vec<clintune_model::save::Entry<'_>>> = vec![Vec::new()];
    let mut size = 0;
    for e in entries {
        let b = bytes(&e);
        if size > 0 && size + b > opts.max_shard_bytes {
            shards.push(Vec::new());
            size = 0;
        }
        size += b;
        if let Some(shard) = shards.last_mut() {
            shard.push(e);
        }
    }
    let n = shards.len();
    let mut weight_map = serde_json::Map::new();
    for (i, shard) in shards.into_iter().enumerate() {
        let file = format!("model-{:05}-of-{n:05}.safetensors", i + 1);
        for e in &shard {
            weight_map.insert(e.name.clone(), file.clone().into());
        }
        let path = out.join(&file);
        write_safetensors(&path, shard, opts.dtype, meta)
            .map_err(|e| ExportError::write(&path, e))?;
    }
    let index = json!({"metadata": {"total_size": total}, "weight_map": weight_map});
    let text = clintune_core::json::to_pretty("the safetensors index", &index);
    write(&out.join("model.safetensors.index.json"), text.as_bytes())
}

/// The base `config.json` with the exported dtype.
fn write_config(base: &Path, out: &Path, dtype: SaveDtype) -> Result<(), ExportError> {
    let path = base.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| ExportError::run(base, e))?;
    let mut config: Value = serde_json::from_str(&text).map_err(|e| ExportError::run(&path, e))?;
    let name = match dtype {
        SaveDtype::F32 => "float32",
        SaveDtype::Bf16 => "bfloat16",
    };
    if let Some(map) = config.as_object_mut() {
        map.insert("torch_dtype".into(), name.into());
        if map.contains_key("dtype") {
            map.insert("dtype".into(), name.into());
        }
    }
    let text = clintune_core::json::to_pretty("config.json", &config);
    write(&out.join("config.json"), text.as_bytes())
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    std::fs::write(path, bytes).map_err(|e| ExportError::write(path, e))
}

/// The export's manifest: every file it holds, the run as parent.
fn manifest(
    staged: &Path,
    run: &Manifest,
    run_dir: &Path,
    target: &Path,
    opts: &ExportOptions,
    version: u32,
) -> Result<Manifest, ExportError> {
    let config = json!({"name": opts.name, "dtype": opts.dtype, "version": version});
    let mut b = ManifestBuilder::new("export", clintune_lineage::manifest::content_hash(&config))
        .parent(ParentRef::locate(run, run_dir, target))
        .config("name", opts.name.clone())
        .config("version", version)
        .config("dtype", json!(opts.dtype));
    for (rel, file) in files_under(staged)? {
        let kind = if rel.starts_with(ADAPTER_DIR) {
            "adapter"
        } else {
            "model"
        };
        let entry = FileEntry::from_file(&file, rel, None)
            .map_err(|e| ExportError::write(&file, e))?
            .with_kind(kind);
        b = b.output(entry);
    }
    let mut counts = Map::new();
    counts.insert("version".into(), version.into());
    let m = b.counts(counts).finish();
    m.write(staged).map_err(|e| ExportError::write(staged, e))?;
    Ok(m)
}

/// Every file under `dir`, as `(relative path, path)`, sorted.
fn files_under(dir: &Path) -> Result<Vec<(String, PathBuf)>, ExportError> {
    let files = clintune_core::hash::files_under(dir).map_err(|e| ExportError::write(dir, e))?;
    Ok(files
        .into_iter()
        .map(|path| {
            let rel = path
                .strip_prefix(dir)
                .unwrap_or(&path)
                .display()
                .to_string();
            (rel, path)
        })
        .collect())
}
