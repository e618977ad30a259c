//! `kvitto-bench compare`: kvitto against the baselines, side by side in one run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kvitto_bench::compare::{self, Options};

#[derive(Debug, Parser)]
#[command(name = "kvitto-bench", version, about = "kvitto's measurements against the baselines, in one run")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Append, verify, rebuild and look up one deterministic demo stream with kvitto and with
    /// SQLite / raw sled baselines (same bytes, same durability per group); print a table.
    #[command(after_help = "Examples:\n  \
        cargo run --release -p kvitto-bench -- compare\n  \
        cargo run --release -p kvitto-bench -- compare --events 20000 --history-sizes 2k,20k\n  \
        cargo run --release -p kvitto-bench -- compare --json compare.json --dir /mnt/ssd\n  \
        cargo run --release -p kvitto-bench -- compare --events 20000 --postgres auto\n\n\
        Run it on an idle machine with --release: the figures are wall-clock throughputs.")]
    Compare {
        /// Events in the stream.
        #[arg(long, default_value_t = 100_000)]
        events: usize,
        /// Concurrent callers (kvitto and sqlite_per_event).
        #[arg(long, default_value_t = 64)]
        callers: usize,
        /// Events for the one-fsync-per-event measurements (single awaited append, SQLite per event).
        #[arg(long, default_value_t = 3_000)]
        per_event_limit: usize,
        /// Ledger sizes at which `history` is timed (comma-separated; k and m suffixes allowed).
        #[arg(long, default_value = "10k,100k,1m", value_parser = compare::parse_sizes)]
        history_sizes: std::vec::Vec<usize>,
        /// History lookups per ledger size.
        #[arg(long, default_value_t = 2_000)]
        history_lookups: usize,
        /// Seed of the demo generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Directory for the temporary stores (default: the system temp dir). Use the disk you
        /// will deploy on: fsync cost is the point.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Also measure PostgreSQL: `auto` (a throw-away cluster in a temp directory, needs a
        /// PostgreSQL installation) or the URL of a server's maintenance database, where the
        /// runner creates its databases.
        #[arg(long, value_name = "auto|URL")]
        postgres: Option<String>,
        /// Also write the results as JSON to FILE.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
    /// The HTTP service (`kvitto serve` on loopback, clients with keep-alive) against the
    /// library on the same stream: append and may-process throughput, p50/p99, the ratio.
    #[command(after_help = "Example:\n  cargo run --release -p kvitto-bench -- http --events 100000 --clients 64")]
    Http {
        /// Events in the stream.
        #[arg(long, default_value_t = 100_000)]
        events: usize,
        /// Concurrent clients (and library callers).
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// may-process questions per client.
        #[arg(long, default_value_t = 500)]
        questions: usize,
        /// Seed of the demo generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Library/HTTP pairs, back to back; the ratio reported is their median.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Also write the results as JSON to FILE.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
    /// Scaling curves: append throughput and p50/p99 at several caller counts; verify,
    /// rebuild, history, proof and bundle sizes at several ledger sizes. `scripts/plot-scale`
    /// draws the JSON as an SVG.
    #[command(after_help = "Examples:\n  \
        cargo run --release -p kvitto-bench -- scale --json target/scale.json\n  \
        cargo run --release -p kvitto-bench -- scale --big --json target/scale.json   # adds 10M events (minutes)\n  \
        cargo run --release -p kvitto-bench -- scale --callers 1,64 --sizes 20k --events 20000\n  \
        scripts/plot-scale target/scale.json target/scale.svg")]
    Scale {
        /// Caller counts of the append curve (comma-separated).
        #[arg(long, default_value = "1,8,64,256", value_parser = compare::parse_sizes)]
        callers: std::vec::Vec<usize>,
        /// Events appended per caller count (one caller gets at most 2,000: each waits for its
        /// own fdatasync).
        #[arg(long, default_value_t = 100_000)]
        events: usize,
        /// Ledger sizes for verify, rebuild, history and proofs (comma-separated; k and m
        /// suffixes allowed).
        #[arg(long, default_value = "100k,1m", value_parser = compare::parse_sizes)]
        sizes: std::vec::Vec<usize>,
        /// Also measure a 10M-event ledger (builds for minutes, needs ≈12 GB of disk).
        #[arg(long)]
        big: bool,
        /// Seed of the demo generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Directory for the temporary ledgers (default: the system temp dir).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Also write the results as JSON to FILE.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
}

fn write_json(path: &std::path::Path, v: &serde_json::Value) -> ExitCode {
    let text = match serde_json::to_string_pretty(v) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: encoding the JSON report: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = std::fs::write(path, text + "\n") {
        eprintln!("error: writing {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    eprintln!("wrote {}", path.display());
    ExitCode::SUCCESS
}

fn http(o: &kvitto_bench::http::HttpOptions, json: Option<PathBuf>) -> ExitCode {
    if o.events == 0 || o.clients == 0 || o.rounds == 0 {
        eprintln!("error: --events, --clients and --rounds must be at least 1");
        return ExitCode::from(2);
    }
    match kvitto_bench::http::run(o) {
        Ok(v) => json.map_or(ExitCode::SUCCESS, |p| write_json(&p, &v)),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn scale(mut o: kvitto_bench::scale::ScaleOptions, big: bool, json: Option<PathBuf>) -> ExitCode {
    if o.events == 0 || o.callers.contains(&0) || o.sizes.contains(&0) {
        eprintln!("error: --events, --callers and --sizes must be at least 1");
        return ExitCode::from(2);
    }
    if big && !o.sizes.contains(&10_000_000) {
        o.sizes.push(10_000_000);
    }
    let started = std::time::Instant::now();
    let v = match kvitto_bench::scale::run(&o, &mut |what| {
        eprintln!("[{:>6.1}s] {what}", started.elapsed().as_secs_f64());
    }) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", kvitto_bench::scale::table(&v));
    json.map_or(ExitCode::SUCCESS, |p| write_json(&p, &v))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Scale { callers, events, sizes, big, seed, dir, json } = cli.command {
        return scale(kvitto_bench::scale::ScaleOptions { callers, events, sizes, seed, dir }, big, json);
    }
    if let Command::Http { events, clients, questions, seed, rounds, json } = cli.command {
        return http(&kvitto_bench::http::HttpOptions { events, clients, questions, seed, rounds }, json);
    }
    let Command::Compare {
        events,
        callers,
        per_event_limit,
        history_sizes,
        history_lookups,
        seed,
        dir,
        postgres,
        json,
    } = cli.command
    else {
        return ExitCode::FAILURE;
    };
    if events == 0 || callers == 0 || per_event_limit == 0 {
        eprintln!("error: --events, --callers and --per-event-limit must be at least 1");
        return ExitCode::from(2);
    }
    let options = Options { events, callers, per_event_limit, history_sizes, history_lookups, seed, dir, postgres };
    let started = std::time::Instant::now();
    let report = match compare::run(&options, &mut |what| {
        eprintln!("[{:>6.1}s] {what}", started.elapsed().as_secs_f64());
    }) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", report.table());
    if let Some(path) = json {
        return write_json(&path, &report.to_json());
    }
    ExitCode::SUCCESS
}
