//! `exp` over a slice, vectorised.
//!
//! The attention kernels spend their element-wise time in `exp`, and libm's
//! `expf` is a scalar call per element. Here `exp` is a range reduction and
//! a polynomial (about 1 ulp from libm's on the range softmax uses), written
//! so the compiler vectorises it; the loop is compiled for AVX-512 and for
//! AVX2 as well as for the baseline, and the widest the CPU has is picked
//! at run time.

/// Lanes the loop is written over (one AVX-512 register of f32).
const LANES: usize = 16;

/// `e^x` for `x` in f32's range; below about −87 it flushes towards 0.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so that `k · LN2_HI` is exact.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding then subtracting 1.5 · 2²³ rounds to the nearest integer
    // without a call (`round` is not an SSE2 instruction).
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let k = (x * LOG2E + ROUND) - ROUND;
    let r = x - k * LN2_HI - k * LN2_LO;
    // e^r on |r| ≤ ln2 / 2: Taylor to degree 6, error under 2⁻²³.
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    p * f32::from_bits(((k as i32 + 127) as u32) << 23)
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
    let mut sum = 0.0;
    for x in chunks.into_remainder() {
        *x = exp(*x - shift);
        sum += *x;
    }
    sum + lanes.iter().sum::<f32>()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn exp_shifted_avx512(xs: &mut [f32], shift: f32) -> f32 {
    exp_shifted_body(xs, shift)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn exp_shifted_avx2(xs: &mut [f32], shift: f32) -> f32 {
    exp_shifted_body(xs, shift)
}

/// Replaces each `x` by `e^(x − shift)` and returns their sum.
pub(crate) fn exp_shifted(xs: &mut [f32], shift: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the feature the function is compiled for.
            return unsafe { exp_shifted_avx512(xs, shift) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: as above.
            return unsafe { exp_shifted_avx2(xs, shift) };
        }
    }
    exp_shifted_body(xs, shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_libm_to_a_few_ulps_and_sums_what_it_wrote() {
        let mut xs: Vec<f32> = (0..4001).map(|i| -60.0 + i as f32 * 0.0173).collect();
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
