//! `kvitto`: the command-line tool for operators, auditors and DPOs.
//!
//! Exit codes: 0 ok · 1 verification failed · 2 bad input or usage · 3 storage or I/O error.

mod append;
mod audit;
mod bundle;
mod demo;
mod erasure;
mod query;
mod serve;
mod table;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kvitto::{Ledger, OpenError, OpenOptions};

const EXIT_CODES: &str = "\
Exit codes:
  0  ok
  1  verification failed (verify); processing denied (may-process)
  2  bad input or usage (nothing was written)
  3  storage or I/O error
  4  append: earlier batches were appended (their receipts printed), a later one was refused";

/// kvitto — a tamper-evident ledger of what a company does with each customer's personal data.
#[derive(Parser, Debug)]
#[command(name = "kvitto", version, after_help = EXIT_CODES, after_long_help = concat!(
"Examples:
  kvitto demo                                   build and explore a demo ledger
  kvitto --ledger ./ledger init --origin example.com/ledger
  kvitto --ledger ./ledger append examples/tour/events.jsonl   append JSON Lines (checked first; ≤ 10,000 all or nothing)
  echo '{\"type\":\"consent_given\",\"controller\":\"kalejdo\",\"subject\":\"cust-1\",\"purpose\":\"marketing\"}' | kvitto append -
  kvitto history --controller kalejdo --subject cust-1
  kvitto log --from 0 --limit 20 --json
  kvitto verify
  kvitto consent --controller kalejdo --subject cust-1 --at 2026-03-01
  kvitto may-process --controller kalejdo --subject cust-1 --purpose marketing
  kvitto report access --controller kalejdo --subject cust-1 --html cust-1.html
  kvitto export-consent --controller kalejdo --subject cust-1 --format dpv
  kvitto erase --controller kalejdo --subject cust-1 --reason \"Art 17 request\"

Exit codes:
  0  ok
  1  verification failed (verify); processing denied (may-process)
  2  bad input or usage (nothing was written)
  3  storage or I/O error
  4  append: earlier batches were appended (their receipts printed), a later one was refused"))]
struct Cli {
    /// Ledger directory [default: $KVITTO_LEDGER, else ./kvitto-ledger]
    #[arg(long, global = true, env = "KVITTO_LEDGER", value_name = "DIR")]
    ledger: Option<PathBuf>,

    /// Where the events are: `sled` (the embedded default, in the ledger directory) or a
    /// PostgreSQL URL. `init` and `demo` create the ledger there; for an existing PostgreSQL
    /// ledger it overrides the URL `init` recorded (the same ledger, e.g. after a fail-over)
    #[arg(long, global = true, env = "KVITTO_DATABASE_URL", value_name = "sled|postgres://…")]
    store: Option<String>,

    /// Seconds a command that writes waits for another process writing the same PostgreSQL
    /// ledger to let go before refusing (reading commands never wait)
    #[arg(long, global = true, default_value_t = 10, value_name = "SECS")]
    wait_for_writer: u64,

    #[command(subcommand)]
    command: Command,
}

/// The global store options, set once from the command line.
static STORE: std::sync::OnceLock<(Option<String>, u64)> = std::sync::OnceLock::new();

fn store_spec() -> Result<kvitto::StoreSpec, Failure> {
    match STORE.get().and_then(|(s, _)| s.as_deref()) {
        None => Ok(kvitto::StoreSpec::Sled),
        Some(s) => kvitto::StoreSpec::parse(s).map_err(|e| Failure::input(format!("--store: {e}"))),
    }
}

fn open_options(read_only: bool) -> Result<OpenOptions, Failure> {
    let (url, wait) = STORE.get().cloned().unwrap_or((None, 10));
    let store_url = match url {
        Some(u) if u != "sled" => {
            kvitto::StoreSpec::parse(&u).map_err(|e| Failure::input(format!("--store: {e}")))?;
            Some(u)
        }
        _ => None,
    };
    Ok(OpenOptions {
        read_only,
        store_url,
        wait_for_writer: std::time::Duration::from_secs(wait),
        ..OpenOptions::default()
    })
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a new, empty ledger (refuses to overwrite an existing one)
    #[command(after_help = "Example:\n  kvitto --ledger ./ledger init --origin kalejdo.se/ledger")]
    Init {
        /// Name of this log (later the checkpoint key name): no spaces, no '+'
        #[arg(long)]
        origin: String,
    },
    /// Append events from a JSON object or JSON Lines (file or '-' for stdin)
    #[command(after_help = "Prints one receipt per event: {\"seq\":…,\"hash\":…,\"event_id\":…,\"recorded_at\":…}\n\n\
The whole input is checked first: if any line is invalid (or an event_id repeats with other\n\
content), prints `line N: field F: what is wrong`, appends nothing and exits 2.\n\n\
What is atomic: each batch of --batch-size events (default 10000) is one commit, all or nothing.\n\
An input of at most one batch is therefore all or nothing. A larger one is appended batch by\n\
batch, so memory stays bounded; if the ledger refuses a later batch (e.g. an event_id already\n\
used by another event, an erasure under a legal hold), the receipts of the earlier batches stand,\n\
the error names the first line not appended, and kvitto exits 4. Appending the same input again\n\
then is safe for lines that carry an event_id: recorded events answer with their receipts.\n\
One invocation reads at most 1 GiB of input.\n\n\
Examples:\n  kvitto append events.jsonl\n  kvitto append - < events.jsonl\n  \
kvitto append --batch-size 1000000 big.jsonl   one commit for up to a million events (needs ~7 KB of memory per event)")]
    Append {
        /// Input file, or '-' for stdin
        #[arg(default_value = "-")]
        file: PathBuf,
        /// Events per commit group (each all or nothing)
        #[arg(long, default_value_t = append::DEFAULT_BATCH, value_name = "N")]
        batch_size: usize,
    },
    /// List events in seq order
    #[command(after_help = "Example:\n  kvitto log --from 100 --limit 20\n  kvitto log --json | jq .type")]
    Log {
        /// First seq
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Most events to show
        #[arg(long, default_value_t = 100)]
        limit: u64,
        /// One JSON object per line
        #[arg(long)]
        json: bool,
    },
    /// Show one customer's events in subject order
    #[command(after_help = "Example:\n  kvitto history --controller kalejdo --subject KAL-100042 --json")]
    History {
        /// Controller id
        #[arg(long)]
        controller: String,
        /// The controller's customer reference
        #[arg(long)]
        subject: String,
        /// One JSON object per line, details decrypted when available
        #[arg(long)]
        json: bool,
    },
    /// Re-derive every hash and check both chains, the head, the indexes, the checkpoints and the subject map
    #[command(after_help = "Examples:\n  kvitto verify\n  kvitto verify --against checkpoint-2026-11.txt   \
also fail unless the ledger's tree contains this held checkpoint\n\n\
Prints `ok: N events, head <hex>` (exit 0) or the first bad seq and why (exit 1).")]
    Verify {
        /// A checkpoint of this ledger kept outside it: catches truncation (rollback) and rewrites
        #[arg(long, value_name = "CHECKPOINT_FILE")]
        against: Option<PathBuf>,
    },
    /// Consent state per purpose (with its history) as of a time
    #[command(after_help = "Examples:\n  kvitto consent --controller kazoom --subject KZ-100042\n  \
kvitto consent --controller kazoom --subject KZ-100042 --purpose product-news --at 2025-06-01 --json\n\n\
--at is occurred time (what had happened), --known-at recorded time (what the ledger knew);\n\
both default to now. A date means the end of that day (UTC).")]
    Consent {
        #[command(flatten)]
        who: Who,
        /// Only this purpose
        #[arg(long)]
        purpose: Option<String>,
        #[command(flatten)]
        when: When,
        /// One JSON object per purpose per line
        #[arg(long)]
        json: bool,
    },
    /// May this customer's data be processed for a purpose? Exit 0 allowed, 1 denied
    #[command(
        name = "may-process",
        after_help = "Rules: docs/DECISIONS.md.\n\nExample:\n  \
kvitto may-process --controller kalejdo --subject KAL-100007 --purpose marketing && send_offer"
    )]
    MayProcess {
        #[command(flatten)]
        who: Who,
        /// Purpose id
        #[arg(long)]
        purpose: String,
        #[command(flatten)]
        when: When,
        /// {"allowed":bool,"reason":…,"seq":…}
        #[arg(long)]
        json: bool,
    },
    /// GDPR reports: Art 15 access report of a customer, Art 30 record of processing
    #[command(subcommand)]
    Report(ReportCommand),
    /// Art 20 export: the data the customer provided, as JSON (docs/REPORTS.md)
    #[command(
        name = "export-portable",
        after_help = "Example:\n  kvitto export-portable --controller kazoom --subject KZ-100042 --out kz-100042.json"
    )]
    ExportPortable {
        #[command(flatten)]
        who: Who,
        #[command(flatten)]
        when: When,
        /// Write to this file instead of stdout (created 0600)
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace --out if it exists
        #[arg(long, requires = "out")]
        force: bool,
    },
    /// A customer's consent records in a standard form: W3C DPV JSON-LD per ISO/IEC TS 27560
    #[command(
        name = "export-consent",
        after_help = "One dpv:ConsentRecord per purpose the customer gave, withdrew or refused consent for, with \
each event as a status node (dpv:ConsentGiven, dpv:RenewedConsentGiven, dpv:ConsentWithdrawn,
dpv:ConsentRefused) citing its ledger seq and event hash (kvitto:seq, kvitto:eventHash), so
`kvitto prove inclusion --seq N` proves any of them. Follows the DPV guide for ISO/IEC TS
27560:2023 (https://w3id.org/dpv/guides/consent-27560); docs/REPORTS.md describes the mapping.

Examples:
  kvitto export-consent --controller kazoom --subject KZ-1
  kvitto export-consent --controller kazoom --subject KZ-1 --at 2026-03-15 --out kz-1-consent.jsonld"
    )]
    ExportConsent {
        #[command(flatten)]
        who: Who,
        #[command(flatten)]
        when: When,
        /// Output format (the only one: W3C DPV JSON-LD)
        #[arg(long, value_enum, default_value = "dpv")]
        format: ConsentFormat,
        /// Write to this file instead of stdout (created 0600)
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace --out if it exists
        #[arg(long, requires = "out")]
        force: bool,
    },
    /// Erase a customer's personal data for good: every register, or one (`data_erased`)
    #[command(after_help = "Destroys the keys of the customer's encrypted details (and, without --register, the
customer reference) before it returns; the events and every hash, proof and bundle over
them stay valid and show the details as erased. Refused (exit 2, nothing written) while a
legal hold on the customer is active or an erasure_deferred for a register in scope is in
force. Erasing what is already erased writes nothing and says so (exit 0).

Examples:
  kvitto erase --controller kalejdo --subject KAL-100042 --reason 'Art 17 request r-77'
  kvitto erase --controller kalejdo --subject KAL-100042 --register arendelista --reason 'retention: 12 months after closure'")]
    Erase {
        #[command(flatten)]
        who: Who,
        /// Only this register [default: everything of the customer]
        #[arg(long)]
        register: Option<String>,
        /// Why (recorded in the event; no personal data)
        #[arg(long)]
        reason: String,
    },
    /// Retention: what is due for erasure under the declared rules, and erasing it
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// The witness policy: who cosigns this ledger's checkpoints
    #[command(subcommand)]
    Witness(WitnessCommand),
    /// Rights requests (Art 12(3)): due dates, overdue first
    #[command(after_help = "A request is due one month after receipt; a rights_request_extended recorded within
that month extends it to three. Fulfilled after the due date: shown as answered late.

Examples:
  kvitto requests                     open requests of every controller, overdue first
  kvitto requests --controller kazoom --now 2026-06-01 --all --json")]
    Requests {
        /// Only this controller
        #[arg(long)]
        controller: Option<String>,
        /// The instant to judge deadlines at (RFC 3339 or YYYY-MM-DD) [default: now]
        #[arg(long, value_parser = query::parse_time)]
        now: Option<kvitto::Timestamp>,
        /// Closed requests too
        #[arg(long)]
        all: bool,
        /// One JSON object per line
        #[arg(long)]
        json: bool,
    },
    /// Compliance audit: verify, then every check K01–K15 with the events that prove each finding
    #[command(after_help = "The ledger is verified first (K01); if that fails, its finding comes first and every
other finding is marked unreliable. Each finding names its check, severity, article, the
subject's pseudonym (the customer reference only with --reveal-subjects) and the seqs of
the events that prove it; `kvitto prove inclusion --seq N` backs each one. docs/AUDIT.md
describes every check. Exit 0: no findings; 1: findings; 2: bad input.

Examples:
  kvitto audit
  kvitto audit --controller kazoom --now 2026-12-31 --json
  kvitto audit --html audit.html
  kvitto audit --late-after-hours 24 --notify-within-days 14")]
    Audit {
        /// Only this controller [default: every controller]
        #[arg(long)]
        controller: Option<String>,
        /// The audit's point in time (RFC 3339 or YYYY-MM-DD) [default: now]
        #[arg(long, value_parser = query::parse_time)]
        now: Option<kvitto::Timestamp>,
        /// K13: an event recorded this many hours or more after it occurred is late
        #[arg(long, default_value_t = 72, value_parser = clap::value_parser!(i64).range(1..))]
        late_after_hours: i64,
        /// K10: days within which a rectification must reach earlier recipients
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(i64).range(0..))]
        notify_within_days: i64,
        /// K08: days after which a legal hold never released is flagged for review
        #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(i64).range(1..))]
        hold_review_days: i64,
        /// Show customer references instead of pseudonyms (personal data: keep the output safe)
        #[arg(long)]
        reveal_subjects: bool,
        #[command(flatten)]
        output: ReportOutput,
    },
    /// Recompute every projection from seq 0 and replace the persisted ones
    Rebuild,
    /// Print the checkpoint verifier key (C2SP signed-note form: name+id+key)
    Key,
    /// Sign the current tree head as a C2SP tlog-checkpoint, or show a stored one
    #[command(
        after_help = "Examples:\n  kvitto checkpoint                 sign and store the current tree head, print the note\n  \
kvitto checkpoint --show          print the latest stored note exactly as stored\n  \
kvitto checkpoint --show --size 1000\n\n\
Verify with any C2SP signed-note verifier and the `kvitto key` verifier key."
    )]
    Checkpoint {
        /// Print a stored note instead of signing a new one
        #[arg(long)]
        show: bool,
        /// With --show: the checkpoint of this size [default: the latest]
        #[arg(long, requires = "show")]
        size: Option<u64>,
    },
    /// Write the latest checkpoint as static C2SP tlog-tiles (event hashes only) for any web server
    #[command(after_help = "Example:\n  kvitto checkpoint && kvitto publish --dir /srv/www/kvitto-log\n\n\
Writes DIR/checkpoint, DIR/tile/<L>/<N>[.p/<W>] and DIR/tile/entries/<N>[.p/<W>] (entries are the\n\
32-byte event hashes: nothing personal, not even pseudonyms). Re-running adds only what is new.")]
    Publish {
        /// Directory to write the tiles into (created if missing)
        #[arg(long)]
        dir: PathBuf,
    },
    /// Export one customer's history as a bundle a regulator verifies offline (docs/BUNDLE.md)
    #[command(
        after_help = "Example:\n  kvitto checkpoint && kvitto export --controller kazoom --subject KZ-100042 --out kz.json"
    )]
    Export {
        #[command(flatten)]
        who: Who,
        /// Prove against the stored checkpoint of this size [default: the latest]
        #[arg(long)]
        checkpoint: Option<u64>,
        /// A checkpoint the recipient already holds: adds a consistency proof from it
        #[arg(long, value_name = "CHECKPOINT_FILE")]
        since: Option<PathBuf>,
        /// Output file (created 0600: it holds the customer's disclosed details)
        #[arg(long)]
        out: PathBuf,
        /// Replace --out if it exists
        #[arg(long)]
        force: bool,
    },
    /// Verify a bundle offline: signature, hashes, inclusion proofs, subject chain, details
    #[command(
        name = "verify-bundle",
        after_help = "Examples:\n  kvitto verify-bundle kz.json --key 'kazoom.dk/ledger+1b538788+AdZy…'\n  \
kvitto verify-bundle kz.json --key-file log.vkey --since last-checkpoint.txt \\\n      \
--witness-key 'witness.example/w1+4a5b6c7d+BA…' --quorum 1\n\n\
Exit 0: every event proven, the history complete up to the size printed; 1: the bundle does not verify\n\
(the reason names the event, or says fork / rollback / incomplete / witnesses)."
    )]
    VerifyBundle {
        /// The bundle file
        file: PathBuf,
        /// Verifier key (`kvitto key` of the ledger), obtained out of band
        #[arg(long, conflicts_with = "key_file")]
        key: Option<String>,
        /// File holding the verifier key
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// Use the key inside the bundle (integrity only; prints a warning)
        #[arg(long)]
        trust_embedded_key: bool,
        /// A checkpoint of this log you already hold: fail unless the bundle's extends it
        #[arg(long, value_name = "CHECKPOINT_FILE")]
        since: Option<PathBuf>,
        /// A witness key you trust (cosignature/v1 vkey); repeat for several
        #[arg(long = "witness-key", value_name = "VKEY")]
        witness_keys: Vec<String>,
        /// Valid cosignatures required from distinct trusted witnesses [default: 1 with witness keys]
        #[arg(long)]
        quorum: Option<usize>,
        /// Machine-readable result
        #[arg(long)]
        json: bool,
        /// Not used here: shadows the global --ledger so that it is neither shown nor taken
        #[arg(long = "ledger", id = "ledger", hide = true, value_name = "DIR")]
        no_ledger: Option<PathBuf>,
    },
    /// Merkle proofs as JSON (RFC 6962 SHA-256 tree; leaf = SHA-256(0x00 ‖ event hash))
    #[command(subcommand)]
    Prove(ProveCommand),
    /// Check a proof file from `kvitto prove` offline against the log key (and witnesses)
    #[command(
        name = "verify-proof",
        after_help = "Examples:\n  kvitto verify-proof event-41.tlog-proof --key 'kazoom.dk/ledger+1b538788+AdZy…'\n  \
kvitto verify-proof consistency.json --key-file log.vkey --checkpoint latest-checkpoint.txt\n\n\
Exit 0: proven; 1: the proof does not verify."
    )]
    VerifyProof {
        /// The proof file (tlog-proof text or JSON)
        file: PathBuf,
        /// The log's verifier key, obtained out of band
        #[arg(long, conflicts_with = "key_file", required_unless_present = "key_file")]
        key: Option<String>,
        /// File holding the verifier key
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// A signed checkpoint note, for JSON proofs that carry none
        #[arg(long, value_name = "CHECKPOINT_FILE")]
        checkpoint: Option<PathBuf>,
        /// A witness key you trust (cosignature/v1 vkey); repeat for several
        #[arg(long = "witness-key", value_name = "VKEY")]
        witness_keys: Vec<String>,
        /// Valid cosignatures required [default: 1 with witness keys]
        #[arg(long)]
        quorum: Option<usize>,
        /// Not used here: shadows the global --ledger so that it is neither shown nor taken
        #[arg(long = "ledger", id = "ledger", hide = true, value_name = "DIR")]
        no_ledger: Option<PathBuf>,
    },
    /// Copy a sled ledger into PostgreSQL (every hash re-derived and checked) and switch it over
    #[command(after_help = "Example:\n  kvitto migrate --from ./ledger --to postgres://kvitto@db.internal/kalejdo\n\n\
The database must hold no kvitto ledger. Events are copied in order, each re-derived from its\n\
bytes and checked against the chain; the checkpoints follow; the copy is read back and compared\n\
(head, checkpoints, event count). Only then is the directory switched: its marker names the\n\
database, the sled store is kept as store.sled-migrated/ until you delete it, and the key files\n\
and the key vault stay where they are. If anything fails before the switch, the sled ledger is\n\
untouched and still the ledger (drop the partial copy's kvitto_* tables to retry).")]
    Migrate {
        /// The sled ledger directory
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// The PostgreSQL database to copy it into
        #[arg(long, value_name = "postgres://…")]
        to: String,
    },
    /// Serve the ledger over HTTP: the JSON API under /v1 (scoped tokens) and the verification page
    #[command(after_help = "Examples:\n  kvitto token create --controller kalejdo --scope append,read\n  \
kvitto serve --listen 127.0.0.1:8080\n  \
curl -H \"Authorization: Bearer $TOKEN\" --data-binary @events.jsonl http://127.0.0.1:8080/v1/events\n  \
curl -H \"Authorization: Bearer $TOKEN\" 'http://127.0.0.1:8080/v1/may-process?controller=kalejdo&subject=KAL-100042&purpose=marketing'\n\n\
The contract is at /v1/openapi.json (docs/openapi.json); health at /healthz and /readyz,\n\
Prometheus metrics at /metrics. SIGTERM or Ctrl-C stops accepting, finishes the requests in\n\
flight (every receipt sent is durable) and closes the ledger. Plain HTTP: keep it on loopback\n\
or behind a TLS-terminating reverse proxy (docs/HTTP.md).")]
    Serve(serve::ServeArgs),
    /// API tokens for kvitto serve: create, list, revoke (each bound to one controller and scopes)
    #[command(subcommand)]
    Token(serve::TokenCommand),
    /// Build a fresh demo ledger modelled on the seed privacy policies and explore it
    #[command(after_help = "Example:\n  kvitto demo --customers 5000 --seed 7 --dir /tmp/kvitto-demo")]
    Demo {
        /// Directory for the demo ledger (replaced if it holds an earlier demo)
        #[arg(long, default_value = "kvitto-demo")]
        dir: PathBuf,
        /// Number of customers
        #[arg(long, default_value_t = 1000)]
        customers: usize,
        /// Seed of the deterministic scenario
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        /// Concurrent appending tasks
        #[arg(long, default_value_t = 64)]
        tasks: usize,
        /// Not used here: shadows the global --ledger so that it is neither shown nor taken
        #[arg(long = "ledger", id = "ledger", hide = true, value_name = "DIR")]
        no_ledger: Option<PathBuf>,
    },
}

/// Prints a line to stdout; when stdout is closed (`kvitto log | head`), stops quietly
/// instead of panicking like `println!`. Everything already appended is durable.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::emit(format_args!($($arg)*))
    };
}
pub(crate) use say;

pub(crate) fn emit(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let text = args.to_string();
    if let Err(e) = writeln!(std::io::stdout().lock(), "{}", table::terminal_safe(&text, false))
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

/// Which customer.
#[derive(clap::Args, Debug)]
struct Who {
    /// Controller id
    #[arg(long)]
    controller: String,
    /// The controller's customer reference
    #[arg(long)]
    subject: String,
}

/// The point of view of a question.
#[derive(clap::Args, Debug)]
struct When {
    /// Occurred time: what had happened by then (RFC 3339 or YYYY-MM-DD) [default: now]
    #[arg(long, value_parser = query::parse_time)]
    at: Option<kvitto::Timestamp>,
    /// Recorded time: only what the ledger knew by then [default: now]
    #[arg(long = "known-at", value_parser = query::parse_time)]
    known_at: Option<kvitto::Timestamp>,
}

#[derive(Subcommand, Debug)]
enum ProveCommand {
    /// Proof that event SEQ is in the tree of the first SIZE events
    #[command(after_help = "Examples:\n  kvitto prove inclusion --seq 41 --size 1000\n  \
kvitto prove inclusion --seq 41 --format tlog-proof > event-41.tlog-proof\n\n\
JSON proofs carry the stored checkpoint of their size when there is one; a tlog-proof\n\
(C2SP tlog-proof@v1) always does, with the event's canonical bytes as its extra data.\n\
Check either offline with `kvitto verify-proof`.")]
    Inclusion {
        /// The event
        #[arg(long)]
        seq: u64,
        /// Tree size [default: the whole ledger; with tlog-proof: the latest checkpoint]
        #[arg(long)]
        size: Option<u64>,
        /// Output format
        #[arg(long, value_enum, default_value_t = ProofFormat::Json)]
        format: ProofFormat,
    },
    /// Proof that the tree of the first FROM events is a prefix of the tree of TO events
    #[command(after_help = "Example:\n  kvitto prove consistency --from 500 --to 1000")]
    Consistency {
        /// Older size
        #[arg(long)]
        from: u64,
        /// Newer size [default: the whole ledger]
        #[arg(long)]
        to: Option<u64>,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ProofFormat {
    /// kvitto's JSON (hex hashes)
    Json,
    /// C2SP tlog-proof@v1 (text; checkpoint included)
    TlogProof,
}

#[derive(Subcommand, Debug)]
enum WitnessCommand {
    /// Add a witness (C2SP tlog-witness); `kvitto checkpoint` then asks it to cosign
    #[command(
        after_help = "Example:\n  kvitto witness add w1 https://witness.example/w1 'witness.example/w1+4a5b6c7d+BN…'\n\n\
VKEY is the witness's cosignature/v1 verifier key (signature type 0x04). Give the witness\n\
operator this ledger's `kvitto key` and origin."
    )]
    Add {
        /// Local name (one word)
        name: String,
        /// Submission prefix (add-checkpoint is POSTed to URL/add-checkpoint)
        url: String,
        /// The witness's verifier key
        vkey: String,
    },
    /// The configured witnesses
    List,
    /// Run a witness (C2SP tlog-witness) that cosigns the given logs' checkpoints
    #[command(
        after_help = "Example:\n  kvitto witness serve --state ./witness --name witness.example/w1 --listen 127.0.0.1:7380 \\\n      \
--log 'kalejdo.se/ledger+1b538788+AdZy…'\n\n\
Keeps its key (created on first start) and the latest cosigned checkpoint per log in --state.\n\
Plain HTTP: put it behind a TLS reverse proxy to serve it beyond this machine."
    )]
    Serve {
        /// State directory (witness.key, witness.state)
        #[arg(long)]
        state: PathBuf,
        /// The witness's key name (usually a schema-less URL)
        #[arg(long)]
        name: String,
        /// Address to listen on
        #[arg(long, default_value = "127.0.0.1:7380")]
        listen: String,
        /// A log to witness: its verifier key (`kvitto key`); repeat for several
        #[arg(long = "log", value_name = "VKEY", required = true)]
        logs: Vec<String>,
    },
    /// Remove a witness
    Remove {
        /// Local name
        name: String,
    },
}

#[derive(Subcommand, Debug)]
enum RetentionCommand {
    /// Per customer and register: due, overdue (by how long), deferred (until when, why), not due, erased
    #[command(after_help = "Examples:
  kvitto retention plan --now 2027-01-01
  kvitto retention plan --controller komteknik-el --json")]
    Plan {
        /// Only this controller
        #[arg(long)]
        controller: Option<String>,
        /// The instant to plan for (RFC 3339 or YYYY-MM-DD) [default: now]
        #[arg(long, value_parser = query::parse_time)]
        now: Option<kvitto::Timestamp>,
        /// One JSON object per line
        #[arg(long)]
        json: bool,
    },
    /// Erase what is due (not deferred), one data_erased per customer and register, idempotent
    #[command(after_help = "Each erasure names the rule that caused it and has a deterministic event id, so a run
started again records nothing twice. Legal holds and statutory deferrals are skipped.

Example:
  kvitto retention plan && kvitto retention run\n\n--now may be in the past (a run that catches up), not in the future.")]
    Run {
        /// Only this controller
        #[arg(long)]
        controller: Option<String>,
        /// The instant to judge due dates at (RFC 3339 or YYYY-MM-DD) [default: now]
        #[arg(long, value_parser = query::parse_time)]
        now: Option<kvitto::Timestamp>,
    },
}

#[derive(Subcommand, Debug)]
enum ReportCommand {
    /// Art 15 access report for one customer: (1)(a)–(h), the controller and its authority,
    /// requests and deadlines, restrictions and holds, and the (3) copy of the data held
    #[command(after_help = "Examples:\n  kvitto report access --controller kalejdo --subject KAL-100007\n  \
                            kvitto report access --controller kalejdo --subject KAL-100007 --json\n  \
                            kvitto report access --controller kalejdo --subject KAL-100007 --html kal-100007.html\n\n\
                            The HTML page is self-contained (no external assets) and holds the customer's \
                            decrypted data: it is written readable by its owner only.")]
    Access {
        #[command(flatten)]
        who: Who,
        #[command(flatten)]
        when: When,
        #[command(flatten)]
        output: ReportOutput,
    },
    /// Art 30(1) record of processing of one controller, with a line per gap
    #[command(after_help = "Examples:\n  kvitto report processing --controller kazoom\n  \
                            kvitto report processing --controller kazoom --html kazoom-art30.html")]
    Processing {
        /// Controller id
        #[arg(long)]
        controller: String,
        #[command(flatten)]
        when: When,
        #[command(flatten)]
        output: ReportOutput,
    },
}

impl From<ReportOutput> for query::Output {
    fn from(o: ReportOutput) -> Self {
        match (o.json, o.html) {
            (_, Some(path)) => query::Output::Html { path, force: o.force },
            (true, None) => query::Output::Json,
            (false, None) => query::Output::Text,
        }
    }
}

/// The forms `export-consent` writes.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum ConsentFormat {
    /// W3C Data Privacy Vocabulary JSON-LD, per the DPV guide for ISO/IEC TS 27560:2023
    Dpv,
}

/// How a report is written: text (default), JSON, or a self-contained HTML file.
#[derive(clap::Args, Debug)]
struct ReportOutput {
    /// JSON instead of text
    #[arg(long, conflicts_with = "html")]
    json: bool,
    /// Write a self-contained HTML page to FILE instead of text
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Replace FILE if it exists
    #[arg(long, requires = "html")]
    force: bool,
}

/// A failure with its exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn input(message: impl Into<String>) -> Self {
        Self { code: 2, message: message.into() }
    }
    pub fn storage(message: impl Into<String>) -> Self {
        Self { code: 3, message: message.into() }
    }
    /// Part of the input was appended (earlier batches), the rest refused.
    pub fn partial(message: impl Into<String>) -> Self {
        Self { code: 4, message: message.into() }
    }
}

impl From<OpenError> for Failure {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::NotALedger(_) | OpenError::AlreadyExists(_) | OpenError::UnknownFormat { .. } => {
                Failure::input(e.to_string())
            }
            OpenError::InvalidOrigin { .. } => Failure::input(e.to_string()),
            OpenError::Busy { .. } => Failure::storage(e.to_string()),
            other => Failure::storage(other.to_string()),
        }
    }
}

/// Closes the ledger; a problem on close (a ledger thread that had failed, a failed final
/// flush) is reported on stderr. It does not undo what the command did: acknowledged events
/// are durable, and derived data catches up on the next open.
pub(crate) async fn close(ledger: kvitto::Ledger) {
    if let Err(e) = ledger.close().await {
        eprintln!("warning: {}", table::terminal_safe(&e.to_string(), false));
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

fn ledger_dir(cli: &Option<PathBuf>) -> PathBuf {
    cli.clone().unwrap_or_else(|| PathBuf::from("kvitto-ledger"))
}

/// Opens the ledger to append (PostgreSQL: as its one writer, waiting `--wait-for-writer`).
pub(crate) async fn open(dir: &std::path::Path) -> Result<Ledger, Failure> {
    Ok(Ledger::open(dir, open_options(false)?).await?)
}

/// Opens the ledger to read (PostgreSQL: beside its writer, no lock, nothing written).
pub(crate) async fn open_read(dir: &std::path::Path) -> Result<Ledger, Failure> {
    Ok(Ledger::open(dir, open_options(true)?).await?)
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let dir = ledger_dir(&cli.ledger);
    let _ = STORE.set((cli.store.clone(), cli.wait_for_writer));
    match cli.command {
        Command::Init { origin } => {
            Ledger::init_on(&dir, &origin, &store_spec()?)?;
            say!("created ledger {} (origin {origin})", dir.display());
            Ok(())
        }
        Command::Append { file, batch_size } => append::run(&dir, &file, batch_size).await,
        Command::Log { from, limit, json } => {
            let ledger = open_read(&dir).await?;
            let events =
                ledger.log(from..from.saturating_add(limit)).await.map_err(|e| Failure::storage(e.to_string()))?;
            table::print_events(&events, json, true);
            crate::close(ledger).await;
            Ok(())
        }
        Command::History { controller, subject, json } => {
            let ledger = open_read(&dir).await?;
            let events = ledger.history(&controller, &subject).await.map_err(|e| match e {
                kvitto::ReadError::UnknownSubject { .. } | kvitto::ReadError::BadQuery { .. } => {
                    Failure::input(e.to_string())
                }
                other => Failure::storage(other.to_string()),
            })?;
            if !json && let Some(first) = events.first().and_then(|e| e.event.subject) {
                say!("subject {} of {controller}: {} events", first.subject, events.len());
            }
            table::print_history(&events, json, false, &table::History::of(&ledger, &controller, &events));
            crate::close(ledger).await;
            Ok(())
        }
        Command::Verify { against } => verify(&dir, against.as_deref()).await,
        Command::Consent { who, purpose, when, json } => {
            let q = query::as_of(when.at, when.known_at);
            query::consent(&dir, &who.controller, &who.subject, purpose.as_deref(), q, json).await
        }
        Command::MayProcess { who, purpose, when, json } => {
            let q = query::as_of(when.at, when.known_at);
            query::may_process(&dir, &who.controller, &who.subject, &purpose, q, json).await
        }
        Command::Report(ReportCommand::Access { who, when, output }) => {
            let q = query::as_of(when.at, when.known_at);
            query::access_report(&dir, &who.controller, &who.subject, q, &output.into()).await
        }
        Command::Report(ReportCommand::Processing { controller, when, output }) => {
            query::processing_report(&dir, &controller, query::as_of(when.at, when.known_at), &output.into()).await
        }
        Command::ExportPortable { who, when, out, force } => {
            let q = query::as_of(when.at, when.known_at);
            query::export_portable(&dir, &who.controller, &who.subject, q, out.as_deref(), force).await
        }
        Command::ExportConsent { who, when, format: ConsentFormat::Dpv, out, force } => {
            let q = query::as_of(when.at, when.known_at);
            query::export_consent(&dir, &who.controller, &who.subject, q, out.as_deref(), force).await
        }
        Command::Audit {
            controller,
            now,
            late_after_hours,
            notify_within_days,
            hold_review_days,
            reveal_subjects,
            output,
        } => {
            let options = kvitto::AuditOptions {
                now: now.unwrap_or_else(kvitto::Timestamp::now),
                late_after_hours,
                notify_within_days,
                hold_review_days,
                ledger_start: kvitto::Timestamp::MIN,
            };
            let args = audit::AuditArgs {
                controller: controller.as_deref(),
                options,
                reveal: reveal_subjects,
                output: output.into(),
            };
            audit::audit(&dir, args).await
        }
        Command::Rebuild => query::rebuild(&dir).await,
        Command::Retention(RetentionCommand::Plan { controller, now, json }) => {
            let now = now.unwrap_or_else(kvitto::Timestamp::now);
            erasure::retention_plan(&dir, controller.as_deref(), now, json).await
        }
        Command::Retention(RetentionCommand::Run { controller, now }) => {
            erasure::retention_run(&dir, controller.as_deref(), now.unwrap_or_else(kvitto::Timestamp::now)).await
        }
        Command::Requests { controller, now, all, json } => {
            let now = now.unwrap_or_else(kvitto::Timestamp::now);
            erasure::requests(&dir, controller.as_deref(), now, all, json).await
        }
        Command::Erase { who, register, reason } => {
            erasure::erase(&dir, &who.controller, &who.subject, register.as_deref(), &reason).await
        }
        Command::Export { who, checkpoint, since, out, force } => {
            bundle::export(&dir, &who.controller, &who.subject, checkpoint, since.as_deref(), &out, force).await
        }
        Command::VerifyBundle {
            file, key, key_file, trust_embedded_key, since, witness_keys, quorum, json, ..
        } => {
            let held = bundle::Held { since, witness_keys, quorum };
            bundle::verify_bundle(&file, key, key_file.as_deref(), trust_embedded_key, &held, json)
        }
        Command::Key => {
            let ledger = open_read(&dir).await?;
            let key = ledger.verifier_key().map_err(query::read_failure);
            crate::close(ledger).await;
            say!("{}", key?);
            Ok(())
        }
        Command::Publish { dir: out } => {
            let ledger = open_read(&dir).await?;
            let r = ledger.publish(&out).await.map_err(query::read_failure);
            crate::close(ledger).await;
            let r = r?;
            say!(
                "published checkpoint size {} to {}: {} tiles and {} entry bundles written, {} already there",
                r.size,
                out.display(),
                r.tiles,
                r.bundles,
                r.kept
            );
            Ok(())
        }
        Command::Checkpoint { show, size } => {
            let ledger = open(&dir).await?;
            let note = if show {
                ledger
                    .checkpoint_note(size)
                    .map_err(query::read_failure)
                    .and_then(|n| {
                        n.map(|(_, note)| note).ok_or_else(|| {
                            Failure::input(match size {
                                Some(s) => format!("no checkpoint of size {s} is stored"),
                                None => "no checkpoint is stored yet; run `kvitto checkpoint`".into(),
                            })
                        })
                    })
                    .map(|n| (n, 0))
            } else {
                witnessed(&ledger).await
            };
            crate::close(ledger).await;
            // Exactly as stored: the note already ends with a newline.
            let (note, failed) = note?;
            use std::io::Write;
            let _ = std::io::stdout().write_all(note.as_bytes());
            match failed {
                0 => Ok(()),
                n => Err(Failure::storage(format!(
                    "{n} witness(es) did not cosign; the checkpoint is stored and signed by the log"
                ))),
            }
        }
        Command::Witness(WitnessCommand::Serve { state, name, listen, logs }) => {
            let mut server = kvitto::witness_server::WitnessServer::open(&state, &name).map_err(Failure::input)?;
            for l in &logs {
                let origin = server.trust_log(l).map_err(Failure::input)?;
                eprintln!("witnessing {origin}");
            }
            let listener = std::net::TcpListener::bind(&listen)
                .map_err(|e| Failure::storage(format!("cannot listen on {listen}: {e}")))?;
            eprintln!("witness {name} on http://{listen} — its key: {}", server.vkey());
            let stop = std::sync::atomic::AtomicBool::new(false);
            server.serve(&listener, &stop).map_err(Failure::storage)
        }
        Command::Witness(w) => {
            let out = match w {
                WitnessCommand::Add { name, url, vkey } => kvitto::witness::add(&dir, &name, &url, &vkey)
                    .map(|w| format!("added witness {} ({}), key {}", w.name, w.url, w.key.name)),
                WitnessCommand::Remove { name } => kvitto::witness::remove(&dir, &name).and_then(|removed| {
                    if removed {
                        Ok(format!("removed witness {name}"))
                    } else {
                        Err(kvitto::ReadError::BadQuery {
                            field: "name",
                            message: format!("no witness named {name:?}"),
                        })
                    }
                }),
                WitnessCommand::Serve { .. } => unreachable!("handled above"),
                WitnessCommand::List => kvitto::witness::policy(&dir).map(|all| {
                    if all.is_empty() {
                        "no witnesses configured (kvitto witness add NAME URL VKEY)".into()
                    } else {
                        all.iter()
                            .map(|w| format!("{} {} {}", w.name, w.url, w.key.vkey()))
                            .collect::<Vec<_>>()
                            .join("\n")
                    }
                }),
            };
            say!("{}", out.map_err(query::read_failure)?);
            Ok(())
        }
        Command::Prove(p) => {
            let ledger = open_read(&dir).await?;
            let n = ledger.len();
            let out = prove(&ledger, p, n).await;
            crate::close(ledger).await;
            say!("{}", out?);
            Ok(())
        }
        Command::VerifyProof { file, key, key_file, checkpoint, witness_keys, quorum, .. } => {
            let key = match (key, key_file) {
                (Some(k), _) => k,
                (None, Some(f)) => bundle::read_text(&f)?.trim().to_string(),
                (None, None) => return Err(Failure::input("pass --key VKEY or --key-file FILE")),
            };
            let text = bundle::read_text(&file)?;
            let checkpoint = checkpoint.as_deref().map(bundle::read_text).transpose()?;
            let witnesses = witness_keys
                .iter()
                .map(|k| {
                    kvitto_proof::checkpoint::WitnessKey::parse(k)
                        .map_err(|e| Failure::input(format!("--witness-key {k:?}: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let quorum = quorum.unwrap_or(witnesses.len().min(1));
            let anchors = kvitto_proof::prooffile::Anchors {
                log_key: &key,
                checkpoint: checkpoint.as_deref(),
                witnesses: &witnesses,
                quorum,
            };
            let checked = kvitto_proof::prooffile::verify_file(&text, &anchors)
                .map_err(|e| Failure { code: 1, message: format!("proof does not verify: {e}") })?;
            let cp = &checked.checkpoint;
            let cosigned = match checked.cosigned_by.is_empty() {
                true => String::new(),
                false => format!(", cosigned by {}", checked.cosigned_by.join(", ")),
            };
            match checked.proven {
                kvitto_proof::prooffile::Proven::Inclusion { index, event_hash, event } => {
                    let what = event
                        .map(|e| {
                            format!(
                                " ({} of controller {}, recorded {})",
                                e.kind.name(),
                                e.controller,
                                e.recorded_at.to_rfc3339()
                            )
                        })
                        .unwrap_or_default();
                    say!(
                        "ok: event seq {index}{what}, hash {}, is in {}'s checkpoint of size {}{cosigned}",
                        kvitto::EventHash(event_hash),
                        cp.origin,
                        cp.size
                    )
                }
                kvitto_proof::prooffile::Proven::Consistency { size1, root1 } => say!(
                    "ok: the tree of {size1} events (root {}) is a prefix of {}'s checkpoint of size {}{cosigned}",
                    kvitto::EventHash(root1),
                    cp.origin,
                    cp.size
                ),
            }
            Ok(())
        }
        Command::Migrate { from, to } => migrate(&from, &to).await,
        Command::Serve(args) => serve::serve(&dir, args).await,
        Command::Token(command) => serve::token(&dir, command),
        Command::Demo { dir, customers, seed, tasks, .. } => {
            demo::run(&dir, &store_spec()?, customers, seed, tasks).await
        }
    }
}

/// `kvitto prove …`: JSON (with the stored checkpoints of its sizes) or a tlog-proof.
async fn prove(ledger: &kvitto::Ledger, p: ProveCommand, n: u64) -> Result<String, Failure> {
    let note = |size: u64| ledger.checkpoint_note(Some(size)).map_err(query::read_failure).map(|n| n.map(|(_, t)| t));
    match p {
        ProveCommand::Inclusion { seq, size, format: ProofFormat::TlogProof } => {
            let (size, cp) = match size {
                Some(s) => (s, note(s)?),
                None => {
                    ledger.checkpoint_note(None).map_err(query::read_failure)?.map_or((0, None), |(s, t)| (s, Some(t)))
                }
            };
            let cp = cp.ok_or_else(|| {
                Failure::input("a tlog-proof needs a stored checkpoint of that size: run `kvitto checkpoint` first")
            })?;
            let p = ledger.inclusion_proof(seq, size).await.map_err(query::read_failure)?;
            let canonical = ledger.canonical(seq).await.map_err(query::read_failure)?;
            let path: Vec<[u8; 32]> = p.proof.iter().map(|h| h.0).collect();
            Ok(kvitto_proof::prooffile::tlog_proof(&canonical, seq, &path, &cp).trim_end().to_string())
        }
        ProveCommand::Inclusion { seq, size, format: ProofFormat::Json } => {
            let size = size.unwrap_or(n);
            let mut j = ledger.inclusion_proof(seq, size).await.map_err(query::read_failure)?.to_json();
            if let Some(cp) = note(size)? {
                j["checkpoint"] = cp.into();
            }
            Ok(serde_json::to_string_pretty(&j).unwrap_or_default())
        }
        ProveCommand::Consistency { from, to } => {
            let to = to.unwrap_or(n);
            let mut j = ledger.consistency_proof(from, to).await.map_err(query::read_failure)?.to_json();
            for (k, size) in [("checkpoint1", from), ("checkpoint2", to)] {
                if let Some(cp) = note(size)? {
                    j[k] = cp.into();
                }
            }
            Ok(serde_json::to_string_pretty(&j).unwrap_or_default())
        }
    }
}

/// Signs a checkpoint and asks the configured witnesses to cosign it: the stored note (with
/// the cosignatures collected) and how many witnesses did not cosign.
async fn witnessed(ledger: &kvitto::Ledger) -> Result<(String, usize), Failure> {
    ledger.checkpoint().await.map_err(query::read_failure)?;
    let outcomes = ledger.cosign().await.map_err(query::read_failure)?;
    let mut failed = 0;
    for o in &outcomes {
        match o {
            kvitto::witness::WitnessOutcome::Cosigned { name, timestamp } => {
                eprintln!("witness {name}: cosigned (timestamp {timestamp})")
            }
            kvitto::witness::WitnessOutcome::Failed { name, status, why } => {
                failed += 1;
                let status = status.map(|s| format!(" (HTTP {s})")).unwrap_or_default();
                eprintln!("witness {name}: NOT cosigned{status}: {why}");
            }
        }
    }
    let note = ledger.checkpoint_note(None).map_err(query::read_failure)?.map(|(_, n)| n).unwrap_or_default();
    Ok((note, failed))
}

async fn migrate(from: &std::path::Path, to: &str) -> Result<(), Failure> {
    kvitto::StoreSpec::parse(to).map_err(|e| Failure::input(format!("--to: {e}")))?;
    let (from_dir, url) = (from.to_path_buf(), to.to_string());
    let show = std::io::stderr().is_terminal();
    let report = tokio::task::spawn_blocking(move || {
        let bar = show.then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template("migrate {bar:40} {pos}/{len} events ({per_sec}, eta {eta})")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        kvitto::migrate_to_postgres(&from_dir, &url, |done, total| {
            if let Some(b) = &bar {
                b.set_length(total);
                b.set_position(done);
            }
        })
    })
    .await
    .map_err(|e| Failure::storage(format!("the migration task failed: {e}")))?;
    let report = report.map_err(|e| match e {
        kvitto::MigrateError::NotSled(..) => Failure::input(e.to_string()),
        kvitto::MigrateError::Open(e) => Failure::from(e),
        other => Failure::storage(other.to_string()),
    })?;
    say!(
        "migrated {} events (head {}) and {} checkpoints into PostgreSQL; {} now uses the database",
        report.events,
        kvitto::EventHash(report.head),
        report.checkpoints,
        from.display()
    );
    if report.legacy_checkpoints_left > 0 {
        say!(
            "note: {} checkpoints over the tree of version 1 stay in the sled store only",
            report.legacy_checkpoints_left
        );
    }
    // Derived data (index, Merkle nodes, projections) is built by the first writer's open.
    let ledger = open(from).await?;
    crate::close(ledger).await;
    say!("index and projections built in the database");
    say!("the sled store is kept at {} until you delete it", report.sled_kept_at.display());
    Ok(())
}

async fn verify(dir: &std::path::Path, against: Option<&std::path::Path>) -> Result<(), Failure> {
    let held = against.map(bundle::read_text).transpose()?;
    let ledger = open_read(dir).await?;
    let bar = if std::io::stderr().is_terminal() && ledger.len() > 200_000 {
        let bar = indicatif::ProgressBar::new(ledger.len());
        bar.set_style(
            indicatif::ProgressStyle::with_template("verify {bar:40} {pos}/{len} events ({per_sec}, eta {eta})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(bar)
    } else {
        None
    };
    let progress_bar = bar.clone();
    let report = ledger
        .verify_against(held.as_deref(), move |done, _| {
            if let Some(b) = &progress_bar {
                b.set_position(done);
            }
        })
        .await;
    let report = match report {
        Ok(r) => r,
        Err(e @ kvitto::VerifyError::Held(_)) => {
            crate::close(ledger).await;
            return Err(Failure { code: 1, message: format!("verification failed: {e}") });
        }
        Err(e) => return Err(Failure::storage(e.to_string())),
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    crate::close(ledger).await;
    match report.failure {
        None => {
            match against {
                Some(_) => say!("ok: {} events, head {}; contains the held checkpoint", report.count, report.head),
                None => say!("ok: {} events, head {}", report.count, report.head),
            }
            Ok(())
        }
        Some(f) => Err(Failure { code: 1, message: format!("verification failed: {f}") }),
    }
}

/// Subcommands that open no ledger: `--ledger` (and `KVITTO_LEDGER`) mean nothing to them, so
/// giving it on the command line is refused instead of silently ignored. Each declares a hidden
/// local `ledger` argument, which keeps clap from giving it the global one: their help does not
/// show an option that does nothing.
const LEDGERLESS: [(&str, &str); 3] = [
    ("demo", "the demo builds its own ledger in --dir (default ./kvitto-demo)"),
    ("verify-bundle", "a bundle is checked offline, against the verifier key alone"),
    ("verify-proof", "a proof is checked offline, against the verifier key alone"),
];

/// Parses the command line; `Err` for `--ledger` given to a subcommand that opens no ledger.
fn parse() -> Result<Cli, String> {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().get_matches();
    if let Some((name, sub)) = matches.subcommand()
        && let Some((_, why)) = LEDGERLESS.iter().find(|(n, _)| *n == name)
    {
        let given = |m: &clap::ArgMatches| m.value_source("ledger") == Some(clap::parser::ValueSource::CommandLine);
        if given(&matches) || given(sub) {
            return Err(format!("{name}: --ledger is not used here ({why}); leave it out"));
        }
    }
    Cli::from_arg_matches(&matches).map_err(|e| e.to_string())
}

/// glibc's malloc spent a third of a rebuild zeroing and consolidating pages it had just
/// returned; the library crates leave this choice to the program that links them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(why) => {
            eprintln!("kvitto: {why}");
            return ExitCode::from(2);
        }
    };
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kvitto: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.message.is_empty() {
                // Messages quote input (a bundle's field names, a bad line's text): escaped.
                eprintln!("{}", table::terminal_safe(&f.message, false));
            }
            ExitCode::from(f.code)
        }
    }
}
