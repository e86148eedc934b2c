//! Deployment files agree with the bridge: every variable docker-compose, `.env.example` and
//! the Kubernetes ConfigMap/Secret set is one the bridge reads, and the required ones are set.

use std::collections::BTreeSet;
use std::path::Path;

use zego_kafka_bridge::config::{REQUIRED_VARIABLES, VARIABLES, VARIABLE_PREFIXES};

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn is_read_by_bridge(name: &str) -> bool {
    VARIABLES.contains(&name) || VARIABLE_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// `KEY=value` lines of a dotenv file.
fn dotenv_keys(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_string()))
        .collect()
}

/// Keys of the `environment:` mapping of one compose service (indentation-based, as written).
fn compose_environment(text: &str, service: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut in_service = false;
    let mut in_env = false;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if indent == 2 && trimmed.ends_with(':') {
            in_service = trimmed == format!("{service}:");
            in_env = false;
        } else if in_service && indent == 4 {
            in_env = trimmed == "environment:";
        } else if in_service && in_env && indent == 6 {
            if let Some((key, _)) = trimmed.split_once(':') {
                keys.insert(key.to_string());
            }
        }
    }
    keys
}

/// `KEY=value` lines of a dotenv file, including commented-out examples (`# KEY=value`), so
/// the SASL example is checked too.
fn dotenv_keys_with_examples(text: &str) -> BTreeSet<String> {
    let uncommented: Vec<&str> = text
        .lines()
        .map(|l| l.trim().trim_start_matches("# "))
        .filter(|l| {
            l.split_once('=').is_some_and(|(k, _)| {
                !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            })
        })
        .collect();
    dotenv_keys(&uncommented.join("\n"))
}

#[test]
fn compose_sets_only_variables_the_bridge_reads_and_every_required_one() {
    let compose = read("docker-compose.yml");
    let bridge = compose_environment(&compose, "bridge");
    assert!(
        !bridge.is_empty(),
        "no environment found for the bridge service"
    );
    let unknown: Vec<_> = bridge.iter().filter(|k| !is_read_by_bridge(k)).collect();
    assert!(
        unknown.is_empty(),
        "compose sets variables the bridge ignores: {unknown:?}"
    );
    for required in REQUIRED_VARIABLES {
        assert!(
            bridge.contains(*required),
            "compose does not set {required}"
        );
    }
    let tail = compose_environment(&compose, "tail");
    assert!(
        tail.contains("KAFKA_BROKERS") && tail.iter().all(|k| is_read_by_bridge(k)),
        "{tail:?}"
    );
}

#[test]
fn env_example_documents_only_variables_the_bridge_reads() {
    let keys = dotenv_keys(&read(".env.example"));
    // COMPOSE_ variables configure the compose file itself, not the bridge.
    let unknown: Vec<_> = keys
        .iter()
        .filter(|k| !k.starts_with("COMPOSE_") && !is_read_by_bridge(k))
        .collect();
    assert!(
        unknown.is_empty(),
        ".env.example sets variables the bridge ignores: {unknown:?}"
    );
    assert!(keys.contains("ZEGO_CALLBACK_SECRET"));
    // Every variable the compose file interpolates from the host is documented.
    let compose = read("docker-compose.yml");
    for interpolated in compose
        .split("${")
        .skip(1)
        .filter_map(|s| s.split([':', '-', '}']).next())
    {
        assert!(
            keys.contains(interpolated),
            ".env.example lacks {interpolated}"
        );
    }
}

#[test]
fn kubernetes_config_sets_only_variables_the_bridge_reads_and_every_required_one() {
    let config = dotenv_keys_with_examples(&read("deploy/kubernetes/base/bridge.env"));
    let secret = dotenv_keys_with_examples(&read("deploy/kubernetes/base/secret.env.example"));
    let all: BTreeSet<_> = config.union(&secret).cloned().collect();
    let unknown: Vec<_> = all.iter().filter(|k| !is_read_by_bridge(k)).collect();
    assert!(
        unknown.is_empty(),
        "manifests set variables the bridge ignores: {unknown:?}"
    );
    for required in REQUIRED_VARIABLES {
        assert!(all.contains(*required), "manifests do not set {required}");
    }
    assert!(
        secret.contains("ZEGO_CALLBACK_SECRET") && !config.contains("ZEGO_CALLBACK_SECRET"),
        "the secret belongs in the Secret"
    );
    assert!(secret.contains("KAFKA_OPT_SASL_PASSWORD"), "{secret:?}");
}

#[test]
fn placeholders_never_pass_for_real_secrets() {
    // An empty secret makes compose's `:?` guard and the bridge's own check fire; a
    // placeholder value would be trusted.
    for file in [".env.example", "deploy/kubernetes/base/secret.env.example"] {
        let text = read(file);
        let line = text
            .lines()
            .find(|l| l.starts_with("ZEGO_CALLBACK_SECRET="))
            .unwrap_or_else(|| panic!("{file} has no ZEGO_CALLBACK_SECRET line"));
        assert_eq!(line, "ZEGO_CALLBACK_SECRET=", "{file}");
    }
}

#[test]
fn compose_passes_env_through_and_tail_has_no_bridge_healthcheck() {
    let compose = read("docker-compose.yml");
    assert!(
        compose.contains("env_file: .env"),
        "the bridge gets the whole .env"
    );
    let tail = compose.split("\n  tail:").nth(1).expect("a tail service");
    assert!(
        tail.contains("disable: true"),
        "tail must not inherit the bridge's healthcheck"
    );
}

#[test]
fn the_image_builds_without_tests_benches_or_examples() {
    // Every target Cargo.toml declares outside src/ gets a stand-in in the Dockerfile.
    let manifest = read("Cargo.toml");
    let dockerfile = read("deploy/Dockerfile");
    let ignored = read(".dockerignore");
    for path in manifest
        .lines()
        .filter_map(|l| l.strip_prefix("path = \""))
        .map(|p| p.trim_end_matches('"'))
        .filter(|p| !p.starts_with("src/"))
    {
        assert!(
            dockerfile.contains(path),
            "the Dockerfile does not stub {path}"
        );
    }
    for dir in ["tests", "bench", "examples"] {
        assert!(
            ignored.lines().any(|l| l == dir),
            ".dockerignore keeps {dir}"
        );
    }
}
