//! The subject map (FORMAT.md §7) at 1M events over 100k subjects: the cost of folding an
//! event in, of the root after a batch of changes, of a proof and its check, and the proof
//! size.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use kvitto_proof::map::{Key, MapEntry, SubjectMap, verify};

const SUBJECTS: u64 = 100_000;
const EVENTS: u64 = 1_000_000;

fn key(i: u64) -> Key {
    let mut k = [0u8; 16];
    k.copy_from_slice(&blake3::hash(&i.to_be_bytes()).as_bytes()[..16]);
    k
}

fn entry(i: u64) -> MapEntry {
    MapEntry { count: i / SUBJECTS + 1, head: *blake3::hash(&i.to_le_bytes()).as_bytes() }
}

fn bench(c: &mut Criterion) {
    let keys: Vec<Key> = (0..SUBJECTS).map(key).collect();
    let mut full = SubjectMap::new();
    let started = std::time::Instant::now();
    for i in 0..EVENTS {
        full.insert(keys[(i % SUBJECTS) as usize], entry(i));
    }
    let root = full.root();
    eprintln!("map: {EVENTS} events over {SUBJECTS} subjects folded and rooted in {:.2?}", started.elapsed());
    let depths: Vec<usize> = (0..1000).map(|i| full.prove(&keys[i * 97]).siblings.len()).collect();
    let avg = depths.iter().sum::<usize>() as f64 / depths.len() as f64;
    eprintln!(
        "map proof at {SUBJECTS} subjects: {avg:.1} siblings on average, {} at most ({:.0} bytes as hex JSON)",
        depths.iter().max().copied().unwrap_or(0),
        avg * 67.0 + 120.0
    );
    let mut g = c.benchmark_group("map");
    g.sample_size(10);
    g.bench_function("fold_1M_events_100k_subjects", |b| {
        b.iter(|| {
            let mut m = SubjectMap::new();
            for i in 0..EVENTS {
                m.insert(keys[(i % SUBJECTS) as usize], entry(i));
            }
            m.root()
        })
    });
    g.sample_size(30);
    let mut n = EVENTS;
    g.bench_function("commit_1000_events_into_100k_subjects", |b| {
        b.iter_batched(
            || full.clone(),
            |mut m| {
                for _ in 0..1000 {
                    n += 7919;
                    m.insert(keys[(n % SUBJECTS) as usize], entry(n));
                }
                m.root()
            },
            BatchSize::LargeInput,
        )
    });
    let mut i = 0usize;
    g.bench_function("prove/100k_subjects", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            full.prove(&keys[i])
        })
    });
    let proof = full.prove(&keys[42]);
    g.bench_function("verify/100k_subjects", |b| b.iter(|| verify(&root, &keys[42], &proof).expect("verifies")));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
