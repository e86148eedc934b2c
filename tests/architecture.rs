//! The module graph follows the data flow: a module imports only modules below it, so no import
//! runs back up (docs/architecture.md explains each layer).

use std::collections::BTreeSet;
use std::path::Path;

/// Layers from the bottom: a module may use its own layer's leaves only if listed lower.
const LAYERS: &[&[&str]] = &[
    // Leaves: no crate imports.
    &[
        "secret",
        "clock",
        "metrics",
        "logging",
        "refusals",
        "tls",
        "kafka_log",
    ],
    // Whether the broker answers and the process is stopping (uses `clock`).
    &["readiness"],
    // bytes → verified callback
    &["callback"],
    // verified callback → record → ack
    &["publish"],
    &["dedup"],
    &["spool"],
    // record → ack or spool stamp (dedupe, in-flight bound, spool, refused topic)
    &["deliver"],
    // outcome → answer
    &["routes"],
    // environment → each part's settings
    &["config"],
    &["startup"],
    // tools and test support sit on top
    &["cli", "testing"],
];

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|layer| layer.contains(&module))
        .unwrap_or_else(|| panic!("module {module} is not placed in a layer: add it to LAYERS"))
}

/// Every `crate::<module>` a file names.
fn imported_modules(text: &str) -> BTreeSet<String> {
    text.match_indices("crate::")
        .map(|(at, _)| {
            text[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

fn rust_files(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn no_module_imports_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut back_edges = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let top = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = top.trim_end_matches(".rs");
        if matches!(module, "lib" | "main") {
            continue;
        }
        // Tests may reach for the test-support module; only production code is checked.
        if relative.to_string_lossy().ends_with("tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        let production = text.split("#[cfg(test)]").next().unwrap_or_default();
        for used in imported_modules(production) {
            if used != module && layer_of(&used) >= layer_of(module) {
                back_edges.push(format!("{} uses crate::{used}", relative.display()));
            }
        }
    }
    assert!(
        back_edges.is_empty(),
        "imports against the data flow:\n{}",
        back_edges.join("\n")
    );
}

#[test]
fn the_check_sees_a_back_edge() {
    let uses = imported_modules("use crate::config::Settings; fn f() { crate::routes::x(); }");
    assert_eq!(uses.into_iter().collect::<Vec<_>>(), ["config", "routes"]);
    assert!(layer_of("config") > layer_of("callback"));
}
