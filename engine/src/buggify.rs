//! BUGGIFY (after FoundationDB): simulation-only hooks that make the engine
//! take its rare paths on purpose: input parsed a few bytes at a time,
//! replies sent in pieces, spurious early wake-ups, background work
//! (snapshots, AOF rewrites, active expiry, rehashing) in tiny steps, file
//! writes in small chunks. Each is legal behaviour the real world produces
//! rarely; making it common lets the simulator's checkers see whether the
//! engine depends on the common case.
//!
//! With feature `buggify` (enabled by `cinnabar-sim` only) the hooks read a
//! per-thread seeded RNG that [`set`] installs for a run, so simulations on
//! parallel test threads neither share nor race on it, and a run stays a
//! function of its seed. Without [`set`] (or with `None`) every hook is
//! off. Without the feature this module is empty functions returning
//! "off", which the compiler removes: the real server has no hook.
//!
//! Hooks at call sites stay one line: `if buggify::chance(0.05) { .. }`,
//! `let n = buggify::shrink(N, 3);`.

#[cfg(feature = "buggify")]
mod imp {
    use rand_chacha::ChaCha8Rng;
    use rand_core::{RngCore, SeedableRng};
    use std::cell::RefCell;

    thread_local! {
        static RNG: RefCell<Option<ChaCha8Rng>> = const { RefCell::new(None) };
    }

    pub fn set(seed: Option<u64>) {
        RNG.with(|r| *r.borrow_mut() = seed.map(ChaCha8Rng::seed_from_u64));
    }

    pub fn enabled() -> bool {
        RNG.with(|r| r.borrow().is_some())
    }

    /// A draw below `n` (> 0), or `None` when off.
    pub fn below(n: u64) -> Option<u64> {
        RNG.with(|r| r.borrow_mut().as_mut().map(|g| g.next_u64() % n.max(1)))
    }
}

#[cfg(not(feature = "buggify"))]
mod imp {
    #[inline(always)]
    pub fn set(_seed: Option<u64>) {}

    #[inline(always)]
    pub fn enabled() -> bool {
        false
    }

    #[inline(always)]
    pub fn below(_n: u64) -> Option<u64> {
        None
    }
}

/// Switches the hooks on for this thread with an RNG seeded by `seed`, or
/// off (`None`).
pub fn set(seed: Option<u64>) {
    imp::set(seed)
}

/// True if the hooks are on for this thread.
#[inline]
pub fn enabled() -> bool {
    imp::enabled()
}

/// True with probability `p` when on; always false when off.
#[inline]
pub fn chance(p: f64) -> bool {
    const SCALE: u64 = 1 << 20;
    match imp::below(SCALE) {
        Some(x) => (x as f64) < p * SCALE as f64,
        None => false,
    }
}

/// `normal` when off; when on, half the time a small value in `1..=small`
/// instead (a batch size, a step count, a chunk length).
#[inline]
pub fn shrink(normal: usize, small: usize) -> usize {
    if !imp::enabled() {
        return normal;
    }
    match imp::below(2 * small.max(1) as u64) {
        Some(x) if (x as usize) < small.max(1) => (x as usize + 1).min(normal.max(1)),
        _ => normal,
    }
}

/// Where to cut `len` bytes into two pieces (`1..len`), when on and the
/// dice say so; `None` otherwise (send or parse it whole).
#[inline]
pub fn split_at(len: usize, p: f64) -> Option<usize> {
    if len < 2 || !chance(p) {
        return None;
    }
    imp::below(len as u64 - 1).map(|x| x as usize + 1)
}

#[cfg(all(test, feature = "buggify"))]
mod tests {
    use super::*;

    #[test]
    fn off_unless_set_and_seeded() {
        set(None);
        assert!(!chance(1.0));
        assert_eq!(shrink(100, 3), 100);
        set(Some(7));
        let a: Vec<usize> = (0..50).map(|_| shrink(100, 3)).collect();
        set(Some(7));
        let b: Vec<usize> = (0..50).map(|_| shrink(100, 3)).collect();
        assert_eq!(a, b);
        assert!(a.iter().any(|&x| x <= 3) && a.contains(&100));
        assert!(chance(1.0));
        set(None);
    }
}
