//! An archive without a table of contents, read from start to end: all a check can do
//! with one, since there are no digests to compare with, is to prove it decompresses
//! and parses; for `--audit`, its files are hashed on the way to make up the table.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};

use super::CHUNK;
use crate::archive::input;
use crate::archive::unpack::header::{Kind, Meta, quote, short_cause};
use crate::progress::Progress;

/// What a scan found.
pub(super) struct Scanned {
    pub members: u64,
    /// Where and why it stopped early (a corrupt or truncated archive).
    pub error: Option<String>,
}

/// Reads the archive at `path` to the end, calling `each` with every member's
/// metadata and, when `hash` is set, each regular file's BLAKE3. `Err` only when it is
/// no archive at all (a fatal error, as an unreadable manifest).
pub(super) fn scan(
    path: &Path,
    progress: &Progress,
    hash: bool,
    mut each: impl FnMut(&Meta, Option<blake3::Hash>),
) -> Result<Scanned> {
    let input = input::open(path, progress)?;
    let label = input.label.clone();
    let mut archive = tar::Archive::new(input.stream);
    let members = archive
        .entries()
        .with_context(|| format!("reading {label}"))?;
    let mut scanned = Scanned {
        members: 0,
        error: None,
    };
    let mut buf = vec![0u8; CHUNK];
    let mut last: Option<Vec<u8>> = None;
    for member in members {
        let result = member.and_then(|mut member| {
            let meta = Meta::read(&mut member)?;
            let mut hasher = (hash && meta.kind == Kind::File).then(blake3::Hasher::new);
            let mut read = 0u64;
            loop {
                let n = member.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                read += n as u64;
                if let Some(h) = hasher.as_mut() {
                    h.update(&buf[..n]);
                }
            }
            if read < member.size() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "unexpected end of data",
                ));
            }
            Ok((meta, hasher.map(|h| h.finalize())))
        });
        match result {
            Ok((meta, digest)) => {
                scanned.members += 1;
                each(&meta, digest);
                last = Some(meta.name);
            }
            Err(e) => {
                let cause = short_cause(&e);
                scanned.error = Some(match &last {
                    Some(name) => format!(
                        "truncated or corrupt after entry \"{}\": {cause}",
                        quote(name)
                    ),
                    None => format!("cannot read the first entry: {cause}"),
                });
                break;
            }
        }
    }
    Ok(scanned)
}
