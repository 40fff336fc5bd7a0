//! The knobs every seeded fuzz test of this crate reads from the environment.

/// `DURE_FUZZ_SEED` and `DURE_FUZZ_CASES`, or the test's defaults.
pub fn seed_and_cases(default_seed: u64, default_cases: usize) -> (u64, usize) {
    let seed = std::env::var("DURE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_seed);
    let cases = std::env::var("DURE_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_cases);
    (seed, cases)
}
