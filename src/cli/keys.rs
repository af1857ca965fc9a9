//! `keys create | list | revoke`: API keys of the management API (only hashes are stored).

use std::path::PathBuf;

use clap::Subcommand;

use super::tool::{load_for_tool, tool_connection};
use crate::access::{KeyStore, Role};
use crate::store::Keys;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it once (only its hash is stored).
    Create {
        /// support | client-admin | operator
        #[arg(long)]
        role: String,
        /// The tenant of a client-admin or installation key.
        #[arg(long)]
        tenant: Option<String>,
        /// The installation of an installation key (tenant provisioning).
        #[arg(long)]
        installation: Option<String>,
    },
    /// List keys (ids, roles, tenants; never secrets).
    List,
    /// Revoke a key by id.
    Revoke { id: String },
}

pub async fn run(config: Option<PathBuf>, command: KeysCommand) -> anyhow::Result<()> {
    let settings = load_for_tool(config)?;
    let mut conn = tool_connection(&settings).await?;
    let store = KeyStore::new(Keys::new(settings.redis.prefix.clone()));
    match command {
        KeysCommand::Create {
            role,
            tenant,
            installation,
        } => {
            let role = Role::parse(&role).ok_or_else(|| {
                anyhow::anyhow!(
                    "--role must be support, client-admin, operator or installation, not `{role}`"
                )
            })?;
            let (token, info) = match (role, tenant.as_deref(), installation.as_deref()) {
                (Role::Installation, Some(t), Some(i)) => {
                    store.create_installation(&mut conn, t, i).await??
                }
                (_, _, Some(_)) if role != Role::Installation => {
                    anyhow::bail!("only installation keys take --installation")
                }
                (role, tenant, _) => store.create(&mut conn, role, tenant).await??,
            };
            eprintln!(
                "created {} key {}{} — store the token now, it is not shown again:",
                info.role,
                info.id,
                info.tenant
                    .map(|t| format!(" for tenant {t}"))
                    .unwrap_or_default()
            );
            out!("{token}")?;
        }
        KeysCommand::List => {
            for k in store.list(&mut conn).await? {
                out!(
                    "{}\t{}\t{}\t{}\t{}",
                    k.id,
                    k.role,
                    k.tenant.unwrap_or_else(|| "-".into()),
                    k.created,
                    if k.revoked { "revoked" } else { "active" }
                )?;
            }
        }
        KeysCommand::Revoke { id } => {
            if !store.revoke(&mut conn, &id).await? {
                anyhow::bail!("no key with id `{id}`");
            }
            eprintln!("revoked {id}");
        }
    }
    Ok(())
}
