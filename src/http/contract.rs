//! What the published OpenAPI document promises about paths and methods, applied to requests
//! poem-openapi handles generically.
//!
//! Built once from the document itself, so it cannot drift from it:
//! - a `405 Method Not Allowed` carries an `Allow` header listing the path's documented methods
//!   (RFC 9110 §15.5.6 requires it);
//! - a request without `Content-Type` to an operation whose body has exactly one documented
//!   media type is read as that type (e.g. `POST /api/v1/keys` with a JSON body but no header),
//!   instead of an undocumented 415.

use std::collections::BTreeMap;

use poem::http::Method;
use regex::Regex;

/// One documented path: its matcher and, per method, the single request media type if the
/// operation documents exactly one.
struct PathEntry {
    pattern: Regex,
    methods: BTreeMap<String, Option<String>>,
}

/// The document's paths and methods, and its enums.
pub struct Contract {
    paths: Vec<PathEntry>,
    /// Component schema name → its enum values.
    enums: BTreeMap<String, Vec<String>>,
}

impl Contract {
    /// Reads the paths of an OpenAPI 3 document (JSON). An unreadable document gives an empty
    /// contract: nothing is added, nothing breaks.
    pub fn from_spec(spec: &str) -> Self {
        let doc: serde_json::Value = serde_json::from_str(spec).unwrap_or_default();
        let paths = doc["paths"]
            .as_object()
            .map(|paths| {
                paths
                    .iter()
                    .map(|(template, ops)| PathEntry {
                        pattern: template_regex(template),
                        methods: ops
                            .as_object()
                            .map(|ops| {
                                ops.iter()
                                    .filter(|(m, _)| Method::from_bytes(m.as_bytes()).is_ok())
                                    .map(|(m, op)| (m.to_ascii_uppercase(), single_media_type(op)))
                                    .collect()
                            })
                            .unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let enums = doc["components"]["schemas"]
            .as_object()
            .map(|schemas| {
                schemas
                    .iter()
                    .filter_map(|(name, schema)| {
                        let values = schema["enum"].as_array()?;
                        let values = values
                            .iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect();
                        Some((name.clone(), values))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self { paths, enums }
    }

    /// poem-openapi's message for a value outside an enum names the type but not the values;
    /// this adds them, as the adapter's own messages always did.
    pub fn explain_enum_error(&self, message: &str) -> Option<String> {
        const MARK: &str = "failed to parse \"";
        let start = message.find(MARK)? + MARK.len();
        let name = message[start..].split('"').next()?;
        let values = self.enums.get(name)?;
        Some(format!("{message} Expected one of: {}.", values.join(", ")))
    }

    fn entry(&self, path: &str) -> Option<&PathEntry> {
        self.paths.iter().find(|e| e.pattern.is_match(path))
    }

    /// The `Allow` value for `path`: its documented methods, comma-separated.
    pub fn allow(&self, path: &str) -> Option<String> {
        let entry = self.entry(path)?;
        let methods: Vec<&str> = entry.methods.keys().map(String::as_str).collect();
        (!methods.is_empty()).then(|| methods.join(", "))
    }

    /// The media type to assume for a body sent without `Content-Type`.
    pub fn default_media_type(&self, path: &str, method: &Method) -> Option<&str> {
        self.entry(path)?.methods.get(method.as_str())?.as_deref()
    }
}

/// `/api/v1/users/{id}` → `^/api/v1/users/[^/]+$`.
fn template_regex(template: &str) -> Regex {
    let mut re = String::from("^");
    for (i, part) in template.split('/').enumerate() {
        if i > 0 {
            re.push('/');
        }
        if part.starts_with('{') && part.ends_with('}') {
            re.push_str("[^/]+");
        } else {
            re.push_str(&regex::escape(part));
        }
    }
    re.push('$');
    Regex::new(&re).expect("escaped path segments form a valid regex")
}

fn single_media_type(op: &serde_json::Value) -> Option<String> {
    let content = op["requestBody"]["content"].as_object()?;
    match content.keys().collect::<Vec<_>>().as_slice() {
        [only] => Some((*only).clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"{"components":{"schemas":{"Colour":{"type":"string","enum":["red","blue"]}}},"paths":{
        "/api/v1/keys":{"get":{},"post":{"requestBody":{"content":{"application/json; charset=utf-8":{}}}}},
        "/api/v1/keys/{id}":{"delete":{}},
        "/api/v1/jobs":{"post":{"requestBody":{"content":{"text/csv":{},"application/x-ndjson":{}}}}}
    }}"#;

    #[test]
    fn allow_lists_the_documented_methods_of_the_matching_path() {
        let c = Contract::from_spec(SPEC);
        assert_eq!(c.allow("/api/v1/keys").as_deref(), Some("GET, POST"));
        assert_eq!(c.allow("/api/v1/keys/abc").as_deref(), Some("DELETE"));
        assert_eq!(c.allow("/api/v1/keys/abc/x"), None);
        assert_eq!(c.allow("/nowhere"), None);
    }

    #[test]
    fn only_a_single_documented_media_type_is_assumed() {
        let c = Contract::from_spec(SPEC);
        assert_eq!(
            c.default_media_type("/api/v1/keys", &Method::POST),
            Some("application/json; charset=utf-8")
        );
        assert_eq!(c.default_media_type("/api/v1/jobs", &Method::POST), None);
        assert_eq!(c.default_media_type("/api/v1/keys", &Method::GET), None);
        assert!(Contract::from_spec("not json")
            .allow("/api/v1/keys")
            .is_none());
    }

    #[test]
    fn enum_errors_list_the_values() {
        let c = Contract::from_spec(SPEC);
        let msg = r#"failed to parse parameter `c`: failed to parse "Colour": Expect a valid enumeration value."#;
        assert!(c
            .explain_enum_error(msg)
            .unwrap()
            .ends_with("Expected one of: red, blue."));
        assert_eq!(c.explain_enum_error(r#"failed to parse "Other": x"#), None);
    }
}
