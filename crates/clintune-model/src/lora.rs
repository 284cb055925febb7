//! LoRA adapters (Hu et al., 2021) on the decoder's linear maps.
//!
//! An adapted map computes `W x + b + s · B(A(dropout(x)))` with the base
//! `W`, `b` frozen, `A: [rank, in]`, `B: [out, rank]` (PEFT's layout, so an
//! adapter exports to PEFT without transposes) and `s = alpha / rank`. `A`
//! starts uniform in `±1/√in` (PEFT's Kaiming init) and `B` at zero, so a
//! freshly attached adapter leaves the model's outputs unchanged.

use crate::fused;
use crate::llama::{HfLinear, Llama, in_dtype, project};
use burn::module::Param;
use burn::nn::{Dropout, DropoutConfig};
use burn::prelude::*;
use clintune_core::Invalid;
use clintune_core::rng::{SplitMix64, mix64};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A linear map of a decoder layer that can carry an adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// `self_attn.q_proj`.
    #[serde(alias = "q_proj")]
    Q,
    /// `self_attn.k_proj`.
    #[serde(alias = "k_proj")]
    K,
    /// `self_attn.v_proj`.
    #[serde(alias = "v_proj")]
    V,
    /// `self_attn.o_proj`.
    #[serde(alias = "o_proj")]
    O,
    /// `mlp.gate_proj`.
    #[serde(alias = "gate_proj")]
    Gate,
    /// `mlp.up_proj`.
    #[serde(alias = "up_proj")]
    Up,
    /// `mlp.down_proj`.
    #[serde(alias = "down_proj")]
    Down,
}

impl Target {
    /// Every target, in layer order.
    pub const ALL: [Target; 7] = [
        Target::Q,
        Target::K,
        Target::V,
        Target::O,
        Target::Gate,
        Target::Up,
        Target::Down,
    ];

    /// The module's name in Hugging Face and PEFT (`q_proj`, …).
    pub fn module_name(self) -> &'static str {
        match self {
            Target::Q => "q_proj",
            Target::K => "k_proj",
            Target::V => "v_proj",
            Target::O => "o_proj",
            Target::Gate => "gate_proj",
            Target::Up => "up_proj",
            Target::Down => "down_proj",
        }
    }

    /// The module's path inside a decoder layer (`self_attn.q_proj`, …).
    pub fn layer_path(self) -> &'static str {
        match self {
            Target::Q => "self_attn.q_proj",
            Target::K => "self_attn.k_proj",
            Target::V => "self_attn.v_proj",
            Target::O => "self_attn.o_proj",
            Target::Gate => "mlp.gate_proj",
            Target::Up => "mlp.up_proj",
            Target::Down => "mlp.down_proj",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.module_name())
    }
}

/// Where adapters go and how large they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoraConfig {
    /// Rank `r` of each adapter.
    pub rank: usize,
    /// Scale numerator: the update is multiplied by `alpha / rank`.
    pub alpha: f64,
    /// Dropout on the adapter's input while training, in `[0, 1)`.
    pub dropout: f64,
    /// The maps that get adapters.
    pub targets: Vec<Target>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            rank: 8,
            alpha: 16.0,
            dropout: 0.05,
            targets: vec![Target::Q, Target::K, Target::V, Target::O],
        }
    }
}

impl LoraConfig {
    /// Checks the values; the error names the field and says what is allowed.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.rank == 0 {
            return Err(Invalid::new("lora.rank", "must be at least 1"));
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(Invalid::new(
                "lora.alpha",
                format!("must be > 0, got {}", self.alpha),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Invalid::new(
                "lora.dropout",
                format!("must be in [0, 1), got {}", self.dropout),
            ));
        }
        if self.targets.is_empty() {
            return Err(Invalid::new(
                "lora.targets",
                "must name at least one of q, k, v, o, gate, up, down",
            ));
        }
        Ok(())
    }

    /// `alpha / rank`.
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }
}

/// One adapter: `scale · B(A(dropout(x)))`.
#[derive(Module, Debug)]
pub struct Lora<B: Backend> {
    /// `A`, `[rank, in]`.
    pub a: Param<Tensor<B, 2>>,
    /// `B`, `[out, rank]`.
    pub b: Param<Tensor<B, 2>>,
    /// `alpha / rank`.
    pub scale: f64,
    /// Dropout on the input; active only on an autodiff backend.
    pub dropout: Dropout,
}

impl<B: Backend> Lora<B> {
    /// A fresh adapter for a `[out, in]` map: `A` from `seed`, `B` zero.
    pub fn new(out: usize, inp: usize, cfg: &LoraConfig, seed: u64, device: &B::Device) -> Self {
        let bound = 1.0 / (inp as f64).sqrt();
        let mut rng = SplitMix64(seed);
        let a: Vec<f32> = (0..cfg.rank * inp)
            .map(|_| ((rng.next_f64() * 2.0 - 1.0) * bound) as f32)
            .collect();
        Self {
            a: Param::from_data(TensorData::new(a, [cfg.rank, inp]), device),
            b: Param::from_data(TensorData::zeros::<f32, _>([out, cfg.rank]), device),
            scale: cfg.scale(),
            dropout: DropoutConfig::new(cfg.dropout).init(),
        }
    }

    /// The update for `x` `[rows, in]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let dtype = x.dtype();
        let x = fused::dropout(x, &self.dropout);
        // Scaled at rank width, the narrowest point.
        let down = project(x, in_dtype(self.a.val(), dtype)) * self.scale;
        project(down, in_dtype(self.b.val(), dtype))
    }

    /// `scale · B A`, the `[out, in]` change to the base weight.
    pub fn delta(&self) -> Tensor<B, 2> {
        self.b.val().matmul(self.a.val()) * self.scale
    }
}

impl<B: Backend> Llama<B> {
    /// The map `target` of layer `layer`.
    pub fn linear(&self, layer: usize, target: Target) -> &HfLinear<B> {
        let l = &self.model.layers[layer];
        match target {
            Target::Q => &l.self_attn.q_proj,
            Target::K => &l.self_attn.k_proj,
            Target::V => &l.self_attn.v_proj,
            Target::O => &l.self_attn.o_proj,
            Target::Gate => &l.mlp.gate_proj,
            Target::Up => &l.mlp.up_proj,
            Target::Down => &l.mlp.down_proj,
        }
    }

    /// The map `target` of layer `layer`, to change.
    pub fn linear_mut(&mut self, layer: usize, target: Target) -> &mut HfLinear<B> {
        let l = &mut self.model.layers[layer];
        match target {
            Target::Q => &mut l.self_attn.q_proj,
            Target::K => &mut l.self_attn.k_proj,
            Target::V => &mut l.self_attn.v_proj,
            Target::O => &mut l.self_attn.o_proj,
            Target::Gate => &mut l.mlp.gate_proj,
            Target::Up => &mut l.mlp.up_proj,
            Target::Down => &mut l.mlp.down_proj,
        }
    }

    /// Freezes every base weight and attaches fresh adapters to the targets.
    /// Each adapter's `A` is drawn from `seed` and its place, so the same seed
    /// gives the same adapters on any backend or device.
    pub fn with_lora(self, cfg: &LoraConfig, seed: u64) -> Self {
        let mut model = self.no_grad();
        let device = model.model.norm.weight.device();
        for layer in 0..model.model.layers.len() {
            for &target in &cfg.targets {
                let slot = Target::ALL.iter().position(|&t| t == target).unwrap_or(0);
                let place = mix64(seed ^ mix64((layer * Target::ALL.len() + slot) as u64 + 1));
                let linear = model.linear_mut(layer, target);
                let [out, inp] = linear.weight.dims();
                linear.lora = Some(Lora::new(out, inp, cfg, place, &device));
            }
        }
        model
    }

    /// Folds every adapter into its base weight (`W + s·BA`) and drops the
    /// adapters: the result computes the same function with no extra cost.
    pub fn merge_lora(mut self) -> Self {
        for layer in 0..self.model.layers.len() {
            for target in Target::ALL {
                let linear = self.linear_mut(layer, target);
                if let Some(lora) = linear.lora.take() {
                    let delta = lora.delta();
                    linear.weight = linear.weight.clone().map(|w| w + delta);
                }
            }
        }
        self
    }

    /// The same model with every adapter dropped: the frozen base the
    /// adapters sit on, sharing its weights, so a reference model under LoRA
    /// costs no memory.
    pub fn without_lora(mut self) -> Self {
        for layer in 0..self.model.layers.len() {
            for target in Target::ALL {
                self.linear_mut(layer, target).lora = None;
            }
        }
        self
    }

    /// Whether any map carries an adapter.
    pub fn has_lora(&self) -> bool {
        (0..self.model.layers.len()).any(|l| {
            Target::ALL
                .iter()
                .any(|&t| self.linear(l, t).lora.is_some())
        })
    }
}
