# kvitto — the few commands a contributor runs every day.

# Build everything (debug)
build:
    cargo build --workspace --all-targets --locked

# The README's test command (what CI runs)
test:
    cargo test --workspace --locked

# Formatting and lints, as CI expects them
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --locked -- -D warnings

# The main job: build and explore a demo ledger
demo *ARGS:
    cargo run --release -p kvitto-cli -- demo {{ARGS}}

# Criterion benchmarks (append, verify, may_process/rebuild and proofs on 1M events;
# KVITTO_BENCH_EVENTS sets the big ledgers' size)
bench:
    cargo bench -p kvitto-bench --locked

# kvitto against SQLite and raw sled, side by side in one run (docs/PERFORMANCE.md)
compare *ARGS:
    cargo run --release -p kvitto-bench --locked -- compare {{ARGS}}

# Peak memory of large appends (30k/100k/300k events; BATCH events per commit group)
append-memory BATCH="10000" *SIZES:
    scripts/append-memory {{BATCH}} {{SIZES}}

# Kill-and-recover loop against the real writer (100 cycles takes ~2 minutes)
crash-loop CYCLES="100":
    KVITTO_CRASH_CYCLES={{CYCLES}} cargo test --release -p kvitto-integration --test crash --locked -- --nocapture

# Run the fault tests RUNS times with one core kept busy and print every failure
# (`just soak crash 20`, `just soak ledger 20` for the crash loop and the concurrency test)
fault-soak RUNS="100":
    scripts/soak faults {{RUNS}}

# Run one integration test file RUNS times with one core busy
soak FILE RUNS="20":
    scripts/soak {{FILE}} {{RUNS}}

# Fuzz one target (json_event, canonical, stored_record, bundle) for SECONDS; needs the
# nightly toolchain and cargo-fuzz (installed on first use). Crashes land in fuzz/artifacts/.
fuzz TARGET SECONDS="120":
    rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
    mkdir -p fuzz/corpus/{{TARGET}}
    cd fuzz && cargo +nightly fuzz run {{TARGET}} corpus/{{TARGET}} seeds/{{TARGET}} -- -max_total_time={{SECONDS}} -max_len=65536

# Recompute the golden vectors with the independent Python implementation
golden-py:
    python3 -m pip install --quiet blake3
    python3 docs/golden/reference.py

# RustSec audit against the offline advisory snapshot
audit:
    cargo audit --db ../shared/advisory-db --no-fetch --stale

# The regulators' web page (docs/WEB.md): built reproducibly into target/web/, SHA-256 of each file printed
web:
    scripts/web-build

# The page in headless Chromium against real and tampered bundles (installs what it needs first)
web-test:
    scripts/test-deps
    cargo test -p kvitto-integration --test web --locked -- --nocapture

# The HTTP API against its OpenAPI contract with schemathesis (PyPI, installed into target/ on
# first use): generated requests for every operation on a throw-away ledger
api-fuzz EXAMPLES="100":
    scripts/api-fuzz {{EXAMPLES}}

# Scaling curves (append at 1/8/64/256 callers; verify, rebuild, history and proofs at 100k
# and 1M events; BIG=--big adds 10M) as JSON and an SVG plot in target/
scale BIG="":
    cargo run --release -p kvitto-bench --locked -- scale {{BIG}} --json target/scale.json
    scripts/plot-scale target/scale.json target/scale.svg
