//! The Llama-family decoder in burn, backend-generic.
//!
//! Layout and names follow Hugging Face (`model.layers.N.self_attn.q_proj`,
//! linear weights `[out, in]`), so weights load by name without renaming.
//! Attention takes per-token positions and document ids: in a packed row,
//! a token attends only to earlier tokens of its own document, and positions
//! restart at each document.

use crate::config::ModelConfig;
use crate::fused;
use crate::generate::{KvCache, LayerCache};
use crate::lora::Lora;
use crate::rope;
use crate::weights::{WeightFiles, WeightsError};
use burn::module::Param;
use burn::prelude::*;
use burn::tensor::DType;
use burn::tensor::activation::{log_softmax, silu, softmax};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A linear map with Hugging Face's weight layout `[out, in]`.
#[derive(Module, Debug)]
pub struct HfLinear<B: Backend> {
    /// `[out, in]`.
    pub weight: Param<Tensor<B, 2>>,
    /// `[out]`, when the layer has one.
    pub bias: Option<Param<Tensor<B, 1>>>,
    /// A LoRA adapter added to the output, when attached.
    pub lora: Option<Lora<B>>,
}

impl<B: Backend> HfLinear<B> {
    /// `x @ weightᵀ + bias (+ adapter)` over the last dimension, computed in
    /// `x`'s dtype (the f32 weights are cast to it, as autocast does).
    /// The leading dimensions are flattened first: one 2-D product instead
    /// of a batch of them, whose weight gradient would then be a batch of
    /// products summed in one more pass.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let mut dims = x.dims();
        let x = x.flatten::<2>(0, D - 2);
        let dtype = x.dtype();
        let update = self.lora.as_ref().map(|l| l.forward(x.clone()));
        let mut y = project(x, in_dtype(self.weight.val(), dtype));
        if let Some(b) = &self.bias {
            y = y + in_dtype(b.val(), dtype).unsqueeze::<2>();
        }
        if let Some(u) = update {
            y = y + u;
        }
        dims[D - 1] = y.dims()[1];
        y.reshape(dims)
    }
}

/// `x · wᵀ` for `x` `[rows, in]` and a weight `[out, in]`: the fused kernel
/// where it runs (its weight gradient comes back contiguous), a matmul
/// elsewhere.
pub(crate) fn project<B: Backend>(x: Tensor<B, 2>, w: Tensor<B, 2>) -> Tensor<B, 2> {
    match fused::linear(x, w) {
        Ok(y) => y,
        Err([x, w]) => x.matmul(w.transpose()),
    }
}

/// `t` in `dtype`: cast when it differs. Casts are differentiable, so
/// gradients reach f32 weights used in a lower precision in f32.
pub(crate) fn in_dtype<B: Backend, const D: usize>(t: Tensor<B, D>, dtype: DType) -> Tensor<B, D> {
    if t.dtype() == dtype { t } else { t.cast(dtype) }
}

/// RMSNorm as transformers computes it: normalise in f32, then scale.
#[derive(Module, Debug)]
pub struct RmsNorm<B: Backend> {
    /// `[hidden]`.
    pub weight: Param<Tensor<B, 1>>,
    /// Added to the mean square.
    pub eps: f64,
}

impl<B: Backend> RmsNorm<B> {
    /// Normalises over the last dimension, in f32 whatever `x`'s dtype,
    /// which the result has.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        match fused::rms_norm(x, self.weight.val(), self.eps) {
            Ok(y) => y,
            Err((x, w)) => rms_norm(x, w, self.eps),
        }
    }
}

/// RMSNorm from its operations (the fused kernel's reference).
pub(crate) fn rms_norm<B: Backend>(x: Tensor<B, 3>, w: Tensor<B, 1>, eps: f64) -> Tensor<B, 3> {
    let dtype = x.dtype();
    let x = in_dtype(x, DType::F32);
    let var = x.clone().square().mean_dim(2);
    let x = in_dtype(x * (var + eps).sqrt().recip(), dtype);
    x * in_dtype(w, dtype).unsqueeze::<3>()
}

/// Grouped-query self-attention.
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    /// Query projection.
    pub q_proj: HfLinear<B>,
    /// Key projection.
    pub k_proj: HfLinear<B>,
    /// Value projection.
    pub v_proj: HfLinear<B>,
    /// Output projection.
    pub o_proj: HfLinear<B>,
    /// RMSNorm of each query head before the rotation (Qwen3).
    pub q_norm: Option<RmsNorm<B>>,
    /// RMSNorm of each key head before the rotation (Qwen3).
    pub k_norm: Option<RmsNorm<B>>,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Width of a head.
    pub head_dim: usize,
}

/// What every layer of one forward pass shares: rotary rows and the mask.
#[derive(Debug, Clone)]
pub struct Context<B: Backend> {
    /// The rotary angles.
    pub rotary: Rotary<B>,
    /// Which keys each query may see.
    pub mask: Mask<B>,
}

/// The `cos` and `sin` of each token's rotary angles.
#[derive(Debug, Clone)]
pub enum Rotary<B: Backend> {
    /// For each head count of the model (query, key/value): the count and
    /// the rows repeated over that many heads, `[batch, seq, heads,
    /// head_dim]`. Element-wise products with broadcast operands take a
    /// slow strided path on the CPU backend, so the rows are materialised
    /// once per pass instead.
    Repeated(Vec<(usize, Tensor<B, 4>, Tensor<B, 4>)>),
    /// `[batch · seq, head_dim]` each, row-major, for the fused kernel.
    Rows(Arc<Vec<f32>>, Arc<Vec<f32>>),
}

/// Which keys each query of a forward pass may see.
#[derive(Debug, Clone)]
pub enum Mask<B: Backend> {
    /// `[batch, heads, seq_q, seq_k]`, true where attention is blocked
    /// (repeated over the query heads, as the element-wise kernels want).
    Dense(Tensor<B, 4, Bool>),
    /// Per token (`[batch, seq]`, row-major), the position where its
    /// document starts: a query sees its document's keys up to itself. The
    /// fused attention kernel reads this and builds no mask.
    Documents(Arc<Vec<u32>>),
}

impl<B: Backend> Mask<B> {
    /// The dense mask, over `heads` query heads.
    fn dense(&self, [b, heads, s]: [usize; 3], device: &B::Device) -> Tensor<B, 4, Bool> {
        match self {
            Mask::Dense(blocked) => blocked.clone(),
            Mask::Documents(starts) => {
                let blocked = starts
                    .iter()
                    .enumerate()
                    .flat_map(|(t, &start)| {
                        let i = t % s;
                        (0..s).map(move |j| j < start as usize || j > i)
                    })
                    .collect();
                Tensor::<B, 4, Bool>::from_data(TensorData::new(blocked, [b, 1, s, s]), device)
                    .repeat_dim(1, heads)
            }
        }
    }
}

impl<B: Backend> Attention<B> {
    /// `[batch, seq, heads · head_dim]` → `[batch, seq, heads, head_dim]`,
    /// rotated when `rotary` is given. Rotating before the heads move to
    /// dimension 1 keeps the element-wise products on contiguous data;
    /// after it they took a slow strided path.
    fn split_heads(
        &self,
        x: Tensor<B, 3>,
        heads: usize,
        norm: Option<&RmsNorm<B>>,
        rotary: Option<&Context<B>>,
    ) -> Tensor<B, 4> {
        let [b, s, _] = x.dims();
        let x = match norm {
            // Each head's vector normalised on its own: heads become rows.
            Some(norm) => norm
                .forward(x.reshape([b, s * heads, self.head_dim]))
                .reshape([b, s, heads, self.head_dim]),
            None => x.reshape([b, s, heads, self.head_dim]),
        };
        match rotary {
            Some(ctx) => rotate(x, ctx),
            None => x,
        }
    }

    /// Repeats each key/value head for its group of query heads, in
    /// transformers' order (kv0, kv0, kv1, kv1, …).
    fn repeat_kv(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let rep = self.heads / self.kv_heads;
        if rep == 1 {
            return x;
        }
        let [b, kv, s, d] = x.dims();
        x.unsqueeze_dim::<5>(2)
            .expand([b, kv, rep, s, d])
            .reshape([b, kv * rep, s, d])
    }

    /// Attends over `x` `[batch, seq, hidden]`, after the keys and values in
    /// `cache` when given (which then grows by this step's).
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        ctx: &Context<B>,
        cache: Option<&mut LayerCache<B>>,
    ) -> Tensor<B, 3> {
        let [b, s, _] = x.dims();
        let (q_norm, k_norm) = (self.q_norm.as_ref(), self.k_norm.as_ref());
        let q = self.split_heads(
            self.q_proj.forward(x.clone()),
            self.heads,
            q_norm,
            Some(ctx),
        );
        let k = self.split_heads(
            self.k_proj.forward(x.clone()),
            self.kv_heads,
            k_norm,
            Some(ctx),
        );
        let v = self.split_heads(self.v_proj.forward(x), self.kv_heads, None, None);
        let out = match (&ctx.mask, cache) {
            (Mask::Documents(starts), None) => match fused::attention(q, k, v, starts) {
                Ok(out) => out,
                Err([q, k, v]) => self.attend(q, k, v, ctx, None),
            },
            (_, cache) => self.attend(q, k, v, ctx, cache),
        };
        self.o_proj
            .forward(out.reshape([b, s, self.heads * self.head_dim]))
    }

    /// Attention from its operations (the fused kernel's reference):
    /// queries `[batch, seq, heads, head_dim]`, keys and values
    /// `[batch, seq, kv_heads, head_dim]` (after those in `cache`); returns
    /// `[batch, seq, heads, head_dim]`.
    pub(crate) fn attend(
        &self,
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
        ctx: &Context<B>,
        cache: Option<&mut LayerCache<B>>,
    ) -> Tensor<B, 4> {
        let [q, k, v] = [q, k, v].map(|t| t.swap_dims(1, 2));
        let (k, v) = match cache {
            Some(cache) => cache.append(k, v),
            None => (k, v),
        };
        let (k, v) = (self.repeat_kv(k), self.repeat_kv(v));
        let [b, _, s, _] = q.dims();
        let blocked = ctx.mask.dense([b, self.heads, s], &q.device());
        let dtype = q.dtype();
        let scores = q.matmul(k.swap_dims(2, 3)) / (self.head_dim as f64).sqrt();
        // The softmax in f32, as transformers computes it.
        let scores = in_dtype(scores, DType::F32).mask_fill(blocked, f32::NEG_INFINITY);
        in_dtype(softmax(scores, 3), dtype)
            .matmul(v)
            .swap_dims(1, 2)
    }
}

/// `x * cos + rotate_half(x) * sin`, `x` being `[batch, seq, heads, head_dim]`.
fn rotate<B: Backend>(x: Tensor<B, 4>, ctx: &Context<B>) -> Tensor<B, 4> {
    let [b, s, heads, d] = x.dims();
    let (cos, sin) = match &ctx.rotary {
        Rotary::Rows(cos, sin) => match fused::rope(x, cos, sin) {
            Ok(y) => return y,
            Err(x) => {
                let (device, dtype) = (x.device(), x.dtype());
                let table = |v: &Arc<Vec<f32>>| {
                    angle_table(v.to_vec(), [b, s, d], dtype, &device).repeat_dim(2, heads)
                };
                let (cos, sin) = (table(cos), table(sin));
                return rotate_with(x, &cos, &sin);
            }
        },
        Rotary::Repeated(tables) => match tables.iter().find(|(h, ..)| *h == heads) {
            Some((_, cos, sin)) => (cos, sin),
            None => unreachable!("rotary rows are made for every head count of the model"),
        },
    };
    rotate_with(x, cos, sin)
}

/// Per-token `cos` or `sin` rows (`[batch · seq, head_dim]`, row-major) as
/// a `[batch, seq, 1, head_dim]` tensor in `dtype`.
pub(crate) fn angle_table<B: Backend>(
    rows: Vec<f32>,
    [b, s, d]: [usize; 3],
    dtype: DType,
    device: &B::Device,
) -> Tensor<B, 4> {
    in_dtype(
        Tensor::from_data(TensorData::new(rows, [b, s, 1, d]), device),
        dtype,
    )
}

/// The rotation from its operations, with `cos` and `sin` repeated over
/// the heads (the fused kernel's reference).
pub(crate) fn rotate_with<B: Backend>(
    x: Tensor<B, 4>,
    cos: &Tensor<B, 4>,
    sin: &Tensor<B, 4>,
) -> Tensor<B, 4> {
    let d = x.dims()[3];
    let first = x.clone().narrow(3, 0, d / 2);
    let second = x.clone().narrow(3, d / 2, d / 2);
    let half = Tensor::cat(vec![second.neg(), first], 3);
    x * cos.clone() + half * sin.clone()
}

/// SwiGLU feed-forward.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// Gate projection.
    pub gate_proj: HfLinear<B>,
    /// Up projection.
    pub up_proj: HfLinear<B>,
    /// Down projection.
    pub down_proj: HfLinear<B>,
}

impl<B: Backend> Mlp<B> {
    /// `down(silu(gate(x)) * up(x))`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let gate = self.gate_proj.forward(x.clone());
        let up = self.up_proj.forward(x);
        let [b, s, width] = gate.dims();
        let flat = |t: Tensor<B, 3>| t.reshape([b * s, width]);
        let gated = match fused::swiglu(flat(gate), flat(up)) {
            Ok(gated) => gated,
            Err([gate, up]) => silu(gate) * up,
        };
        self.down_proj.forward(gated.reshape([b, s, width]))
    }
}

/// One decoder layer (pre-norm).
#[derive(Module, Debug)]
pub struct Layer<B: Backend> {
    /// Norm before attention.
    pub input_layernorm: RmsNorm<B>,
    /// Self-attention.
    pub self_attn: Attention<B>,
    /// Norm before the MLP.
    pub post_attention_layernorm: RmsNorm<B>,
    /// Feed-forward.
    pub mlp: Mlp<B>,
}

impl<B: Backend> Layer<B> {
    fn forward(
        &self,
        x: Tensor<B, 3>,
        ctx: &Context<B>,
        cache: Option<&mut LayerCache<B>>,
    ) -> Tensor<B, 3> {
        let attended = self
            .self_attn
            .forward(self.input_layernorm.forward(x.clone()), ctx, cache);
        let x = x + attended;
        x.clone() + self.mlp.forward(self.post_attention_layernorm.forward(x))
    }
}

/// Token embeddings `[vocab, hidden]`.
#[derive(Module, Debug)]
pub struct Embedding<B: Backend> {
    /// `[vocab, hidden]`.
    pub weight: Param<Tensor<B, 2>>,
}

/// The decoder stack under `model.` in Hugging Face's names.
#[derive(Module, Debug)]
pub struct Decoder<B: Backend> {
    /// Token embeddings.
    pub embed_tokens: Embedding<B>,
    /// Layers.
    pub layers: Vec<Layer<B>>,
    /// Final norm.
    pub norm: RmsNorm<B>,
}

/// A Llama-family causal language model.
#[derive(Module, Debug)]
pub struct Llama<B: Backend> {
    /// The decoder.
    pub model: Decoder<B>,
    /// Output projection; `None` when tied to the embeddings.
    pub lm_head: Option<HfLinear<B>>,
    /// Rotary inverse frequencies.
    #[module(skip)]
    pub inv_freq: Vec<f32>,
    /// The dtype activations are computed in (weights stay as loaded):
    /// f32, or bf16 for mixed precision. Logits are f32 either way.
    #[module(skip)]
    pub compute: DType,
}

/// One forward pass's input: `[batch, seq]` each, row-major.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Rows.
    pub batch: usize,
    /// Tokens per row.
    pub seq: usize,
    /// Token ids.
    pub tokens: Vec<u32>,
    /// Position of each token in its document.
    pub positions: Vec<u32>,
    /// Document of each token; a token attends only within its document.
    pub documents: Vec<u32>,
}

impl Batch {
    /// Rows of one document each, positions from 0.
    pub fn unpacked(rows: &[Vec<u32>]) -> Self {
        let seq = rows.first().map_or(0, Vec::len);
        Self {
            batch: rows.len(),
            seq,
            tokens: rows.concat(),
            positions: (0..rows.len()).flat_map(|_| 0..seq as u32).collect(),
            documents: vec![0; rows.len() * seq],
        }
    }
}

impl<B: Backend> Llama<B> {
    /// Loads the model in `dir` (config and weights) onto `device`, after
    /// checking the weights hold exactly what the config implies.
    pub fn load(
        config: &ModelConfig,
        weights: &WeightFiles,
        device: &B::Device,
    ) -> Result<Self, WeightsError> {
        weights.check(&config.expected_tensors())?;
        Self::build(config, weights, device)
    }

    /// Builds the model from `source`, one tensor at a time, so that memory
    /// never holds more than the model plus one tensor.
    pub(crate) fn build(
        config: &ModelConfig,
        source: &dyn Source,
        device: &B::Device,
    ) -> Result<Self, WeightsError> {
        let loader = Loader {
            source,
            shapes: config.expected_tensors().into_iter().collect(),
            device,
        };
        let layers = (0..config.num_hidden_layers)
            .map(|l| loader.layer(config, l))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            model: Decoder {
                embed_tokens: Embedding {
                    weight: loader.param("model.embed_tokens.weight")?,
                },
                layers,
                norm: loader.norm("model.norm.weight", config)?,
            },
            lm_head: if config.tie_word_embeddings {
                None
            } else {
                Some(loader.linear("lm_head", false)?)
            },
            inv_freq: rope::inv_freq(config),
            compute: DType::F32,
        })
    }

    /// The model computing in `dtype` (`DType::BF16` for mixed precision:
    /// weights stay f32 and are cast at each use, RMSNorm and the attention
    /// softmax run in f32, logits come out in f32).
    pub fn with_compute_dtype(mut self, dtype: DType) -> Self {
        self.compute = dtype;
        self
    }

    /// Logits `[batch, seq, vocab]`, in f32.
    pub fn forward(&self, input: &Batch) -> Tensor<B, 3> {
        let ctx = self.context(input, &self.device());
        let hidden = self.hidden(&input.tokens, [input.batch, input.seq], &ctx, None);
        self.logits(hidden)
    }

    /// The device the weights are on.
    pub fn device(&self) -> B::Device {
        self.model.embed_tokens.weight.device()
    }

    /// The final normed hidden states `[batch, seq, hidden]` of `tokens`
    /// (`[batch, seq]`, row-major), after the cached steps when given.
    pub(crate) fn hidden(
        &self,
        tokens: &[u32],
        [batch, seq]: [usize; 2],
        ctx: &Context<B>,
        mut cache: Option<&mut KvCache<B>>,
    ) -> Tensor<B, 3> {
        let ids = Tensor::<B, 1, Int>::from_data(
            TensorData::new(tokens.iter().map(|&t| t as i64).collect(), [tokens.len()]),
            &self.device(),
        );
        let table = self.model.embed_tokens.weight.val();
        let width = table.dims()[1];
        let mut x = in_dtype(table.select(0, ids), self.compute).reshape([batch, seq, width]);
        for (l, layer) in self.model.layers.iter().enumerate() {
            let layer_cache = cache.as_deref_mut().map(|c| c.layer(l));
            x = layer.forward(x, ctx, layer_cache);
        }
        self.model.norm.forward(x)
    }

    /// Logits of normed hidden states, through the head (or the tied
    /// embeddings).
    pub(crate) fn logits(&self, hidden: Tensor<B, 3>) -> Tensor<B, 3> {
        let dtype = hidden.dtype();
        let logits = match &self.lm_head {
            Some(head) => head.forward(hidden),
            None => {
                let [b, s, width] = hidden.dims();
                let table = in_dtype(self.model.embed_tokens.weight.val(), dtype);
                let logits = project(hidden.reshape([b * s, width]), table);
                let vocab = logits.dims()[1];
                logits.reshape([b, s, vocab])
            }
        };
        in_dtype(logits, DType::F32)
    }

    /// The log-probability of each token given the earlier tokens of its
    /// document, row-major like `input.tokens`; `None` where a document starts.
    pub fn token_log_probs(&self, input: &Batch) -> Vec<Option<f32>> {
        let logits = self.forward(input);
        let vocab = logits.dims()[2];
        let logp = log_softmax(logits, 2)
            .into_data()
            .to_vec::<f32>()
            .unwrap_or_default();
        let mut out = Vec::with_capacity(input.tokens.len());
        for row in 0..input.batch {
            for t in 0..input.seq {
                let i = row * input.seq + t;
                let continues = t > 0 && input.documents[i] == input.documents[i - 1];
                out.push(continues.then(|| logp[(i - 1) * vocab + input.tokens[i] as usize]));
            }
        }
        out
    }

    /// Rotary rows for `positions` (`[batch, seq]`, row-major), with
    /// `mask` (a dense one `[batch, 1, seq_q, seq_k]`, repeated here over the
    /// heads).
    pub(crate) fn rotary_context(
        &self,
        positions: &[u32],
        [b, s]: [usize; 2],
        mask: Mask<B>,
    ) -> Context<B> {
        let mask = match mask {
            Mask::Dense(blocked) => Mask::Dense(blocked.repeat_dim(1, self.heads())),
            documents => documents,
        };
        let (cos, sin) = rope::cos_sin(&self.inv_freq, positions);
        if fused::runs_on::<B>(self.compute) {
            let rotary = Rotary::Rows(Arc::new(cos), Arc::new(sin));
            return Context { rotary, mask };
        }
        let device = self.device();
        let shape = [b, s, self.inv_freq.len() * 2];
        let table = |v| angle_table::<B>(v, shape, self.compute, &device);
        let (cos, sin) = (table(cos), table(sin));
        let kv_heads = self
            .model
            .layers
            .first()
            .map_or(1, |l| l.self_attn.kv_heads);
        let mut counts = vec![self.heads(), kv_heads];
        counts.dedup();
        let rotary = counts
            .into_iter()
            .map(|h| {
                (
                    h,
                    cos.clone().repeat_dim(2, h),
                    sin.clone().repeat_dim(2, h),
                )
            })
            .collect();
        Context {
            rotary: Rotary::Repeated(rotary),
            mask,
        }
    }

    /// Query heads per layer.
    fn heads(&self) -> usize {
        self.model.layers.first().map_or(1, |l| l.self_attn.heads)
    }

    /// The context of a forward pass over `input`: where the fused
    /// attention runs, the document starts; elsewhere a dense mask.
    fn context(&self, input: &Batch, device: &B::Device) -> Context<B> {
        let (b, s) = (input.batch, input.seq);
        if fused::runs_on::<B>(self.compute)
            && let Some(starts) = fused::attention::document_starts(&input.documents, s)
        {
            let mask = Mask::Documents(Arc::new(starts));
            return self.rotary_context(&input.positions, [b, s], mask);
        }
        let docs = Tensor::<B, 2, Int>::from_data(
            TensorData::new(input.documents.iter().map(|&x| x as i64).collect(), [b, s]),
            device,
        );
        let other_doc = docs
            .clone()
            .reshape([b, 1, s, 1])
            .not_equal(docs.reshape([b, 1, 1, s]));
        let future = Tensor::<B, 2, Bool>::tril_mask([s, s], 0, device).reshape([1, 1, s, s]);
        let mask = Mask::Dense(other_doc.bool_or(future));
        self.rotary_context(&input.positions, [b, s], mask)
    }
}

/// Where a model's tensors come from: weight files, or a random
/// initialisation.
pub(crate) trait Source {
    /// The values of tensor `name`, of shape `shape`, row-major.
    fn read(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, WeightsError>;
}

impl Source for WeightFiles {
    fn read(&self, name: &str, _shape: &[usize]) -> Result<Vec<f32>, WeightsError> {
        self.read_f32(name)
    }
}

/// Builds parameters from a source, one tensor at a time.
struct Loader<'a, B: Backend> {
    source: &'a dyn Source,
    shapes: BTreeMap<String, Vec<usize>>,
    device: &'a B::Device,
}

impl<B: Backend> Loader<'_, B> {
    fn param<const D: usize>(&self, name: &str) -> Result<Param<Tensor<B, D>>, WeightsError> {
        let shape = self
            .shapes
            .get(name)
            .ok_or_else(|| WeightsError::Unknown(name.into()))?;
        let data = TensorData::new(self.source.read(name, shape)?, shape.clone());
        Ok(Param::from_data(data, self.device))
    }

    fn linear(&self, prefix: &str, bias: bool) -> Result<HfLinear<B>, WeightsError> {
        Ok(HfLinear {
            weight: self.param(&format!("{prefix}.weight"))?,
            bias: if bias {
                Some(self.param(&format!("{prefix}.bias"))?)
            } else {
                None
            },
            lora: None,
        })
    }

    fn norm(&self, name: &str, config: &ModelConfig) -> Result<RmsNorm<B>, WeightsError> {
        Ok(RmsNorm {
            weight: self.param(name)?,
            eps: config.rms_norm_eps,
        })
    }

    /// A per-head norm, when the model has them.
    fn qk_norm(
        &self,
        name: &str,
        config: &ModelConfig,
    ) -> Result<Option<RmsNorm<B>>, WeightsError> {
        config.qk_norm.then(|| self.norm(name, config)).transpose()
    }

    fn layer(&self, config: &ModelConfig, l: usize) -> Result<Layer<B>, WeightsError> {
        let p = |name: &str| format!("model.layers.{l}.{name}");
        let bias = config.attention_bias;
        Ok(Layer {
            input_layernorm: self.norm(&p("input_layernorm.weight"), config)?,
            self_attn: Attention {
                q_proj: self.linear(&p("self_attn.q_proj"), bias)?,
                k_proj: self.linear(&p("self_attn.k_proj"), bias)?,
                v_proj: self.linear(&p("self_attn.v_proj"), bias)?,
                o_proj: self.linear(&p("self_attn.o_proj"), false)?,
                q_norm: self.qk_norm(&p("self_attn.q_norm.weight"), config)?,
                k_norm: self.qk_norm(&p("self_attn.k_norm.weight"), config)?,
                heads: config.num_attention_heads,
                kv_heads: config.num_key_value_heads,
                head_dim: config.head_dim,
            },
            post_attention_layernorm: self.norm(&p("post_attention_layernorm.weight"), config)?,
            mlp: Mlp {
                gate_proj: self.linear(&p("mlp.gate_proj"), false)?,
                up_proj: self.linear(&p("mlp.up_proj"), false)?,
                down_proj: self.linear(&p("mlp.down_proj"), false)?,
            },
        })
    }
}
