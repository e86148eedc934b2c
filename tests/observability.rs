//! The alert rules and the dashboard query only metrics the bridge exports, and the
//! PrometheusRule manifest holds exactly the rules of the Prometheus rule file.

use std::collections::BTreeSet;
use std::path::Path;

use zego_kafka_bridge::metrics::Metrics;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every series name the bridge can export, histograms with their `_bucket`, `_sum` and
/// `_count`. Every labelled metric is present from the start (its combinations at 0) except
/// `zego_callbacks_total`, whose combinations appear as answers are given: touched once here.
fn exported() -> BTreeSet<String> {
    let metrics = Metrics::new();
    metrics.answered("call_accept", "call", "200", "ok");
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
    // The operator's questions each have a panel: the spool and the refused topic too.
    let all = exprs.join("\n");
    for wanted in [
        "zego_refusals_total",
        "zego_spool_records",
        "zego_spool_oldest_age_seconds",
        "zego_spool_bytes",
        "zego_spool_limit_bytes",
        "zego_spool_write_failures_total",
        "zego_refused_kept_total",
    ] {
        assert!(
            all.contains(wanted),
            "the dashboard has no panel on {wanted}"
        );
    }
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

/// Every labelled metric except the answer counter renders before its first event: a dashboard
/// or `increase()` sees its first change.
#[test]
fn every_label_combination_the_code_can_emit_is_present_from_the_start() {
    let rendered = Metrics::new().render();
    for series in [
        r#"zego_producer_replacements_total{reason="stalled"} 0"#,
        r#"zego_producer_replacements_total{reason="fenced"} 0"#,
        r#"zego_publish_duration_seconds_count{outcome="failed"} 0"#,
        r#"zego_refused_kept_total{outcome="dropped"} 0"#,
        r#"zego_spool_damaged_total{kind="unreadable"} 0"#,
        r#"zego_refusals_total{code="invalid_signature",path="ai-agent"} 0"#,
        r#"zego_signature_secret_total{secret="2"} 0"#,
    ] {
        assert!(
            rendered.contains(series),
            "{series} missing from:\n{rendered}"
        );
    }
}
