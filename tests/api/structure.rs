//! The shape of the code, checked: the event catalogue is the one the code declares, every
//! domain's tables are named only inside that domain, the domain dependency graph has no cycle
//! (and ARCHITECTURE.md draws it as it is), and domains never reach into the API layer. Each
//! check is a function over source text, also run here on a deliberate violation, so a check
//! that could not fail would fail its own test.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Every `.rs` file under `dir`, with its path relative to the crate and its text.
fn sources(dir: &str) -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut paths = Vec::new();
    walk(&Path::new(ROOT).join(dir), &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let rel = p.strip_prefix(ROOT).unwrap().to_string_lossy().into_owned();
            (rel, text)
        })
        .collect()
}

/// The domain a source file belongs to (`src/domains/<name>/...`), if any.
fn domain_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("src/domains/")?;
    let (name, _) = rest.split_once('/')?;
    Some(name)
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The domains a file's text names through `domains::<name>` paths, grouped imports
/// (`domains::{a, b::c}`) included.
fn named_domains(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("domains::") {
        rest = &rest[at + "domains::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let end = group
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '{' => 1,
                        '}' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(group.len(), |(i, _)| i);
            let mut depth = 0;
            let mut item = String::new();
            for c in group[..end].chars().chain([',']) {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        let name: String =
                            item.trim().chars().take_while(|c| is_ident(*c)).collect();
                        if !name.is_empty() && name != "self" {
                            out.insert(name);
                        }
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
        } else {
            let name: String = rest.chars().take_while(|c| is_ident(*c)).collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// domain → the other domains its files name.
fn domain_graph(files: &[(String, String)]) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, text) in files {
        let Some(me) = domain_of(path) else { continue };
        let deps = graph.entry(me.to_owned()).or_default();
        for d in named_domains(text) {
            if d != me {
                deps.insert(d);
            }
        }
    }
    let known: BTreeSet<String> = graph.keys().cloned().collect();
    for deps in graph.values_mut() {
        deps.retain(|d| known.contains(d));
    }
    graph
}

/// A cycle of the graph, as the path that closes it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(c) = visit(node, graph, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

/// The graph as ARCHITECTURE.md draws it (Mermaid).
fn mermaid(graph: &BTreeMap<String, BTreeSet<String>>) -> String {
    let mut out = String::from("```mermaid\nflowchart TD\n");
    for (from, deps) in graph {
        if deps.is_empty() {
            out.push_str(&format!("    {from}\n"));
        }
        for to in deps {
            out.push_str(&format!("    {from} --> {to}\n"));
        }
    }
    out.push_str("```\n");
    out
}

/// The table constants a domain declares in its `tables!` blocks.
fn declared_tables(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::tables! {") {
        rest = &rest[at..];
        let end = rest.find("\n}").unwrap_or(rest.len());
        for line in rest[..end].lines().skip(1) {
            let line = line.trim();
            if line.starts_with("//") {
                continue;
            }
            if let Some((name, _)) = line.split_once(':') {
                let name = name.trim();
                if !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                {
                    out.insert(name.to_owned());
                }
            }
        }
        rest = &rest[end..];
    }
    out
}

/// The stored names (`= "ledger_journal";`) of the tables a file declares.
fn stored_table_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::tables! {") {
        rest = &rest[at..];
        let end = rest.find("\n}").unwrap_or(rest.len());
        for line in rest[..end].lines() {
            if let Some((_, lit)) = line.trim().rsplit_once("= \"")
                && let Some(name) = lit.strip_suffix("\";")
            {
                out.insert(name.to_owned());
            }
        }
        rest = &rest[end..];
    }
    out
}

/// Source files (not tests, which may tamper with a file as an outsider would) that open a
/// domain's table by its stored name outside that domain: (file, table name).
fn tables_opened_by_name(files: &[(String, String)]) -> Vec<(String, String)> {
    let mut owned: Vec<(String, String)> = Vec::new();
    for (path, text) in files {
        if let Some(d) = domain_of(path) {
            owned.extend(
                stored_table_names(text)
                    .into_iter()
                    .map(|n| (d.to_owned(), n)),
            );
        }
    }
    let mut out = Vec::new();
    for (path, text) in files {
        // Only a table definition of one's own opens a table by name; the same word in a
        // string elsewhere (an event type, a JSON key) is no access.
        if path.starts_with("tests/") || !text.contains("TableDefinition") {
            continue;
        }
        for (owner, name) in &owned {
            if domain_of(path) != Some(owner.as_str()) && text.contains(&format!("\"{name}\"")) {
                out.push((path.clone(), name.clone()));
            }
        }
    }
    out
}

/// Whether `text` names `ident` as a whole word.
fn names(text: &str, ident: &str) -> bool {
    text.match_indices(ident).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + ident.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// Files that name a table of a domain they are not in: (file, owner, table).
fn table_violations(files: &[(String, String)]) -> Vec<(String, String, String)> {
    let mut owned: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, text) in files {
        if let Some(d) = domain_of(path) {
            owned
                .entry(d.to_owned())
                .or_default()
                .extend(declared_tables(text));
        }
    }
    let mut out = Vec::new();
    for (path, text) in files {
        let me = domain_of(path);
        let mine = me.and_then(|d| owned.get(d));
        for (owner, tables) in &owned {
            if Some(owner.as_str()) == me {
                continue;
            }
            for table in tables {
                // The same name declared by the file's own domain is its own table.
                if mine.is_some_and(|m| m.contains(table)) {
                    continue;
                }
                if names(text, table) {
                    out.push((path.clone(), owner.clone(), table.clone()));
                }
            }
        }
    }
    out
}

/// Domain files other than routes (`api.rs`, which are the API layer) that reach into the API
/// layer (its modules or the WebSocket hub).
fn api_reaches(files: &[(String, String)]) -> Vec<String> {
    files
        .iter()
        .filter(|(path, _)| domain_of(path).is_some() && !path.ends_with("/api.rs"))
        .filter(|(_, text)| text.contains("crate::api") || text.contains(".hub"))
        .map(|(path, _)| path.clone())
        .collect()
}

fn all_sources() -> Vec<(String, String)> {
    let mut files = sources("src");
    files.extend(sources("benches"));
    // This file spells table names in its own checks' examples.
    files.extend(
        sources("tests")
            .into_iter()
            .filter(|(path, _)| !path.ends_with("structure.rs")),
    );
    files
}

#[test]
fn the_domain_dependency_graph_has_no_cycle_and_architecture_md_draws_it() {
    let graph = domain_graph(&sources("src"));
    assert!(graph.len() >= 16, "every domain is in the graph: {graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "the domains depend on each other in a cycle: {}",
            cycle.join(" → ")
        );
    }
    let path = format!("{ROOT}/ARCHITECTURE.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let (start, end) = ("<!-- domain-graph:start -->\n", "<!-- domain-graph:end -->");
    let (Some(a), Some(b)) = (doc.find(start), doc.find(end)) else {
        panic!("ARCHITECTURE.md has no {start:?} … {end:?} section");
    };
    let drawn = &doc[a + start.len()..b];
    let actual = mermaid(&graph);
    if drawn != actual {
        if std::env::var_os("UPDATE_SCHEMA").is_some() {
            let updated = format!("{}{actual}{}", &doc[..a + start.len()], &doc[b..]);
            std::fs::write(&path, updated).unwrap();
        } else {
            panic!(
                "ARCHITECTURE.md's dependency picture is stale: run `UPDATE_SCHEMA=1 cargo test structure` and commit it\n{actual}"
            );
        }
    }
}

#[test]
fn a_new_cycle_is_found() {
    let files = vec![
        (
            "src/domains/a/mod.rs".to_owned(),
            "use crate::domains::{b, c::x};".to_owned(),
        ),
        (
            "src/domains/b/mod.rs".to_owned(),
            "use crate::domains::c;".to_owned(),
        ),
        (
            "src/domains/c/api.rs".to_owned(),
            "crate::domains::a::f();".to_owned(),
        ),
        (
            "src/domains/d/mod.rs".to_owned(),
            "use crate::domains::{self, a};".to_owned(),
        ),
    ];
    let graph = domain_graph(&files);
    assert_eq!(graph["a"], BTreeSet::from(["b".to_owned(), "c".to_owned()]));
    assert_eq!(graph["d"], BTreeSet::from(["a".to_owned()]));
    let cycle = find_cycle(&graph).expect("a → c → a is a cycle");
    assert_eq!(cycle.first(), cycle.last());
    let mut acyclic = graph.clone();
    acyclic.get_mut("c").unwrap().clear();
    assert_eq!(find_cycle(&acyclic), None);
}

#[test]
fn a_domains_tables_are_named_only_inside_it() {
    let violations = table_violations(&all_sources());
    assert!(
        violations.is_empty(),
        "files outside a domain name its tables (call the domain's functions instead): {violations:?}"
    );
}

#[test]
fn no_code_opens_a_domains_table_by_its_stored_name_elsewhere() {
    let found = tables_opened_by_name(&all_sources());
    assert!(
        found.is_empty(),
        "tables opened by name outside their domain: {found:?}"
    );
    let files = vec![
        (
            "src/domains/balance/tables.rs".to_owned(),
            "crate::tables! {\n    BALANCES: &str => i64 = \"ledger_balance\";\n}\n".to_owned(),
        ),
        (
            "src/cli.rs".to_owned(),
            "TableDefinition::<&str, i64>::new(\"ledger_balance\")".to_owned(),
        ),
        (
            "tests/api/coins.rs".to_owned(),
            "TableDefinition::new(\"ledger_balance\")".to_owned(),
        ),
    ];
    assert_eq!(
        tables_opened_by_name(&files),
        [("src/cli.rs".to_owned(), "ledger_balance".to_owned())]
    );
}

#[test]
fn a_table_named_outside_its_domain_is_found() {
    let files = vec![
        (
            "src/domains/balance/tables.rs".to_owned(),
            "crate::tables! {\n    /// docs: NOT_A_TABLE\n    BALANCES: &str => i64 = \"b\";\n}\n"
                .to_owned(),
        ),
        (
            "src/domains/balance/mod.rs".to_owned(),
            "tx.read(BALANCES)".to_owned(),
        ),
        (
            "src/domains/gift/mod.rs".to_owned(),
            "tx.read(balance::BALANCES)".to_owned(),
        ),
        (
            "src/domains/video/mod.rs".to_owned(),
            "BALANCES_SEEN + MY_BALANCES".to_owned(),
        ),
        (
            "tests/api/x.rs".to_owned(),
            "rtx.open_table(BALANCES)".to_owned(),
        ),
    ];
    let found = table_violations(&files);
    let who: Vec<&str> = found.iter().map(|(f, _, _)| f.as_str()).collect();
    assert_eq!(who, ["src/domains/gift/mod.rs", "tests/api/x.rs"]);
}

#[test]
fn domains_never_reach_into_the_api_layer() {
    let reaches = api_reaches(&sources("src"));
    assert!(
        reaches.is_empty(),
        "domains reaching into `api`: {reaches:?}"
    );
    let bad = vec![(
        "src/domains/x/mod.rs".to_owned(),
        "ctx.hub.is_connected(u)".to_owned(),
    )];
    assert_eq!(api_reaches(&bad), ["src/domains/x/mod.rs"]);
}

#[test]
fn the_committed_event_catalogue_is_the_one_the_code_declares() {
    let generated = duet::domains::event_catalogue();
    let path = format!("{ROOT}/schema/events.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let committed: serde_json::Value = serde_json::from_str(&committed).unwrap_or_default();
    if committed != generated {
        if std::env::var_os("UPDATE_SCHEMA").is_some() {
            std::fs::write(
                &path,
                serde_json::to_string_pretty(&generated).unwrap() + "\n",
            )
            .unwrap();
        } else {
            panic!(
                "schema/events.json is stale: run `UPDATE_SCHEMA=1 cargo test catalogue` and commit it"
            );
        }
    }
    // Every kind the code declares is in it, with its topic, and each only once.
    let mut seen = BTreeSet::new();
    for t in duet::domains::EVENT_TYPES {
        for k in t.kinds {
            assert!(seen.insert(k.kind), "{} is declared twice", k.kind);
            let entry = &generated["$defs"][format!("event.{}", k.kind)];
            assert_eq!(entry["x-topic"], serde_json::json!(k.topic), "{}", k.kind);
            assert_eq!(entry["x-domain"], t.domain, "{}", k.kind);
            assert!(
                entry["properties"]["data"].is_object(),
                "{} has a payload schema",
                k.kind
            );
        }
    }
    assert!(seen.len() >= 38, "{} kinds", seen.len());
    let ws = std::fs::read_to_string(format!("{ROOT}/schema/ws-protocol.md")).unwrap();
    assert!(
        ws.contains("schema/events.json"),
        "ws-protocol.md refers to the catalogue"
    );
}

/// A data directory written by the code before events were typed (commit fd4caa9, driven
/// through its HTTP API and WebSocket; 192 events of 30 kinds): every stored event still
/// decodes with its domain's type today.
#[tokio::test]
async fn events_stored_before_typing_still_decode() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        format!("{ROOT}/tests/fixtures/events-before-typing/duet.redb"),
        dir.path().join(duet::app::STORE_FILE),
    )
    .unwrap();
    let mut config = duet::config::Config::default();
    config.server.data_dir = dir.path().to_path_buf();
    let store = duet::app::open_store(
        &config,
        std::sync::Arc::new(duet::core::clock::ManualClock::new(0)),
        std::sync::Arc::new(duet::core::metrics::Metrics::new()),
    )
    .unwrap();
    let events = store
        .read(|rtx| duet::core::events::read_after(rtx, 0, 10_000))
        .await
        .unwrap();
    assert_eq!(events.len(), 192);
    let mut kinds = BTreeMap::<String, usize>::new();
    for e in &events {
        let (domain, data) = duet::domains::decode_any(e).unwrap_or_else(|err| panic!("{err:?}"));
        assert!(!domain.is_empty());
        // Read with today's type and written again, the payload is what was stored: no field
        // was dropped, renamed or defaulted on the way.
        assert_eq!(
            data, e.data,
            "event {} ({}) reads back differently",
            e.seq, e.kind
        );
        *kinds.entry(e.kind.clone()).or_default() += 1;
    }
    assert_eq!(kinds.len(), 30, "{kinds:?}");
    // Decoded means the fields, not just the kind: a call summary and a ledger posting.
    use duet::domains::{balance::events::BalanceEvent, video::events::CallEvent};
    let ended = events
        .iter()
        .find_map(|e| match e.decode::<CallEvent>().unwrap() {
            Some(CallEvent::Ended { summary }) if summary.connected => Some(summary),
            _ => None,
        })
        .expect("a connected call ended");
    assert!(!ended.call_id.is_empty() && ended.duration_seconds >= 0);
    let changed = events
        .iter()
        .filter_map(|e| e.decode::<BalanceEvent>().unwrap())
        .filter(|b| matches!(b, BalanceEvent::Changed { .. }))
        .count();
    assert_eq!(changed, kinds["balance_changed"]);
}

/// Routes (`api.rs`) that open transactions, name tables or move coins themselves: (file,
/// what). A route parses, authorizes, calls one domain function and maps its result.
fn fat_routes(files: &[(String, String)]) -> Vec<(String, &'static str)> {
    // The store itself (reads, writes, or a handle kept for later); the clock is fine.
    const SIGNS: [&str; 7] = [
        "ctx.store",
        ".store\n",
        "core::store",
        "open_table(",
        "tables::",
        "::post(tx",
        "|tx|",
    ];
    let mut out = Vec::new();
    for (path, text) in files {
        if domain_of(path).is_none() || !path.ends_with("/api.rs") {
            continue;
        }
        let text = text.replace("ctx.store.now_ms()", "");
        for sign in SIGNS {
            if text.contains(sign) {
                out.push((path.clone(), sign));
            }
        }
    }
    out
}

#[test]
fn routes_open_no_transactions() {
    let fat = fat_routes(&sources("src"));
    assert!(fat.is_empty(), "routes doing a domain's work: {fat:?}");
    let bad = vec![
        (
            "src/domains/x/api.rs".to_owned(),
            "let v = ctx\n    .store\n    .read(move |rtx| super::list(rtx))".to_owned(),
        ),
        (
            "src/domains/y/api.rs".to_owned(),
            "let s = ctx.store.clone(); let t = ctx.store.now_ms();".to_owned(),
        ),
        (
            "src/domains/z/api.rs".to_owned(),
            "let at = ctx.store.now_ms();".to_owned(),
        ),
    ];
    assert_eq!(
        fat_routes(&bad),
        [
            ("src/domains/x/api.rs".to_owned(), ".store\n"),
            ("src/domains/y/api.rs".to_owned(), "ctx.store"),
        ]
    );
}
