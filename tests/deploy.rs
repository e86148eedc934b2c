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

#[test]
fn secrets_and_keys_are_ignored_by_git_by_default() {
    let ignored = read(".gitignore");
    for rule in [
        ".env",
        "/deploy/kubernetes/base/secret.env",
        "certs/",
        "*.key",
        "*.pem",
    ] {
        assert!(
            ignored.lines().any(|l| l == rule),
            ".gitignore lacks {rule}"
        );
    }
    let dockerfile = read("deploy/Dockerfile");
    assert!(
        !dockerfile.lines().any(|l| l.starts_with("VOLUME")),
        "a VOLUME line leaves an anonymous volume behind on every docker run"
    );
    // The image needs BuildKit: both the README's install line and the compose guide say so.
    assert!(read("README.md").contains("DOCKER_BUILDKIT=1 docker build"));
    assert!(read("docs/operations.md").contains("DOCKER_BUILDKIT=1 docker build"));
}

/// The overlays as kustomize renders them (`kubectl kustomize`, installed by `.ci/run`; these
/// tests run with `--features e2e`, which needs the tools).
#[cfg(feature = "e2e")]
mod rendered {
    use std::process::Command;

    use super::read;

    /// A copy of deploy/kubernetes with the (git-ignored) secret file kustomize needs, the
    /// template standing in for it; made once for all tests, which run in parallel.
    fn tree() -> &'static std::path::Path {
        static TREE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
        TREE.get_or_init(|| {
            let root = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("kustomize-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            copy(
                &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes"),
                &root.join("kubernetes"),
            );
            let base = root.join("kubernetes/base");
            std::fs::copy(base.join("secret.env.example"), base.join("secret.env")).unwrap();
            // The two components in the other order than with-spool-tls.
            let reversed = root.join("kubernetes/tls-then-spool");
            std::fs::create_dir_all(&reversed).unwrap();
            std::fs::write(
                reversed.join("kustomization.yaml"),
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../base\ncomponents:\n  - ../tls\n  - ../spool\n",
            )
            .unwrap();
            root.join("kubernetes")
        })
    }

    fn copy(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            let target = to.join(path.file_name().unwrap());
            if path.is_dir() {
                copy(&path, &target);
            } else {
                std::fs::copy(&path, &target).unwrap();
            }
        }
    }

    /// One overlay (a directory under deploy/kubernetes) as rendered, split into documents.
    fn render(overlay: &str) -> Vec<String> {
        let output = Command::new("kubectl")
            .args(["kustomize", &tree().join(overlay).to_string_lossy()])
            .output()
            .expect("kubectl (apt-get install kubectl; .ci/run installs it)");
        assert!(
            output.status.success(),
            "{overlay}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .unwrap()
            .split("\n---\n")
            .map(String::from)
            .collect()
    }

    fn of_kind<'a>(docs: &'a [String], kind: &str) -> Vec<&'a String> {
        docs.iter()
            .filter(|d| d.lines().any(|l| l == format!("kind: {kind}")))
            .collect()
    }

    /// The bridge's workload: a Deployment, or with the spool a StatefulSet.
    fn workload(docs: &[String]) -> &String {
        let found: Vec<_> = of_kind(docs, "Deployment")
            .into_iter()
            .chain(of_kind(docs, "StatefulSet"))
            .collect();
        assert_eq!(found.len(), 1, "one workload");
        found[0]
    }

    #[test]
    fn every_overlay_renders_and_none_has_a_topic_job() {
        for overlay in [
            "base",
            "with-ingress",
            "with-tls",
            "with-spool",
            "with-spool-tls",
            "monitoring",
            "monitoring-tls",
        ] {
            let docs = render(overlay);
            assert!(
                of_kind(&docs, "Job").is_empty(),
                "{overlay}: a Job breaks re-applies"
            );
        }
        let base = render("base");
        let config = of_kind(&base, "ConfigMap");
        assert!(
            config[0].contains("KAFKA_CREATE_TOPICS: \"true\""),
            "{}",
            config[0]
        );
    }

    /// TLS and the spool combine in either order: the StatefulSet has the certificate mount,
    /// the spool mount, both variables, HTTPS probes and the volume claim.
    #[test]
    fn tls_and_the_spool_combine_in_either_order() {
        for dir in ["with-spool-tls", "tls-then-spool"] {
            let docs = render(dir);
            let set = workload(&docs);
            assert!(set.contains("kind: StatefulSet"), "{dir}");
            for wanted in [
                "mountPath: /etc/zego-kafka-bridge/tls",
                "mountPath: /var/lib/zego-kafka-bridge/spool",
                "name: TLS_CERT_FILE",
                "name: TLS_KEY_FILE",
                "name: SPOOL_DIR",
                "secretName: zego-kafka-bridge-tls",
                "volumeClaimTemplates:",
                "prometheus.io/scheme: https",
            ] {
                assert!(set.contains(wanted), "{dir}: no {wanted:?} in\n{set}");
            }
            assert_eq!(
                set.matches("scheme: HTTPS").count(),
                2,
                "{dir}: both probes"
            );
            assert!(
                of_kind(&docs, "HorizontalPodAutoscaler").is_empty(),
                "{dir}: spooling replicas are not autoscaled"
            );
        }
    }

    /// ZEGOCLOUD can reach a bridge serving HTTPS: a LoadBalancer on 443 to the pods.
    #[test]
    fn tls_gives_zegocloud_a_way_in_from_outside() {
        for overlay in ["with-tls", "with-spool-tls"] {
            let docs = render(overlay);
            let public = of_kind(&docs, "Service")
                .into_iter()
                .find(|s| s.contains("type: LoadBalancer"))
                .unwrap_or_else(|| panic!("{overlay}: no LoadBalancer Service"));
            assert!(public.contains("port: 443") && public.contains("targetPort: http"));
        }
        let plain = render("base");
        assert!(!plain.iter().any(|d| d.contains("type: LoadBalancer")));
    }

    /// The monitors carry the label kube-prometheus-stack selects by, and the TLS one scrapes
    /// HTTPS.
    #[test]
    fn monitors_load_into_kube_prometheus_stack_and_scrape_tls_over_https() {
        for overlay in ["monitoring", "monitoring-tls"] {
            let docs = render(overlay);
            for kind in ["PodMonitor", "PrometheusRule"] {
                let found = of_kind(&docs, kind);
                assert_eq!(found.len(), 1, "{overlay}: {kind}");
                assert!(
                    found[0].contains("release: kube-prometheus-stack"),
                    "{overlay}: {kind} carries no release label:\n{}",
                    found[0]
                );
            }
            let monitor = of_kind(&docs, "PodMonitor")[0];
            let https = monitor.contains("scheme: https");
            assert_eq!(https, overlay == "monitoring-tls", "{overlay}:\n{monitor}");
            let selector = monitor
                .split("selector:")
                .nth(1)
                .and_then(|s| s.split("podMetricsEndpoints").next())
                .unwrap_or_default();
            assert!(
                !selector.contains("release"),
                "the release label must not enter the pod selector:\n{monitor}"
            );
        }
    }

    /// Kafka egress: the common listener ports, one line each, so adding one is one line.
    #[test]
    fn the_network_policy_allows_the_usual_kafka_ports() {
        let policy = read("deploy/kubernetes/base/networkpolicy.yaml");
        for port in [9092, 9093, 9094, 9096, 9098] {
            assert!(
                policy.contains(&format!("- {{protocol: TCP, port: {port}}}")),
                "port {port}"
            );
        }
    }
}
