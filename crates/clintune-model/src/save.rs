//! Writing weights as safetensors, one tensor at a time, atomically.
//!
//! The header is computed from names and shapes first; each tensor's values
//! are then fetched, converted and written in turn, so memory never holds a
//! second copy of the model. The file appears under its name only when
//! complete (written beside it, synced, then renamed).

use crate::lora::Target;
use crate::peft;
use crate::weights::{WeightsError, format_err, io_err};
use crate::{Llama, LoraConfig};
use burn::module::Param;
use burn::prelude::*;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// Element type written to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SaveDtype {
    /// 32-bit float.
    F32,
    /// bfloat16 (round to nearest even).
    Bf16,
}

impl SaveDtype {
    fn tag(self) -> &'static str {
        match self {
            SaveDtype::F32 => "F32",
            SaveDtype::Bf16 => "BF16",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            SaveDtype::F32 => 4,
            SaveDtype::Bf16 => 2,
        }
    }
}

/// One tensor to write: its name, shape, and how to get its values.
pub struct Entry<'a> {
    /// Name in the file.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Produces the values, row-major, when the tensor's turn comes.
    pub values: Box<dyn FnOnce() -> Vec<f32> + 'a>,
}

/// Writes `entries` to `path` as `dtype`, with `metadata` in the header.
/// Tensors are stored in name order, as the `safetensors` library does.
pub fn write_safetensors(
    path: &Path,
    mut entries: Vec<Entry<'_>>,
    dtype: SaveDtype,
    metadata: &BTreeMap<String, String>,
) -> Result<(), WeightsError> {
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let header = header(&entries, dtype, metadata);
    let tmp = path.with_extension("safetensors.partial");
    let file = File::create(&tmp).map_err(io_err(&tmp))?;
    let mut out = BufWriter::new(file);
    let write =
        |out: &mut BufWriter<File>, bytes: &[u8]| out.write_all(bytes).map_err(io_err(&tmp));
    write(&mut out, &(header.len() as u64).to_le_bytes())?;
    write(&mut out, &header)?;
    for entry in entries {
        let n: usize = entry.shape.iter().product();
        let values = (entry.values)();
        if values.len() != n {
            return Err(format_err(
                path,
                format!(
                    "{}: {} values for shape {:?}",
                    entry.name,
                    values.len(),
                    entry.shape
                ),
            ));
        }
        write(&mut out, &encode(&values, dtype))?;
    }
    let file = out.into_inner().map_err(|e| io_err(&tmp)(e.into_error()))?;
    file.sync_all().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// The JSON header, padded with spaces to a multiple of 8 bytes (as the
/// `safetensors` library aligns it).
fn header(entries: &[Entry<'_>], dtype: SaveDtype, metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let mut map = Map::new();
    if !metadata.is_empty() {
        map.insert("__metadata__".into(), json!(metadata));
    }
    let mut offset = 0usize;
    for e in entries {
        let len = e.shape.iter().product::<usize>() * dtype.size();
        map.insert(
            e.name.clone(),
            json!({"dtype": dtype.tag(), "shape": e.shape, "data_offsets": [offset, offset + len]}),
        );
        offset += len;
    }
    let mut bytes = clintune_core::json::to_vec("a safetensors header", &Value::Object(map));
    while !bytes.len().is_multiple_of(8) {
        bytes.push(b' ');
    }
    bytes
}

fn encode(values: &[f32], dtype: SaveDtype) -> Vec<u8> {
    match dtype {
        SaveDtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        SaveDtype::Bf16 => values
            .iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
            .collect(),
    }
}

/// An entry that reads `param` when written.
pub fn entry<B: Backend, const D: usize>(name: String, param: &Param<Tensor<B, D>>) -> Entry<'_> {
    Entry {
        name,
        shape: param.dims().to_vec(),
        values: Box::new(move || {
            param
                .val()
                .into_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .unwrap_or_default()
        }),
    }
}

impl<B: Backend> Llama<B> {
    /// Every base weight under its Hugging Face name, to be written by
    /// [`write_safetensors`]. Adapters are not included: merge them first.
    pub fn weight_entries(&self) -> Vec<Entry<'_>> {
        let m = &self.model;
        let mut out = vec![
            entry("model.embed_tokens.weight".into(), &m.embed_tokens.weight),
            entry("model.norm.weight".into(), &m.norm.weight),
        ];
        if let Some(head) = &self.lm_head {
            out.push(entry("lm_head.weight".into(), &head.weight));
        }
        for (l, layer) in m.layers.iter().enumerate() {
            let p = |name: &str| format!("model.layers.{l}.{name}");
            out.push(entry(
                p("input_layernorm.weight"),
                &layer.input_layernorm.weight,
            ));
            out.push(entry(
                p("post_attention_layernorm.weight"),
                &layer.post_attention_layernorm.weight,
            ));
            let attn = &layer.self_attn;
            for (name, norm) in [("q_norm", &attn.q_norm), ("k_norm", &attn.k_norm)] {
                if let Some(norm) = norm {
                    out.push(entry(p(&format!("self_attn.{name}.weight")), &norm.weight));
                }
            }
            for target in Target::ALL {
                let linear = self.linear(l, target);
                out.push(entry(
                    p(&format!("{}.weight", target.layer_path())),
                    &linear.weight,
                ));
                if let Some(bias) = &linear.bias {
                    out.push(entry(p(&format!("{}.bias", target.layer_path())), bias));
                }
            }
        }
        out
    }

    /// Every adapter matrix under PEFT's name.
    pub fn adapter_entries(&self) -> Vec<Entry<'_>> {
        let mut out = Vec::new();
        for l in 0..self.model.layers.len() {
            for target in Target::ALL {
                let Some(lora) = &self.linear(l, target).lora else {
                    continue;
                };
                for (which, param) in [("A", &lora.a), ("B", &lora.b)] {
                    out.push(entry(peft::tensor_name(l, target, which), param));
                }
            }
        }
        out
    }

    /// Writes the adapters in PEFT's format into `dir`
    /// (`adapter_model.safetensors`, `adapter_config.json`), f32.
    pub fn save_peft_adapter(
        &self,
        dir: &Path,
        cfg: &LoraConfig,
        base_model: &str,
    ) -> Result<(), WeightsError> {
        let mut meta = BTreeMap::new();
        meta.insert("format".to_string(), "pt".to_string());
        write_safetensors(
            &dir.join(peft::WEIGHTS_FILE),
            self.adapter_entries(),
            SaveDtype::F32,
            &meta,
        )?;
        let config = peft::config_json(cfg, base_model);
        let path = dir.join(peft::CONFIG_FILE);
        let text = clintune_core::json::to_pretty("adapter_config.json", &config);
        clintune_core::staging::write_atomic(&path, text.as_bytes()).map_err(io_err(&path))
    }
}
