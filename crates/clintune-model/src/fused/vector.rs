//! Vectorised slice primitives for the kernels: max, dot products, `exp`
//! with its sum, and SwiGLU's gate.
//!
//! The kernels spend their element-wise time in `exp`, and libm's `expf` is
//! a scalar call per element. Here `exp` is a range reduction and a
//! polynomial (within a few ulp of libm's on the range softmax uses), and
//! every loop keeps 16 independent lanes so the compiler vectorises it
//! (a single running sum or max would be a serial chain). Each entry point
//! is compiled for AVX-512 and for AVX2 as well as for the baseline, and the
//! widest the CPU has is picked at run time.

/// Lanes the loop is written over (one AVX-512 register of f32).
const LANES: usize = 16;

/// `e^x` for `x` in f32's range; below about −87 it flushes towards 0.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so that `k · LN2_HI` is exact.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5 · 2²³ rounds to the nearest integer `k` and leaves it in
    // the low bits of the sum: no `round` (not an SSE2 instruction) and no
    // float-to-int conversion (which Rust saturates, element by element).
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * LOG2E + ROUND;
    let k = shifted - ROUND;
    let r = x - k * LN2_HI - k * LN2_LO;
    // e^r on |r| ≤ ln2 / 2: Taylor to degree 6, error under 2⁻²³.
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // 2^k: the biased exponent `k + 127` in the exponent field.
    let biased = shifted
        .to_bits()
        .wrapping_sub(ROUND.to_bits())
        .wrapping_add(127);
    p * f32::from_bits(biased << 23)
}

#[inline(always)]
fn max_body(xs: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (x, m) in chunk.iter().zip(&mut lanes) {
            *m = m.max(*x);
        }
    }
    let rest = chunks
        .remainder()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    lanes.iter().copied().fold(rest, f32::max)
}

#[inline(always)]
fn exp_sum_body(xs: &[f32], shift: f32) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (x, sum) in chunk.iter().zip(&mut lanes) {
            *sum += exp(*x - shift);
        }
    }
    let rest: f32 = chunks.remainder().iter().map(|x| exp(x - shift)).sum();
    rest + lanes.iter().sum::<f32>()
}

#[inline(always)]
fn exp_shifted_body(xs: &mut [f32], shift: f32) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let mut chunks = xs.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        for (x, sum) in chunk.iter_mut().zip(&mut lanes) {
            *x = exp(*x - shift);
            *sum += *x;
        }
    }
    let mut rest = 0.0;
    for x in chunks.into_remainder() {
        *x = exp(*x - shift);
        rest += *x;
    }
    rest + lanes.iter().sum::<f32>()
}

#[inline(always)]
fn dot_body(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let (mut ca, mut cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    for (x, y) in (&mut ca).zip(&mut cb) {
        for ((x, y), sum) in x.iter().zip(y).zip(&mut lanes) {
            *sum += x * y;
        }
    }
    let rest: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    rest + lanes.iter().sum::<f32>()
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

#[inline(always)]
fn swiglu_body(gate: &[f32], up: &[f32], out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = g * sigmoid(g) * u;
    }
}

#[inline(always)]
fn swiglu_grads_body(grad: &[f32], gate: &[f32], up: &[f32], dgate: &mut [f32], dup: &mut [f32]) {
    let outs = dgate.iter_mut().zip(dup.iter_mut());
    for (((dg, du), &d), (&g, &u)) in outs.zip(grad).zip(gate.iter().zip(up)) {
        let s = sigmoid(g);
        *du = d * g * s;
        *dg = d * u * s * (1.0 + g * (1.0 - s));
    }
}

/// A public entry point running `$body` compiled for the widest vector
/// instructions the CPU has.
macro_rules! widest {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? = $body:ident) => {
        $(#[$doc])*
        pub(crate) fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has the feature `avx512` is compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: as above, for `avx2`.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}

pub(crate) use widest;

widest! {
    /// The largest element (−∞ for none).
    fn max(xs: &[f32]) -> f32 = max_body
}

widest! {
    /// `Σ e^(x − shift)`.
    fn exp_sum(xs: &[f32], shift: f32) -> f32 = exp_sum_body
}

widest! {
    /// Replaces each `x` by `e^(x − shift)` and returns their sum.
    fn exp_shifted(xs: &mut [f32], shift: f32) -> f32 = exp_shifted_body
}

widest! {
    /// `Σ a·b`.
    fn dot(a: &[f32], b: &[f32]) -> f32 = dot_body
}

widest! {
    /// `out = silu(gate) · up`, SwiGLU's gate (`silu(g) = g · σ(g)`).
    fn swiglu(gate: &[f32], up: &[f32], out: &mut [f32]) = swiglu_body
}

widest! {
    /// The gradients of [`swiglu`]'s inputs given its output's, `grad`.
    fn swiglu_grads(
        grad: &[f32],
        gate: &[f32],
        up: &[f32],
        dgate: &mut [f32],
        dup: &mut [f32]
    ) = swiglu_grads_body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want_inputs() -> Vec<f32> {
        (0..4001).map(|i| -60.0 + i as f32 * 0.0173).collect()
    }

    #[test]
    fn the_maximum_is_found_in_any_lane_or_the_remainder() {
        let mut xs = vec![-3.0f32; 37];
        assert_eq!(max(&xs), -3.0);
        for at in [0, 5, 16, 31, 32, 36] {
            xs[at] = 7.5;
            assert_eq!(max(&xs), 7.5, "{at}");
            xs[at] = -3.0;
        }
        assert_eq!(max(&[]), f32::NEG_INFINITY);
    }

    #[test]
    fn agrees_with_libm_to_a_few_ulps_and_sums_what_it_wrote() {
        let mut xs = want_inputs();
        let want: Vec<f32> = xs.iter().map(|x| (x - 1.5f32).exp()).collect();
        let sum = exp_shifted(&mut xs, 1.5);
        for (got, want) in xs.iter().zip(&want) {
            assert!(
                (got - want).abs() <= 4.0 * f32::EPSILON * want,
                "{got} vs {want}"
            );
        }
        let total: f64 = xs.iter().map(|&x| x as f64).sum();
        assert!(
            (sum as f64 - total).abs() <= 1e-5 * total,
            "{sum} vs {total}"
        );
        let mut tiny = [-200.0f32, 0.0];
        exp_shifted(&mut tiny, 0.0);
        assert!(tiny[0] < 1e-37 && tiny[1] == 1.0, "{tiny:?}");
    }
}
