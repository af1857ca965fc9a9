//! The report's chart: daily sign-ins as stacked bars, drawn as SVG and rasterised to PNG with
//! resvg. PNG because mail clients drop SVG and `data:` images; the font is embedded (DejaVu
//! Sans, reports/fonts/) so the chart looks the same on a server without fonts.

use std::sync::{Arc, OnceLock};

use resvg::{tiny_skia, usvg};

use super::compile::DailySignIns;

const FONT: &[u8] = include_bytes!("../../reports/fonts/DejaVuSans.ttf");
pub const WIDTH: u32 = 720;
pub const HEIGHT: u32 = 300;
const OK_COLOUR: &str = "#2f6fb0";
const FAIL_COLOUR: &str = "#d1495b";

/// The Content-ID of the chart in the email (`cid:` in the HTML).
pub const CHART_CONTENT_ID: &str = "daily-sign-ins@okta-adapter";

fn fontdb() -> Arc<usvg::fontdb::Database> {
    static DB: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = usvg::fontdb::Database::new();
        db.load_font_data(FONT.to_vec());
        db.set_sans_serif_family("DejaVu Sans");
        Arc::new(db)
    })
    .clone()
}

/// A "nice" axis maximum at or above `max` whose quarters are round: 4, 8, 10 or 20 × 10^n.
fn nice_max(max: u64) -> u64 {
    if max == 0 {
        return 4;
    }
    let mut step = 1u64;
    loop {
        for top in [4, 8, 10, 20] {
            if step * top >= max {
                return step * top;
            }
        }
        step *= 10;
    }
}

fn short(n: u64) -> String {
    match n {
        n if n >= 1_000_000 => format!("{}M", trim(n as f64 / 1e6)),
        n if n >= 1_000 => format!("{}k", trim(n as f64 / 1e3)),
        n => n.to_string(),
    }
}

fn trim(x: f64) -> String {
    let s = format!("{x:.1}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

/// The chart as SVG (also what the PNG is made from).
pub fn daily_sign_ins_svg(days: &[DailySignIns], title: &str) -> String {
    let (left, right, top, bottom) = (56.0, 16.0, 44.0, 36.0);
    let (w, h) = (WIDTH as f64, HEIGHT as f64);
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let max = nice_max(days.iter().map(|d| d.ok + d.failed).max().unwrap_or(0));
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="DejaVu Sans" font-size="11">
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="{left}" y="20" font-size="14" font-weight="bold" fill="#1f2933">{title}</text>
<rect x="{lx}" y="10" width="10" height="10" fill="{OK_COLOUR}"/><text x="{ltx}" y="19" fill="#3e4c59">successful</text>
<rect x="{fx}" y="10" width="10" height="10" fill="{FAIL_COLOUR}"/><text x="{ftx}" y="19" fill="#3e4c59">failed</text>
"##,
        title = escape(title),
        lx = w - right - 170.0,
        ltx = w - right - 156.0,
        fx = w - right - 70.0,
        ftx = w - right - 56.0,
    );
    for i in 0..=4 {
        let v = max * i / 4;
        let y = top + plot_h - plot_h * i as f64 / 4.0;
        svg.push_str(&format!(
            r##"<line x1="{left}" y1="{y}" x2="{x2}" y2="{y}" stroke="#e4e7eb"/><text x="{tx}" y="{ty}" text-anchor="end" fill="#616e7c">{label}</text>
"##,
            x2 = w - right,
            tx = left - 6.0,
            ty = y + 4.0,
            label = short(v)
        ));
    }
    let slot = plot_w / days.len().max(1) as f64;
    let bar = (slot * 0.7).max(1.0);
    for (i, d) in days.iter().enumerate() {
        let x = left + slot * i as f64 + (slot - bar) / 2.0;
        let ok_h = plot_h * d.ok as f64 / max as f64;
        let fail_h = plot_h * d.failed as f64 / max as f64;
        let base = top + plot_h;
        // A day without events has no bar: a zero-height <rect> is invalid SVG, and usvg logs
        // a warning for each one (dozens per report on a quiet month).
        for (h, y, colour) in [
            (ok_h, base - ok_h, OK_COLOUR),
            (fail_h, base - ok_h - fail_h, FAIL_COLOUR),
        ] {
            if (h * 10.0).round() > 0.0 {
                svg.push_str(&format!(
                    r##"<rect x="{x:.1}" y="{y:.1}" width="{bar:.1}" height="{h:.1}" fill="{colour}"/>"##
                ));
            }
        }
        svg.push('\n');
        if d.day == 1 || d.day % 5 == 0 {
            svg.push_str(&format!(
                r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#616e7c">{}</text>
"##,
                x + bar / 2.0,
                base + 16.0,
                d.day
            ));
        }
    }
    svg.push_str(&format!(
        r##"<line x1="{left}" y1="{y}" x2="{x2}" y2="{y}" stroke="#9aa5b1"/>
<text x="{cx}" y="{by}" text-anchor="middle" fill="#616e7c">day of month</text>
</svg>"##,
        y = top + plot_h,
        x2 = w - right,
        cx = left + plot_w / 2.0,
        by = h - 4.0,
    ));
    svg
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Rasterises an SVG at 2× (sharp on high-density screens) to PNG bytes.
pub fn svg_to_png(svg: &str) -> Result<Vec<u8>, String> {
    let opt = usvg::Options {
        fontdb: fontdb(),
        ..usvg::Options::default()
    };
    let tree = usvg::Tree::from_str(svg, &opt).map_err(|e| format!("chart SVG: {e}"))?;
    let scale = 2.0;
    let size = tree
        .size()
        .to_int_size()
        .scale_by(scale)
        .ok_or("chart size")?;
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height()).ok_or("chart pixmap")?;
    resvg::render(
        &tree,
        tiny_skia::Transform::from_scale(scale, scale),
        &mut pixmap.as_mut(),
    );
    pixmap.encode_png().map_err(|e| format!("chart PNG: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_is_a_png_with_the_axis_scaled_to_the_busiest_day() {
        let days: Vec<DailySignIns> = (1..=30)
            .map(|day| DailySignIns {
                day,
                ok: day as u64 * 10,
                failed: 3,
            })
            .collect();
        let svg = daily_sign_ins_svg(&days, "Daily sign-ins, October 2026");
        assert!(svg.contains(">400<"), "axis tops at a nice 400 for 303");
        let png = svg_to_png(&svg).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        assert!(png.len() > 5_000, "text and bars were drawn");
    }

    #[test]
    fn days_without_events_draw_no_zero_height_bars() {
        let days: Vec<DailySignIns> = (1..=30)
            .map(|day| DailySignIns {
                day,
                ok: if day == 3 { 5 } else { 0 },
                failed: 0,
            })
            .collect();
        let svg = daily_sign_ins_svg(&days, "Daily sign-ins, October 2026");
        assert!(!svg.contains(r#"height="0.0""#), "{svg}");
        assert_eq!(svg.matches(FAIL_COLOUR).count(), 1, "only the legend");
        assert_eq!(svg.matches(OK_COLOUR).count(), 2, "the legend and day 3");
    }

    #[test]
    fn nice_maxima() {
        assert_eq!(nice_max(0), 4);
        assert_eq!(nice_max(3), 4);
        assert_eq!(nice_max(303), 400);
        assert_eq!(nice_max(8_100), 10_000);
        assert_eq!(nice_max(1_234_567), 2_000_000);
        assert_eq!(short(2_500), "2.5k");
    }
}
