//! Seeded property test of every decoder that takes bytes from the network: y-websocket
//! frames, sync step 1 state vectors, v1 updates as clients send them (the engine's check,
//! then yrs), and awareness updates (with the JSON checks of each state).
//!
//! For every input, the whole path a room takes must not panic, and the memory it holds at
//! its peak must stay within `8 × input + ALLOWANCE` (a counting global allocator measures
//! it; this file is its own test binary with a single test, so nothing else allocates
//! meanwhile). The inputs are the corpus in `tests/corpus/` (real updates, the attacks of
//! issue 10, and what earlier runs found), then mutations of it from a seeded generator.
//! Rerun a failure with `DURE_FUZZ_SEED=<seed>`; `DURE_FUZZ_CASES` sets how many.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fuzz_env;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use dure_collab::protocol::{self, ClientMessage};
use dure_collab::{ConnId, presence, validate};
use peak_alloc::PeakAlloc;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{
    Any, Array, Doc, Map, ReadTxn, StateVector, Text, Transact, Update, XmlElementPrelim,
    XmlFragment, XmlTextPrelim,
};

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

const DEPTH: usize = 64;
const AWARENESS_MAX_BYTES: usize = 32 * 1024;
/// Fixed cost of decoding anything at all (yrs's maps and boxes for one block or entry),
/// on top of the per-byte bound.
const ALLOWANCE: usize = 64 * 1024;
const DEFAULT_CASES: usize = 30_000;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// Runs what a room runs on a frame. Returns the peak memory it held beyond what was
/// allocated before.
fn room_path(frame: &Bytes) -> usize {
    ALLOC.reset_peak_usage();
    let before = ALLOC.current_usage();
    match protocol::decode(frame) {
        Ok(ClientMessage::SyncStep1 { state_vector }) => {
            if validate::state_vector_v1(&state_vector).is_ok() {
                let _ = StateVector::decode_v1(&state_vector);
            }
        }
        Ok(ClientMessage::SyncStep2 { update } | ClientMessage::Update { update }) => {
            if validate::update_v1(&update, DEPTH).is_ok() {
                let _ = Update::decode_v1(&update);
            }
        }
        // The room refuses larger awareness frames before decoding them.
        Ok(ClientMessage::Awareness { update }) if frame.len() <= AWARENESS_MAX_BYTES => {
            if let Some(entries) = presence::decode(&update) {
                let user = presence::PresenceUser {
                    id: "u".into(),
                    name: "U".into(),
                };
                let mut table = presence::Presence::default();
                let limits = presence::Limits {
                    per_connection: 4,
                    per_room: 512,
                    max_depth: DEPTH,
                };
                let _ = table.apply(ConnId(1), entries, Instant::now(), limits, Some(&user));
            }
        }
        Ok(ClientMessage::Awareness { .. } | ClientMessage::QueryAwareness) | Err(_) => {}
    }
    ALLOC.peak_usage().saturating_sub(before)
}

/// Applying what passed, to a fresh document: yrs must not panic on it either (the room
/// would survive a panic, but it would restart and drop its connections).
fn apply_path(frame: &Bytes) {
    if let Ok(ClientMessage::SyncStep2 { update } | ClientMessage::Update { update }) =
        protocol::decode(frame)
        && validate::update_v1(&update, DEPTH).is_ok()
        && let Ok(u) = Update::decode_v1(&update)
    {
        let doc = Doc::new();
        let _ = doc.transact_mut().apply_update(u);
        let _ = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
    }
}

fn check(frame: &[u8], origin: &str) -> usize {
    let frame = Bytes::copy_from_slice(frame);
    let peak = match catch_unwind(AssertUnwindSafe(|| room_path(&frame))) {
        Ok(peak) => peak,
        Err(_) => panic!("decoding panicked on {origin}: {:?}", &frame[..]),
    };
    let bound = 8 * frame.len() + ALLOWANCE;
    assert!(
        peak <= bound,
        "{origin}: {} input bytes held {peak} bytes (bound {bound}): {:?}",
        frame.len(),
        &frame[..frame.len().min(64)]
    );
    if catch_unwind(AssertUnwindSafe(|| apply_path(&frame))).is_err() {
        panic!("applying panicked on {origin}: {:?}", &frame[..]);
    }
    peak
}

/// Real client traffic: updates of every content kind, state vectors, awareness.
fn generated_seeds() -> Vec<Vec<u8>> {
    let doc = Doc::with_client_id(42);
    let text = doc.get_or_insert_text("text");
    let map = doc.get_or_insert_map("map");
    let arr = doc.get_or_insert_array("arr");
    let xml = doc.get_or_insert_xml_fragment("default");
    let mut out = Vec::new();
    let mut sv = doc.transact().state_vector();
    let step = |doc: &Doc, out: &mut Vec<Vec<u8>>, sv: &mut StateVector| {
        let u = doc.transact().encode_state_as_update_v1(sv);
        out.push(protocol::update(&u).to_vec());
        out.push(protocol::sync_step2(&u).to_vec());
        *sv = doc.transact().state_vector();
        out.push(protocol::sync_step1(&sv.encode_v1()).to_vec());
    };
    {
        let mut t = doc.transact_mut();
        text.insert(&mut t, 0, "hello wörld");
        text.format(&mut t, 0, 5, [("bold".into(), Any::Bool(true))].into());
    }
    step(&doc, &mut out, &mut sv);
    {
        let mut t = doc.transact_mut();
        text.remove_range(&mut t, 2, 3);
        text.insert_embed(&mut t, 1, Any::from(vec![Any::from("img"), Any::Null]));
        map.insert(
            &mut t,
            "n",
            Any::from(vec![Any::from(1.5), Any::from(7i64)]),
        );
        map.insert(&mut t, "b", Any::from(vec![1u8, 2, 3]));
        arr.insert_range(
            &mut t,
            0,
            [Any::from(true), Any::from(-3i64), Any::Undefined],
        );
    }
    step(&doc, &mut out, &mut sv);
    {
        let mut t = doc.transact_mut();
        let p = xml.insert(&mut t, 0, XmlElementPrelim::empty("paragraph"));
        p.insert(&mut t, 0, XmlTextPrelim::new("para"));
        map.remove(&mut t, "n");
    }
    step(&doc, &mut out, &mut sv);
    let full = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    out.push(protocol::sync_step2(&full).to_vec());
    out.push(protocol::sync_step1(&[0]).to_vec());
    out.push(vec![3]);
    out.push(
        protocol::awareness(&presence::encode([
            (
                42,
                3,
                r##"{"user":{"name":"a","color":"#123"},"cursor":null}"##,
            ),
            (43, 1, "null"),
        ]))
        .to_vec(),
    );
    out.push(protocol::saved(5).to_vec());
    out
}

fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut entries: Vec<_> = std::fs::read_dir(corpus_dir())
        .expect("tests/corpus")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    let mut out: Vec<(String, Vec<u8>)> = entries
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("read corpus file"))
        })
        .collect();
    out.extend(
        generated_seeds()
            .into_iter()
            .enumerate()
            .map(|(i, f)| (format!("generated seed {i}"), f)),
    );
    out
}

const INTERESTING: &[u8] = &[0, 1, 2, 0x7f, 0x80, 0xff, 116, 117, 118, 119, 125, 126, 127];

/// A payload's frame with the length fixed up, so mutations reach the inner decoders.
fn reframe(frame: &[u8]) -> Vec<u8> {
    let (prefix, payload) = match frame {
        [0, k, rest @ ..] => (vec![0, *k], rest),
        [1, rest @ ..] => (vec![1], rest),
        _ => return frame.to_vec(),
    };
    let mut buf = payload;
    let Some(_len) = protocol::read_var(&mut buf) else {
        return frame.to_vec();
    };
    let mut out = prefix;
    let mut len = bytes::BytesMut::new();
    protocol::write_var(&mut len, buf.len() as u64);
    out.extend_from_slice(&len);
    out.extend_from_slice(buf);
    out
}

fn mutate(rng: &mut StdRng, pool: &[Vec<u8>]) -> Vec<u8> {
    let mut f = pool[rng.random_range(0..pool.len())].clone();
    for _ in 0..rng.random_range(1..=4) {
        if f.is_empty() {
            f.push(rng.random());
            continue;
        }
        let at = rng.random_range(0..f.len());
        match rng.random_range(0..7) {
            0 => f[at] ^= 1 << rng.random_range(0..8),
            1 => f[at] = INTERESTING[rng.random_range(0..INTERESTING.len())],
            2 => f.insert(at, rng.random()),
            3 => {
                f.remove(at);
            }
            4 => {
                // A huge declared count or length.
                let mut v = bytes::BytesMut::new();
                protocol::write_var(&mut v, rng.random_range(1u64 << 20..1u64 << 40));
                f.splice(at..at, v.iter().copied());
            }
            5 => {
                // Nesting: open arrays at a random spot.
                let n = rng.random_range(1..200);
                f.splice(at..at, std::iter::repeat_n([117u8, 1], n).flatten());
            }
            _ => {
                let other = &pool[rng.random_range(0..pool.len())];
                if !other.is_empty() {
                    let from = rng.random_range(0..other.len());
                    f.truncate(at);
                    f.extend_from_slice(&other[from..]);
                }
            }
        }
    }
    if rng.random_bool(0.7) { reframe(&f) } else { f }
}

#[test]
fn network_decoders_neither_panic_nor_amplify() {
    let (seed, cases) = fuzz_env::seed_and_cases(0x00d0_7e10, DEFAULT_CASES);
    println!("decoder fuzz: seed={seed} cases={cases} (DURE_FUZZ_SEED / DURE_FUZZ_CASES)");
    let corpus = corpus();
    assert!(
        corpus.iter().any(|(n, _)| n.starts_with("issue10-")),
        "the corpus must hold the reported attacks"
    );
    let mut worst = (0f64, String::new());
    for (name, frame) in &corpus {
        let peak = check(frame, name);
        let ratio = peak as f64 / frame.len().max(1) as f64;
        if ratio > worst.0 {
            worst = (ratio, name.clone());
        }
    }
    let pool: Vec<Vec<u8>> = corpus.into_iter().map(|(_, f)| f).collect();
    let mut rng = StdRng::seed_from_u64(seed);
    for case in 0..cases {
        let frame = mutate(&mut rng, &pool);
        check(&frame, &format!("case {case} of seed {seed}"));
    }
    println!(
        "largest peak per input byte over the corpus: {:.1} ({})",
        worst.0, worst.1
    );
}
