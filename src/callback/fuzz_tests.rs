//! The fuzz target on a stable toolchain: every file of the committed corpus
//! (`fuzz/corpus/decode_body`), then a bounded, deterministic mutation loop over it (bit flips,
//! byte inserts and deletes, splices of two inputs). A panic anywhere fails the test.

use std::path::{Path, PathBuf};

use proptest::prelude::{Rng, RngExt};
use proptest::test_runner::{RngAlgorithm, TestRng};

use super::catalogue::{EventKind, Product};
use crate::testing::{fuzz_decode_and_verify, hostile_bodies, signed};

/// Mutations per run: enough to reach well past the corpus, a few seconds in a debug build.
const MUTATIONS: usize = 20_000;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decode_body")
}

fn corpus() -> Vec<Vec<u8>> {
    let mut inputs: Vec<Vec<u8>> = std::fs::read_dir(corpus_dir())
        .expect("the committed fuzz corpus")
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    inputs.sort();
    inputs
}

fn mutate(rng: &mut TestRng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut data = input.to_vec();
    for _ in 0..rng.random_range(1..8) {
        let at = rng.random_range(0..=data.len());
        match rng.random_range(0..5) {
            0 if at < data.len() => data[at] ^= 1 << rng.random_range(0..8),
            1 => data.insert(at, rng.next_u32() as u8),
            2 if at < data.len() => {
                data.remove(at);
            }
            3 => {
                // A splice: the tail of another input from here on.
                let from = rng.random_range(0..=other.len());
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
            _ => {
                let interesting: &[&[u8]] = &[
                    b"\"", b"{", b"}", b"%", b"+", b"&", b"=", b"\\u0000", b"1e400", b"-",
                ];
                let pick = interesting[rng.random_range(0..interesting.len())];
                data.splice(at..at, pick.iter().copied());
            }
        }
    }
    data
}

#[test]
fn the_corpus_and_its_mutations_never_panic() {
    let corpus = corpus();
    assert!(
        corpus.len() >= 40,
        "the corpus has only {} inputs",
        corpus.len()
    );
    corpus
        .iter()
        .for_each(|input| fuzz_decode_and_verify(input));
    let mut rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    for _ in 0..MUTATIONS {
        let input = &corpus[rng.random_range(0..corpus.len())];
        let other = &corpus[rng.random_range(0..corpus.len())];
        fuzz_decode_and_verify(&mutate(&mut rng, input, other));
    }
}

/// Writes the seed corpus: the hostile table and a signed callback of every event, each as JSON
/// and as a form, under both policies. Run once after changing them:
/// `cargo test --lib write_fuzz_corpus -- --ignored`.
#[test]
#[ignore]
fn write_fuzz_corpus() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let mut seeds: Vec<(u8, Vec<u8>)> = hostile_bodies()
        .into_iter()
        .map(|case| {
            (
                u8::from(case.content_type == Some("application/x-www-form-urlencoded")),
                case.body,
            )
        })
        .collect();
    for kind in EventKind::all() {
        let body = crate::testing::sample_of(kind, "corpus-call");
        // The selector's bits 2-3 pick the product the body was posted to.
        let product = Product::ALL
            .iter()
            .position(|p| *p == kind.family().product())
            .unwrap_or(0) as u8;
        seeds.push((product << 2, body.to_string().into_bytes()));
        seeds.push((
            product << 2 | 1,
            crate::callback::sample::form_encode(&body).into_bytes(),
        ));
    }
    seeds.push((
        2,
        signed(serde_json::json!({"event": "call_transfer"}))
            .to_string()
            .into_bytes(),
    ));
    for (selector, body) in seeds {
        let mut input = vec![selector];
        input.extend_from_slice(&body);
        let name = hex::encode(<sha1::Sha1 as sha1::Digest>::digest(&input));
        std::fs::write(dir.join(name), input).unwrap();
    }
}
