//! `quorum check --html` in a real headless browser: the page must load
//! without a console message (our script logs nothing, so any message is an
//! error) and draw one bar per operation, with the witness outlined. The
//! negative control breaks the page's script and must be caught.
//!
//! Needs Chromium (`apt-get install -y chromium`, or `QUORUM_CHROMIUM=path`);
//! without it these tests fail and say how to install it, unless
//! `QUORUM_SKIP_BROWSER=1`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::quorum;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../check/tests/data/porcupine-kv");

fn chromium() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("QUORUM_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// The browser, or `None` if the test is to be skipped; panics, saying how
/// to install it, when it is missing and skipping was not asked for.
fn browser() -> Option<PathBuf> {
    if std::env::var("QUORUM_SKIP_BROWSER").is_ok_and(|v| v == "1") {
        eprintln!("QUORUM_SKIP_BROWSER=1: the headless browser test is skipped");
        return None;
    }
    let found = chromium();
    assert!(
        found.is_some(),
        "no Chromium found (chromium, chromium-browser, google-chrome on PATH, or QUORUM_CHROMIUM): \
         install it with `apt-get install -y chromium`, or set QUORUM_SKIP_BROWSER=1 to skip this test"
    );
    found
}

/// What the browser made of a page: the DOM after the scripts ran, and the
/// console messages it logged.
struct Rendered {
    dom: String,
    console: Vec<String>,
}

impl Rendered {
    /// The class list of every op bar (the legend's swatches excluded).
    fn op_classes(&self) -> Vec<&str> {
        self.dom.split("class=\"op ").skip(1).map(|rest| rest.split('"').next().unwrap_or("")).collect()
    }

    fn op_count(&self) -> usize {
        self.op_classes().len()
    }
}

fn render(browser: &Path, page: &Path) -> Rendered {
    let profile = tempfile::tempdir().expect("temp dir");
    let out = Command::new(browser)
        .args(["--headless", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr", "--v=0"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    let console = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|line| line.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    Rendered { dom: String::from_utf8_lossy(&out.stdout).into_owned(), console }
}

/// `quorum check FILE --html PAGE`, returning the page's path.
fn write_page(history: &str, dir: &Path) -> PathBuf {
    let page = dir.join("history.html");
    let file = format!("{DATA}/{history}");
    let out = quorum(&["check", &file, "--html", page.to_str().expect("utf-8 path")]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", String::from_utf8_lossy(&out.stderr));
    page
}

fn invokes(history: &str) -> usize {
    let text = std::fs::read_to_string(format!("{DATA}/{history}")).expect("history file");
    text.matches(":invoke").count()
}

#[test]
fn a_failing_history_renders_every_op_and_its_witness_without_errors() {
    let Some(browser) = browser() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let page = write_page("c10-bad.txt", dir.path());
    let rendered = render(&browser, &page);
    assert!(rendered.console.is_empty(), "console messages: {:?}", rendered.console);
    assert_eq!(rendered.op_count(), invokes("c10-bad.txt"));
    assert!(rendered.dom.contains(&format!("data-rendered=\"{}\"", invokes("c10-bad.txt"))));
    let witness = rendered.op_classes().iter().filter(|c| c.contains("witness")).count();
    assert!(witness > 0, "the witness is outlined");
    assert!(rendered.dom.contains("not linearizable"));
}

#[test]
fn a_linearizable_history_renders_with_every_op_ranked() {
    let Some(browser) = browser() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let page = write_page("c01-ok.txt", dir.path());
    let rendered = render(&browser, &page);
    assert!(rendered.console.is_empty(), "console messages: {:?}", rendered.console);
    assert_eq!(rendered.op_count(), invokes("c01-ok.txt"));
    // One client, every op ok: all ranked, none outside the linearization.
    assert_eq!(rendered.dom.matches("class=\"rank\"").count(), invokes("c01-ok.txt"));
    assert!(rendered.op_classes().iter().all(|c| !c.contains("unranked")));
}

#[test]
fn negative_control_a_broken_script_is_caught() {
    let Some(browser) = browser() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let page = write_page("c01-bad.txt", dir.path());
    let text = std::fs::read_to_string(&page).expect("page");
    let broken = text.replacen("\"use strict\";", "\"use strict\"; undefinedViewerFunction();", 1);
    assert_ne!(text, broken, "the viewer script starts with \"use strict\"");
    std::fs::write(&page, broken).expect("write page");
    let rendered = render(&browser, &page);
    assert!(
        rendered.console.iter().any(|line| line.contains("undefinedViewerFunction")),
        "the error must reach the console: {:?}",
        rendered.console
    );
    assert_eq!(rendered.op_count(), 0);
}
