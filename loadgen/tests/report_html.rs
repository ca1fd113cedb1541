//! report.html in a real headless browser (Debian's chromium): it renders, logs nothing to the
//! console, and its screenshot is not blank. Two control pages, one with a console error and
//! one blank, prove that each check can fail.
//!
//! Ignored by plain `cargo test` because it needs chromium; `.ci/run` installs chromium and runs
//! it with `cargo test -p imbench-loadgen --test report_html -- --ignored`.

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use imbench_loadgen::ServerSpec;
use util::{config, small_scenario_with};

/// What the browser made of a page.
struct Rendered {
    console: Vec<String>,
    /// Share of the screenshot's pixels that are not the page's white background.
    ink: f64,
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

fn render(page: &Path, dir: &Path) -> Rendered {
    let shot = dir.join(format!(
        "{}.png",
        page.file_stem().and_then(|s| s.to_str()).unwrap_or("page")
    ));
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--window-size=1100,1600",
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
    Rendered {
        console,
        ink: inked as f64 / pixels.max(1) as f64,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium; .ci/run installs it and runs this test"]
async fn the_html_report_renders_offline_without_console_errors() {
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
        !render(&noisy, &dir).console.is_empty(),
        "a console error must be seen"
    );
    let blank = dir.join("blank.html");
    std::fs::write(&blank, "<!DOCTYPE html><html><body></body></html>").unwrap();
    assert!(
        render(&blank, &dir).ink < 0.001,
        "a blank page must look blank"
    );

    let scenario = small_scenario_with(10, 10.0, Duration::from_millis(1500), "");
    let mut cfg = config(scenario, ServerSpec::Embedded);
    cfg.out_dir = Some(dir.join("run"));
    imbench_loadgen::run(cfg).await.expect("run");
    let page = dir.join("run").join("report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("<svg"), "the plots are inline SVG");
    assert!(!html.contains("<script"), "no script");
    for attr in ["src=\"http", "href=\"http", "url(http"] {
        assert!(
            !html.contains(attr),
            "nothing fetched from a network ({attr})"
        );
    }
    let rendered = render(&page, &dir);
    assert!(
        rendered.console.is_empty(),
        "console messages: {:?}",
        rendered.console
    );
    assert!(
        rendered.ink > 0.02,
        "the screenshot is nearly blank ({:.3} of its pixels inked)",
        rendered.ink
    );
    let _ = std::fs::remove_dir_all(&dir);
}
