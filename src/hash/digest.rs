//! The digest algorithms and a sink that computes several of them from one read.

use sha2::Digest as _;

pub use crate::algo::{Algo, AlgoSet, Digests};

use crate::read::{OFFLOAD_THRESHOLD, Sink, SinkFactory};
use crate::walk::Entry;

/// BLAKE3's own options, as `b3sum` has them: a key (`--keyed`) and the output length
/// in bytes (`--length`; BLAKE3 is an extendable-output function).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blake3Mode {
    pub key: Option<[u8; blake3::KEY_LEN]>,
    pub len: usize,
}

impl Default for Blake3Mode {
    fn default() -> Self {
        Blake3Mode {
            key: None,
            len: blake3::OUT_LEN,
        }
    }
}

/// One running digest.
enum State {
    Blake3(Box<blake3::Hasher>, usize),
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
    Sha1(sha1::Sha1),
    Md5(md5::Md5),
    Xxh3(Box<xxhash_rust::xxh3::Xxh3>),
}

impl State {
    fn new(algo: Algo, blake3: Blake3Mode) -> Self {
        match algo {
            Algo::Blake3 => {
                let hasher = match &blake3.key {
                    Some(key) => blake3::Hasher::new_keyed(key),
                    None => blake3::Hasher::new(),
                };
                State::Blake3(Box::new(hasher), blake3.len)
            }
            Algo::Sha256 => State::Sha256(sha2::Sha256::new()),
            Algo::Sha512 => State::Sha512(sha2::Sha512::new()),
            Algo::Sha1 => State::Sha1(sha1::Sha1::new()),
            Algo::Md5 => State::Md5(md5::Md5::new()),
            Algo::Xxh3 => State::Xxh3(Box::new(xxhash_rust::xxh3::Xxh3::new())),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            // BLAKE3's tree mode spreads a large chunk over every core; below the
            // offload threshold the split costs more than it gains.
            State::Blake3(h, _) if data.len() >= OFFLOAD_THRESHOLD => {
                h.update_rayon(data);
            }
            State::Blake3(h, _) => {
                h.update(data);
            }
            State::Sha256(h) => h.update(data),
            State::Sha512(h) => h.update(data),
            State::Sha1(h) => h.update(data),
            State::Md5(h) => h.update(data),
            State::Xxh3(h) => h.update(data),
        }
    }

    fn finish_hex(self) -> String {
        match self {
            State::Blake3(h, blake3::OUT_LEN) => h.finalize().to_hex().to_string(),
            State::Blake3(h, len) => {
                let mut out = vec![0u8; len];
                h.finalize_xof().fill(&mut out);
                hex(&out)
            }
            State::Sha256(h) => hex(&h.finalize()),
            State::Sha512(h) => hex(&h.finalize()),
            State::Sha1(h) => hex(&h.finalize()),
            State::Md5(h) => hex(&h.finalize()),
            State::Xxh3(h) => format!("{:016x}", h.digest()),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// Computes every requested digest from the same bytes.
pub struct MultiHasher {
    states: Vec<(Algo, State)>,
}

impl MultiHasher {
    pub fn new(algos: &[Algo]) -> Self {
        Self::with_blake3(algos, Blake3Mode::default())
    }

    /// With BLAKE3 keyed or of another length.
    pub fn with_blake3(algos: &[Algo], blake3: Blake3Mode) -> Self {
        MultiHasher {
            states: algos.iter().map(|&a| (a, State::new(a, blake3))).collect(),
        }
    }
}

impl Sink for MultiHasher {
    type Output = Digests;

    fn update(&mut self, data: &[u8]) {
        for (_, state) in &mut self.states {
            state.update(data);
        }
    }

    fn finish(self, _len: u64) -> Digests {
        self.states
            .into_iter()
            .map(|(a, s)| (a, s.finish_hex()))
            .collect()
    }
}

/// Makes a [`MultiHasher`] with the same algorithms for every file (`spate hash`).
pub struct HasherFactory {
    pub algos: Vec<Algo>,
    pub blake3: Blake3Mode,
}

impl HasherFactory {
    /// The algorithms with BLAKE3 as plain `b3sum` computes it.
    pub fn new(algos: Vec<Algo>) -> Self {
        HasherFactory {
            algos,
            blake3: Blake3Mode::default(),
        }
    }
}

impl SinkFactory for HasherFactory {
    type Tag = ();
    type Sink = MultiHasher;
    fn make(&self, _entry: &Entry, _tag: &()) -> MultiHasher {
        MultiHasher::with_blake3(&self.algos, self.blake3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algo::ALL;

    fn digest_of(algo: Algo, data: &[u8]) -> String {
        let mut h = MultiHasher::new(&[algo]);
        h.update(data);
        h.finish(data.len() as u64).remove(0).1
    }

    #[test]
    fn known_answers_for_abc() {
        assert_eq!(
            digest_of(Algo::Sha256, b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            digest_of(Algo::Md5, b"abc"),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(
            digest_of(Algo::Sha1, b"abc"),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            digest_of(Algo::Blake3, b"abc"),
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
        );
        // As `xxhsum -H3` prints it: the 64-bit value in hex, most significant first.
        assert_eq!(digest_of(Algo::Xxh3, b"abc"), "78af5f94892f3950");
    }

    /// The input of xxHash's own sanity check (`XSUM_fillTestBuffer` in the reference
    /// `cli/xsum_sanity_check.c`): every byte is the top byte of a 64-bit state that
    /// starts at PRIME32 and is multiplied by PRIME64 after each byte.
    fn xxhash_sanity_buffer(len: usize) -> Vec<u8> {
        const PRIME32: u64 = 2_654_435_761;
        const PRIME64: u64 = 11_400_714_785_074_694_797;
        let mut state = PRIME32;
        (0..len)
            .map(|_| {
                let byte = (state >> 56) as u8;
                state = state.wrapping_mul(PRIME64);
                byte
            })
            .collect()
    }

    #[test]
    fn xxh3_matches_the_reference_vectors_whole_and_streamed() {
        // XXH3_64bits, seed 0, from the reference's sanity check: one length for each
        // of the algorithm's paths (empty, 1-3, 4-8, 9-16, 17-128 in three steps,
        // 129-240, one 1 KiB block with an overlapping last stripe, one block ending on a
        // stripe, and two and three blocks).
        let vectors: [(usize, u64); 13] = [
            (0, 0x2D06_8005_38D3_94C2),
            (1, 0xC44B_DFF4_074E_ECDB),
            (6, 0x27B5_6A84_CD2D_7325),
            (12, 0xA713_DAF0_DFBB_77E7),
            (24, 0xA3FE_70BF_9D35_10EB),
            (48, 0x397D_A259_ECBA_1F11),
            (80, 0xBCDE_FBBB_2C47_C90A),
            (195, 0xCD94_217E_E362_EC3A),
            (403, 0xCDEB_804D_65C6_DEA4),
            (512, 0x617E_4959_9013_CB6B),
            (2048, 0xDD59_E2C3_A5F0_38E0),
            (2240, 0x6E73_A905_39CF_2948),
            (2367, 0xCB37_AEB9_E5D3_61ED),
        ];
        let buffer = xxhash_sanity_buffer(2367);
        for (len, expected) in vectors {
            let data = &buffer[..len];
            let expected = format!("{expected:016x}");
            assert_eq!(digest_of(Algo::Xxh3, data), expected, "{len} bytes whole");
            // Readers feed a file in chunks; odd-sized pieces cross every stripe.
            let mut streamed = MultiHasher::new(&[Algo::Xxh3]);
            for piece in data.chunks(7) {
                streamed.update(piece);
            }
            let streamed = streamed.finish(len as u64).remove(0).1;
            assert_eq!(streamed, expected, "{len} bytes in pieces of 7");
        }
    }

    #[test]
    fn chunked_and_rayon_updates_match_one_shot() {
        let data: Vec<u8> = (0..3 * OFFLOAD_THRESHOLD + 17)
            .map(|i| (i * 7) as u8)
            .collect();
        for algo in ALL {
            let mut h = MultiHasher::new(&[algo]);
            for chunk in data.chunks(OFFLOAD_THRESHOLD) {
                h.update(chunk);
            }
            let chunked = h.finish(0).remove(0).1;
            let mut one = MultiHasher::new(&[algo]);
            one.update(&data[..5]);
            one.update(&data[5..]);
            assert_eq!(chunked, one.finish(0).remove(0).1, "{algo}");
            assert_eq!(chunked.len(), algo.hex_len(), "{algo}");
        }
    }
}
