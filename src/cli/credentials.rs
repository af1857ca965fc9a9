//! `credentials import`: loads legacy password hashes for the password import inline hook.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::tool::{load_for_tool, tool_connection};
use crate::inline::credentials::{read_credential_file, store_credentials};
use crate::inline::password::HashLimits;
use crate::store::Keys;

#[derive(Subcommand)]
pub enum CredentialsCommand {
    /// Load legacy password hashes: a `.csv` file with a `login,hash` header, or JSON lines
    /// (`{"login": "…", "hash": "…"}`). Bad rows are reported by line and skipped; the rest are
    /// stored (an existing login is overwritten). Hashes: bcrypt, PBKDF2-SHA256/512 and argon2
    /// PHC strings, `$sha256-salted$…`/`$sha512-salted$…` (see docs/inline-hooks.md).
    Import {
        /// The file to load.
        file: PathBuf,
        /// Check the file and report, without writing anything.
        #[arg(long)]
        dry_run: bool,
    },
}

pub async fn run(config: Option<PathBuf>, command: CredentialsCommand) -> anyhow::Result<()> {
    match command {
        CredentialsCommand::Import { file, dry_run } => import(config, &file, dry_run).await,
    }
}

/// Checks every row (bad rows are reported by line and skipped) and stores the rest.
async fn import(config: Option<PathBuf>, file: &Path, dry_run: bool) -> anyhow::Result<()> {
    let settings = load_for_tool(config)?;
    let limits = HashLimits::from_settings(&settings.inline.password_import);
    let parsed = read_credential_file(file, &limits)?;
    for problem in &parsed.errors {
        eprintln!("skipped: {problem}");
    }
    if dry_run {
        out!(
            "{}: {} valid row(s), {} skipped; nothing written (--dry-run)",
            file.display(),
            parsed.rows.len(),
            parsed.errors.len()
        )?;
        return Ok(());
    }
    let mut redis = tool_connection(&settings).await?;
    let keys = Keys::new(settings.redis.prefix.clone());
    let written = store_credentials(&mut redis, &keys, &parsed.rows).await?;
    out!(
        "{}: {written} legacy credential(s) stored under `{}:{{cred:<login>}}:hash`, {} row(s) skipped",
        file.display(),
        settings.redis.prefix,
        parsed.errors.len()
    )?;
    if !parsed.errors.is_empty() {
        anyhow::bail!("{} row(s) could not be imported", parsed.errors.len());
    }
    Ok(())
}
