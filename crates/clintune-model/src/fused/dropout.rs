//! Dropout's mask, drawn in parallel from a counter-based generator.
//!
//! burn's dropout draws a Bernoulli value per element from one ChaCha
//! generator on one thread (15% of a LoRA step at the quickstart's shape).
//! Here element `i`'s draw is a hash of `(seed, i)` (SplitMix64's mixer), so
//! the mask is the same however the work is split.
//!
//! Each mask's `seed` is the next of the calling thread's stream of seeds,
//! which the trainer restarts ([`reseed`]) before each micro-batch from
//! `(run seed, step, micro-batch)`. A run seeded the same draws the same
//! masks, which bit-exact resume relies on; and micro-batch `j` draws the
//! same masks whichever worker thread runs it. burn's generator, which an
//! earlier version drew the seeds from, is one per process: two workers
//! reseeding and drawing at once took each other's draws.

use std::cell::Cell;

use clintune_core::rng::mix64;
use rayon::prelude::*;

thread_local! {
    /// This thread's stream: its seed, and how many masks it has drawn.
    static STREAM: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// Restarts the calling thread's stream of dropout seeds at `seed`.
pub fn reseed(seed: u64) {
    STREAM.with(|s| s.set((seed, 0)));
}

/// The next seed of the calling thread's stream.
pub(crate) fn next_seed() -> u64 {
    STREAM.with(|s| {
        let (seed, drawn) = s.get();
        s.set((seed, drawn + 1));
        mix64(seed ^ mix64(drawn))
    })
}

/// Elements per rayon task.
const CHUNK: usize = 1 << 14;

/// `n` multipliers: `1 / keep` with probability `keep`, else 0.
pub(crate) fn keep_mask(seed: u64, n: usize, keep: f64) -> Vec<f32> {
    draw(seed, n, keep, (1.0 / keep) as f32, 0.0)
}

/// The draws of [`keep_mask`] as flags: whether each element is kept.
pub(crate) fn keep_flags(seed: u64, n: usize, keep: f64) -> Vec<bool> {
    draw(seed, n, keep, true, false)
}

/// `n` values: `kept` with probability `keep`, else `dropped`.
fn draw<T: Copy + Send + Sync>(seed: u64, n: usize, keep: f64, kept: T, dropped: T) -> Vec<T> {
    // Compare the top 24 bits of each hash with `keep` scaled to 2²⁴.
    let threshold = (keep * f64::from(1u32 << 24)).round() as u64;
    let mut out = vec![dropped; n];
    out.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, chunk)| {
            let base = (c * CHUNK) as u64;
            for (i, v) in chunk.iter_mut().enumerate() {
                let draw = mix64(seed ^ mix64(base + i as u64)) >> 40;
                if draw < threshold {
                    *v = kept;
                }
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_about_the_asked_share_scaled_and_repeats_for_a_seed() {
        let mask = keep_mask(7, 100_000, 0.95);
        let kept = mask.iter().filter(|&&m| m > 0.0).count() as f64 / 1e5;
        assert!((kept - 0.95).abs() < 0.005, "{kept}");
        assert!(
            mask.iter()
                .all(|&m| m == 0.0 || (m - 1.0 / 0.95).abs() < 1e-6)
        );
        assert_eq!(mask, keep_mask(7, 100_000, 0.95));
        assert_ne!(mask, keep_mask(8, 100_000, 0.95));
        let flags = keep_flags(7, 100_000, 0.95);
        assert!(flags.iter().zip(&mask).all(|(&f, &m)| f == (m > 0.0)));
    }

    #[test]
    fn each_thread_draws_its_own_stream_of_seeds() {
        let draws = |seed| {
            reseed(seed);
            [next_seed(), next_seed()]
        };
        let here = draws(3);
        assert_ne!(here[0], here[1], "each draw is a new seed");
        assert_eq!(draws(3), here, "reseeding restarts the stream");
        assert_ne!(draws(4), here);
        // Another thread drawing meanwhile does not move this one's stream.
        reseed(3);
        let first = next_seed();
        std::thread::spawn(move || draws(3)).join().unwrap();
        assert_eq!(next_seed(), here[1]);
        assert_eq!(first, here[0]);
    }
}
