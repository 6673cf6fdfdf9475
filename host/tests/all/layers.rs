//! The crate's layering, read from the sources: every module imports only
//! from its own layer or the layers below it, and no two modules import
//! each other, directly or through others (host and trainer alike). A
//! failure names the two files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each layer of `host/src` and the layers it may import from.
const LAYERS: &[(&str, &[&str])] = &[
    ("util", &[]),
    ("wasm", &["util"]),
    ("tree", &["util"]),
    ("llm", &["util"]),
    ("sandbox", &["util", "wasm"]),
    ("env", &["util", "wasm", "sandbox"]),
    ("agent", &["util", "tree", "llm", "env"]),
    (
        "jobs",
        &["util", "wasm", "tree", "llm", "sandbox", "env", "agent"],
    ),
];

/// The same for `trainer/src`: the network, the files it is read from and
/// written to, the commands' work.
const TRAINER_LAYERS: &[(&str, &[&str])] = &[
    ("setting", &[]),
    ("nn", &["setting"]),
    ("io", &["setting", "nn"]),
    ("jobs", &["setting", "nn", "io"]),
];

/// A module's path from the crate root, e.g. `["agent", "policy"]`.
type ModPath = Vec<String>;
/// Each module and the modules it imports from.
type Graph = BTreeMap<ModPath, BTreeSet<ModPath>>;

/// A module of a crate: its path from the crate root and its file.
struct Module {
    path: Vec<String>,
    file: PathBuf,
}

fn modules(src: &Path) -> Vec<Module> {
    let mut out = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(src).unwrap();
            if path.is_dir() {
                // The binary is a crate of its own.
                if rel != Path::new("bin") {
                    stack.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let mut parts: Vec<String> = rel
                .with_extension("")
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|l| l == "mod") || parts == ["lib"] || parts == ["main"] {
                parts.pop();
            }
            out.push(Module {
                path: parts,
                file: path,
            });
        }
    }
    out
}

/// Code without comments (doc links are not imports).
fn code_lines(text: &str) -> String {
    text.lines()
        .map(|l| match l.trim_start().starts_with("//") {
            true => "",
            false => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `a::{b, c::{d, e}}` -> `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![tree.split(" as ").next().unwrap().trim().to_string()];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap()];
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(expand)
        .map(|p| format!("{prefix}{p}"))
        .collect()
}

/// Every path a module names that starts at `crate`, `super` or `self`,
/// made absolute (without the leading `crate`).
fn imported_paths(module: &[String], text: &str) -> Vec<Vec<String>> {
    let code = code_lines(text);
    let mut raw: Vec<String> = Vec::new();
    // `use` statements, wherever a line starts one.
    let mut at = 0;
    while let Some(found) = code[at..].find("use ") {
        let start = at + found;
        at = start + 4;
        let line_start = code[..start].rfind('\n').map_or(0, |i| i + 1);
        let before = code[line_start..start].trim();
        if !matches!(before, "" | "pub" | "pub(crate)") {
            continue;
        }
        if let Some(end) = code[start..].find(';') {
            raw.extend(expand(&code[start + 4..start + end]));
        }
    }
    // Paths written out in code, e.g. `crate::util::hash::sha256_hex(..)`.
    for root in ["crate::", "super::", "self::"] {
        for (at, _) in code.match_indices(root) {
            if at > 0 && code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':')
            {
                continue;
            }
            let rest: String = code[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            raw.push(rest);
        }
    }
    raw.into_iter()
        .filter_map(|p| {
            let segs: Vec<&str> = p
                .split("::")
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            let mut base: Vec<String> = match *segs.first()? {
                "crate" => Vec::new(),
                "self" | "super" => module.to_vec(),
                _ => return None,
            };
            let mut rest = &segs[1..];
            if segs[0] == "super" {
                base.pop();
            }
            while rest.first() == Some(&"super") {
                base.pop();
                rest = &rest[1..];
            }
            base.extend(rest.iter().map(|s| s.to_string()));
            Some(base)
        })
        .collect()
}

/// Module -> the modules it imports from (self and the crate root excluded).
fn import_graph(src: &Path) -> (BTreeMap<ModPath, PathBuf>, Graph) {
    let mods = modules(src);
    let files: BTreeMap<ModPath, PathBuf> = mods
        .iter()
        .map(|m| (m.path.clone(), m.file.clone()))
        .collect();
    let mut graph = BTreeMap::new();
    for m in &mods {
        let text = std::fs::read_to_string(&m.file).unwrap();
        let mut targets = BTreeSet::new();
        for path in imported_paths(&m.path, &text) {
            // The longest prefix that is a module file.
            let target = (0..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| files.contains_key(p))
                .unwrap();
            if target != m.path && !target.is_empty() {
                targets.insert(target);
            }
        }
        graph.insert(m.path.clone(), targets);
    }
    (files, graph)
}

/// A cycle in `graph`, as its modules in order, if there is one.
fn find_cycle(graph: &Graph) -> Option<Vec<Vec<String>>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        node: &Vec<String>,
        graph: &Graph,
        marks: &mut BTreeMap<Vec<String>, Mark>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<Vec<String>>> {
        marks.insert(node.clone(), Mark::Open);
        stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            match marks.get(next).copied().unwrap_or(Mark::New) {
                Mark::Open => {
                    let from = stack.iter().position(|n| n == next).unwrap();
                    return Some(stack[from..].to_vec());
                }
                Mark::New => {
                    if let Some(cycle) = visit(next, graph, marks, stack) {
                        return Some(cycle);
                    }
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks.insert(node.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if marks.get(node).copied().unwrap_or(Mark::New) == Mark::New
            && let Some(cycle) = visit(node, graph, &mut marks, &mut Vec::new())
        {
            return Some(cycle);
        }
    }
    None
}

fn crate_src(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

fn no_cycles(src: &Path) {
    let (files, graph) = import_graph(src);
    assert!(graph.len() > 5, "no modules found under {}", src.display());
    if let Some(cycle) = find_cycle(&graph) {
        let names: Vec<String> = cycle
            .iter()
            .map(|m| files[m].display().to_string())
            .collect();
        panic!("import cycle: {} -> back to the first", names.join(" -> "));
    }
}

/// Every import of a module in `src` that goes to a layer not below its own.
fn layer_breaks(src: &Path, layers: &[(&str, &[&str])]) -> Vec<String> {
    let (files, graph) = import_graph(src);
    let layer_of = |m: &Vec<String>| m.first().cloned().unwrap_or_default();
    let mut violations = Vec::new();
    for (module, targets) in graph.iter().filter(|(m, _)| !m.is_empty()) {
        let layer = layer_of(module);
        let allowed = layers
            .iter()
            .find(|(name, _)| *name == layer)
            .unwrap_or_else(|| panic!("{} is in no layer", files[module].display()))
            .1;
        for target in targets {
            let theirs = layer_of(target);
            if theirs != layer && !allowed.contains(&theirs.as_str()) {
                violations.push(format!(
                    "{} imports {} (layer {theirs} is not below {layer})",
                    files[module].display(),
                    files[target].display()
                ));
            }
        }
    }
    violations
}

#[test]
fn host_modules_import_only_their_own_layer_or_lower_ones() {
    let violations = layer_breaks(&crate_src("src"), LAYERS);
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn trainer_modules_import_only_their_own_layer_or_lower_ones() {
    let violations = layer_breaks(&crate_src("../trainer/src"), TRAINER_LAYERS);
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn host_and_trainer_have_no_import_cycles() {
    no_cycles(&crate_src("src"));
    no_cycles(&crate_src("../trainer/src"));
}

#[test]
fn the_checker_sees_cycles_and_layer_breaks() {
    let dir = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "lib.rs",
        "pub mod a; pub mod b; pub mod c; pub mod d; pub mod e; pub mod f;",
    );
    write("a.rs", "use crate::b::{x, y::Z};\n");
    write("b/mod.rs", "pub mod y;\n");
    write(
        "b/y.rs",
        "pub fn f() { super::super::c::g() }\nuse super::super::c;\n",
    );
    write(
        "c.rs",
        "// crate::a is only a comment\npub fn g() { crate::a::h() }\n",
    );
    write("d.rs", "");
    write("e.rs", "");
    write("f.rs", "");
    let (_, graph) = import_graph(dir.path());
    let key = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(graph[&key(&["a"])].contains(&key(&["b", "y"])));
    assert!(graph[&key(&["b", "y"])].contains(&key(&["c"])));
    let cycle = find_cycle(&graph).expect("a -> b::y -> c -> a is a cycle");
    assert_eq!(cycle.len(), 3, "{cycle:?}");
    write("c.rs", "// crate::a is only a comment\npub fn g() {}\n");
    let (_, graph) = import_graph(dir.path());
    assert!(find_cycle(&graph).is_none());
    let layers: &[(&str, &[&str])] = &[
        ("a", &["b", "c"]),
        ("b", &["c"]),
        ("c", &[]),
        ("d", &[]),
        ("e", &[]),
        ("f", &[]),
    ];
    assert_eq!(layer_breaks(dir.path(), layers), Vec::<String>::new());
    write("c.rs", "pub fn g() { crate::b::y::f() }\n");
    let breaks = layer_breaks(dir.path(), layers);
    assert_eq!(breaks.len(), 1, "{breaks:?}");
    assert!(
        breaks[0].ends_with("(layer b is not below c)"),
        "{breaks:?}"
    );
}
