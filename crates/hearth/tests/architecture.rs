//! The dependency invariants of ARCHITECTURE.md, checked over `cargo
//! metadata` so that a change cannot break them silently.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a failed step should panic

use std::collections::BTreeMap;

use serde_json::Value;

/// sqlx features that compile a database driver in.
const SQLX_DRIVERS: &[&str] = &["postgres", "sqlite", "sqlite-unbundled", "mysql", "any"];

/// sqlx features that compile a TLS stack in: a connection concern of the
/// engine that speaks TLS to its server (Postgres), like the driver itself.
fn is_sqlx_tls(feature: &str) -> bool {
    feature.starts_with("tls-") || feature.starts_with("runtime-tokio-") || feature.starts_with("runtime-async-std-")
}

/// package name → its dependencies (name, kind, features), every kind.
fn workspace() -> BTreeMap<String, Vec<(String, String, Vec<String>)>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml");
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline", "--manifest-path", manifest])
        .output()
        .expect("run cargo metadata");
    assert!(output.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata JSON");
    let mut packages = BTreeMap::new();
    for package in metadata["packages"].as_array().expect("packages") {
        let deps = package["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .map(|d| {
                let features = d["features"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_owned());
                (
                    d["name"].as_str().unwrap().to_owned(),
                    d["kind"].as_str().unwrap_or("normal").to_owned(),
                    features.collect(),
                )
            })
            .collect();
        packages.insert(package["name"].as_str().unwrap().to_owned(), deps);
    }
    assert!(packages.len() >= 10, "the workspace's crates: {:?}", packages.keys());
    packages
}

#[test]
fn only_the_engine_crates_enable_a_sqlx_driver_even_in_dev_dependencies() {
    for (package, deps) in workspace() {
        for (name, kind, features) in deps.iter().filter(|(name, ..)| name == "sqlx") {
            let drivers: Vec<&String> = features.iter().filter(|f| SQLX_DRIVERS.contains(&f.as_str())).collect();
            let engine = package == "hearth-store-pg" || package == "hearth-store-sqlite";
            assert!(
                engine || drivers.is_empty(),
                "{package} enables sqlx driver(s) {drivers:?} ({kind} dependency {name})"
            );
        }
    }
}

#[test]
fn only_the_postgres_engine_enables_sqlx_tls() {
    for (package, deps) in workspace() {
        for (name, kind, features) in deps.iter().filter(|(name, ..)| name == "sqlx") {
            let tls: Vec<&String> = features.iter().filter(|f| is_sqlx_tls(f)).collect();
            assert!(
                package == "hearth-store-pg" || tls.is_empty(),
                "{package} enables sqlx TLS feature(s) {tls:?} ({kind} dependency {name}); only hearth-store-pg may"
            );
        }
    }
}

#[test]
fn the_layers_depend_only_downwards() {
    let packages = workspace();
    let hearth_deps = |package: &str| -> Vec<String> {
        packages[package]
            .iter()
            .filter(|(n, k, _)| n.starts_with("hearth") && k == "normal")
            .map(|(n, ..)| n.clone())
            .collect()
    };
    assert!(hearth_deps("hearth-core").is_empty(), "hearth-core depends on no workspace crate");
    assert_eq!(hearth_deps("hearth-api"), ["hearth-core"], "hearth-api sits on core only");
    for forbidden in ["hearth-server", "hearth-store", "hearth-store-sql", "hearth-store-pg", "hearth-store-sqlite"] {
        assert!(
            !hearth_deps("hearth-client").iter().any(|d| d == forbidden),
            "hearth-client must not depend on {forbidden}"
        );
    }
    assert!(
        !packages["hearth-store"].iter().any(|(n, ..)| n == "sqlx"),
        "hearth-store (the trait and the conformance suite) has no sqlx at all"
    );
    for engine in ["hearth-store-pg", "hearth-store-sqlite"] {
        let deps = hearth_deps(engine);
        assert!(deps.contains(&"hearth-store-sql".to_owned()), "{engine} uses the one SQL store");
        assert!(!deps.iter().any(|d| d == "hearth-core"), "{engine} holds no domain logic: {deps:?}");
    }
}
