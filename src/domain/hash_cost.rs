//! What verifying a legacy password hash costs, and the configured limits on it.
//!
//! The reference costs are the yardstick both of the inline hook's charge for a kind of hash it
//! has not measured yet (`inline::password`) and of the check, at config load, that a hash at
//! the configured limits can still be answered within `inline.deadline_ms`. This file imports
//! nothing from the adapter, so config can run that check without importing `inline`.

use std::time::Duration;

/// Parse-time sanity bounds, far above any usable hash; the configurable [`HashLimits`] are
/// what keeps the hook within its deadline.
pub const MAX_BCRYPT_COST: u32 = 16;
pub const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;
pub const MAX_ARGON2_MEMORY_KIB: u32 = 1 << 20;
pub const MAX_ARGON2_TIME: u32 = 64;

/// Reference costs of one verification on one core, measured in release builds on the 2-core
/// benchmark machine (docs/inline-hooks.md: bcrypt cost 10 = 49.6 ms, PBKDF2-SHA256 600,000 =
/// 51.5 ms; argon2id m=65536,t=3 = 225 ms) and rounded up.
pub const BCRYPT_ROUND: Duration = Duration::from_micros(50);
pub const PBKDF2_SHA256_ITERATION: Duration = Duration::from_nanos(90);
pub const PBKDF2_SHA512_ITERATION: Duration = Duration::from_nanos(160);
/// Per KiB of memory per pass; lanes run one after another (no `parallel` feature).
pub const ARGON2_KIB_PASS: Duration = Duration::from_nanos(1300);
pub const SALTED_SHA: Duration = Duration::from_micros(10);

/// The most expensive hashes the adapter accepts (`inline.password_import.max_bcrypt_cost`,
/// `max_pbkdf2_iterations`, `max_argon2_kib_passes`). The defaults cost at most ~350 ms on the
/// reference machine, a quarter of the 1,500 ms deadline, so a hash at the limit still fits
/// behind one already running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashLimits {
    pub max_bcrypt_cost: u32,
    pub max_pbkdf2_iterations: u32,
    /// argon2 memory (KiB) × passes (t): its running time is proportional to the product.
    pub max_argon2_kib_passes: u64,
}

impl HashLimits {
    /// Configuration problems: limits beyond the parser's bounds, or a hash at a limit that
    /// could not finish within `deadline` even on an idle pool.
    pub fn problems(&self, deadline: Duration) -> Vec<String> {
        let mut problems = Vec::new();
        let key = "inline.password_import";
        if !(4..=MAX_BCRYPT_COST).contains(&self.max_bcrypt_cost) {
            problems.push(format!(
                "{key}.max_bcrypt_cost: must be 4..={MAX_BCRYPT_COST}"
            ));
        }
        if !(1..=MAX_PBKDF2_ITERATIONS).contains(&self.max_pbkdf2_iterations) {
            problems.push(format!(
                "{key}.max_pbkdf2_iterations: must be 1..={MAX_PBKDF2_ITERATIONS}"
            ));
        }
        let argon2_max = u64::from(MAX_ARGON2_MEMORY_KIB) * u64::from(MAX_ARGON2_TIME);
        if !(8..=argon2_max).contains(&self.max_argon2_kib_passes) {
            problems.push(format!(
                "{key}.max_argon2_kib_passes: must be 8..={argon2_max}"
            ));
        }
        if !problems.is_empty() {
            return problems;
        }
        let at_limit = [
            (
                "max_bcrypt_cost",
                BCRYPT_ROUND * (1u32 << self.max_bcrypt_cost),
            ),
            (
                "max_pbkdf2_iterations",
                PBKDF2_SHA512_ITERATION * self.max_pbkdf2_iterations,
            ),
            (
                "max_argon2_kib_passes",
                ARGON2_KIB_PASS
                    .saturating_mul(self.max_argon2_kib_passes.min(u32::MAX.into()) as u32),
            ),
        ];
        for (name, cost) in at_limit {
            if cost >= deadline {
                problems.push(format!(
                    "{key}.{name}: a hash at this limit takes about {} ms, not less than \
                     inline.deadline_ms ({} ms); no sign-in with it could ever be answered in time",
                    cost.as_millis(),
                    deadline.as_millis()
                ));
            }
        }
        problems
    }
}
