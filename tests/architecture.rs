//! The layering check: no production module imports one in its own layer or above it (the
//! data flows one way; docs/architecture.md explains each layer). The module tree is read
//! with `syn` from `src/lib.rs` the way rustc finds modules (`mod x;` → `x.rs` or
//! `x/mod.rs`, `#[path]`), and every `use` tree (groups, `self`, `super`, globs) and every
//! path in code is resolved to the top-level module it reaches. Items and modules under
//! `#[cfg(test)]` are skipped: tests may reach for the test-support module.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// Layers from the bottom: a module may use only modules in layers below its own.
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

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("cfg")
            && attr
                .parse_args::<syn::Meta>()
                .is_ok_and(|meta| meta.path().is_ident("test"))
    })
}

fn path_attr(attrs: &[syn::Attribute]) -> Option<String> {
    attrs.iter().find_map(|attr| match &attr.meta {
        syn::Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Some(s.value()),
            _ => None,
        },
        _ => None,
    })
}

/// One module's edges: the file it is in, its path under the crate, what it reaches.
struct Reaches<'a> {
    file: &'a Path,
    module: Vec<String>,
    found: &'a mut Vec<(PathBuf, String, String)>,
}

impl Reaches<'_> {
    /// Resolves a path's leading segments (`crate`, `self`, `super`…) to a top-level module.
    fn reach(&mut self, segments: &[String]) {
        let Some(first) = segments.first() else {
            return;
        };
        let absolute: Vec<String> = match first.as_str() {
            "crate" => segments[1..].to_vec(),
            "self" | "super" => {
                let mut at = self.module.clone();
                let mut rest = segments;
                while let Some(head) = rest.first() {
                    match head.as_str() {
                        "self" => {}
                        "super" => {
                            at.pop();
                        }
                        _ => break,
                    }
                    rest = &rest[1..];
                }
                at.extend(rest.iter().cloned());
                at
            }
            _ => return,
        };
        if let (Some(top), Some(own)) = (absolute.first(), self.module.first()) {
            if top != own {
                self.found
                    .push((self.file.to_path_buf(), own.clone(), top.clone()));
            }
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut full = prefix.clone();
                full.push(n.ident.to_string());
                self.reach(&full);
            }
            syn::UseTree::Rename(r) => {
                let mut full = prefix.clone();
                full.push(r.ident.to_string());
                self.reach(&full);
            }
            syn::UseTree::Glob(_) => {
                let full = prefix.clone();
                self.reach(&full);
            }
            syn::UseTree::Group(g) => {
                for tree in &g.items {
                    self.use_tree(prefix, tree);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Reaches<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Fn(i) => &i.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Mod(i) => &i.attrs,
            syn::Item::Use(i) => &i.attrs,
            syn::Item::Const(i) => &i.attrs,
            syn::Item::Static(i) => &i.attrs,
            syn::Item::Struct(i) => &i.attrs,
            syn::Item::Enum(i) => &i.attrs,
            syn::Item::Trait(i) => &i.attrs,
            _ => return syn::visit::visit_item(self, item),
        };
        if is_cfg_test(attrs) {
            return;
        }
        match item {
            // Modules are walked by `walk`, with their own path.
            syn::Item::Mod(_) => {}
            syn::Item::Use(u) => self.use_tree(&mut Vec::new(), &u.tree),
            _ => syn::visit::visit_item(self, item),
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        self.reach(&segments);
        syn::visit::visit_path(self, path);
    }
}

/// Walks the module `module` whose items are `items`, in `file`; `dir` is where its child
/// modules' files are.
fn walk(
    file: &Path,
    dir: &Path,
    module: &[String],
    items: &[syn::Item],
    found: &mut Vec<(PathBuf, String, String)>,
) {
    let mut reaches = Reaches {
        file,
        module: module.to_vec(),
        found,
    };
    for item in items {
        reaches.visit_item(item);
    }
    for item in items {
        let syn::Item::Mod(child) = item else {
            continue;
        };
        if is_cfg_test(&child.attrs) {
            continue;
        }
        let name = child.ident.to_string();
        let mut path = module.to_vec();
        path.push(name.clone());
        match &child.content {
            Some((_, inline)) => walk(file, &dir.join(&name), &path, inline, found),
            None => {
                let child_file = match path_attr(&child.attrs) {
                    Some(relative) => file.parent().unwrap().join(relative),
                    None if dir.join(format!("{name}.rs")).exists() => {
                        dir.join(format!("{name}.rs"))
                    }
                    None => dir.join(&name).join("mod.rs"),
                };
                let text = std::fs::read_to_string(&child_file)
                    .unwrap_or_else(|e| panic!("{}: {e}", child_file.display()));
                let parsed = syn::parse_file(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}", child_file.display()));
                walk(&child_file, &dir.join(&name), &path, &parsed.items, found);
            }
        }
    }
}

/// Every import against the data flow in the crate rooted at `src/lib.rs`, as
/// "<file> uses crate::<module>".
fn back_edges(src: &Path) -> Vec<String> {
    let lib = src.join("lib.rs");
    let parsed = syn::parse_file(&std::fs::read_to_string(&lib).unwrap()).unwrap();
    let mut found = Vec::new();
    walk(&lib, src, &[], &parsed.items, &mut found);
    let edges: BTreeSet<String> = found
        .into_iter()
        .filter(|(_, own, used)| layer_of(used) >= layer_of(own))
        .map(|(file, _, used)| {
            format!(
                "{} uses crate::{used}",
                file.strip_prefix(src).unwrap_or(&file).display()
            )
        })
        .collect();
    edges.into_iter().collect()
}

#[test]
fn no_module_imports_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = back_edges(&src);
    assert!(
        edges.is_empty(),
        "imports against the data flow:\n{}",
        edges.join("\n")
    );
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// The check of the check: back edges injected into a copy of the sources, in the forms the
/// old text scan missed (after a `#[cfg(test)]` module declaration, in a `use crate::{…}`
/// group, through `super::super`, as a path in code), are each named; and a `crate::` use
/// inside a test module is not.
#[test]
fn the_check_names_every_injected_back_edge() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let copy = std::env::temp_dir().join(format!("architecture-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&copy);
    copy_tree(&src, &copy);
    let inject = |file: &str, text: &str| {
        let path = copy.join(file);
        let mut source = std::fs::read_to_string(&path).unwrap();
        source.push_str(text);
        std::fs::write(&path, source).unwrap();
    };
    inject(
        "spool/mod.rs",
        "\n#[allow(unused_imports)]\nuse crate::{clock, routes::AppState};\n",
    );
    inject(
        "deliver/refused.rs",
        "\n#[allow(unused_imports)]\nuse super::super::startup::Application;\n",
    );
    inject(
        "callback/event.rs",
        "\nfn _injected() -> usize { crate::config::VARIABLES.len() }\n",
    );
    inject(
        "publish/record.rs",
        "\n#[cfg(test)]\nmod injected_tests { use crate::testing::SECRET; }\n",
    );
    let edges = back_edges(&copy);
    let _ = std::fs::remove_dir_all(&copy);
    assert_eq!(
        edges,
        [
            "callback/event.rs uses crate::config",
            "deliver/refused.rs uses crate::startup",
            "spool/mod.rs uses crate::routes",
        ],
        "the injected back edges, and only those"
    );
}
