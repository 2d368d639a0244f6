//! Every benchmark that has a target, one after the other, then one table
//! of each target next to its measured figure:
//! `cargo bench -p xcore --bench all`.
//!
//! Each benchmark runs as its own `cargo bench` (its own process, so one's
//! memory and threads do not weigh on the next) and appends its target
//! lines to a shared file ([`support::report_target`]). The database
//! benchmarks run on SQLite, and again on PostgreSQL when
//! `XCORE_BENCH_DATABASE_URL` names a server. `XCORE_BENCH_SET=host,plugins`
//! runs a subset. Expect about an hour on a 2-core machine with
//! PostgreSQL (the domain benchmarks seed 100,000 to 300,000 rows each).
//! `dispatch_cost` is not run: it counts instructions under valgrind
//! (see BENCHMARKS.md).

mod support;

use std::{collections::BTreeMap, process::Command};

/// The benchmarks in the order they run, and whether they run per database.
const BENCHES: [(&str, bool); 7] = [
    ("host", false),
    ("plugins", false),
    ("websocket", false),
    ("products", true),
    ("pricing", true),
    ("crm", true),
    ("leads", true),
];

fn main() {
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let chosen: Option<Vec<String>> = std::env::var("XCORE_BENCH_SET")
        .ok()
        .map(|set| set.split(',').map(|name| name.trim().to_string()).collect());
    let postgres = std::env::var("XCORE_BENCH_DATABASE_URL").ok();
    let scratch = tempfile::tempdir().expect("scratch dir");
    let targets = scratch.path().join("targets.tsv");

    let mut failed = Vec::new();
    for (bench, per_database) in BENCHES {
        if chosen
            .as_ref()
            .is_some_and(|chosen| !chosen.iter().any(|name| name == bench))
        {
            continue;
        }
        let mut databases = vec![None];
        if per_database {
            databases.extend(postgres.iter().map(Some));
        }
        for database in databases {
            let label = match database {
                Some(_) => format!("{bench} on PostgreSQL"),
                None => bench.to_string(),
            };
            println!("\n===== {label} =====");
            let mut command = Command::new(&cargo);
            command
                .current_dir(&workspace)
                .args(["bench", "--quiet", "-p", "xcore", "--bench", bench])
                .env("XCORE_BENCH_TARGETS", &targets)
                .env_remove("XCORE_BENCH_DATABASE_URL");
            if let Some(url) = database {
                command.env("XCORE_BENCH_DATABASE_URL", url);
            }
            let ran = command.status().is_ok_and(|status| status.success());
            if !ran {
                failed.push(label);
            }
        }
    }

    let lines = std::fs::read_to_string(&targets).unwrap_or_default();
    let mut by_bench: BTreeMap<&str, Vec<Vec<&str>>> = BTreeMap::new();
    let mut order = Vec::new();
    for line in lines.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() != 5 {
            continue;
        }
        if !by_bench.contains_key(fields[0]) {
            order.push(fields[0]);
        }
        by_bench.entry(fields[0]).or_default().push(fields);
    }
    let width = |column: usize| {
        by_bench
            .values()
            .flatten()
            .map(|fields| fields[column].chars().count())
            .max()
            .unwrap_or(0)
    };
    let (what_width, target_width, measured_width) = (width(1), width(2), width(3));
    let (mut met, mut missed) = (0, 0);
    println!("\n===== Targets =====");
    for bench in order {
        println!("\n{bench}");
        for fields in &by_bench[bench] {
            if fields[4] == "met" {
                met += 1;
            } else {
                missed += 1;
            }
            println!(
                "  {:<what_width$}  {:>target_width$}  {:>measured_width$}  {}",
                fields[1], fields[2], fields[3], fields[4]
            );
        }
    }
    println!("\n{met} targets met, {missed} not met.");
    if !failed.is_empty() {
        println!("Benchmarks that failed to run: {}", failed.join(", "));
        std::process::exit(1);
    }
}
