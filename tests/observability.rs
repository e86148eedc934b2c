//! The alert rules and the dashboard query only metrics the bridge exports, and the
//! PrometheusRule manifest holds exactly the rules of the Prometheus rule file.

use std::collections::BTreeSet;
use std::path::Path;

use zego_kafka_bridge::metrics::Metrics;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every series name the bridge can export: each labelled family touched once so it renders,
/// histograms with their `_bucket`, `_sum` and `_count`.
fn exported() -> BTreeSet<String> {
    let metrics = Metrics::new();
    metrics
        .callbacks
        .with_label_values(&["e", "200", "ok"])
        .inc();
    metrics
        .publish_seconds
        .with_label_values(&["acked"])
        .observe(0.1);
    metrics
        .producer_replacements
        .with_label_values(&["fenced"])
        .inc();
    metrics.signed_with_secret(1);
    let mut names = BTreeSet::new();
    for line in metrics.render().lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
            names.insert(name.to_string());
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
        }
    }
    names
}

/// Every `zego_…` name a text mentions.
fn queried(text: &str) -> BTreeSet<String> {
    text.match_indices("zego_")
        .map(|(at, _)| {
            text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .collect()
}

#[test]
fn dashboard_and_alerts_query_only_exported_metrics() {
    let exported = exported();
    assert!(exported.contains("zego_callbacks_total"), "{exported:?}");
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/zego-kafka-bridge.json")).unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect();
    assert!(exprs.len() >= 10, "{exprs:?}");
    for (source, text) in [
        ("dashboard", exprs.join("\n")),
        ("alert rules", read("deploy/prometheus/alerts.yaml")),
    ] {
        let unknown: Vec<_> = queried(&text)
            .into_iter()
            .filter(|name| !exported.contains(name) && name != "zego_")
            .collect();
        assert!(
            unknown.is_empty(),
            "{source} queries metrics the bridge does not export: {unknown:?}"
        );
    }
}

#[test]
fn the_prometheus_rule_manifest_holds_the_rule_file() {
    let rules = read("deploy/prometheus/alerts.yaml");
    let groups = &rules[rules.find("groups:").unwrap()..];
    let manifest = read("deploy/kubernetes/monitoring/prometheusrule.yaml");
    let spec = &manifest[manifest.find("spec:\n").unwrap() + "spec:\n".len()..];
    let unindented: String = spec
        .lines()
        .map(|l| l.strip_prefix("  ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(unindented.trim_end(), groups.trim_end());
}
