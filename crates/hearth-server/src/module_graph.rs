//! The shape of this crate, checked: its modules import each other without
//! a cycle, and only the edge and the background loops take the whole
//! server state. A test reads the sources (as `crates/hearth/tests/
//! architecture.rs` reads `cargo metadata` for the crate graph).

#![allow(clippy::expect_used)] // test: a failed step should panic

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The crate's top-level modules (`foo.rs`, `foo/mod.rs` and `foo/*.rs`
/// are `foo`) and, for each, the other top-level modules its non-test code
/// names through `crate::`.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = Vec::new();
    collect(&src, &mut files);
    for file in files {
        let relative = file.strip_prefix(&src).expect("under src").to_string_lossy().into_owned();
        let module = relative.split(['/', '.']).next().expect("a file name").to_owned();
        if module == "lib" || module == "module_graph" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("a readable source file");
        let uses = graph.entry(module.clone()).or_default();
        for target in crate_references(&text) {
            if target != module {
                uses.insert(target);
            }
        }
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for uses in graph.values_mut() {
        // `crate::Settings` and the like are the root's re-exports.
        uses.retain(|target| modules.contains(target));
    }
    graph
}

fn collect(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a readable directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
}

/// The modules named as `crate::name` in `text`, leaving out comments and
/// everything from the first `#[cfg(test)]` on (tests may reach anywhere).
fn crate_references(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.starts_with("#[cfg(test)]") {
            break;
        }
        if line.starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                found.insert(name);
            }
            rest = after;
        }
    }
    found
}

/// A cycle in `graph`, as the modules along it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = path.iter().position(|n| n == node).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(node.to_owned());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.to_owned(), Mark::Open);
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, marks, path) {
                return Some(cycle);
            }
        }
        path.pop();
        marks.insert(node.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    graph.keys().find_map(|node| visit(node, graph, &mut marks, &mut Vec::new()))
}

#[test]
fn the_module_graph_has_no_cycle() {
    let graph = module_graph();
    assert!(graph.contains_key("heartbeat") && graph.contains_key("auth"), "the reader finds the modules: {graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!("hearth-server's modules import each other in a cycle: {}", cycle.join(" → "));
    }
}

/// The whole `AppState` is for the HTTP edge (routes, extractors, the
/// middleware), the background loops that serve the whole server, and
/// startup, which builds it. Every other component is handed only what it
/// uses, so it can be built and tested without a server.
#[test]
fn only_the_edge_and_the_background_loops_take_the_whole_state() {
    let allowed = ["caller", "edge", "notices", "retention", "routes", "startup", "state", "sweeper"];
    let graph = module_graph();
    let takers: Vec<&String> = graph
        .iter()
        .filter(|(module, uses)| uses.contains("state") && !allowed.contains(&module.as_str()))
        .map(|(module, _)| module)
        .collect();
    assert!(takers.is_empty(), "these modules take the whole AppState; hand them what they use: {takers:?}");
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let edge = |from: &str, to: &[&str]| (from.to_owned(), to.iter().map(|t| (*t).to_owned()).collect());
    let graph: BTreeMap<String, BTreeSet<String>> =
        [edge("a", &["b"]), edge("b", &["c"]), edge("c", &["a"]), edge("d", &["a"])].into_iter().collect();
    assert_eq!(find_cycle(&graph), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
    let acyclic: BTreeMap<String, BTreeSet<String>> = [edge("a", &["b"]), edge("b", &[])].into_iter().collect();
    assert_eq!(find_cycle(&acyclic), None);
    let text =
        "use crate::auth::X;\n// crate::ignored\nfn f() { crate::metrics::a(); }\n#[cfg(test)]\nuse crate::state;";
    assert_eq!(crate_references(text), ["auth", "metrics"].into_iter().map(String::from).collect());
}
