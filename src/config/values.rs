//! Values that are parsed from their config strings while the config is read, so code that uses
//! them holds the typed value and never parses (or `expect`s) again.
//!
//! Each parser's error is the message after the key: the figment path in front of it names the
//! key (`report.timezone: `Mars/Olympus` is not an IANA time zone …`). A value inside an
//! internally tagged enum (a tenant rule) is buffered by serde before it is read, so figment
//! cannot see the field name; its parser starts the message with `.field: ` and
//! `load::describe_figment_error` appends it to the path.

use std::fmt;
use std::net::SocketAddr;

use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use lettre::message::Mailbox;
use lettre::transport::smtp::{AsyncSmtpTransport, AsyncSmtpTransportBuilder};
use lettre::Tokio1Executor;
use poem::http::HeaderName;
use regex::Regex;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

/// Reads a string and parses it with `parse`; the error becomes the key's message.
fn parsed<'de, D, T>(d: D, parse: impl FnOnce(&str) -> Result<T, String>) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    let s = String::deserialize(d)?;
    parse(&s).map_err(D::Error::custom)
}

/// `http.listen`.
pub(super) fn listen_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    parsed(d, |s| {
        s.parse()
            .map_err(|_| format!("`{s}` is not an address like 127.0.0.1:8080"))
    })
}

/// `report.timezone`: an IANA zone name.
pub(super) fn time_zone<'de, D: Deserializer<'de>>(d: D) -> Result<chrono_tz::Tz, D::Error> {
    parsed(d, |s| {
        s.parse()
            .map_err(|_| format!("`{s}` is not an IANA time zone like Europe/Berlin or UTC"))
    })
}

/// `report.from`.
pub(super) fn from_mailbox<'de, D: Deserializer<'de>>(d: D) -> Result<Mailbox, D::Error> {
    parsed(d, |s| {
        s.parse()
            .map_err(|_| format!("`{s}` is not a mailbox like \"IAM reports <iam@example.com>\""))
    })
}

/// `report.recipients`: figment names the element (`report.recipients[2]`).
pub(super) fn recipients<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Mailbox>, D::Error> {
    /// One recipient, parsed where serde reads the element so the error carries its index.
    struct Recipient(Mailbox);
    impl<'de> Deserialize<'de> for Recipient {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            parsed(d, |s| {
                s.parse()
                    .map(Recipient)
                    .map_err(|_| format!("`{s}` is not an email address"))
            })
        }
    }
    Ok(Vec::<Recipient>::deserialize(d)?
        .into_iter()
        .map(|r| r.0)
        .collect())
}

/// `hooks.auth_header`, lowercased (HTTP/2 and poem compare header names in lowercase).
pub(super) fn header_name<'de, D: Deserializer<'de>>(d: D) -> Result<HeaderName, D::Error> {
    parsed(d, |s| {
        HeaderName::from_bytes(s.to_ascii_lowercase().as_bytes())
            .map_err(|_| format!("`{s}` is not a valid HTTP header name"))
    })
}

/// `tenants.rules[i].pattern` of a `group` rule.
pub(super) fn group_pattern<'de, D: Deserializer<'de>>(d: D) -> Result<Regex, D::Error> {
    // `.pattern: ` because the rule is an internally tagged enum (see the module doc).
    parsed(d, |s| {
        Regex::new(s).map_err(|e| {
            // regex points at the spot over several lines; its last line says what is wrong.
            let e = e.to_string();
            let what = e.lines().last().unwrap_or_default();
            format!(
                ".pattern: invalid regex: {}",
                what.trim_start_matches("error: ")
            )
        })
    })
}

/// Parses a 6-field cron expression (seconds first), the form tokio-cron-scheduler runs.
pub fn parse_cron(expr: &str) -> Result<Cron, String> {
    if expr.split_whitespace().count() != 6 {
        return Err(format!(
            "`{expr}` must have 6 fields (sec min hour day month weekday), e.g. \"0 0 6 1 * *\""
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Disallowed)
        .build()
        .parse(expr)
        .map_err(|e| format!("`{expr}` is not a valid cron expression: {e}"))
}

/// `report.schedule`: the parsed expression, and the text tokio-cron-scheduler is given.
#[derive(Clone)]
pub struct CronSchedule {
    expr: String,
    cron: Cron,
}

impl CronSchedule {
    pub fn parse(expr: &str) -> Result<Self, String> {
        Ok(Self {
            cron: parse_cron(expr)?,
            expr: expr.to_owned(),
        })
    }

    /// The schedule, for computing when it fires.
    pub fn cron(&self) -> &Cron {
        &self.cron
    }

    /// The expression as written, for the scheduler and logs.
    pub fn as_str(&self) -> &str {
        &self.expr
    }
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expr)
    }
}

impl fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CronSchedule({:?})", self.expr)
    }
}

impl<'de> Deserialize<'de> for CronSchedule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parsed(d, Self::parse)
    }
}

/// `smtp.url`, parsed: an SMTP transport ready to build, or none (empty URL: the file transport).
///
/// The URL may carry the SMTP password: no message and no `Debug` output ever contains it.
#[derive(Clone, Default)]
pub struct SmtpUrl(Option<Box<AsyncSmtpTransportBuilder>>);

impl SmtpUrl {
    /// Parses `smtp://user:pass@host:587?tls=required` or `smtps://…`; empty = no SMTP.
    pub fn parse(url: &str) -> Result<Self, String> {
        if url.is_empty() {
            return Ok(Self(None));
        }
        if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
            return Err("must start with smtp:// or smtps://".into());
        }
        // lettre's errors name what is wrong, never the URL itself.
        AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map(|builder| Self(Some(Box::new(builder))))
            .map_err(|e| format!("cannot be used: {e}"))
    }

    /// The SMTP transport to build, or `None` for the file transport.
    pub fn smtp(&self) -> Option<&AsyncSmtpTransportBuilder> {
        self.0.as_deref()
    }
}

impl fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hand-written: lettre's builder prints its credentials.
        match self.0 {
            Some(_) => f.write_str("SmtpUrl([REDACTED])"),
            None => f.write_str("SmtpUrl(none: file transport)"),
        }
    }
}

impl<'de> Deserialize<'de> for SmtpUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Read as a secret so the raw string is wiped once parsed.
        let url = secrecy::SecretString::deserialize(d)?;
        Self::parse(secrecy::ExposeSecret::expose_secret(&url)).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_smtp_url_never_shows_its_password() {
        let url = SmtpUrl::parse("smtp://u:pw-123@mail.example.com:587?tls=required").unwrap();
        assert!(url.smtp().is_some());
        assert!(!format!("{url:?}").contains("pw-123"));
        let err = SmtpUrl::parse("ftp://u:pw-123@host").unwrap_err();
        assert!(!err.contains("pw-123"), "{err}");
        assert!(SmtpUrl::parse("").unwrap().smtp().is_none());
    }

    #[test]
    fn a_cron_schedule_keeps_its_text() {
        let s = CronSchedule::parse("0 0 6 1 * *").unwrap();
        assert_eq!(s.to_string(), "0 0 6 1 * *");
        assert!(CronSchedule::parse("0 6 1 * *")
            .unwrap_err()
            .contains("6 fields"));
    }
}
