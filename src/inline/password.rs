//! Password import hook (`com.okta.user.credential.password.import`): users migrated into Okta
//! keep their legacy password. Spec: HOOKS-SPEC §3.6.1,
//! <https://developer.okta.com/docs/reference/password-hook/>.
//!
//! Okta sends the username and the plaintext password at the user's first sign-in; the adapter
//! checks it against the legacy hash loaded by `okta-adapter credentials import` and answers
//! `VERIFIED` (Okta then stores the password itself and never asks again) or `UNVERIFIED`.
//!
//! **Legacy hash formats** ([`LegacyHash::parse`]), one string per login:
//!
//! | Scheme | Format |
//! |---|---|
//! | bcrypt | `$2a$`/`$2b$`/`$2y$` modular crypt, e.g. `$2b$10$<22 salt chars><31 hash chars>` |
//! | PBKDF2-HMAC-SHA256/512 | PHC: `$pbkdf2-sha256$i=600000,l=32$<salt>$<hash>` (`pbkdf2-sha512`; `l` optional), B64 = standard base64 without padding |
//! | argon2id (and argon2i/d) | PHC: `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>` |
//! | salted SHA-256/512 | ours: `$sha256-salted$<salt hex>$<hex of SHA-256(salt bytes ‖ password)>` (`sha512-salted`) |
//!
//! **Budget.** Hashing is deliberately slow (bcrypt cost 10 ≈ 50 ms, PBKDF2 600,000 ≈ 50 ms of
//! one core), so it runs on `spawn_blocking` — never on the async workers that answer every other
//! hook — behind a semaphore with one permit per core but one ([`HashPool`]). A verification
//! cannot be interrupted once started, so the pool decides *before* it starts:
//!
//! - every hash has a cost: the measured time of its kind ([`LegacyHash::cost_key`]) or, until
//!   one was measured, the conservative [`LegacyHash::reference_cost`] — no hash is admitted for
//!   free;
//! - a hash over the [`HashLimits`] (`inline.password_import.max_*`) is refused at import with its
//!   line number, and answered `UNVERIFIED` without hashing if found in Redis anyway (stored by an
//!   older version), so no single hash can hold a permit past the deadline;
//! - when the work already admitted plus this hash would pass the deadline, the request is
//!   **shed**: answered `UNVERIFIED` at once instead of queueing toward Okta's 3 s; a request that
//!   gets its permit too late to finish gives it back without starting.
//!
//! Every comparison is constant-time.
//!
//! **Throttle.** Each verification first reserves one attempt in the login's failure counter
//! with one Lua script (check and `INCR` in one step), so concurrent wrong passwords can never
//! record more than `max_failures`; a match clears the counter, an attempt that was not judged
//! (shed, error, abandoned) is given back.
//!
//! **Secrecy.** The password is a `SecretString` from parsing until the hash thread drops it; it
//! is never formatted, logged, counted, recorded or put in an error.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use crate::store::RedisConn;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use redis::Script;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use super::{Answer, Decision, InlineFailure};
use crate::config::PasswordImportSettings;
pub use crate::domain::hash_cost::HashLimits;
use crate::domain::hash_cost::{
    ARGON2_KIB_PASS, BCRYPT_ROUND, MAX_ARGON2_MEMORY_KIB, MAX_ARGON2_TIME, MAX_BCRYPT_COST,
    MAX_PBKDF2_ITERATIONS, PBKDF2_SHA256_ITERATION, PBKDF2_SHA512_ITERATION, SALTED_SHA,
};
use crate::okta::inline_hook::{Command, ImportedCredential, InlineResponse};
use crate::store::Keys;

/// PHC "B64": standard alphabet, padding tolerated either way.
const PHC_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sha {
    Sha256,
    Sha512,
}

/// A parsed legacy hash. `Debug` is safe to print (salts and hashes are not the password), but
/// the adapter still never logs them: they are what an attacker would crack.
#[derive(Clone, PartialEq, Eq)]
pub enum LegacyHash {
    Bcrypt {
        encoded: String,
        cost: u32,
    },
    Pbkdf2 {
        sha: Sha,
        iterations: u32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    Argon2 {
        algorithm: argon2::Algorithm,
        version: argon2::Version,
        m: u32,
        t: u32,
        p: u32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    SaltedSha {
        sha: Sha,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
}

impl std::fmt::Debug for LegacyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LegacyHash({})", self.cost_key())
    }
}

/// Why a stored string is not a usable hash (the message never contains the string).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HashFormatError(pub String);

fn bad(msg: impl Into<String>) -> HashFormatError {
    HashFormatError(msg.into())
}

impl LegacyHash {
    pub fn parse(s: &str) -> Result<Self, HashFormatError> {
        let s = s.trim();
        let parts: Vec<&str> = s.split('$').collect();
        if parts.len() < 3 || !parts[0].is_empty() {
            return Err(bad(
                "not a supported hash: expected a `$scheme$…` string (bcrypt, pbkdf2-sha256/512, argon2id, sha256/512-salted)",
            ));
        }
        match parts[1] {
            "2a" | "2b" | "2y" | "2x" => {
                let cost: u32 = parts[2]
                    .parse()
                    .map_err(|_| bad("bcrypt: the cost is not a number"))?;
                if !(4..=MAX_BCRYPT_COST).contains(&cost) {
                    return Err(bad(format!(
                        "bcrypt: cost {cost} outside 4..={MAX_BCRYPT_COST}"
                    )));
                }
                if parts.len() != 4 || parts[3].len() != 53 {
                    return Err(bad("bcrypt: expected 53 characters of salt and hash"));
                }
                Ok(Self::Bcrypt {
                    encoded: s.to_string(),
                    cost,
                })
            }
            "pbkdf2-sha256" | "pbkdf2-sha512" => {
                let sha = if parts[1].ends_with("256") {
                    Sha::Sha256
                } else {
                    Sha::Sha512
                };
                if parts.len() != 5 {
                    return Err(bad("pbkdf2: expected $pbkdf2-sha256$i=N[,l=L]$salt$hash"));
                }
                let params = phc_params(parts[2])?;
                let iterations = *params
                    .get("i")
                    .ok_or_else(|| bad("pbkdf2: missing i=<iterations>"))?;
                if iterations == 0 || iterations > MAX_PBKDF2_ITERATIONS {
                    return Err(bad(format!(
                        "pbkdf2: iterations must be 1..={MAX_PBKDF2_ITERATIONS}"
                    )));
                }
                let salt = b64(parts[3], "salt")?;
                let hash = b64(parts[4], "hash")?;
                if let Some(&l) = params.get("l") {
                    if l as usize != hash.len() {
                        return Err(bad("pbkdf2: l= does not match the hash length"));
                    }
                }
                if hash.len() < 16 {
                    return Err(bad("pbkdf2: the hash is shorter than 16 bytes"));
                }
                // Each further digest-sized block of derived key runs all iterations again, so
                // a longer hash would cost a multiple of what the iteration limit promises.
                let block = match sha {
                    Sha::Sha256 => 32,
                    Sha::Sha512 => 64,
                };
                if hash.len() > block {
                    return Err(bad(format!(
                        "pbkdf2: the hash is longer than one {} block ({block} bytes)",
                        match sha {
                            Sha::Sha256 => "SHA-256",
                            Sha::Sha512 => "SHA-512",
                        }
                    )));
                }
                Ok(Self::Pbkdf2 {
                    sha,
                    iterations,
                    salt,
                    hash,
                })
            }
            "argon2id" | "argon2i" | "argon2d" => {
                let algorithm = match parts[1] {
                    "argon2id" => argon2::Algorithm::Argon2id,
                    "argon2i" => argon2::Algorithm::Argon2i,
                    _ => argon2::Algorithm::Argon2d,
                };
                // `$argon2id$v=19$m=…,t=…,p=…$salt$hash`; very old hashes omit `v=` (0x10).
                let (version, rest) = match parts.get(2) {
                    Some(v) if v.starts_with("v=") => (
                        match &v[2..] {
                            "19" => argon2::Version::V0x13,
                            "16" => argon2::Version::V0x10,
                            _ => return Err(bad("argon2: unknown version")),
                        },
                        &parts[3..],
                    ),
                    _ => (argon2::Version::V0x10, &parts[2..]),
                };
                if rest.len() != 3 {
                    return Err(bad("argon2: expected $argon2id$v=19$m=M,t=T,p=P$salt$hash"));
                }
                let params = phc_params(rest[0])?;
                let get = |k: &str| {
                    params
                        .get(k)
                        .copied()
                        .ok_or_else(|| bad(format!("argon2: missing {k}=")))
                };
                let (m, t, p) = (get("m")?, get("t")?, get("p")?);
                if m > MAX_ARGON2_MEMORY_KIB || t > MAX_ARGON2_TIME || p == 0 || p > 16 {
                    return Err(bad("argon2: parameters beyond the adapter's limits"));
                }
                let salt = b64(rest[1], "salt")?;
                let hash = b64(rest[2], "hash")?;
                argon2::Params::new(m, t, p, Some(hash.len()))
                    .map_err(|e| bad(format!("argon2: {e}")))?;
                Ok(Self::Argon2 {
                    algorithm,
                    version,
                    m,
                    t,
                    p,
                    salt,
                    hash,
                })
            }
            "sha256-salted" | "sha512-salted" => {
                let (sha, len) = if parts[1].starts_with("sha256") {
                    (Sha::Sha256, 32)
                } else {
                    (Sha::Sha512, 64)
                };
                if parts.len() != 4 {
                    return Err(bad(
                        "salted sha: expected $sha256-salted$<salt hex>$<hash hex>",
                    ));
                }
                let salt = hex::decode(parts[2]).map_err(|_| bad("salted sha: salt is not hex"))?;
                let hash = hex::decode(parts[3]).map_err(|_| bad("salted sha: hash is not hex"))?;
                if hash.len() != len {
                    return Err(bad(format!("salted sha: the hash must be {len} bytes")));
                }
                Ok(Self::SaltedSha { sha, salt, hash })
            }
            other => Err(bad(format!("unsupported hash scheme `{other}`"))),
        }
    }

    /// Scheme name for metrics: `bcrypt`, `pbkdf2-sha256`, `argon2id`, `sha512-salted`, …
    pub fn scheme(&self) -> &'static str {
        match self {
            Self::Bcrypt { .. } => "bcrypt",
            Self::Pbkdf2 {
                sha: Sha::Sha256, ..
            } => "pbkdf2-sha256",
            Self::Pbkdf2 { .. } => "pbkdf2-sha512",
            Self::Argon2 {
                algorithm: argon2::Algorithm::Argon2id,
                ..
            } => "argon2id",
            Self::Argon2 {
                algorithm: argon2::Algorithm::Argon2i,
                ..
            } => "argon2i",
            Self::Argon2 { .. } => "argon2d",
            Self::SaltedSha {
                sha: Sha::Sha256, ..
            } => "sha256-salted",
            Self::SaltedSha { .. } => "sha512-salted",
        }
    }

    /// Scheme plus cost parameters: hashes with the same key take about the same time, which is
    /// what the pool's wait estimate is keyed by.
    pub fn cost_key(&self) -> String {
        match self {
            Self::Bcrypt { cost, .. } => format!("bcrypt-{cost}"),
            Self::Pbkdf2 { iterations, .. } => format!("{}-{iterations}", self.scheme()),
            Self::Argon2 { m, t, p, .. } => format!("{}-m{m}-t{t}-p{p}", self.scheme()),
            Self::SaltedSha { .. } => self.scheme().to_string(),
        }
    }

    /// True when `password` matches. CPU-heavy: call it off the async workers. Every comparison
    /// of derived bytes is constant-time (bcrypt's own `verify` uses `subtle` too).
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            Self::Bcrypt { encoded, .. } => bcrypt::verify(password, encoded).unwrap_or(false),
            Self::Pbkdf2 {
                sha,
                iterations,
                salt,
                hash,
            } => {
                let mut out = vec![0u8; hash.len()];
                match sha {
                    Sha::Sha256 => {
                        pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, *iterations, &mut out)
                    }
                    Sha::Sha512 => {
                        pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, *iterations, &mut out)
                    }
                }
                out.ct_eq(hash).into()
            }
            Self::Argon2 {
                algorithm,
                version,
                m,
                t,
                p,
                salt,
                hash,
            } => {
                let Ok(params) = argon2::Params::new(*m, *t, *p, Some(hash.len())) else {
                    return false;
                };
                let mut out = vec![0u8; hash.len()];
                argon2::Argon2::new(*algorithm, *version, params)
                    .hash_password_into(password, salt, &mut out)
                    .is_ok()
                    && bool::from(out.ct_eq(hash))
            }
            Self::SaltedSha { sha, salt, hash } => {
                let digest = match sha {
                    Sha::Sha256 => Sha256::new()
                        .chain_update(salt)
                        .chain_update(password)
                        .finalize()
                        .to_vec(),
                    Sha::Sha512 => Sha512::new()
                        .chain_update(salt)
                        .chain_update(password)
                        .finalize()
                        .to_vec(),
                };
                digest.ct_eq(hash).into()
            }
        }
    }
}

impl LegacyHash {
    /// What one verification costs on the reference machine: the charge of a kind of hash the
    /// pool has not measured yet, and the yardstick of the [`HashLimits`].
    pub fn reference_cost(&self) -> Duration {
        match self {
            Self::Bcrypt { cost, .. } => BCRYPT_ROUND * (1u32 << (*cost).min(31)),
            Self::Pbkdf2 {
                sha, iterations, ..
            } => match sha {
                Sha::Sha256 => PBKDF2_SHA256_ITERATION * *iterations,
                Sha::Sha512 => PBKDF2_SHA512_ITERATION * *iterations,
            },
            Self::Argon2 { m, t, .. } => ARGON2_KIB_PASS * m.saturating_mul(*t),
            Self::SaltedSha { .. } => SALTED_SHA,
        }
    }
}

/// Building and applying the limits; the type and its config check live in `domain::hash_cost`.
impl HashLimits {
    pub fn from_settings(s: &PasswordImportSettings) -> Self {
        Self {
            max_bcrypt_cost: s.max_bcrypt_cost,
            max_pbkdf2_iterations: s.max_pbkdf2_iterations,
            max_argon2_kib_passes: s.max_argon2_kib_passes,
        }
    }

    /// Whether `hash` is within the limits; the error names the limit and the estimated time
    /// (never the hash).
    pub fn check(&self, hash: &LegacyHash) -> Result<(), HashFormatError> {
        let over = |what: String, key: &str, limit: String| {
            Err(bad(format!(
                "{what} exceeds the limit {limit} (inline.password_import.{key}): one \
                 verification takes about {} ms, too slow for the inline hook's deadline; \
                 re-hash at a lower cost or raise the limit",
                hash.reference_cost().as_millis()
            )))
        };
        match hash {
            LegacyHash::Bcrypt { cost, .. } if *cost > self.max_bcrypt_cost => over(
                format!("bcrypt cost {cost}"),
                "max_bcrypt_cost",
                self.max_bcrypt_cost.to_string(),
            ),
            LegacyHash::Pbkdf2 { iterations, .. } if *iterations > self.max_pbkdf2_iterations => {
                over(
                    format!("pbkdf2 i={iterations}"),
                    "max_pbkdf2_iterations",
                    self.max_pbkdf2_iterations.to_string(),
                )
            }
            LegacyHash::Argon2 { m, t, .. }
                if u64::from(*m) * u64::from(*t) > self.max_argon2_kib_passes =>
            {
                over(
                    format!("argon2 m×t = {m}×{t} KiB·passes"),
                    "max_argon2_kib_passes",
                    self.max_argon2_kib_passes.to_string(),
                )
            }
            _ => Ok(()),
        }
    }
}

fn phc_params(s: &str) -> Result<HashMap<&str, u32>, HashFormatError> {
    s.split(',')
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| bad(format!("parameter `{kv}` is not key=value")))?;
            let v: u32 = v
                .parse()
                .map_err(|_| bad(format!("parameter `{k}` is not a number")))?;
            Ok((k, v))
        })
        .collect()
}

fn b64(s: &str, what: &str) -> Result<Vec<u8>, HashFormatError> {
    PHC_B64
        .decode(s)
        .map_err(|_| bad(format!("the {what} is not base64")))
}

/// Formats a salted SHA hash in the adapter's format (for tools and tests).
pub fn salted_sha_string(sha: Sha, salt: &[u8], password: &[u8]) -> String {
    let (name, digest) = match sha {
        Sha::Sha256 => (
            "sha256-salted",
            Sha256::new()
                .chain_update(salt)
                .chain_update(password)
                .finalize()
                .to_vec(),
        ),
        Sha::Sha512 => (
            "sha512-salted",
            Sha512::new()
                .chain_update(salt)
                .chain_update(password)
                .finalize()
                .to_vec(),
        ),
    };
    format!("${name}${}${}", hex::encode(salt), hex::encode(digest))
}

/// Formats a PBKDF2 PHC string (for tools, tests and the benchmark).
pub fn pbkdf2_string(sha: Sha, iterations: u32, salt: &[u8], password: &[u8]) -> String {
    let mut out = [0u8; 32];
    let name = match sha {
        Sha::Sha256 => {
            pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
            "pbkdf2-sha256"
        }
        Sha::Sha512 => {
            pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
            "pbkdf2-sha512"
        }
    };
    format!(
        "${name}$i={iterations},l=32${}${}",
        PHC_B64.encode(salt),
        PHC_B64.encode(out)
    )
}

/// Formats an argon2id PHC string (for tools and tests).
pub fn argon2id_string(m: u32, t: u32, p: u32, salt: &[u8], password: &[u8]) -> String {
    let params = argon2::Params::new(m, t, p, Some(32)).expect("valid argon2 params");
    let mut out = [0u8; 32];
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(password, salt, &mut out)
        .expect("argon2 hashes");
    format!(
        "$argon2id$v=19$m={m},t={t},p={p}${}${}",
        PHC_B64.encode(salt),
        PHC_B64.encode(out)
    )
}

/// The hook's answer: `com.okta.action.update` with `VERIFIED` or `UNVERIFIED`, as documented.
pub fn answer(verified: bool) -> Answer {
    Answer::Body(InlineResponse {
        commands: vec![Command::new(
            "com.okta.action.update",
            json!({"credential": if verified { "VERIFIED" } else { "UNVERIFIED" }}),
        )],
        ..Default::default()
    })
}

/// What the pool did with a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolVerdict {
    Matched(bool),
    /// Not attempted: it could not have finished before the deadline.
    Shed,
}

/// Hash verification off the async workers, at most one per permit, admitted only when it can
/// finish before its deadline.
pub struct HashPool {
    permits: Arc<Semaphore>,
    size: usize,
    /// Verifications waiting for or holding a permit.
    in_system: Arc<AtomicUsize>,
    /// Their charged cost in nanoseconds: the work ahead of a newcomer.
    work_nanos: Arc<AtomicU64>,
    /// Smoothed duration of one verification per [`LegacyHash::cost_key`].
    estimates: Mutex<HashMap<String, Duration>>,
}

/// One admitted verification, counted (with its charge) until dropped — also when the request
/// is abandoned, since its hash may still be running.
struct Admitted {
    count: Arc<AtomicUsize>,
    work: Arc<AtomicU64>,
    nanos: u64,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::SeqCst);
        self.work.fetch_sub(self.nanos, Ordering::SeqCst);
    }
}

/// Whether a verification costing `cost` would miss `remaining`: `ahead` verifications with a
/// total charge of `work_ahead` are already waiting for or holding one of `permits`.
pub fn would_miss_deadline(
    ahead: usize,
    permits: usize,
    work_ahead: Duration,
    cost: Duration,
    remaining: Duration,
) -> bool {
    let permits = permits.max(1);
    // A free permit means no wait; otherwise the work ahead drains over all permits.
    let wait = if ahead < permits {
        Duration::ZERO
    } else {
        work_ahead / permits as u32
    };
    wait + cost > remaining
}

impl HashPool {
    pub fn new(permits: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(permits.max(1))),
            size: permits.max(1),
            in_system: Arc::new(AtomicUsize::new(0)),
            work_nanos: Arc::new(AtomicU64::new(0)),
            estimates: Mutex::new(HashMap::new()),
        }
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// The measured time of one verification of this kind, once one ran.
    pub fn measured(&self, key: &str) -> Option<Duration> {
        self.estimates
            .lock()
            .expect("estimates lock")
            .get(key)
            .copied()
    }

    /// What admitting `hash` costs: its measured time, or the reference cost until measured
    /// (never zero: an unmeasured kind is not admitted for free).
    pub fn charge(&self, hash: &LegacyHash) -> Duration {
        self.measured(&hash.cost_key())
            .unwrap_or_else(|| hash.reference_cost())
    }

    fn observe(&self, key: String, took: Duration) {
        let mut map = self.estimates.lock().expect("estimates lock");
        let e = map.entry(key).or_insert(took);
        // Exponential moving average: follows a change of load within a few requests.
        *e = e.mul_f64(0.8) + took.mul_f64(0.2);
    }

    /// Verifies `password` against `hash` unless it cannot finish before `deadline`.
    pub async fn verify(
        &self,
        hash: LegacyHash,
        password: SecretString,
        deadline: Instant,
    ) -> Result<PoolVerdict, InlineFailure> {
        let key = hash.cost_key();
        let cost = self.charge(&hash);
        let nanos = u64::try_from(cost.as_nanos()).unwrap_or(u64::MAX / 4);
        let ahead = self.in_system.fetch_add(1, Ordering::SeqCst);
        let work_ahead = Duration::from_nanos(self.work_nanos.fetch_add(nanos, Ordering::SeqCst));
        let admitted = Admitted {
            count: self.in_system.clone(),
            work: self.work_nanos.clone(),
            nanos,
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        if would_miss_deadline(ahead, self.size, work_ahead, cost, remaining) {
            return Ok(PoolVerdict::Shed);
        }
        // The latest moment the hash can start and still finish in time.
        let start_by = deadline.checked_sub(cost).unwrap_or(deadline);
        let permit = match tokio::time::timeout_at(
            tokio::time::Instant::from_std(start_by),
            self.permits.clone().acquire_owned(),
        )
        .await
        {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => return Err(InlineFailure::Internal("hash pool closed".into())),
            Err(_) => return Ok(PoolVerdict::Shed),
        };
        // The permit and the admission travel with the work: if the request is abandoned at its
        // deadline, the core stays accounted for until the hash really ends.
        let job = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let _admitted = admitted;
            // A blocking thread may pick this up late: never start work that can no longer
            // finish in time (it would hold the permit for nobody).
            if Instant::now() + cost > deadline {
                return None;
            }
            let started = Instant::now();
            let matched = hash.verify(password.expose_secret().as_bytes());
            drop(password);
            Some((matched, started.elapsed()))
        });
        let outcome = job
            .await
            .map_err(|_| InlineFailure::Internal("hash verification panicked".into()))?;
        let Some((matched, took)) = outcome else {
            return Ok(PoolVerdict::Shed);
        };
        self.observe(key, took);
        Ok(PoolVerdict::Matched(matched))
    }
}

/// Reserves one attempt at a login's password: the attempt counts as a failure until the
/// verification proves otherwise. Check and increment are one step, so concurrent attempts can
/// never pass `max_failures`. Returns the attempt number, or 0 when the login is throttled.
const RESERVE_ATTEMPT: &str = r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then
  return 0
end
n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return n";

/// The scripts, hashed once (invoked by `EVALSHA`, loaded on `NOSCRIPT`).
static RESERVE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RESERVE_ATTEMPT));
static RELEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE_ATTEMPT));

/// Gives back an attempt that was not judged (shed, failed, abandoned). DECR keeps the TTL.
const RELEASE_ATTEMPT: &str = r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then
  return redis.call('DECR', KEYS[1])
end
return 0";

/// A reserved attempt; given back when dropped unless [`Reservation::keep`] was called (the
/// password was judged). Dropping happens also when the request is abandoned at its deadline.
struct Reservation {
    conn: RedisConn,
    key: String,
    armed: bool,
}

impl Reservation {
    fn keep(mut self) {
        self.armed = false;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (mut conn, key) = (self.conn.clone(), std::mem::take(&mut self.key));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let released: redis::RedisResult<i64> = RELEASE_SCRIPT
                    .key(&key)
                    .invoke_async(&mut conn)
                    .await;
                if let Err(e) = released {
                    tracing::warn!(error = %e, "password attempt not given back; it expires with the failure window");
                }
            });
        }
    }
}

/// What the password hook needs besides the request.
pub struct PasswordImport {
    pub keys: Keys,
    pub pool: HashPool,
    pub limits: HashLimits,
    pub max_failures: u64,
    pub failure_window_secs: u64,
}

impl PasswordImport {
    /// Decides one sign-in. Redis errors propagate (→ the safe `UNVERIFIED`).
    pub async fn decide(
        &self,
        conn: &mut RedisConn,
        credential: ImportedCredential,
        deadline: Instant,
    ) -> Result<Decision, InlineFailure> {
        let (Some(login), Some(password)) = (credential.username, credential.password) else {
            return Ok(Decision::new(answer(false), "no_credential"));
        };
        let hash_key = self.keys.legacy_credential(&login);
        let failures_key = self.keys.credential_failures(&login);
        let stored: Option<String> = redis::cmd("GET").arg(&hash_key).query_async(conn).await?;
        let Some(stored) = stored else {
            return Ok(Decision::new(answer(false), "unknown_login"));
        };
        let hash = match LegacyHash::parse(&stored) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(problem = %e, "legacy hash in Redis is not usable; answering UNVERIFIED");
                return Ok(Decision::new(answer(false), "unsupported_hash"));
            }
        };
        // Stored by an older version or by hand: never worth a permit it would hold past the
        // deadline.
        if let Err(e) = self.limits.check(&hash) {
            tracing::warn!(problem = %e, "legacy hash in Redis is over the hash limits; answering UNVERIFIED without hashing");
            return Ok(Decision::new(answer(false), "over_cost"));
        }
        let attempt: u64 = RESERVE_SCRIPT
            .key(&failures_key)
            .arg(self.max_failures)
            .arg(self.failure_window_secs)
            .invoke_async(conn)
            .await?;
        if attempt == 0 {
            return Ok(Decision::new(answer(false), "throttled"));
        }
        let reservation = Reservation {
            conn: conn.clone(),
            key: failures_key.clone(),
            armed: true,
        };
        let scheme = hash.scheme();
        let verdict = self.pool.verify(hash, password, deadline).await?;
        metrics::counter!("okta_adapter_password_verifications_total", "scheme" => scheme, "result" => match verdict {
            PoolVerdict::Matched(true) => "match",
            PoolVerdict::Matched(false) => "mismatch",
            PoolVerdict::Shed => "shed",
        })
        .increment(1);
        match verdict {
            // Dropping the reservation gives the attempt back: nothing was judged.
            PoolVerdict::Shed => Ok(Decision::new(answer(false), "shed")),
            PoolVerdict::Matched(true) => {
                reservation.keep();
                let _: () = redis::cmd("DEL")
                    .arg(&failures_key)
                    .query_async(conn)
                    .await?;
                Ok(Decision::new(answer(true), "verified"))
            }
            PoolVerdict::Matched(false) => {
                // The reserved attempt stays counted as this failure.
                reservation.keep();
                Ok(Decision::new(answer(false), "unverified"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PW: &[u8] = b"correct horse battery staple";
    const WRONG: &[u8] = b"correct horse battery stapler";

    fn check(encoded: &str, scheme: &str) {
        let h = LegacyHash::parse(encoded).unwrap_or_else(|e| panic!("{scheme}: {e}"));
        assert_eq!(h.scheme(), scheme);
        assert!(h.verify(PW), "{scheme}: the right password verifies");
        assert!(!h.verify(WRONG), "{scheme}: a wrong password does not");
        assert!(!h.verify(b""), "{scheme}: the empty password does not");
    }

    #[test]
    fn bcrypt_2a_2b_2y_verify_right_and_wrong_passwords() {
        let h = bcrypt::hash(PW, 4).unwrap();
        check(&h, "bcrypt");
        check(&h.replacen("$2b$", "$2a$", 1), "bcrypt");
        check(&h.replacen("$2b$", "$2y$", 1), "bcrypt");
    }

    #[test]
    fn pbkdf2_sha256_and_sha512_verify_right_and_wrong_passwords() {
        check(
            &pbkdf2_string(Sha::Sha256, 1000, b"saltsalt", PW),
            "pbkdf2-sha256",
        );
        check(
            &pbkdf2_string(Sha::Sha512, 1000, b"saltsalt", PW),
            "pbkdf2-sha512",
        );
    }

    #[test]
    fn pbkdf2_matches_a_published_test_vector() {
        // RFC 7914 §11: PBKDF2-HMAC-SHA256("passwd", "salt", 1, 64), first 32 bytes.
        let hash = hex::decode("55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc")
            .unwrap();
        let encoded = format!(
            "$pbkdf2-sha256$i=1,l=32${}${}",
            PHC_B64.encode(b"salt"),
            PHC_B64.encode(&hash)
        );
        let h = LegacyHash::parse(&encoded).unwrap();
        assert!(h.verify(b"passwd"));
        assert!(!h.verify(b"passwe"));
    }

    #[test]
    fn argon2id_verifies_right_and_wrong_passwords() {
        check(
            &argon2id_string(256, 1, 1, b"somesaltsomesalt", PW),
            "argon2id",
        );
    }

    #[test]
    fn argon2_matches_the_reference_implementation_s_published_example() {
        // phc-winner-argon2 README: `echo -n "password" | ./argon2 somesalt -t 2 -m 16 -p 4 -l 24`.
        let h = LegacyHash::parse(
            "$argon2i$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG",
        )
        .unwrap();
        assert_eq!(h.scheme(), "argon2i");
        assert!(h.verify(b"password"));
        assert!(!h.verify(b"passwore"));
    }

    #[test]
    fn salted_sha256_and_sha512_verify_right_and_wrong_passwords() {
        check(
            &salted_sha_string(Sha::Sha256, b"NaCl", PW),
            "sha256-salted",
        );
        check(
            &salted_sha_string(Sha::Sha512, b"NaCl", PW),
            "sha512-salted",
        );
        // The format is SHA(salt ‖ password), spelled out:
        let mut d = Sha256::new();
        d.update(b"NaCl");
        d.update(PW);
        assert_eq!(
            salted_sha_string(Sha::Sha256, b"NaCl", PW),
            format!(
                "$sha256-salted${}${}",
                hex::encode(b"NaCl"),
                hex::encode(d.finalize())
            )
        );
    }

    #[test]
    fn malformed_and_unsupported_hashes_are_explained_without_echoing_them() {
        for (input, expected) in [
            ("plaintext-password", "expected a `$scheme$"),
            ("$md5$abc$def", "unsupported hash scheme `md5`"),
            (
                "$2b$99$abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyza",
                "cost 99",
            ),
            ("$2b$10$short", "53 characters"),
            ("$pbkdf2-sha256$i=0$c2FsdA$aGFzaA", "iterations"),
            ("$pbkdf2-sha256$x=1$c2FsdA$aGFzaA", "missing i="),
            ("$pbkdf2-sha256$i=10$!!!$aGFzaA", "salt is not base64"),
            ("$argon2id$v=19$m=65536,t=2$c2FsdA$aGFzaA", "missing p="),
            ("$sha256-salted$zz$00", "salt is not hex"),
            ("$sha512-salted$00$00", "must be 64 bytes"),
        ] {
            let err = LegacyHash::parse(input).unwrap_err().0;
            assert!(
                err.contains(expected),
                "{input}: `{err}` lacks `{expected}`"
            );
            assert!(!err.contains(input), "the hash is not echoed");
        }
    }

    #[test]
    fn shedding_starts_when_the_work_ahead_outlasts_the_deadline() {
        let ms = Duration::from_millis;
        // Two permits, 100 ms per hash, 1 s left.
        assert!(!would_miss_deadline(0, 2, ms(0), ms(100), ms(1000)));
        assert!(!would_miss_deadline(1, 2, ms(100), ms(100), ms(1000)));
        // 18 ahead on 2 permits: 900 ms of waiting + its own 100 ms = 1000 ms: fits exactly.
        assert!(!would_miss_deadline(18, 2, ms(1800), ms(100), ms(1000)));
        assert!(would_miss_deadline(20, 2, ms(2000), ms(100), ms(1000)));
        // The wait is the work ahead, not "everyone costs what I cost": one slow hash ahead on
        // one permit delays a cheap one by the slow one's time.
        assert!(would_miss_deadline(1, 1, ms(1400), ms(1), ms(1000)));
        assert!(!would_miss_deadline(1, 1, ms(50), ms(1), ms(1000)));
        // A single hash longer than the time left is shed even on an idle pool.
        assert!(would_miss_deadline(0, 2, ms(0), ms(300), ms(200)));
    }

    /// A syntactically valid bcrypt string of any cost (matching no password): verifying it
    /// costs the full 2^cost rounds without having to compute it first.
    fn bcrypt_of_cost(cost: u32) -> LegacyHash {
        LegacyHash::parse(&format!(
            "$2b${cost:02}$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"
        ))
        .unwrap()
    }

    fn default_limits() -> HashLimits {
        let settings =
            crate::config::Settings::load_with(None, Some("[hooks]\nsecrets = [\"s\"]\n")).unwrap();
        HashLimits::from_settings(&settings.inline.password_import)
    }

    #[test]
    fn a_pbkdf2_hash_longer_than_one_digest_block_is_refused() {
        use base64::Engine as _;
        let b64 = |n: usize| base64::engine::general_purpose::STANDARD_NO_PAD.encode(vec![7u8; n]);
        let phc = |sha: &str, n: usize| format!("$pbkdf2-{sha}$i=1000$c2FsdHNhbHQ${}", b64(n));
        assert!(LegacyHash::parse(&phc("sha256", 32)).is_ok());
        assert!(LegacyHash::parse(&phc("sha512", 64)).is_ok());
        // 1 KiB of derived key would run the 2,000,000 allowed iterations 32 times over.
        let err = LegacyHash::parse(&phc("sha256", 1024))
            .unwrap_err()
            .to_string();
        assert!(err.contains("longer than one SHA-256 block"), "{err}");
        assert!(LegacyHash::parse(&phc("sha512", 65)).is_err());
    }

    #[test]
    fn reference_costs_follow_the_benchmark_and_grow_with_the_parameters() {
        let ms = |h: &LegacyHash| h.reference_cost().as_millis();
        assert_eq!(ms(&bcrypt_of_cost(10)), 51);
        assert_eq!(ms(&bcrypt_of_cost(16)), 3276);
        let pbkdf2 = |sha, i| {
            LegacyHash::parse(&format!(
                "$pbkdf2-{}$i={i}$c2FsdHNhbHQ$MDEyMzQ1Njc4OWFiY2RlZg",
                if sha == Sha::Sha256 {
                    "sha256"
                } else {
                    "sha512"
                }
            ))
            .unwrap()
        };
        assert_eq!(ms(&pbkdf2(Sha::Sha256, 600_000)), 54);
        assert_eq!(ms(&pbkdf2(Sha::Sha512, 600_000)), 96);
        let argon = LegacyHash::parse(
            "$argon2i$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG",
        )
        .unwrap();
        assert_eq!(ms(&argon), 170);
        assert!(
            LegacyHash::parse(&salted_sha_string(Sha::Sha256, b"s", PW))
                .unwrap()
                .reference_cost()
                > Duration::ZERO,
            "no kind of hash is free"
        );
    }

    #[test]
    fn hashes_over_the_limits_are_refused_with_the_limit_and_the_cost() {
        let limits = default_limits();
        assert_eq!(
            limits,
            HashLimits {
                max_bcrypt_cost: 12,
                max_pbkdf2_iterations: 2_000_000,
                max_argon2_kib_passes: 262_144,
            }
        );
        assert!(limits.check(&bcrypt_of_cost(12)).is_ok());
        let err = limits.check(&bcrypt_of_cost(13)).unwrap_err().0;
        assert!(err.contains("bcrypt cost 13 exceeds the limit 12"), "{err}");
        assert!(
            err.contains("max_bcrypt_cost") && err.contains("409 ms"),
            "{err}"
        );
        let ok = LegacyHash::parse(&pbkdf2_string(Sha::Sha256, 10, b"saltsalt", PW)).unwrap();
        assert!(limits.check(&ok).is_ok());
        let big = LegacyHash::parse("$pbkdf2-sha512$i=2000001$c2FsdHNhbHQ$MDEyMzQ1Njc4OWFiY2RlZg")
            .unwrap();
        assert!(limits
            .check(&big)
            .unwrap_err()
            .0
            .contains("max_pbkdf2_iterations"));
        let argon = |m: u32, t: u32| {
            LegacyHash::parse(&format!(
                "$argon2id$v=19$m={m},t={t},p=1$c29tZXNhbHQ$MDEyMzQ1Njc4OWFiY2RlZg"
            ))
            .unwrap()
        };
        assert!(limits.check(&argon(65536, 4)).is_ok());
        assert!(limits
            .check(&argon(65536, 5))
            .unwrap_err()
            .0
            .contains("max_argon2_kib_passes"));
        assert!(
            limits.check(&argon(1 << 20, 1)).is_err(),
            "1 GiB once is over"
        );
        // Salted SHA has no cost parameter and is always within limits.
        let sha = LegacyHash::parse(&salted_sha_string(Sha::Sha512, b"s", PW)).unwrap();
        assert!(limits.check(&sha).is_ok());
    }

    #[test]
    fn limits_that_cannot_fit_the_deadline_are_configuration_errors() {
        let limits = default_limits();
        assert!(limits.problems(Duration::from_millis(1500)).is_empty());
        let slow = HashLimits {
            max_bcrypt_cost: 15,
            ..limits
        };
        let problems = slow.problems(Duration::from_millis(1500));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("max_bcrypt_cost") && problems[0].contains("1638 ms"));
        assert!(!HashLimits {
            max_bcrypt_cost: 17,
            ..limits
        }
        .problems(Duration::from_millis(2999))
        .is_empty());
        // A short deadline makes even the defaults too slow.
        assert_eq!(limits.problems(Duration::from_millis(200)).len(), 3);
    }

    #[tokio::test]
    async fn an_unmeasured_hash_too_slow_for_the_deadline_is_shed_without_running() {
        let pool = HashPool::new(1);
        let slow = bcrypt_of_cost(15); // ~1.6 s by the reference; never measured here
        assert_eq!(pool.charge(&slow), slow.reference_cost());
        let t = Instant::now();
        let v = pool
            .verify(
                slow.clone(),
                SecretString::from("x"),
                Instant::now() + Duration::from_millis(1000),
            )
            .await
            .unwrap();
        assert_eq!(v, PoolVerdict::Shed);
        assert!(
            t.elapsed() < Duration::from_millis(100),
            "answered at once, not after hashing"
        );
        assert_eq!(pool.measured(&slow.cost_key()), None, "it never ran");
        // A permit-holder is not needed to prove it: the only permit is free again.
        assert_eq!(pool.permits.available_permits(), 1);
        assert_eq!(
            pool.work_nanos.load(Ordering::SeqCst),
            0,
            "its charge was released"
        );
    }

    #[tokio::test]
    async fn a_permit_obtained_too_late_is_given_back_without_hashing() {
        let pool = Arc::new(HashPool::new(1));
        let held = pool.permits.clone().acquire_owned().await.unwrap();
        let cheap = LegacyHash::parse(&salted_sha_string(Sha::Sha256, b"s", PW)).unwrap();
        // The deadline passes while the only permit is held: the waiter gives up at its
        // start-by time instead of starting work nobody waits for.
        let deadline = Instant::now() + Duration::from_millis(150);
        let waiter = {
            let (pool, cheap) = (pool.clone(), cheap.clone());
            tokio::spawn(async move {
                pool.verify(cheap, SecretString::from("x"), deadline)
                    .await
                    .unwrap()
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(held);
        assert_eq!(waiter.await.unwrap(), PoolVerdict::Shed);
        assert_eq!(pool.measured(&cheap.cost_key()), None, "no hash ran");
    }

    #[tokio::test]
    async fn the_pool_sheds_instead_of_queueing_past_the_deadline() {
        let pool = Arc::new(HashPool::new(1));
        let slow =
            LegacyHash::parse(&pbkdf2_string(Sha::Sha256, 200_000, b"saltsalt", PW)).unwrap();
        // Teach the pool how long one takes.
        let first = pool
            .verify(
                slow.clone(),
                SecretString::from("x"),
                Instant::now() + Duration::from_secs(10),
            )
            .await
            .unwrap();
        assert_eq!(first, PoolVerdict::Matched(false));
        let one = pool.measured(&slow.cost_key()).unwrap();
        assert!(one > Duration::ZERO);
        // Eight at once with a deadline of 2.5 hashes: some run, the rest are shed at once, and
        // none answers after the deadline.
        let deadline = Instant::now() + one.mul_f64(2.5);
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (pool, hash) = (pool.clone(), slow.clone());
            tasks.push(tokio::spawn(async move {
                let v = pool
                    .verify(
                        hash,
                        SecretString::from("correct horse battery staple"),
                        deadline,
                    )
                    .await
                    .unwrap();
                (v, Instant::now())
            }));
        }
        let mut shed = 0;
        let mut matched = 0;
        for t in tasks {
            let (v, at) = t.await.unwrap();
            match v {
                PoolVerdict::Shed => shed += 1,
                PoolVerdict::Matched(m) => {
                    assert!(m);
                    matched += 1;
                }
            }
            assert!(at <= deadline + one, "answered long after the deadline");
        }
        assert!(matched >= 1, "some verifications ran");
        assert!(shed >= 4, "the excess was shed, not queued ({shed} shed)");
    }
}
