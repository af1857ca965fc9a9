//! From a [`MonthlyReport`] to what people read: HTML and plain text from the templates in
//! `reports/templates/` (minijinja, compiled into the binary), and the chart.
//!
//! Both templates get the same view model with every number already formatted, so the HTML and
//! the text part cannot disagree.

use minijinja::value::{Serde, Value};
use minijinja::{context, Environment};
use serde::Serialize;

use super::chart;
use super::compile::{Counts, HookHealth, MfaShare, MonthlyReport};
/// Number words live in `words`, which the report's own sentences (`compile`) use too.
pub use super::words::{count_of, thousands};

const HTML_TEMPLATE: &str = include_str!("../../reports/templates/report.html.j2");
const TEXT_TEMPLATE: &str = include_str!("../../reports/templates/report.txt.j2");

/// A report ready to send or save.
#[derive(Debug, Clone)]
pub struct RenderedReport {
    pub subject: String,
    pub html: String,
    pub text: String,
    pub chart_png: Vec<u8>,
}

/// Tenants with a detail table in the email (largest first). Gmail clips messages above
/// ~100 KB and nobody reads 200 tables in a mail; every tenant still has its row in the tenant
/// table, and the JSON report and previews have every detail table.
pub const EMAIL_DETAIL_TENANTS: usize = 25;

/// Where the HTML finds the chart: `cid:` in email, a file next to a preview, or inline data.
#[derive(Debug, Clone, Copy)]
pub enum ChartRef<'a> {
    /// As mailed: the chart by Content-ID, detail tables for `EMAIL_DETAIL_TENANTS` tenants.
    ContentId,
    File(&'a str),
    DataUri,
}

#[derive(Debug, Serialize)]
struct Row {
    label: String,
    value: String,
    previous: String,
    change: String,
    /// `up`, `down` or `flat`, for colour.
    trend: &'static str,
}

#[derive(Debug, Serialize)]
struct TenantView {
    name: String,
    active: String,
    active_change: String,
    sign_ins: String,
    failed: String,
    new_users: String,
    deactivations: String,
    mfa: String,
    /// The share with how many users it was measured on.
    mfa_detail: String,
    rows: Vec<Row>,
    /// It had events last month (or is configured) and none this month.
    no_events: bool,
}

/// Month-over-month change: `+12.5%`, `-3.0%`, `0%`, `new` (from zero), `–` (zero both months).
pub fn change(cur: u64, prev: u64) -> (String, &'static str) {
    match (cur, prev) {
        (0, 0) => ("–".into(), "flat"),
        (_, 0) => ("new".into(), "up"),
        _ if cur == prev => ("0%".into(), "flat"),
        _ => {
            let pct = (cur as f64 - prev as f64) * 100.0 / prev as f64;
            (format!("{pct:+.1}%"), if pct > 0.0 { "up" } else { "down" })
        }
    }
}

fn pct(share: Option<f64>) -> String {
    share
        .map(|s| format!("{:.1}%", s * 100.0))
        .unwrap_or_else(|| "–".into())
}

fn rows(cur: &Counts, prev: &Counts, keep_zero: bool) -> Vec<Row> {
    cur.rows()
        .into_iter()
        .zip(prev.rows())
        .filter(|((_, c), (_, p))| keep_zero || *c > 0 || *p > 0)
        .map(|((label, c), (_, p))| {
            let (change, trend) = change(c, p);
            Row {
                label: label.to_string(),
                value: thousands(c),
                previous: thousands(p),
                change,
                trend,
            }
        })
        .collect()
}

fn mfa_text(m: &MfaShare, overall: bool) -> String {
    match m.share {
        None => "–".into(),
        // Across tenants the share is weighted by each tenant's active users.
        Some(s) if overall => format!(
            "{:.1}% (weighted by tenant; {} checked)",
            s * 100.0,
            count_of(m.checked, "active user", "active users")
        ),
        Some(s) if m.checked >= super::aggregate::MFA_SAMPLE as u64 => format!(
            "{:.1}% ({} of a sample of {})",
            s * 100.0,
            thousands(m.with_factor),
            thousands(m.checked)
        ),
        Some(s) => format!(
            "{:.1}% ({} of {})",
            s * 100.0,
            thousands(m.with_factor),
            thousands(m.checked)
        ),
    }
}

fn mfa_detail(m: &MfaShare) -> String {
    match m.share {
        None => "no active users".into(),
        Some(_) => format!(
            "of {} checked",
            count_of(m.checked, "active user", "active users")
        ),
    }
}

fn hook_rows(h: &HookHealth, p: &HookHealth) -> Vec<Row> {
    let n = |label: &str, c: u64, pr: u64| {
        let (change, trend) = change(c, pr);
        Row {
            label: label.into(),
            value: thousands(c),
            previous: thousands(pr),
            change,
            trend,
        }
    };
    let ms = |v: &Option<String>| match v.as_deref() {
        None => "–".to_string(),
        Some("inf") => "> 5000 ms".to_string(),
        Some(b) => format!("≤ {b} ms"),
    };
    vec![
        n("Events received", h.events_received, p.events_received),
        n(
            "Duplicates dropped",
            h.duplicates_dropped,
            p.duplicates_dropped,
        ),
        n(
            "Deliveries answered 503",
            h.unavailable_503,
            p.unavailable_503,
        ),
        {
            // A hole the hooks left that backfill filled; zero reads "none".
            let none_or = |v: u64| match v {
                0 => "none".to_string(),
                v => thousands(v),
            };
            let (change, trend) = change(h.backfilled, p.backfilled);
            Row {
                label: "Events won back by System Log backfill".into(),
                value: none_or(h.backfilled),
                previous: none_or(p.backfilled),
                change,
                trend,
            }
        },
        Row {
            label: "Ingest p99 latency".into(),
            value: ms(&h.ingest_p99_ms),
            previous: ms(&p.ingest_p99_ms),
            change: String::new(),
            trend: "flat",
        },
        Row {
            label: "Inline hook p99 latency".into(),
            value: ms(&h.inline_p99_ms),
            previous: ms(&p.inline_p99_ms),
            change: String::new(),
            trend: "flat",
        },
    ]
}

/// The hours (UTC) that had events won back by backfill, as one line ("" when none).
fn backfilled_hours(h: &HookHealth) -> String {
    const SHOWN: usize = 48;
    let mut parts: Vec<String> = h
        .backfilled_hours
        .iter()
        .take(SHOWN)
        .map(|b| {
            format!(
                "{}:00 ({})",
                b.hour.replacen('T', " ", 1),
                thousands(b.events)
            )
        })
        .collect();
    if h.backfilled_hours.len() > SHOWN {
        parts.push(format!(
            "and {} more hours",
            h.backfilled_hours.len() - SHOWN
        ));
    }
    parts.join(", ")
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // Column padding for the text part (counted in characters, not bytes: "–" is one column).
    fn pad(s: String, width: usize, left: bool) -> String {
        let n = s.chars().count();
        if n >= width {
            return s;
        }
        let fill = " ".repeat(width - n);
        if left {
            format!("{s}{fill}")
        } else {
            format!("{fill}{s}")
        }
    }
    env.add_filter("rpad", |s: String, w: usize| pad(s, w, true));
    env.add_filter("lpad", |s: String, w: usize| pad(s, w, false));
    env.add_template("report.html", HTML_TEMPLATE)
        .expect("the HTML template parses (checked by tests)");
    env.add_template("report.txt", TEXT_TEMPLATE)
        .expect("the text template parses (checked by tests)");
    env
}

/// Renders the report; `chart_ref` says how the HTML points at the chart.
pub fn render_report(report: &MonthlyReport, chart_ref: ChartRef<'_>) -> RenderedReport {
    let title = format!("Daily sign-ins, {}", report.month_name);
    let svg = chart::daily_sign_ins_svg(&report.daily_sign_ins, &title);
    let chart_png = chart::svg_to_png(&svg).unwrap_or_else(|e| {
        // The numbers matter more than the picture: send without a chart rather than not at all.
        tracing::warn!(error = %e, "chart could not be drawn");
        Vec::new()
    });
    let chart_src = match chart_ref {
        ChartRef::ContentId => format!("cid:{}", chart::CHART_CONTENT_ID),
        ChartRef::File(name) => name.to_string(),
        ChartRef::DataUri => {
            use base64::Engine;
            format!(
                "data:image/png;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(&chart_png)
            )
        }
    };
    let tenants: Vec<TenantView> = report
        .tenants
        .iter()
        .map(|t| TenantView {
            name: if t.tenant == super::aggregate::NO_TENANT {
                "(no tenant known)".into()
            } else {
                t.tenant.clone()
            },
            active: thousands(t.counts.active_users),
            active_change: change(t.counts.active_users, t.previous.active_users).0,
            sign_ins: thousands(t.counts.sign_ins_ok),
            failed: thousands(t.counts.sign_ins_failed),
            new_users: thousands(t.counts.new_users),
            deactivations: thousands(t.counts.deactivations),
            mfa: pct(t.mfa.share),
            mfa_detail: mfa_text(&t.mfa, false),
            rows: rows(&t.counts, &t.previous, false),
            no_events: t.no_events,
        })
        .collect();
    let detail_count = match chart_ref {
        ChartRef::ContentId => tenants.len().min(EMAIL_DETAIL_TENANTS),
        _ => tenants.len(),
    };
    let o = &report.overview;
    let failed_share = if o.sign_ins_ok + o.sign_ins_failed > 0 {
        format!(
            "{:.1}%",
            o.sign_ins_failed as f64 * 100.0 / (o.sign_ins_ok + o.sign_ins_failed) as f64
        )
    } else {
        "–".into()
    };
    let silent = report.tenants.iter().filter(|t| t.no_events).count() as u64;
    let subject = format!(
        "{}IAM report {}: {}{}",
        if report.warnings.is_empty() {
            ""
        } else {
            "⚠ "
        },
        report.month_name,
        if report.no_events {
            "no events recorded, check the event hook".to_string()
        } else if silent > 0 {
            format!(
                "{}, {} without events",
                count_of(o.active_users, "active user", "active users"),
                count_of(silent, "tenant", "tenants")
            )
        } else {
            count_of(o.active_users, "active user", "active users")
        },
        if report.complete {
            ""
        } else {
            " (month in progress)"
        }
    );
    let ctx = context! {
        subject => &subject,
        month => &report.month,
        month_name => &report.month_name,
        previous_month => &report.previous_month,
        timezone => &report.timezone,
        generated_at => &report.generated_at,
        complete => report.complete,
        warnings => &report.warnings,
        no_events => report.no_events,
        // Built here from base64 or a fixed Content-ID, never from input: safe to emit as is
        // (auto-escaping would turn the `/` of a data URI into an entity).
        chart_src => Value::from_safe_string(chart_src),
        has_chart => !chart_png.is_empty(),
        active => thousands(o.active_users),
        active_change => change(o.active_users, report.overview_previous.active_users).0,
        sign_ins => thousands(o.sign_ins_ok),
        failed_share => failed_share,
        mfa => mfa_text(&report.overview_mfa, true),
        mfa_value => pct(report.overview_mfa.share),
        mfa_detail => mfa_detail(&report.overview_mfa),
        tenant_count => report.tenants.len(),
        overview => Value::from(Serde(rows(o, &report.overview_previous, true))),
        details => Value::from(Serde(&tenants[..detail_count])),
        details_omitted => tenants.len() - detail_count,
        tenants => Value::from(Serde(&tenants)),
        hooks => Value::from(Serde(hook_rows(&report.hooks, &report.hooks_previous))),
        inline => Value::from(Serde(&report.hooks.inline_decisions)),
        backfilled_hours => backfilled_hours(&report.hooks),
        sample => super::aggregate::MFA_SAMPLE,
    };
    let env = environment();
    let render = |name: &str| {
        env.get_template(name)
            .and_then(|t| t.render(&ctx))
            .unwrap_or_else(|e| panic!("template {name} renders: {e:#}"))
    };
    RenderedReport {
        html: render("report.html"),
        text: render("report.txt"),
        subject,
        chart_png,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_changes_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(change(110, 100).0, "+10.0%");
        assert_eq!(change(90, 100), ("-10.0%".to_string(), "down"));
        assert_eq!(change(5, 0).0, "new");
        assert_eq!(change(0, 0).0, "–");
    }

    #[test]
    fn the_email_details_the_largest_tenants_and_previews_detail_all() {
        use super::super::compile::{DailySignIns, TenantReport};
        let tenant = |i: u64| TenantReport {
            tenant: format!("tenant-{i:03}"),
            counts: Counts {
                active_users: 1000 - i,
                sign_ins_ok: 5000 - i,
                ..Counts::default()
            },
            previous: Counts::default(),
            mfa: MfaShare::default(),
            no_events: false,
        };
        let report = MonthlyReport {
            month: "2026-10".into(),
            month_name: "October 2026".into(),
            previous_month: "2026-09".into(),
            timezone: "UTC".into(),
            generated_at: "2026-11-01T06:00:00Z".into(),
            complete: true,
            overview: Counts::default(),
            overview_previous: Counts::default(),
            overview_mfa: MfaShare::default(),
            tenants: (0..40).map(tenant).collect(),
            hooks: HookHealth::default(),
            hooks_previous: HookHealth::default(),
            daily_sign_ins: vec![DailySignIns {
                day: 1,
                ok: 1,
                failed: 0,
            }],
            no_events: false,
            warnings: Vec::new(),
        };
        let email = render_report(&report, ChartRef::ContentId);
        let details = |s: &str| s.matches("id=\"tenant-").count();
        assert_eq!(details(&email.html), EMAIL_DETAIL_TENANTS);
        assert!(email
            .html
            .contains("The 15 smaller tenants are in the tenant table"));
        assert!(email
            .text
            .contains("The 15 smaller tenants are in the tenant table"));
        assert!(
            email.text.contains("tenant-039"),
            "every tenant has its row"
        );
        assert!(email.html.len() < 100_000, "{} bytes", email.html.len());
        let preview = render_report(&report, ChartRef::DataUri);
        assert_eq!(details(&preview.html), 40);
    }

    #[test]
    fn counts_take_the_right_plural() {
        assert_eq!(count_of(1, "active user", "active users"), "1 active user");
        assert_eq!(count_of(0, "active user", "active users"), "0 active users");
        assert_eq!(count_of(1234, "tenant", "tenants"), "1,234 tenants");
        let one = MfaShare {
            checked: 1,
            with_factor: 1,
            share: Some(1.0),
        };
        assert_eq!(mfa_detail(&one), "of 1 active user checked");
        assert_eq!(
            mfa_text(&one, true),
            "100.0% (weighted by tenant; 1 active user checked)"
        );
    }
}
