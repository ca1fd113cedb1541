//! report.html and capacity.html in a real headless browser (Debian's chromium), at a wide and
//! a narrow window: they render, log nothing to the console, every chart placeholder gets its
//! chart (uPlot, inlined) no wider than the window, and the screenshot is not blank. Control
//! pages prove that each check can fail: one with a console error, one blank, and the report
//! with its chart library taken out.
//!
//! Ignored by plain `cargo test` because it needs chromium; `.ci/run` installs chromium and runs
//! it with `cargo test -p imbench-loadgen --test report_html -- --ignored`.

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The window widths every page is looked at: a laptop, and a narrow window.
const WIDTHS: [u32; 2] = [1200, 600];

/// What the browser made of a page.
struct Rendered {
    console: Vec<String>,
    /// Share of the screenshot's pixels that are not the page's white background.
    ink: f64,
    /// Charts drawn, as the page's script counted them (`None`: the script did not finish).
    drawn: Option<usize>,
    /// Chart placeholders in the page after its scripts ran.
    placeholders: usize,
    /// Each drawn chart's width in CSS pixels.
    widths: Vec<u32>,
}

fn chromium() -> PathBuf {
    let path = std::env::var_os("IMBENCH_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("chromium"));
    let found = Command::new(&path).arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "{} not found: install Debian's chromium (apt-get install chromium) or set IMBENCH_CHROMIUM",
        path.display()
    );
    path
}

fn render(page: &Path, dir: &Path, width: u32) -> Rendered {
    let shot = dir.join(format!(
        "{}-{width}.png",
        page.file_stem().and_then(|s| s.to_str()).unwrap_or("page")
    ));
    let window = format!("--window-size={width},1600");
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            &window,
            "--virtual-time-budget=5000",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(out.status.success(), "chromium failed: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let console = stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    let decoder = png::Decoder::new(std::fs::File::open(&shot).expect("screenshot written"));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("PNG pixels");
    let bytes = &buf[..info.buffer_size()];
    let channels = info.color_type.samples();
    let pixels = bytes.len() / channels;
    let inked = bytes
        .chunks(channels)
        .filter(|p| p.iter().take(3).any(|&c| c < 240))
        .count();
    // The page as it stands after its scripts ran.
    let dom = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            &window,
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    let numbers = |attr: &str| -> Vec<u32> {
        dom.match_indices(attr)
            .filter_map(|(at, _)| {
                let rest = &dom[at + attr.len()..];
                rest[..rest.find('"')?].parse().ok()
            })
            .collect()
    };
    Rendered {
        console,
        ink: inked as f64 / pixels.max(1) as f64,
        drawn: numbers("data-charts-drawn=\"").first().map(|&n| n as usize),
        placeholders: dom.matches("class=\"plot\"").count(),
        widths: numbers("data-width=\""),
    }
}

/// Checks one page at every width: no console message, charts in every placeholder and no
/// wider than the window, ink on the screenshot.
fn looks_right(page: &Path, dir: &Path, at_least: usize) {
    for width in WIDTHS {
        let r = render(page, dir, width);
        let name = format!("{} at {width}px", page.display());
        assert!(
            r.console.is_empty(),
            "{name}: console messages: {:?}",
            r.console
        );
        assert!(
            r.placeholders >= at_least,
            "{name}: {} chart placeholders, expected at least {at_least}",
            r.placeholders
        );
        assert_eq!(r.drawn, Some(r.placeholders), "{name}: charts drawn");
        assert_eq!(
            r.widths.len(),
            r.placeholders,
            "{name}: widths {:?}",
            r.widths
        );
        assert!(
            r.widths.iter().all(|&w| w > 100 && w <= width),
            "{name}: chart widths {:?} for a {width}px window",
            r.widths
        );
        assert!(
            r.ink > 0.02,
            "{name}: the screenshot is nearly blank ({:.3} of its pixels inked)",
            r.ink
        );
    }
}

/// Runs the imbench binary in `dir`.
/// Runs imbench in `dir`; it must succeed.
fn imbench(dir: &Path, args: &[&str]) {
    let (out, text) = util::imbench_in(dir, args);
    assert!(out.status.success(), "imbench {args:?}: {text}");
}

#[test]
#[ignore = "needs chromium; .ci/run installs it and runs this test"]
fn the_html_pages_render_offline_with_their_charts_at_two_widths() {
    let dir = std::env::temp_dir().join(format!("imbench-html-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    // The controls: the checks below must be able to fail.
    let noisy = dir.join("noisy.html");
    std::fs::write(
        &noisy,
        "<!DOCTYPE html><html><body><p>x</p><script>console.error('control')</script></body></html>",
    )
    .unwrap();
    assert!(
        !render(&noisy, &dir, WIDTHS[0]).console.is_empty(),
        "a console error must be seen"
    );
    let blank = dir.join("blank.html");
    std::fs::write(&blank, "<!DOCTYPE html><html><body></body></html>").unwrap();
    assert!(
        render(&blank, &dir, WIDTHS[0]).ink < 0.001,
        "a blank page must look blank"
    );

    // Two transports, so the comparison is drawn too; and a short capacity search.
    // Two seconds measured, so the charts over time have a line to draw.
    std::fs::write(
        dir.join("s.toml"),
        util::TINY_TOML.replace("duration = \"1s\"", "duration = \"2s\""),
    )
    .unwrap();
    imbench(
        &dir,
        &[
            "run",
            "s.toml",
            "--transport",
            "quic,tcp",
            "--progress",
            "quiet",
            "--out",
            "run",
        ],
    );
    imbench(
        &dir,
        &[
            "run",
            "s.toml",
            "--find-max",
            "--max-steps",
            "2",
            "--refine",
            "0",
            "--slo",
            "direct.p99 < 10s",
            "--progress",
            "quiet",
            "--out",
            "search",
        ],
    );
    let page = dir.join("run").join("report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    for part in [
        "At a glance",
        "Comparison",
        "Latency distribution",
        "Over time",
        "Each run",
    ] {
        assert!(html.contains(&format!("<h2>{part}</h2>")), "{part} missing");
    }
    for attr in ["src=\"http", "href=\"http", "url(http", "<script src"] {
        assert!(
            !html.contains(attr),
            "nothing fetched from anywhere ({attr})"
        );
    }
    // Latency of connect, ack and direct; clients, rates, direct latency and lag over time.
    looks_right(&page, &dir, 7);
    looks_right(&dir.join("search").join("capacity.html"), &dir, 2);

    // The report without its chart library: the charts check must fail.
    let start = html
        .find("<script>/*! https://github.com/leeoniya/uPlot")
        .expect("uPlot inlined");
    let end = start + html[start..].find("</script>").unwrap() + "</script>".len();
    let broken = dir.join("run").join("broken.html");
    std::fs::write(&broken, format!("{}{}", &html[..start], &html[end..])).unwrap();
    let r = render(&broken, &dir, WIDTHS[0]);
    assert!(
        r.placeholders > 0 && r.drawn != Some(r.placeholders),
        "charts must be missed"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
