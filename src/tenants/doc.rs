//! The tenant document: what a tenant should have in Okta. The same shape arrives as JSON
//! (`PUT /api/v1/tenants/{tenant}`) or as a TOML file (`okta-adapter tenant apply FILE`), and is
//! checked here once, with every problem named, before anything is queued.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::domain::tenant::TenantId;

/// Grant types an installation may ask for (Okta's OIDC app grant types).
pub const GRANT_TYPES: &[&str] = &[
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "implicit",
    "urn:ietf:params:oauth:grant-type:device_code",
];

/// Longest installation name (the app label `tenant-<t>-<installation>` stays under Okta's 100).
pub const INSTALLATION_MAX_LEN: usize = 30;

/// A tenant's desired state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantDoc {
    /// Optional; when given it must be the tenant of the URL (a file names its tenant here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// A human name, written into the groups' descriptions.
    #[serde(default)]
    pub display_name: String,
    /// Installations by name (`[a-z0-9][a-z0-9-]*`, at most 30 characters).
    #[serde(default)]
    pub installations: BTreeMap<String, InstallationDoc>,
}

/// One product installation: an OIDC app assigned to the tenant's users group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallationDoc {
    /// Product kind: one of `provisioning.kinds` (default `efs`, `portals`, `dv`).
    pub kind: String,
    /// Where Okta may send the user back after sign-in (https, or http://localhost).
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default = "default_grant_types")]
    pub grant_types: Vec<String>,
    /// Require PKCE for the authorization code flow.
    #[serde(default = "yes")]
    pub pkce: bool,
    /// A public client (browser app, no client secret; PKCE required).
    #[serde(default)]
    pub public_client: bool,
    /// Product settings, kept with the app (its `profile.settings`) and handed out in the config.
    #[serde(default)]
    pub settings: Map<String, Value>,
}

fn default_grant_types() -> Vec<String> {
    vec!["authorization_code".into(), "refresh_token".into()]
}

fn yes() -> bool {
    true
}

/// Every problem of a document, one line each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("; "))]
pub struct InvalidDoc(pub Vec<String>);

impl TenantDoc {
    /// Reads JSON.
    pub fn from_json(v: Value) -> Result<Self, InvalidDoc> {
        serde_json::from_value(v).map_err(|e| InvalidDoc(vec![e.to_string()]))
    }

    /// Reads TOML (the CLI's file format).
    pub fn from_toml(text: &str) -> Result<Self, InvalidDoc> {
        toml::from_str(text).map_err(|e| InvalidDoc(vec![e.message().to_owned()]))
    }

    /// Checks the document for `tenant`; `kinds` are the configured product kinds.
    pub fn check(&self, tenant: &TenantId, kinds: &[String]) -> Result<(), InvalidDoc> {
        let mut problems = Vec::new();
        if tenant.as_str().ends_with("-admins") {
            problems.push(format!(
                "tenant: `{}` ends in `-admins`, which names the admins group of tenant `{}`",
                tenant.as_str(),
                tenant.as_str().trim_end_matches("-admins")
            ));
        }
        if let Some(t) = &self.tenant {
            if t != tenant.as_str() {
                problems.push(format!(
                    "tenant: the document names `{t}` but is applied to `{}`",
                    tenant.as_str()
                ));
            }
        }
        if self.display_name.chars().count() > 200 {
            problems.push("display_name: at most 200 characters".into());
        }
        for (name, inst) in &self.installations {
            let at = format!("installations.{name}");
            let valid_name = !name.is_empty()
                && name.len() <= INSTALLATION_MAX_LEN
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !name.starts_with('-');
            if !valid_name {
                problems.push(format!(
                    "{at}: an installation name is lowercase letters, digits and `-`, at most {INSTALLATION_MAX_LEN} characters"
                ));
            }
            if !kinds.contains(&inst.kind) {
                problems.push(format!(
                    "{at}.kind: `{}` is not a configured kind ({})",
                    inst.kind,
                    kinds.join(", ")
                ));
            }
            if inst.grant_types.is_empty() {
                problems.push(format!("{at}.grant_types: at least one"));
            }
            for g in &inst.grant_types {
                if !GRANT_TYPES.contains(&g.as_str()) {
                    problems.push(format!("{at}.grant_types: `{g}` is not supported"));
                }
            }
            let code = inst.grant_types.iter().any(|g| g == "authorization_code");
            if code && inst.redirect_uris.is_empty() {
                problems.push(format!(
                    "{at}.redirect_uris: authorization_code needs at least one"
                ));
            }
            for u in inst
                .redirect_uris
                .iter()
                .chain(&inst.post_logout_redirect_uris)
            {
                if !valid_redirect_uri(u) {
                    problems.push(format!(
                        "{at}: redirect URI `{u}` must use https (or http://localhost): an absolute URL with a host, without user info, spaces or a fragment"
                    ));
                }
            }
            if inst.public_client && !inst.pkce {
                problems.push(format!("{at}.pkce: a public client must use PKCE"));
            }
            if inst.public_client && inst.grant_types.iter().any(|g| g == "client_credentials") {
                problems.push(format!(
                    "{at}.grant_types: a public client cannot use client_credentials"
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(InvalidDoc(problems))
        }
    }
}

/// Whether Okta may send a user back to `u` (a redirect or post-logout redirect URI): an
/// absolute `https` URL with a host, or plain `http` to the local machine only (host
/// `localhost`, any port, so `http://localhost.example.com` is not one); never with user info
/// (`http://localhost@evil.example` goes to `evil.example`), whitespace or a fragment
/// (RFC 6749 §3.1.2).
pub fn valid_redirect_uri(u: &str) -> bool {
    if u.chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
    {
        return false;
    }
    // Written out as `scheme://authority…`: the URL parser would also take `https:///cb` or
    // `https:cb` (as host `cb`), which no one means.
    let authority = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"));
    if authority.is_none_or(|a| a.is_empty() || a.starts_with('/')) {
        return false;
    }
    let Ok(url) = url::Url::parse(u) else {
        return false;
    };
    let host_ok = match url.scheme() {
        "https" => url.host_str().is_some_and(|h| !h.is_empty()),
        "http" => url.host_str() == Some("localhost"),
        _ => false,
    };
    host_ok && url.username().is_empty() && url.password().is_none() && url.fragment().is_none()
}

/// Stable Okta names of a tenant's resources: what find-or-create looks for.
#[derive(Debug, Clone)]
pub struct Names {
    pub tenant: String,
}

impl Names {
    pub fn new(tenant: &str) -> Self {
        Self {
            tenant: tenant.to_owned(),
        }
    }

    pub fn users_group(&self) -> String {
        format!("tenant-{}", self.tenant)
    }

    pub fn admins_group(&self) -> String {
        format!("tenant-{}-admins", self.tenant)
    }

    pub fn rule(&self) -> String {
        format!("tenant-{}", self.tenant)
    }

    pub fn app_label(&self, installation: &str) -> String {
        format!("tenant-{}-{installation}", self.tenant)
    }
}

impl InstallationDoc {
    /// The Okta app body (`POST`/`PUT /api/v1/apps`) for this installation.
    pub fn app_body(&self, label: &str, tenant: &str, installation: &str) -> Value {
        let code = self.grant_types.iter().any(|g| g == "authorization_code");
        let implicit = self.grant_types.iter().any(|g| g == "implicit");
        let mut response_types = vec![];
        if code {
            response_types.push("code");
        }
        if implicit {
            response_types.extend(["token", "id_token"]);
        }
        if response_types.is_empty() {
            response_types.push("token");
        }
        json!({
            "name": "oidc_client",
            "label": label,
            "signOnMode": "OPENID_CONNECT",
            "credentials": {"oauthClient": {
                "token_endpoint_auth_method": if self.public_client { "none" } else { "client_secret_basic" },
                "pkce_required": self.pkce,
                "autoKeyRotation": true,
            }},
            "settings": {"oauthClient": {
                "redirect_uris": self.redirect_uris,
                "post_logout_redirect_uris": self.post_logout_redirect_uris,
                "grant_types": self.grant_types,
                "response_types": response_types,
                "application_type": if self.public_client { "browser" } else { "web" },
            }},
            "profile": {
                "tenant": tenant,
                "installation": installation,
                "kind": self.kind,
                "settings": self.settings,
            },
        })
    }

    /// Whether Okta's app (as read back) already is what [`Self::app_body`] asks for, in the
    /// fields the adapter owns. `None` when equal, else what differs.
    pub fn differs_from(&self, app: &Value, tenant: &str, installation: &str) -> Option<String> {
        let want = self.app_body("", tenant, installation);
        let mut diffs = vec![];
        for (path, name) in [
            ("/settings/oauthClient/redirect_uris", "redirect_uris"),
            (
                "/settings/oauthClient/post_logout_redirect_uris",
                "post_logout_redirect_uris",
            ),
            ("/settings/oauthClient/grant_types", "grant_types"),
            (
                "/credentials/oauthClient/token_endpoint_auth_method",
                "token_endpoint_auth_method",
            ),
            ("/credentials/oauthClient/pkce_required", "pkce_required"),
            ("/profile", "profile"),
        ] {
            let have = app.pointer(path).cloned().unwrap_or(Value::Null);
            let have = match (&have, want.pointer(path)) {
                // Okta leaves out an empty list.
                (Value::Null, Some(Value::Array(a))) if a.is_empty() => json!([]),
                _ => have,
            };
            if Some(&have) != want.pointer(path) {
                diffs.push(name);
            }
        }
        (!diffs.is_empty()).then(|| diffs.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds() -> Vec<String> {
        vec!["efs".into(), "portals".into(), "dv".into()]
    }

    fn acme() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    #[test]
    fn a_full_document_reads_from_json_and_toml_alike() {
        let json_doc = TenantDoc::from_json(json!({
            "display_name": "Acme",
            "installations": {"efs": {"kind": "efs", "redirect_uris": ["https://efs.acme.example/cb"],
                                      "settings": {"region": "eu"}}}
        }))
        .unwrap();
        let toml_doc = TenantDoc::from_toml(
            r#"
display_name = "Acme"
[installations.efs]
kind = "efs"
redirect_uris = ["https://efs.acme.example/cb"]
settings = { region = "eu" }
"#,
        )
        .unwrap();
        assert_eq!(json_doc, toml_doc);
        assert!(json_doc.check(&acme(), &kinds()).is_ok());
        assert!(json_doc.installations["efs"].pkce, "PKCE is on by default");
    }

    #[test]
    fn every_problem_is_named_at_once() {
        let doc = TenantDoc::from_json(json!({
            "tenant": "globex",
            "installations": {
                "Bad Name": {"kind": "crm", "redirect_uris": ["http://evil.example/cb"]},
                "web": {"kind": "portals", "public_client": true, "pkce": false}
            }
        }))
        .unwrap();
        let InvalidDoc(problems) = doc.check(&acme(), &kinds()).unwrap_err();
        let all = problems.join("\n");
        for expected in [
            "names `globex`",
            "installations.Bad Name: an installation name",
            "`crm` is not a configured kind",
            "must use https",
            "installations.web.redirect_uris",
            "a public client must use PKCE",
        ] {
            assert!(all.contains(expected), "{expected} missing in:\n{all}");
        }
        assert!(TenantDoc::from_json(json!({"instalations": {}})).is_err());
        let empty = TenantDoc::from_json(json!({})).unwrap();
        let admins = TenantId::parse("acme-admins").unwrap();
        assert!(empty.check(&admins, &kinds()).is_err());
    }

    #[test]
    fn plain_http_redirects_only_to_the_local_machine() {
        for good in [
            "https://efs.acme.example/cb",
            "https://efs.acme.example:8443/cb?x=1",
            "http://localhost/cb",
            "http://localhost:3000/cb",
        ] {
            assert!(valid_redirect_uri(good), "{good}");
        }
        for bad in [
            "http://localhost.evil.example/cb",
            "http://localhost@evil.example/cb",
            "http://localhost:80@evil.example/cb",
            "http://evil.example/cb",
            "https://user@efs.acme.example/cb",
            "https://",
            "https:///cb",
            "https://efs.acme.example/cb#x",
            "https://efs acme.example/cb",
            "https:efs.acme.example/cb",
            "https:\\\\evil.example/cb",
            "HTTP://localhost.evil.example/cb",
            "https://efs.acme.example/c\nb",
            "javascript:alert(1)",
            "/cb",
        ] {
            assert!(!valid_redirect_uri(bad), "{bad}");
        }
        assert!(!valid_redirect_uri("https://efs.acme.example/c\tb"));
    }

    #[test]
    fn a_display_name_is_counted_in_characters() {
        let named = |n: usize| TenantDoc {
            tenant: None,
            display_name: "é".repeat(n),
            installations: BTreeMap::new(),
        };
        assert!(named(200).check(&acme(), &kinds()).is_ok());
        assert!(named(201).check(&acme(), &kinds()).is_err());
    }

    #[test]
    fn an_app_read_back_from_okta_compares_equal_to_its_document() {
        let doc = InstallationDoc {
            kind: "efs".into(),
            redirect_uris: vec!["https://a.example/cb".into()],
            post_logout_redirect_uris: vec![],
            grant_types: default_grant_types(),
            pkce: true,
            public_client: false,
            settings: Map::new(),
        };
        let mut app = doc.app_body("tenant-acme-efs", "acme", "efs");
        app["settings"]["oauthClient"]
            .as_object_mut()
            .unwrap()
            .remove("post_logout_redirect_uris");
        assert_eq!(doc.differs_from(&app, "acme", "efs"), None);
        app["settings"]["oauthClient"]["redirect_uris"] = json!(["https://b.example/cb"]);
        assert_eq!(
            doc.differs_from(&app, "acme", "efs").as_deref(),
            Some("redirect_uris")
        );
    }
}
