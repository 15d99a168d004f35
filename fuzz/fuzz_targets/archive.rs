//! Any bytes as an archive, through the same stages `unpack` and `list` use: the
//! decompressor (compression found from magic bytes), the tar reader, spate's header
//! decoding and its name rules. Nothing may panic, and any name the rules accept must
//! stay relative and free of `..`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spate::archive::codec::Decoder;
use spate::archive::unpack::header::Meta;
use spate::archive::unpack::names::{self, Placement};

fuzz_target!(|data: &[u8]| {
    let Ok(decoder) = Decoder::start(Box::new(std::io::Cursor::new(data.to_vec()))) else {
        return;
    };
    let mut archive = tar::Archive::new(decoder);
    let Ok(entries) = archive.entries() else {
        return;
    };
    for entry in entries.take(10_000) {
        let Ok(mut entry) = entry else { break };
        if let Ok(meta) = Meta::read(&mut entry) {
            if let Ok(Placement::At(path)) = names::place(&meta.name, 0) {
                for c in path.components() {
                    assert!(!c.is_empty() && c != b".." && !c.contains(&b'/'));
                }
            }
        }
        if std::io::copy(&mut entry, &mut std::io::sink()).is_err() {
            break;
        }
    }
});
