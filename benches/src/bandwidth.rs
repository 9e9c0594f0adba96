//! The machine's read-bandwidth ceiling, measured on the spot: `threads`
//! workers each sum their share of a buffer far larger than the caches, the
//! best of several passes wins. Decode on a CPU reads every weight once per
//! token, so weight bytes per second over this figure is how close decode
//! comes to what the memory allows.

use std::time::Instant;

/// Bytes read per pass: well past any last-level cache.
const BUFFER_BYTES: usize = 512 << 20;
/// Passes measured (after one that warms the pages).
const PASSES: usize = 5;

/// Read bandwidth in bytes/s with `threads` workers (at least 1).
pub fn read_ceiling(threads: usize) -> f64 {
    read_bandwidth(threads, BUFFER_BYTES, PASSES)
}

/// The best of `passes` timed reads of a `bytes`-long buffer.
fn read_bandwidth(threads: usize, bytes: usize, passes: usize) -> f64 {
    let threads = threads.max(1);
    let words = vec![1u64; bytes / 8];
    let chunk = words.len().div_ceil(threads);
    let mut best = 0.0f64;
    for pass in 0..=passes {
        let start = Instant::now();
        let total: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = words
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || {
                        // Four independent sums so the loop is bound by loads, not additions.
                        let mut acc = [0u64; 4];
                        for quad in part.chunks_exact(4) {
                            for (a, w) in acc.iter_mut().zip(quad) {
                                *a = a.wrapping_add(*w);
                            }
                        }
                        acc.iter().fold(0u64, |s, a| s.wrapping_add(*a))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(0))
                .fold(0u64, u64::wrapping_add)
        });
        let seconds = start.elapsed().as_secs_f64();
        // The sum is used, so the reads cannot be optimized away.
        std::hint::black_box(total);
        if pass > 0 && seconds > 0.0 {
            best = best.max(bytes as f64 / seconds);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_ceiling_is_a_plausible_memory_speed() {
        let b = super::read_bandwidth(2, 16 << 20, 2);
        // Between 100 MB/s and 10 TB/s: a real measurement, not a constant.
        assert!(b > 1e8 && b < 1e13, "{b}");
    }
}
