//! Seeded property test of every decoder that takes bytes from the store: log entry and
//! snapshot objects (storage's framing and layout decoders), then the yrs updates inside them
//! as a room loads them (the engine's check for v1 updates, yrs for both encodings).
//!
//! For every input: no panic; the memory the decoders hold at their peak stays within
//! `PER_BYTE × input + ALLOWANCE` (a counting global allocator; this file is its own test binary
//! with a single test) for everything this version writes (log entries, v1 snapshots; the
//! v2 snapshots of earlier versions are read without that bound: a few bytes of v2's
//! run-length columns can declare any number of blocks); and through the real load path (a store holding the object beside
//! another document) a corrupt object gives an error naming its key, while everything else
//! stored stays there and loads. Inputs: the corpus in `tests/object-corpus/` (`log-*` and
//! `snapshot-*` files: the attacks of issue 10 and what earlier runs found), objects made
//! here from real documents, then seeded mutations of both. Rerun a failure with
//! `DURE_FUZZ_SEED=<seed>`; `DURE_FUZZ_CASES` sets how many.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fuzz_env;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use dure_collab::{NoopObserver, RoomConfig, Rooms, validate};
use dure_storage::docs::{decode_log_entry, decode_snapshot};
use dure_storage::{DocId, DocStore, Key, PutCondition, Snapshot, StateEncoding, Store, WriterId};
use peak_alloc::PeakAlloc;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use yrs::updates::decoder::Decode;
use yrs::{Any, Doc, GetString, Map, ReadTxn, StateVector, Text, Transact, Update};

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

/// The nesting a stored update may have (the highest `max_nesting_depth` allows).
const DEPTH: usize = dure_collab::MAX_NESTING_DEPTH_LIMIT;
const ALLOWANCE: usize = 64 * 1024;
/// Bytes held per input byte at most. Not 8 (the network fuzz's factor): these objects hold
/// whole documents of many tiny blocks (one typed character each), and yrs keeps every
/// decoded block as an `Item` of over 100 bytes while the smallest encodes in about 4. This
/// fuzz found 14 KB log entries holding 31× their size (content differs per run: writer and
/// client ids are random), so the bound is the linear cost of yrs's decoded form, with
/// margin, not a few bytes declaring gigabytes, which is what it exists to catch.
const PER_BYTE: usize = 48;
const DEFAULT_CASES: usize = 20_000;
const FUZZ_KEY_LOG: &str = "docs/fuzz/log/0000000000000000";
/// The key form written before snapshot keys carried `log_from`: its `log_from` then comes
/// from the object, so mutations of it reach the loader.
const FUZZ_KEY_SNAPSHOT: &str = "docs/fuzz/snapshot-0000000000000001";
const OTHER_TEXT: &str = "stored beside the corrupt object";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Log,
    Snapshot,
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/object-corpus")
}

/// What loading runs on an object's bytes, up to decoded yrs updates. Returns the peak
/// memory held beyond what was allocated before.
fn decode_path(kind: Kind, data: &Bytes) -> usize {
    ALLOC.reset_peak_usage();
    let before = ALLOC.current_usage();
    match kind {
        Kind::Log => {
            if let Ok(entry) = decode_log_entry(FUZZ_KEY_LOG, 0, data) {
                for update in &entry.updates {
                    if validate::update_v1(update, DEPTH).is_ok() {
                        let _ = Update::decode_v1(update);
                    }
                }
            }
        }
        Kind::Snapshot => {
            if let Ok(snapshot) = decode_snapshot(FUZZ_KEY_SNAPSHOT, 1, data) {
                match snapshot.encoding {
                    StateEncoding::YrsV1 => {
                        if validate::update_v1(&snapshot.state, DEPTH).is_ok() {
                            let _ = Update::decode_v1(&snapshot.state);
                        }
                    }
                    // Earlier versions' format: no bound to hold it to (see the top).
                    StateEncoding::YrsV2 => return 0,
                }
            }
        }
    }
    ALLOC.peak_usage().saturating_sub(before)
}

/// The store a case runs against: the object under test and another document.
async fn store_with(kind: Kind, data: &Bytes) -> Store {
    let store = Store::memory();
    let docs = DocStore::new(store.clone());
    let other: DocId = "other".parse().unwrap();
    let doc = Doc::new();
    doc.get_or_insert_text("t")
        .insert(&mut doc.transact_mut(), 0, OTHER_TEXT);
    let update = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    docs.append(&other, 0, &WriterId::random(), &[update.into()])
        .await
        .unwrap();
    let key = match kind {
        Kind::Log => FUZZ_KEY_LOG,
        Kind::Snapshot => FUZZ_KEY_SNAPSHOT,
    };
    store
        .put(&Key::new(key).unwrap(), data.clone(), PutCondition::None)
        .await
        .unwrap();
    store
}

/// The real load path: DocStore's listing and reads, then the room's rebuild.
async fn load_path(kind: Kind, data: &Bytes, origin: &str) {
    let store = store_with(kind, data).await;
    let rooms = Rooms::new(
        DocStore::new(store.clone()),
        RoomConfig::default(),
        Arc::new(NoopObserver),
    );
    let fuzz: DocId = "fuzz".parse().unwrap();
    let loaded = {
        let rooms = rooms.clone();
        tokio::spawn(async move { rooms.stored_doc(&fuzz).await.map(|_| ()) }).await
    };
    match loaded {
        Err(e) => panic!("{origin}: loading panicked ({e}): {:?}", &data[..]),
        Ok(Err(reason)) => assert!(
            reason.contains("docs/fuzz"),
            "{origin}: the error does not name the object: {reason}"
        ),
        Ok(Ok(())) => {}
    }
    // Nothing else stored was lost or changed.
    assert_eq!(store.list("docs/").await.unwrap().len(), 2, "{origin}");
    let other = rooms
        .stored_doc(&"other".parse().unwrap())
        .await
        .unwrap_or_else(|e| panic!("{origin}: the other document no longer loads: {e}"));
    let text = other.get_or_insert_text("t").get_string(&other.transact());
    assert_eq!(text, OTHER_TEXT, "{origin}");
}

fn check(rt: &tokio::runtime::Runtime, kind: Kind, data: &[u8], origin: &str, full: bool) -> usize {
    let data = Bytes::copy_from_slice(data);
    let peak = match catch_unwind(AssertUnwindSafe(|| decode_path(kind, &data))) {
        Ok(peak) => peak,
        Err(_) => panic!("decoding panicked on {origin}: {:?}", &data[..]),
    };
    let bound = PER_BYTE * data.len() + ALLOWANCE;
    assert!(
        peak <= bound,
        "{origin}: {} input bytes held {peak} bytes (bound {bound}): {:?}",
        data.len(),
        &data[..data.len().min(64)]
    );
    if full {
        rt.block_on(load_path(kind, &data, origin));
    }
    peak
}

/// Objects as Dure writes them, from real documents of every content kind.
fn generated_seeds(rt: &tokio::runtime::Runtime) -> Vec<(Kind, Vec<u8>)> {
    let doc = Doc::with_client_id(7);
    let text = doc.get_or_insert_text("text");
    let map = doc.get_or_insert_map("map");
    let mut updates = Vec::new();
    let mut sv = StateVector::default();
    for i in 0..6u32 {
        {
            let mut t = doc.transact_mut();
            text.insert(&mut t, i, &format!("edit {i} ✓"));
            if i % 2 == 1 {
                text.remove_range(&mut t, 1, 2);
            }
            map.insert(
                &mut t,
                format!("k{i}"),
                Any::from(vec![Any::from(i64::from(i))]),
            );
        }
        updates.push(Bytes::from(doc.transact().encode_state_as_update_v1(&sv)));
        sv = doc.transact().state_vector();
    }
    let state = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    rt.block_on(async {
        let store = Store::memory();
        let docs = DocStore::new(store.clone());
        let id: DocId = "seed".parse().unwrap();
        let me = WriterId::random();
        docs.append(&id, 0, &me, &updates[..3]).await.unwrap();
        docs.append(&id, 1, &me, &updates[3..]).await.unwrap();
        docs.append(&id, 2, &me, &[]).await.unwrap();
        let snapshot = Snapshot {
            generation: 1,
            log_from: 0,
            encoding: StateEncoding::YrsV1,
            state: state.into(),
        };
        docs.write_snapshot(&id, &snapshot).await.unwrap();
        let mut out = Vec::new();
        for entry in store.list("docs/seed/").await.unwrap() {
            let object = store.get(&entry.key).await.unwrap().unwrap();
            let kind = if entry.key.as_str().contains("/log/") {
                Kind::Log
            } else {
                Kind::Snapshot
            };
            out.push((kind, object.data.to_vec()));
        }
        out
    })
}

fn corpus(rt: &tokio::runtime::Runtime) -> Vec<(String, Kind, Vec<u8>)> {
    let mut paths: Vec<_> = std::fs::read_dir(corpus_dir())
        .expect("tests/object-corpus")
        .map(|e| e.expect("entry").path())
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let kind = if name.starts_with("log-") {
            Kind::Log
        } else if name.starts_with("snapshot-") {
            Kind::Snapshot
        } else {
            panic!("corpus file {name} is neither log-* nor snapshot-*");
        };
        out.push((name, kind, std::fs::read(&p).expect("read corpus file")));
    }
    for (i, (kind, data)) in generated_seeds(rt).into_iter().enumerate() {
        out.push((format!("generated {kind:?} {i}"), kind, data));
    }
    out
}

const INTERESTING: &[u8] = &[0, 1, 2, 0x7f, 0x80, 0xff, b'D', b'L', b'S', 116, 117, 119];

fn mutate(rng: &mut StdRng, pool: &[(Kind, Vec<u8>)]) -> (Kind, Vec<u8>) {
    let (kind, mut f) = pool[rng.random_range(0..pool.len())].clone();
    for _ in 0..rng.random_range(1..=4) {
        if f.is_empty() {
            f.push(rng.random());
            continue;
        }
        // Past the 6-byte header most of the time, so mutations reach the inner decoders.
        let from = if f.len() > 8 && rng.random_bool(0.9) {
            6
        } else {
            0
        };
        let at = rng.random_range(from..f.len());
        match rng.random_range(0..7) {
            0 => f[at] ^= 1 << rng.random_range(0..8),
            1 => f[at] = INTERESTING[rng.random_range(0..INTERESTING.len())],
            2 => f.insert(at, rng.random()),
            3 => {
                f.remove(at);
            }
            4 => {
                // A huge declared count or length.
                let mut v = Vec::new();
                let mut n: u64 = rng.random_range(1u64 << 20..1u64 << 40);
                while n >= 0x80 {
                    v.push((n as u8) | 0x80);
                    n >>= 7;
                }
                v.push(n as u8);
                f.splice(at..at, v);
            }
            5 => f.truncate(at),
            _ => {
                let other = &pool[rng.random_range(0..pool.len())].1;
                if !other.is_empty() {
                    let start = rng.random_range(0..other.len());
                    f.truncate(at);
                    f.extend_from_slice(&other[start..]);
                }
            }
        }
    }
    (kind, f)
}

#[test]
fn stored_object_decoders_neither_panic_nor_amplify_nor_lose_data() {
    let (seed, cases) = fuzz_env::seed_and_cases(0x0b1e_c7ed, DEFAULT_CASES);
    println!("stored-object fuzz: seed={seed} cases={cases} (DURE_FUZZ_SEED / DURE_FUZZ_CASES)");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let corpus = corpus(&rt);
    assert!(
        corpus.iter().any(|(n, _, _)| n.contains("issue10")),
        "the corpus must hold the reported attacks"
    );
    let mut worst = (0f64, String::new());
    for (name, kind, data) in &corpus {
        let peak = check(&rt, *kind, data, name, true);
        let ratio = peak as f64 / data.len().max(1) as f64;
        if ratio > worst.0 {
            worst = (ratio, name.clone());
        }
    }
    let pool: Vec<(Kind, Vec<u8>)> = corpus.into_iter().map(|(_, k, d)| (k, d)).collect();
    let mut rng = StdRng::seed_from_u64(seed);
    for case in 0..cases {
        let (kind, data) = mutate(&mut rng, &pool);
        // The whole load path for one case in ten: it builds a store and a registry.
        check(
            &rt,
            kind,
            &data,
            &format!("case {case} of seed {seed}"),
            case % 10 == 0,
        );
    }
    println!(
        "largest peak per input byte over the corpus: {:.1} ({})",
        worst.0, worst.1
    );
}
