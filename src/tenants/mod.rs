//! Tenant provisioning: a tenant as a declared resource (issue 18).
//!
//! - [`doc`]: the tenant document (JSON or TOML) and its checks; the stable Okta names;
//! - [`engine`]: the saga of find-or-create steps, shared by the plan (reads only) and the apply;
//! - [`store`]: applies, per-step results and Okta ids, installation configs and the `config`
//!   stream in Redis;
//! - [`worker`]: the `tenant-workers` consumer group that runs queued applies (resumable).
//!
//! The installation config handed to products ([`installation_config`]) is what a product
//! needs to sign users in; its client secret is never part of it (see `docs/tenants.md`).

pub mod doc;
pub mod engine;
pub mod store;
pub mod worker;

use serde_json::{json, Value};

use crate::config::Settings;
use doc::InstallationDoc;
use engine::Ids;

/// The issuer products are told: `provisioning.issuer`, or the org's authorization server.
pub fn issuer(settings: &Settings) -> String {
    let p = &settings.provisioning;
    if !p.issuer.is_empty() {
        return p.issuer.clone();
    }
    format!(
        "{}/oauth2/{}",
        settings.okta.org_url.trim_end_matches('/'),
        p.authorization_server
    )
}

/// One installation's sign-in configuration (the contract products rely on).
pub fn installation_config(
    settings: &Settings,
    tenant: &str,
    installation: &str,
    inst: &InstallationDoc,
    ids: &Ids,
) -> Value {
    json!({
        "v": 1,
        "tenant": tenant,
        "installation": installation,
        "kind": inst.kind,
        "issuer": issuer(settings),
        "authorization_server": settings.provisioning.authorization_server,
        "client_id": ids.get(&format!("app:{installation}")),
        "public_client": inst.public_client,
        "pkce": inst.pkce,
        "redirect_uris": inst.redirect_uris,
        "post_logout_redirect_uris": inst.post_logout_redirect_uris,
        "grant_types": inst.grant_types,
        "scopes": settings.provisioning.scopes,
        "groups": {
            "users": ids.get("group:users"),
            "admins": ids.get("group:admins"),
        },
        "settings": inst.settings,
    })
}
