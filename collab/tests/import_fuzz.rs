//! Seeded property test of the Markdown import on hostile input: the corpus in
//! `tests/import-corpus`, each file amplified to about 1 MiB, random mutations of it, and
//! random documents built from Markdown fragments. For every input: no panic, and the memory
//! of one import is bounded by the input's size and markup. (Time follows: the pre-scan is
//! one pass, the parser is linear, and the builder stops at the first cap; the run prints
//! how long it took.)
//!
//! Memory is measured by a counting global allocator (peak_alloc). It cannot be 8x the input for every
//! input: each node costs a few hundred bytes in the tree and in yrs whatever its size in
//! the Markdown (`- x\n` is 4 bytes and 3 nodes). So the bound is 8x the input plus a cost
//! per line or markup character, which the import caps (`MARKUP_PER_NODE` times the node
//! limit) before it parses anything; inputs over that cap must be refused without parsing.
//!
//! The seed is printed; set `DURE_FUZZ_SEED` to replay a run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::panic::{AssertUnwindSafe, catch_unwind};

use dure_collab::richtext::{self, ImportError, ImportLimits, MARKUP_PER_NODE};
use peak_alloc::PeakAlloc;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[global_allocator]
static ALLOCATOR: PeakAlloc = PeakAlloc;

/// Bytes one line or markup character may cost beyond 8x the input: measured at about
/// 250-700 bytes (a node in the tree, its yrs items, the parser's items), with margin.
const BYTES_PER_MARKUP: usize = 4096;
/// What any import may use regardless of input (the parser's and yrs's fixed start).
const FIXED_BYTES: usize = 64 * 1024;

/// What pulldown-cmark's first pass may spend padding short table rows with empty cells up
/// to the header's width, before the first event: it stops at 2^18 such cells per
/// document, about 96 bytes each at worst (an item, and its vector doubling). The import's
/// node cap applies to them afterwards, like to any cell.
fn padded_cells_cost(md: &str) -> usize {
    let lines = md.lines().count();
    let widest = md
        .lines()
        .map(|l| l.bytes().filter(|b| *b == b'|').count())
        .max()
        .unwrap_or(0);
    96 * (lines.saturating_mul(widest)).min(1 << 18)
}

fn markup_weight(md: &str) -> usize {
    md.bytes()
        .filter(|b| *b == b'\n' || b.is_ascii_punctuation())
        .count()
}

struct Measured {
    outcome: Result<usize, ImportError>,
    peak: usize,
}

/// Imports `md`, measuring the peak of live heap bytes above what was live before.
/// Single-threaded: this binary runs one test.
fn measure(md: &str, limits: &ImportLimits) -> Measured {
    let base = ALLOCATOR.current_usage();
    ALLOCATOR.reset_peak_usage();
    let result = catch_unwind(AssertUnwindSafe(|| {
        richtext::from_markdown_limited(md, limits).map(|u| u.len())
    }));
    let peak = ALLOCATOR.peak_usage().saturating_sub(base);
    match result {
        Ok(outcome) => Measured { outcome, peak },
        Err(_) => panic!("the import panicked on {:?}", preview(md)),
    }
}

fn preview(md: &str) -> String {
    let end = (0..=md.len().min(200))
        .rev()
        .find(|&i| md.is_char_boundary(i))
        .unwrap_or(0);
    format!("{} ({} bytes)", &md[..end], md.len())
}

#[derive(Default)]
struct Tally {
    cases: usize,
    refused_unparsed: usize,
    refused_at_a_cap: usize,
    imported: usize,
    worst_per_markup: f64,
    worst_case: String,
}

fn check(md: &str, limits: &ImportLimits, tally: &mut Tally) {
    let m = measure(md, limits);
    let weight = markup_weight(md);
    let max_markup = limits.max_nodes * MARKUP_PER_NODE;
    tally.cases += 1;
    if weight > max_markup {
        // Refused before the parser allocated anything for it.
        assert!(
            matches!(m.outcome, Err(ImportError::TooMuchMarkup { .. })),
            "over the markup cap but {:?}: {}",
            m.outcome.as_ref().map_err(ToString::to_string),
            preview(md)
        );
        assert!(
            m.peak <= 1024,
            "refusing allocated {} bytes: {}",
            m.peak,
            preview(md)
        );
        tally.refused_unparsed += 1;
        return;
    }
    let byte_bound =
        8 * md.len() + BYTES_PER_MARKUP * (weight + 1) + padded_cells_cost(md) + FIXED_BYTES;
    assert!(
        m.peak <= byte_bound,
        "peak {} bytes > bound {byte_bound} (markup {weight}): {}",
        m.peak,
        preview(md)
    );
    let per_markup = m.peak.saturating_sub(8 * md.len() + FIXED_BYTES) as f64 / (weight + 1) as f64;
    if per_markup > tally.worst_per_markup {
        tally.worst_per_markup = per_markup;
        tally.worst_case = preview(md);
    }
    match m.outcome {
        Ok(_) => tally.imported += 1,
        Err(
            ImportError::TooManyNodes { .. }
            | ImportError::TooManyRows { .. }
            | ImportError::TooDeep { .. },
        ) => tally.refused_at_a_cap += 1,
        Err(e @ ImportError::TooMuchMarkup { .. }) => {
            panic!("{e} while under the markup cap: {}", preview(md))
        }
    }
}

fn corpus() -> Vec<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/import-corpus");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("corpus directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "the corpus went missing: {files:?}");
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (
                name,
                std::fs::read_to_string(&p).expect("corpus file is UTF-8"),
            )
        })
        .collect()
}

const FRAGMENTS: &[&str] = &[
    "# heading\n",
    "plain words ",
    "*em*",
    "**strong**",
    "_u_",
    "~~s~~",
    "`code`",
    "[link](http://x.example)",
    "![img](i.png \"t\")",
    "- item\n",
    "1. item\n",
    "- [ ] task\n",
    "- [x] done\n",
    "> quote\n",
    "```\ncode\n```\n",
    "| a | b |\n|---|---|\n| 1 | 2 |\n",
    "| c |\n",
    "<u>u</u>",
    "<b>",
    "</i>",
    "<br>",
    "<!-- c -->",
    "<div>\n",
    "\n\n",
    "\n",
    "---\n",
    "    indented\n",
    "\\*",
    "&amp;",
    "[^1]",
    "[^1]: note\n",
    "$m$",
    "한국어 ",
    "\r\n",
    "\t",
    "*",
    "_",
    "`",
    "[",
    "]",
    "(",
    ")",
    "!",
    "<",
    ">",
    "|",
    "  ",
];

/// A random document: fragments, sometimes under a run of container prefixes.
fn random_doc(rng: &mut StdRng, target: usize) -> String {
    let mut md = String::new();
    while md.len() < target {
        if rng.random_bool(0.1) {
            for _ in 0..rng.random_range(1..12) {
                md.push_str(["> ", "- ", "  ", "1. "][rng.random_range(0..4)]);
            }
        }
        md.push_str(FRAGMENTS[rng.random_range(0..FRAGMENTS.len())]);
        if rng.random_bool(0.02) {
            md.push(char::from_u32(rng.random_range(0x20..0x3000)).unwrap_or('?'));
        }
    }
    md
}

/// The input with a few random edits: bytes of markup inserted, spans deleted or repeated.
fn mutate(rng: &mut StdRng, input: &str) -> String {
    let mut chars: Vec<char> = input.chars().collect();
    for _ in 0..rng.random_range(1..8) {
        let at = rng.random_range(0..=chars.len());
        match rng.random_range(0..3) {
            0 => {
                let c = b"*_`[]()!<>|#-+.\\\n &"[rng.random_range(0..19)] as char;
                chars.insert(at, c);
            }
            1 if at < chars.len() => {
                let end = (at + rng.random_range(1..16)).min(chars.len());
                chars.drain(at..end);
            }
            _ if at < chars.len() => {
                let end = (at + rng.random_range(1..32)).min(chars.len());
                let span: Vec<char> = chars[at..end].to_vec();
                for _ in 0..rng.random_range(1..20) {
                    chars.splice(at..at, span.iter().copied());
                }
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

#[test]
fn markdown_import_is_bounded_on_hostile_input() {
    let seed = std::env::var("DURE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6475_7265_u64);
    println!("DURE_FUZZ_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let defaults = ImportLimits::default();
    let tight = ImportLimits {
        max_nodes: 400,
        max_table_rows: 40,
    };
    let mut tally = Tally::default();
    let started = std::time::Instant::now();
    for (name, text) in corpus() {
        for limits in [&defaults, &tight] {
            check(&text, limits, &mut tally);
            // About 1 MiB of the same shape: a long table, a long list, deep nesting...
            let amplified = text.repeat((1 << 20) / text.len().max(1) + 1);
            check(&amplified, limits, &mut tally);
            // ... and just under the markup cap, where the parser does run.
            let weight = markup_weight(&text).max(1);
            let under = text.repeat(limits.max_nodes * MARKUP_PER_NODE / weight);
            check(&under, limits, &mut tally);
        }
        for _ in 0..20 {
            let mutated = mutate(&mut rng, &text);
            check(&mutated, &tight, &mut tally);
            check(&mutated, &defaults, &mut tally);
        }
        println!("{name}: {} cases so far", tally.cases);
    }
    for _ in 0..300 {
        let size = rng.random_range(0..32 * 1024);
        let md = random_doc(&mut rng, size);
        check(&md, &tight, &mut tally);
        check(&md, &defaults, &mut tally);
    }
    // Figures at the default limits: the issue's 4 MiB table of 650k rows and a million
    // list items, and the largest documents that pass the markup cap.
    let prose = "Dure keeps documents on the organisation's own storage, and people edit them \
                 together. "
        .repeat(6)
        + "\n\n";
    let figures = [
        (
            "4 MiB table, 650k rows",
            format!("| a | b |\n|---|---|\n{}", "| 1 | 2 |\n".repeat(650_000)),
        ),
        ("a million list items", "- x\n".repeat(1_000_000)),
        ("4 MiB of prose", prose.repeat((4 << 20) / prose.len())),
        (
            "list at the node cap",
            "- x\n".repeat(defaults.max_nodes / 3 - 1),
        ),
        (
            "table at the row cap",
            format!(
                "| a | b |\n|---|---|\n{}",
                "| 1 | 2 |\n".repeat(defaults.max_table_rows - 1)
            ),
        ),
    ];
    for (name, md) in figures {
        let m = measure(&md, &defaults);
        check(&md, &defaults, &mut tally);
        println!(
            "{name}: {} bytes in, peak {} bytes ({:.1}x), {}",
            md.len(),
            m.peak,
            m.peak as f64 / md.len() as f64,
            match m.outcome {
                Ok(n) => format!("imported ({n} bytes of Yjs update)"),
                Err(e) => format!("refused: {e}"),
            }
        );
    }
    println!(
        "{} cases in {:?}: {} imported, {} refused at a cap, {} refused unparsed; \
         worst bytes per markup character beyond 8x the input: {:.0} ({})",
        tally.cases,
        started.elapsed(),
        tally.imported,
        tally.refused_at_a_cap,
        tally.refused_unparsed,
        tally.worst_per_markup,
        tally.worst_case
    );
    assert!(tally.imported > 100 && tally.refused_at_a_cap > 10 && tally.refused_unparsed > 5);
}
