//! What a job upload asks for — a kind or a migration phase, the options, the file format —
//! parsed by one function for both ways in: `POST /api/v1/jobs` (query parameters and the
//! Content-Type) and `okta-adapter import` (flags and the file name).
//!
//! A migration phase wins over a kind (it is a kind with preset options); options given
//! explicitly override the phase's presets.

use std::path::Path;

use super::rows::{phase, JobKind, JobOptions};
use super::store::FileFormat;

/// The raw request, as the caller received it.
#[derive(Debug, Default)]
pub struct JobParams<'a> {
    /// `kind`: create, update, activate, … (see [`JobKind`]).
    pub kind: Option<&'a str>,
    /// `phase`: `create` or `activate`, the migration phases.
    pub phase: Option<&'a str>,
    /// `csv` or `jsonl` (also `ndjson`); when absent, [`JobParams::format_hint`] decides.
    pub format: Option<&'a str>,
    pub activate: Option<bool>,
    pub password_hook: Option<bool>,
    pub send_email: Option<bool>,
    /// The group of every row of a group job.
    pub group_id: Option<String>,
    /// Where the format comes from when `format` is not given.
    pub format_hint: FormatHint<'a>,
}

/// What tells the file format when the request does not name it.
#[derive(Debug, Default, Clone, Copy)]
pub enum FormatHint<'a> {
    /// No hint: CSV.
    #[default]
    None,
    /// The upload's Content-Type: JSON lines when it mentions `json` (application/x-ndjson,
    /// application/jsonl…).
    ContentType(&'a str),
    /// The file's name: JSON lines for `.jsonl`, `.ndjson` and `.json`.
    FileName(&'a Path),
}

/// A parsed job request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRequest {
    pub kind: JobKind,
    pub options: JobOptions,
    pub format: FileFormat,
}

/// Why a job request was refused; the message is for the person who made it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobRequestError {
    #[error("unknown phase `{0}`; create or activate")]
    UnknownPhase(String),
    #[error("unknown job kind `{0}`")]
    UnknownKind(String),
    #[error("give a `kind` or a `phase`")]
    NoKind,
    #[error("unknown format `{0}`; csv or jsonl")]
    UnknownFormat(String),
}

/// Parses a job request; nothing is read or written.
pub fn parse_job_request(p: JobParams<'_>) -> Result<JobRequest, JobRequestError> {
    let (kind, mut options) = match (p.kind, p.phase) {
        (_, Some(name)) => phase(name).ok_or_else(|| JobRequestError::UnknownPhase(name.into()))?,
        (Some(k), None) => (
            JobKind::parse(k).ok_or_else(|| JobRequestError::UnknownKind(k.into()))?,
            JobOptions::default(),
        ),
        (None, None) => return Err(JobRequestError::NoKind),
    };
    if let Some(v) = p.activate {
        options.activate = v;
    }
    if let Some(v) = p.password_hook {
        options.password_hook = v;
    }
    if let Some(v) = p.send_email {
        options.send_email = v;
    }
    options.group_id = p.group_id.or(options.group_id);
    let format = match p.format {
        Some("csv") => FileFormat::Csv,
        Some("jsonl" | "ndjson") => FileFormat::JsonLines,
        Some(other) => return Err(JobRequestError::UnknownFormat(other.into())),
        None => match p.format_hint {
            FormatHint::ContentType(c) if c.contains("json") => FileFormat::JsonLines,
            FormatHint::FileName(path)
                if matches!(
                    path.extension().and_then(|e| e.to_str()),
                    Some("jsonl" | "ndjson" | "json")
                ) =>
            {
                FileFormat::JsonLines
            }
            _ => FileFormat::Csv,
        },
    };
    Ok(JobRequest {
        kind,
        options,
        format,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(p: JobParams<'_>) -> Result<JobRequest, JobRequestError> {
        parse_job_request(p)
    }

    #[test]
    fn a_phase_is_a_kind_with_preset_options_and_wins_over_a_kind() {
        let r = parse(JobParams {
            kind: Some("delete"),
            phase: Some("create"),
            ..JobParams::default()
        })
        .unwrap();
        assert_eq!(r.kind, JobKind::Create);
        assert!(r.options.password_hook && !r.options.activate);
        let r = parse(JobParams {
            phase: Some("activate"),
            send_email: Some(true),
            ..JobParams::default()
        })
        .unwrap();
        assert_eq!(r.kind, JobKind::Activate);
        assert!(
            r.options.send_email,
            "an explicit option overrides the preset"
        );
    }

    #[test]
    fn a_kind_takes_the_options_given_and_the_group() {
        let r = parse(JobParams {
            kind: Some("add-to-group"),
            group_id: Some("00g1".into()),
            activate: Some(true),
            password_hook: Some(true),
            ..JobParams::default()
        })
        .unwrap();
        assert_eq!(r.kind, JobKind::AddToGroup);
        assert_eq!(r.options.group_id.as_deref(), Some("00g1"));
        assert!(r.options.activate && r.options.password_hook && !r.options.send_email);
        assert_eq!(r.format, FileFormat::Csv);
    }

    #[test]
    fn unknown_kinds_phases_and_formats_and_no_kind_are_refused_by_name() {
        let err = |p| parse(p).unwrap_err().to_string();
        assert_eq!(
            err(JobParams {
                phase: Some("migrate"),
                ..JobParams::default()
            }),
            "unknown phase `migrate`; create or activate"
        );
        assert_eq!(
            err(JobParams {
                kind: Some("purge"),
                ..JobParams::default()
            }),
            "unknown job kind `purge`"
        );
        assert_eq!(err(JobParams::default()), "give a `kind` or a `phase`");
        assert_eq!(
            err(JobParams {
                kind: Some("create"),
                format: Some("xlsx"),
                ..JobParams::default()
            }),
            "unknown format `xlsx`; csv or jsonl"
        );
    }

    #[test]
    fn the_format_is_named_or_read_from_the_content_type_or_the_file_name() {
        let format = |format, format_hint| {
            parse(JobParams {
                kind: Some("update"),
                format,
                format_hint,
                ..JobParams::default()
            })
            .unwrap()
            .format
        };
        use FileFormat::{Csv, JsonLines};
        assert_eq!(
            format(Some("csv"), FormatHint::ContentType("application/x-ndjson")),
            Csv
        );
        assert_eq!(format(Some("ndjson"), FormatHint::None), JsonLines);
        assert_eq!(format(Some("jsonl"), FormatHint::None), JsonLines);
        assert_eq!(
            format(None, FormatHint::ContentType("application/x-ndjson")),
            JsonLines
        );
        assert_eq!(format(None, FormatHint::ContentType("text/csv")), Csv);
        assert_eq!(
            format(None, FormatHint::FileName(Path::new("u.jsonl"))),
            JsonLines
        );
        assert_eq!(
            format(None, FormatHint::FileName(Path::new("u.json"))),
            JsonLines
        );
        assert_eq!(
            format(None, FormatHint::FileName(Path::new("u.ndjson"))),
            JsonLines
        );
        assert_eq!(format(None, FormatHint::FileName(Path::new("u.csv"))), Csv);
        assert_eq!(format(None, FormatHint::FileName(Path::new("users"))), Csv);
        assert_eq!(format(None, FormatHint::None), Csv);
    }
}
