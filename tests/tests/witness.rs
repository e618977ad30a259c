//! The published log and its witnesses, checked with peers written from the C2SP specs alone
//! (`kvitto_integration::peers`): the static tiles read back by an independent tile client
//! give the checkpoint's root and inclusion proofs; an independent witness cosigns the
//! ledger's checkpoints, bundles carry the cosignatures, and the witness refuses the fork of
//! two copies of one ledger.
#![allow(clippy::unwrap_used)]

use kvitto::witness::WitnessOutcome;
use kvitto_integration::peers::{self, tiles, witness::TestWitness};
use kvitto_integration::*;
use kvitto_proof::bundle::{BundleError, Options, Trust, verify_with};
use kvitto_proof::checkpoint::WitnessKey;

const ORIGIN: &str = "test.kvitto/ledger";

async fn grow(ledger: &kvitto::Ledger, from: usize, n: usize) {
    for i in from..from + n {
        ledger
            .append(collected_with_details("kalejdo", &format!("T-{}", i % 7), &format!("t{i}@example.se")))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiles_read_back_by_an_independent_client() {
    let (d, _p, ledger) = fresh_ledger().await;
    let key = ledger.verifier_key().unwrap();
    let out = d.path().join("www");
    grow(&ledger, 0, 300).await;
    ledger.checkpoint().await.unwrap();
    let first = ledger.publish(&out).await.unwrap();
    assert_eq!((first.size, first.tiles, first.bundles, first.kept), (301, 3, 2, 0), "0/000, 0/001.p/45, 1/000.p/1");
    let (origin, size, root) = tiles::read_checkpoint(&out, &key).unwrap();
    assert_eq!((origin.as_str(), size, root), (ORIGIN, 301, ledger.root(301).await.unwrap().0));
    tiles::check_tiles(&out, size).unwrap();
    assert_eq!(tiles::root_from_tiles(&out, size).unwrap(), root);
    let log = ledger.log(0..u64::MAX).await.unwrap();
    for index in [0u64, 1, 255, 256, 299, 300] {
        let data = tiles::leaf_data(&out, size, index).unwrap();
        assert_eq!(data, log[index as usize].hash.0.to_vec(), "entry {index} is the event hash, nothing else");
        let proof = tiles::inclusion_proof(&out, size, index).unwrap();
        tiles::verify_inclusion(index, size, &peers::leaf_hash(&data), &proof, &root).unwrap();
        assert_eq!(
            proof,
            ledger.inclusion_proof(index, size).await.unwrap().proof.iter().map(|h| h.0).collect::<Vec<_>>()
        );
    }
    // Nothing personal leaves: no e-mail, no pseudonym, no canonical bytes in the tiles.
    let bytes = all_bytes_under(&out);
    assert!(!contains(&bytes, b"example.se"));
    for e in log.iter().filter(|e| e.event.subject.is_some()).take(7) {
        assert!(!contains(&bytes, &e.event.subject.unwrap().subject.0), "a pseudonym was published");
    }
    // Incremental: the next publish writes only the new tiles and bundles.
    grow(&ledger, 300, 300).await;
    ledger.checkpoint().await.unwrap();
    let second = ledger.publish(&out).await.unwrap();
    assert_eq!(second.size, 602);
    assert_eq!((second.tiles, second.bundles), (3, 2), "0/001, 0/002.p/90, 1/000.p/2; entries/001, entries/002.p/90");
    assert_eq!(second.kept, 2, "0/000 and entries/000 were there");
    let (_, size, root) = tiles::read_checkpoint(&out, &key).unwrap();
    tiles::check_tiles(&out, size).unwrap();
    assert_eq!(tiles::root_from_tiles(&out, size).unwrap(), root);
    // The old partial tiles stay for the older checkpoint's size.
    assert_eq!(tiles::root_from_tiles(&out, 301).unwrap(), ledger.root(301).await.unwrap().0);
    let again = ledger.publish(&out).await.unwrap();
    assert_eq!((again.tiles, again.bundles), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_independent_witness_cosigns_and_catches_a_fork() {
    let (d, path_a, a) = fresh_ledger().await;
    let key = a.verifier_key().unwrap();
    let w = TestWitness::start("witness.test/w1", [21; 32]);
    w.trust_log(ORIGIN, &key);
    let wkey = WitnessKey::parse(&w.vkey()).unwrap();
    kvitto::witness::add(&path_a, "w1", &w.url(), &w.vkey()).unwrap();
    assert!(kvitto::witness::add(&path_a, "w1", &w.url(), &w.vkey()).is_err(), "a name twice");
    assert!(kvitto::witness::add(&path_a, "w2", "ftp://x", &w.vkey()).is_err());

    grow(&a, 0, 10).await;
    a.checkpoint().await.unwrap();
    let first = a.cosign().await.unwrap();
    assert!(matches!(first[..], [WitnessOutcome::Cosigned { .. }]), "{first:?}");
    assert_eq!(w.latest(ORIGIN).map(|l| l.0), Some(11));
    // The stored note now carries the cosignature; a bundle carries it to the regulator.
    let b = a.export_bundle("kalejdo", "T-3", None, None).await.unwrap();
    let text = serde_json::to_string(&b).unwrap();
    let witnesses = [wkey.clone()];
    let opts = |quorum| Options { witnesses: &witnesses, quorum, ..Options::trusting(Trust::Key(&key)) };
    let v = verify_with(&text, &opts(1)).unwrap();
    assert_eq!(v.cosigned_by.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(), ["witness.test/w1"]);
    assert!(matches!(verify_with(&text, &opts(2)), Err(BundleError::Witnesses(_))));
    peers::witness::verify_cosigned_note(&w.vkey(), b["checkpoint"].as_str().unwrap()).unwrap();

    // The next checkpoint goes with a consistency proof from size 11.
    grow(&a, 10, 5).await;
    a.checkpoint().await.unwrap();
    assert!(matches!(a.cosign().await.unwrap()[..], [WitnessOutcome::Cosigned { .. }]));
    assert_eq!(w.latest(ORIGIN).map(|l| l.0), Some(17));

    // A copy of the ledger (state file and all) goes its own way.
    a.close().await.expect("ledger closes cleanly");
    let path_b = d.path().join("copy");
    copy_tree(&path_a, &path_b);
    let (a, b) = (reopen(&path_a).await, reopen(&path_b).await);
    grow(&a, 100, 3).await;
    grow(&b, 200, 3).await;
    a.checkpoint().await.unwrap();
    b.checkpoint().await.unwrap();
    assert!(matches!(a.cosign().await.unwrap()[..], [WitnessOutcome::Cosigned { .. }]));
    let fork = b.cosign().await.unwrap();
    match &fork[..] {
        [WitnessOutcome::Failed { status: Some(422), why, .. }] => assert!(why.contains("fork"), "{why}"),
        other => panic!("the witness must refuse the fork: {other:?}"),
    }
    assert!(w.statuses().contains(&409), "B first sent its stale size and was told the witness's");
    // B's bundle cannot reach a quorum of one.
    let from_b = serde_json::to_string(&b.export_bundle("kalejdo", "T-3", None, None).await.unwrap()).unwrap();
    assert!(matches!(verify_with(&from_b, &opts(1)), Err(BundleError::Witnesses(_))));
    assert!(verify_with(&from_b, &opts(0)).is_ok(), "without witnesses the fork is invisible");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn witness_refusals_are_explained() {
    let (_d, path, ledger) = fresh_ledger().await;
    grow(&ledger, 0, 4).await;
    ledger.checkpoint().await.unwrap();
    // A witness that does not know the origin: 404.
    let stranger = TestWitness::start("witness.test/stranger", [31; 32]);
    kvitto::witness::add(&path, "stranger", &stranger.url(), &stranger.vkey()).unwrap();
    // A witness that holds another key for this origin: 403.
    let other_key =
        kvitto_proof::checkpoint::vkey(ORIGIN, &ed25519_dalek::SigningKey::from_bytes(&[3; 32]).verifying_key());
    let wrong = TestWitness::start("witness.test/wrong", [32; 32]);
    wrong.trust_log(ORIGIN, &other_key);
    kvitto::witness::add(&path, "wrong", &wrong.url(), &wrong.vkey()).unwrap();
    // A witness that is ahead of this ledger (it saw another copy grow further).
    let ahead = TestWitness::start("witness.test/ahead", [33; 32]);
    ahead.trust_log(ORIGIN, &ledger.verifier_key().unwrap());
    ahead.set_latest(ORIGIN, 50, [7; 32]);
    kvitto::witness::add(&path, "ahead", &ahead.url(), &ahead.vkey()).unwrap();
    // And one that does not answer.
    let gone = TestWitness::start("witness.test/gone", [34; 32]);
    kvitto::witness::add(&path, "gone", "http://127.0.0.1:9", &gone.vkey()).unwrap();
    let outcomes = ledger.cosign().await.unwrap();
    let why =
        |name: &str| match outcomes.iter().find(|o| matches!(o, WitnessOutcome::Failed { name: n, .. } if n == name)) {
            Some(WitnessOutcome::Failed { status, why, .. }) => (*status, why.clone()),
            other => panic!("{name}: {other:?}"),
        };
    assert_eq!(why("stranger").0, Some(404));
    assert!(why("stranger").1.contains("does not know the origin"));
    assert_eq!(why("wrong").0, Some(403));
    assert!(why("ahead").1.contains("rolled back"), "{:?}", why("ahead"));
    assert_eq!(why("gone").0, None);
    assert!(why("gone").1.contains("no answer"), "{:?}", why("gone"));
    assert_eq!(outcomes.len(), 4);
    let stored = ledger.checkpoint_note(None).unwrap().unwrap().1;
    assert_eq!(stored.matches('\u{2014}').count(), 1, "no cosignature was stored: {stored}");
}

/// kvitto's own witness (`kvitto witness serve`), checked with the independent peer's client
/// and cosignature verifier, and with the ledger's client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kvittos_witness_server_follows_the_spec() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let (d, path, ledger) = fresh_ledger().await;
    let key = ledger.verifier_key().unwrap();
    let mut server = kvitto::witness_server::WitnessServer::open(&d.path().join("w"), "witness.test/own").unwrap();
    assert_eq!(server.trust_log(&key).unwrap(), ORIGIN);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let wvkey = server.vkey();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::spawn(move || server.serve(&listener, &flag).unwrap());

    grow(&ledger, 0, 6).await;
    ledger.checkpoint().await.unwrap();
    let (_, note7) = ledger.checkpoint_note(None).unwrap().unwrap();
    // The peer's client: a stale old size gets 409 with the witness's size, as the spec says.
    let post =
        |body: String| peers::witness::http_request("POST", &format!("{url}/add-checkpoint"), body.as_bytes()).unwrap();
    let r = post(peers::witness::add_checkpoint_body(3, &[], &note7));
    assert_eq!((r.status, r.content_type.as_str(), r.body.as_str()), (409, "text/x.tlog.size", "0\n"));
    let r = post(peers::witness::add_checkpoint_body(0, &[], &note7));
    assert_eq!(r.status, 200, "{}", r.body);
    let cosigned = format!("{note7}{}", r.body);
    peers::witness::verify_cosigned_note(&wvkey, &cosigned).unwrap();
    // Another log's note: 404; a note signed by another key for this origin: 403.
    let other = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let head = |origin, size| kvitto_proof::checkpoint::TreeHead { origin, size, root: [1; 32] };
    let stranger = kvitto_proof::checkpoint::sign(&head("other.test/log", 1), &other).unwrap();
    assert_eq!(post(peers::witness::add_checkpoint_body(0, &[], &stranger)).status, 404);
    let forged = kvitto_proof::checkpoint::sign(&head(ORIGIN, 9), &other).unwrap();
    assert_eq!(post(peers::witness::add_checkpoint_body(7, &[], &forged)).status, 403);
    assert_eq!(post("old 01\n\n".to_string() + &note7).status, 400);

    // The ledger's client against it: extension with a consistency proof from 7.
    kvitto::witness::add(&path, "own", &url, &wvkey).unwrap();
    std::fs::write(path.join("witness-state"), "own 7\n").unwrap();
    grow(&ledger, 6, 4).await;
    ledger.checkpoint().await.unwrap();
    assert!(matches!(ledger.cosign().await.unwrap()[..], [WitnessOutcome::Cosigned { .. }]));
    // A checkpoint of the same size with another root (a fork) is refused with 422.
    let (size, _) = ledger.checkpoint_note(None).unwrap().unwrap();
    ledger.close().await.expect("ledger closes cleanly");
    let seed = {
        let (store, _, _) = kvitto_store::Store::open(&path).unwrap();
        kvitto_vault::keyfiles::signing_seed(store.dir()).unwrap().unwrap()
    };
    let own = ed25519_dalek::SigningKey::from_bytes(&seed);
    let fork = kvitto_proof::checkpoint::sign(
        &kvitto_proof::checkpoint::TreeHead { origin: ORIGIN, size, root: [5; 32] },
        &own,
    )
    .unwrap();
    let r = post(peers::witness::add_checkpoint_body(size, &[], &fork));
    assert_eq!(r.status, 422, "{}", r.body);
    stop.store(true, Ordering::Release);
    thread.join().unwrap();
    // The state survives a restart.
    let again = kvitto::witness_server::WitnessServer::open(&d.path().join("w"), "witness.test/own").unwrap();
    assert_eq!(again.vkey(), wvkey, "the key is kept");
}

/// A witness behind a proxy that appends junk to every answer, and a client that connects
/// and sends nothing: only verified cosignature lines are stored, and the idle client does not
/// hold the witness up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_verified_cosignatures_are_kept_and_idle_clients_do_not_block() {
    use std::io::{BufRead, Read, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let (d, path, ledger) = fresh_ledger().await;
    let mut server = kvitto::witness_server::WitnessServer::open(&d.path().join("w"), "witness.test/own").unwrap();
    server.trust_log(&ledger.verifier_key().unwrap()).unwrap();
    let wvkey = server.vkey();
    let server = Arc::new(server);
    // The proxy: answers like the witness, plus a line under the witness's name that is junk.
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let inner = server.clone();
    std::thread::spawn(move || {
        for stream in proxy.incoming().take(1) {
            let mut stream = stream.unwrap();
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                if h == "\r\n" {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let (status, _, answer) = inner.add_checkpoint(std::str::from_utf8(&body).unwrap());
            let answer = format!("{answer}\u{2014} witness.test/own !!!not-base64\n");
            write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            )
            .unwrap();
        }
    });
    kvitto::witness::add(&path, "own", &proxy_url, &wvkey).unwrap();
    grow(&ledger, 0, 3).await;
    ledger.checkpoint().await.unwrap();
    assert!(matches!(ledger.cosign().await.unwrap()[..], [WitnessOutcome::Cosigned { .. }]));
    let (_, note) = ledger.checkpoint_note(None).unwrap().unwrap();
    assert!(!note.contains("!!!"), "junk was stored: {note}");
    let key = ledger.verifier_key().unwrap();
    let b = serde_json::to_string(&ledger.export_bundle("kalejdo", "T-1", None, None).await.unwrap()).unwrap();
    let witnesses = [WitnessKey::parse(&wvkey).unwrap()];
    assert!(
        verify_with(&b, &Options { witnesses: &witnesses, quorum: 1, ..Options::trusting(Trust::Key(&key)) }).is_ok()
    );

    // The witness itself, with a client that connects and stays silent.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let (flag, srv) = (stop.clone(), server.clone());
    let thread = std::thread::spawn(move || srv.serve(&listener, &flag).unwrap());
    let idle = std::net::TcpStream::connect(url.trim_start_matches("http://")).unwrap();
    kvitto::witness::remove(&path, "own").unwrap();
    kvitto::witness::add(&path, "direct", &url, &wvkey).unwrap();
    grow(&ledger, 3, 2).await;
    ledger.checkpoint().await.unwrap();
    let started = std::time::Instant::now();
    let outcomes = ledger.cosign().await.unwrap();
    assert!(matches!(outcomes[..], [WitnessOutcome::Cosigned { .. }]), "{outcomes:?}");
    // Served while the silent connection waits out its deadline (10 s), not after it.
    assert!(started.elapsed() < std::time::Duration::from_secs(8), "the idle client held the witness up");
    drop(idle);
    stop.store(true, Ordering::Release);
    thread.join().unwrap();
}
