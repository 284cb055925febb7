//! Parameter bookkeeping: ids from names, global gradient norm and clipping,
//! counts.
//!
//! burn keys optimizer state and gradients by [`ParamId`], which is random
//! per construction. A model loaded again (to resume) or in another process
//! (data parallelism across nodes) must give each parameter the same id, so
//! ids are derived from the parameter's path instead.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use clintune_core::rng::mix64;

/// Rewrites every parameter id as a hash of its path.
#[derive(Default)]
struct IdsFromPaths {
    path: Vec<String>,
}

impl<B: Backend> ModuleMapper<B> for IdsFromPaths {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let id = ParamId::from(path_id(&self.path.join(".")));
        let (_, tensor, mapper) = param.consume();
        Param::from_mapped_value(id, tensor, mapper)
    }
}

/// The id of the parameter at `path`.
fn path_id(path: &str) -> u64 {
    path.bytes()
        .fold(0x05EE_D1D5_u64, |h, b| mix64(h ^ u64::from(b)))
}

/// `module` with each parameter's id derived from its path.
pub fn ids_from_paths<B: Backend, M: Module<B>>(module: M) -> M {
    module.map(&mut IdsFromPaths::default())
}

/// Sums squares of the gradients of `module`'s parameters.
struct SquaredNorm<'a> {
    grads: &'a GradientsParams,
    sum: f64,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
            let squares = clintune_model::loss::total(g.square());
            self.sum += f64::from(squares.into_scalar().elem::<f32>());
        }
    }
}

/// Scales every gradient of `module`'s parameters.
struct Scale<'a> {
    grads: &'a mut GradientsParams,
    factor: f64,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            self.grads.register(param.id, g * self.factor);
        }
    }
}

/// The global L2 norm of the gradients (all parameters as one vector).
pub fn grad_norm<B: AutodiffBackend, M: Module<B>>(module: &M, grads: &GradientsParams) -> f64 {
    let mut v = SquaredNorm { grads, sum: 0.0 };
    module.visit(&mut v);
    v.sum.sqrt()
}

/// Multiplies every gradient by `factor`.
pub fn scale_grads<B: AutodiffBackend, M: Module<B>>(
    module: &M,
    grads: &mut GradientsParams,
    factor: f64,
) {
    module.visit(&mut Scale { grads, factor });
}

/// Clips the global gradient norm to `max_norm` (as PyTorch's
/// `clip_grad_norm_`) and returns the norm before clipping. `max_norm` 0
/// leaves the gradients as they are.
pub fn clip_grad_norm<B: AutodiffBackend, M: Module<B>>(
    module: &M,
    grads: &mut GradientsParams,
    max_norm: f64,
) -> f64 {
    let norm = grad_norm::<B, M>(module, grads);
    if max_norm > 0.0 && norm > max_norm {
        scale_grads::<B, M>(module, grads, max_norm / (norm + 1e-6));
    }
    norm
}

/// Counts parameters: all, and those that train.
struct Count {
    total: usize,
    trainable: usize,
}

impl<B: Backend> ModuleVisitor<B> for Count {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let n = param.shape().num_elements();
        self.total += n;
        if param.is_require_grad() {
            self.trainable += n;
        }
    }
}

/// `(all parameters, trainable parameters)` of `module`.
pub fn count<B: Backend, M: Module<B>>(module: &M) -> (usize, usize) {
    let mut c = Count {
        total: 0,
        trainable: 0,
    };
    module.visit(&mut c);
    (c.total, c.trainable)
}
