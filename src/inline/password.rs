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
//! **Budget.** Hashing is deliberately slow (bcrypt cost 10 ≈ 50 ms, PBKDF2 600,000 ≈ 200 ms of
//! one core), so it runs on `spawn_blocking` — never on the async workers that answer every other
//! hook — behind a semaphore with one permit per core ([`HashPool`]). When the work already queued
//! would make this request miss its deadline, it is **shed**: answered `UNVERIFIED` at once
//! instead of queueing toward Okta's 3 s (which would fail the sign-in anyway, later, and pile up
//! more work). Every comparison is constant-time.
//!
//! **Secrecy.** The password is a `SecretString` from parsing until the hash thread drops it; it
//! is never formatted, logged, counted, recorded or put in an error.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use redis::aio::ConnectionManager;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use super::{Answer, Decision, InlineFailure};
use crate::okta::inline_hook::{Command, ImportedCredential, InlineResponse};
use crate::store::Keys;

/// Limits that keep one crafted hash from occupying a core for minutes.
const MAX_BCRYPT_COST: u32 = 16;
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;
const MAX_ARGON2_MEMORY_KIB: u32 = 1 << 20;
const MAX_ARGON2_TIME: u32 = 64;

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

/// Hash verification off the async workers, at most one per permit, with load shedding.
pub struct HashPool {
    permits: Arc<Semaphore>,
    size: usize,
    /// Verifications waiting for or holding a permit.
    in_system: Arc<AtomicUsize>,
    /// Smoothed duration of one verification per [`LegacyHash::cost_key`].
    estimates: Mutex<HashMap<String, Duration>>,
}

/// Counts a verification in the system until dropped (also when the request is abandoned).
struct InSystem(Arc<AtomicUsize>);

impl Drop for InSystem {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether a verification would miss `remaining`: `ahead` verifications are already waiting
/// for or holding one of `permits`, each taking about `estimate`.
pub fn would_miss_deadline(
    ahead: usize,
    permits: usize,
    estimate: Duration,
    remaining: Duration,
) -> bool {
    let permits = permits.max(1);
    // Rounds of work before a permit frees up for this one, then its own hash.
    let rounds_waiting = if ahead < permits {
        0
    } else {
        (ahead - permits) / permits + 1
    };
    estimate * (rounds_waiting as u32 + 1) > remaining
}

impl HashPool {
    pub fn new(permits: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(permits.max(1))),
            size: permits.max(1),
            in_system: Arc::new(AtomicUsize::new(0)),
            estimates: Mutex::new(HashMap::new()),
        }
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// The current estimate for one verification of this kind (zero until one was measured).
    pub fn estimate(&self, key: &str) -> Duration {
        self.estimates
            .lock()
            .expect("estimates lock")
            .get(key)
            .copied()
            .unwrap_or_default()
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
        let estimate = self.estimate(&key);
        let ahead = self.in_system.fetch_add(1, Ordering::SeqCst);
        let in_system = InSystem(self.in_system.clone());
        let remaining = deadline.saturating_duration_since(Instant::now());
        if would_miss_deadline(ahead, self.size, estimate, remaining) {
            return Ok(PoolVerdict::Shed);
        }
        // The latest moment a hash can start and still finish in time.
        let start_by = deadline.checked_sub(estimate).unwrap_or(deadline);
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
        // The permit and the in-system count travel with the work: if the request is abandoned
        // at its deadline, the core stays accounted for until the hash really ends.
        let job = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let _in_system = in_system;
            let started = Instant::now();
            let matched = hash.verify(password.expose_secret().as_bytes());
            drop(password);
            (matched, started.elapsed())
        });
        let (matched, took) = job
            .await
            .map_err(|_| InlineFailure::Internal("hash verification panicked".into()))?;
        self.observe(key, took);
        Ok(PoolVerdict::Matched(matched))
    }
}

/// What the password hook needs besides the request.
pub struct PasswordImport {
    pub keys: Keys,
    pub pool: HashPool,
    pub max_failures: u64,
    pub failure_window_secs: u64,
}

impl PasswordImport {
    /// Decides one sign-in. Redis errors propagate (→ the safe `UNVERIFIED`).
    pub async fn decide(
        &self,
        conn: &mut ConnectionManager,
        credential: ImportedCredential,
        deadline: Instant,
    ) -> Result<Decision, InlineFailure> {
        let (Some(login), Some(password)) = (credential.username, credential.password) else {
            return Ok(Decision::new(answer(false), "no_credential"));
        };
        let hash_key = self.keys.legacy_credential(&login);
        let failures_key = self.keys.credential_failures(&login);
        let (stored, failures): (Option<String>, Option<u64>) = redis::pipe()
            .get(&hash_key)
            .get(&failures_key)
            .query_async(conn)
            .await?;
        if failures.unwrap_or(0) >= self.max_failures {
            return Ok(Decision::new(answer(false), "throttled"));
        }
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
        let scheme = hash.scheme();
        let verdict = self.pool.verify(hash, password, deadline).await?;
        metrics::counter!("okta_adapter_password_verifications_total", "scheme" => scheme, "result" => match verdict {
            PoolVerdict::Matched(true) => "match",
            PoolVerdict::Matched(false) => "mismatch",
            PoolVerdict::Shed => "shed",
        })
        .increment(1);
        match verdict {
            PoolVerdict::Shed => Ok(Decision::new(answer(false), "shed")),
            PoolVerdict::Matched(true) => {
                if failures.is_some() {
                    let _: () = redis::cmd("DEL")
                        .arg(&failures_key)
                        .query_async(conn)
                        .await?;
                }
                Ok(Decision::new(answer(true), "verified"))
            }
            PoolVerdict::Matched(false) => {
                // The window starts at the first failure (SET NX EX), later ones only count.
                let _: () = redis::pipe()
                    .atomic()
                    .cmd("SET")
                    .arg(&failures_key)
                    .arg(0)
                    .arg("EX")
                    .arg(self.failure_window_secs)
                    .arg("NX")
                    .ignore()
                    .incr(&failures_key, 1)
                    .ignore()
                    .query_async(conn)
                    .await?;
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
    fn shedding_starts_when_the_queue_outlasts_the_deadline() {
        let ms = Duration::from_millis;
        // Two cores, 100 ms per hash, 1 s left.
        assert!(!would_miss_deadline(0, 2, ms(100), ms(1000)));
        assert!(!would_miss_deadline(1, 2, ms(100), ms(1000)));
        // 16 ahead on 2 cores: 8 rounds of waiting + its own = 900 ms: fits.
        assert!(!would_miss_deadline(16, 2, ms(100), ms(1000)));
        // 18 ahead: 10 rounds = 1000 ms + … no, 9 rounds waiting + 1 = 1000 ms: fits exactly.
        assert!(!would_miss_deadline(18, 2, ms(100), ms(1000)));
        assert!(would_miss_deadline(20, 2, ms(100), ms(1000)));
        // A single hash longer than the time left is shed even on an idle pool.
        assert!(would_miss_deadline(0, 2, ms(300), ms(200)));
        // Unknown estimate (zero): optimistic, the permit wait is bounded by the deadline.
        assert!(!would_miss_deadline(100, 2, Duration::ZERO, ms(10)));
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
        let one = pool.estimate(&slow.cost_key());
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
