//! Any bytes as a manifest line: the parser must never panic, and whatever it accepts
//! must be a plausible record (a non-empty name without NUL, digests of the right length).
#![no_main]

use libfuzzer_sys::fuzz_target;
use spate::manifest::parse::{Hints, parse_line};

fuzz_target!(|data: &[u8]| {
    for hints in [
        Hints::for_manifest(b"sums.txt", None),
        Hints::for_manifest(b"x.b3", Some(spate::hash::digest::Algo::Sha256)),
    ] {
        if let Ok(Some(record)) = parse_line(data, &hints) {
            assert!(!record.name.is_empty() && !record.name.contains(&0));
            for e in &record.expected {
                let len = e.algos.iter().next().map(|a| a.hex_len());
                assert_eq!(Some(e.hex.len()), len);
            }
        }
    }
});
