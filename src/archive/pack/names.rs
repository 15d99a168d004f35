//! Member names as GNU tar stores them: the bytes of the stored name exactly (a leading
//! `./` kept, as `tar -cf x.tar ./a` keeps it), in the header's 100-byte name field, or,
//! when longer, in a GNU long-name entry (`L`, then `K` for a long link target) ahead of
//! the header, as GNU tar writes them.
//!
//! The `tar` crate's builder would drop `.` components from a name that fits the
//! header but keep them in a long one, so `spate pack -C dir .` stored `a` next to
//! `./long/…`, where GNU tar stores `./a` and `./long/…`: names are set here instead.

use std::io::{self, Read, Write};

use tar::{EntryType, Header};

/// Bytes of a header's name and link name fields.
const FIELD: usize = 100;

/// Appends one member: `header` (every other field set) under `name`, with link target
/// `link` for a link, and `data`.
pub(super) fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    header: &mut Header,
    name: &[u8],
    link: Option<&[u8]>,
    data: impl Read,
) -> io::Result<()> {
    if name.len() > FIELD {
        long_entry(tar, b'L', name)?;
    }
    put(&mut header.as_old_mut().name, name);
    if let Some(link) = link {
        if link.len() > FIELD {
            long_entry(tar, b'K', link)?;
        }
        put(&mut header.as_old_mut().linkname, link);
    }
    header.set_cksum();
    tar.append(header, data)
}

/// The field holds the first bytes of `bytes` (all of them when they fit), the rest
/// zeros. A long name's field is only a reminder: readers take the long-name entry.
fn put(field: &mut [u8; FIELD], bytes: &[u8]) {
    let n = bytes.len().min(FIELD);
    field[..n].copy_from_slice(&bytes[..n]);
    field[n..].fill(0);
}

/// A GNU long-name (`L`) or long-link (`K`) entry holding `bytes` and a NUL, as GNU
/// tar writes it: named `././@LongLink`, owned by 0, mode 644, mtime 0.
fn long_entry<W: Write>(tar: &mut tar::Builder<W>, kind: u8, bytes: &[u8]) -> io::Result<()> {
    let mut header = Header::new_gnu();
    put(&mut header.as_old_mut().name, b"././@LongLink");
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(bytes.len() as u64 + 1);
    header.set_entry_type(EntryType::new(kind));
    header.set_cksum();
    tar.append(&header, bytes.chain(&[0u8][..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_link_targets_read_back_exactly_short_long_and_at_the_limit() {
        let long = format!("./{}/x", "n".repeat(120));
        let at_limit = format!("./{}", "m".repeat(98));
        let past_limit = format!("./{}", "m".repeat(99));
        let names = [
            "./",
            "./a.txt",
            "./sub/",
            "plain",
            &long,
            &at_limit,
            &past_limit,
        ];
        let targets = ["./a.txt", "../up", "a//b/./c", "/abs/x", &long, &past_limit];
        let mut builder = tar::Builder::new(Vec::new());
        for name in names {
            let mut header = Header::new_gnu();
            header.set_size(0);
            header.set_entry_type(EntryType::Directory);
            append(
                &mut builder,
                &mut header,
                name.as_bytes(),
                None,
                io::empty(),
            )
            .unwrap();
        }
        for target in targets {
            let mut header = Header::new_gnu();
            header.set_size(0);
            header.set_entry_type(EntryType::Symlink);
            let link = Some(target.as_bytes());
            append(
                &mut builder,
                &mut header,
                long.as_bytes(),
                link,
                io::empty(),
            )
            .unwrap();
        }
        let bytes = builder.into_inner().unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let read: Vec<(Vec<u8>, Option<Vec<u8>>)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let link = e.link_name_bytes().map(|l| l.into_owned());
                (e.path_bytes().into_owned(), link)
            })
            .collect();
        assert_eq!(read.len(), names.len() + targets.len());
        for (name, (stored, _)) in names.iter().zip(&read) {
            assert_eq!(stored, name.as_bytes());
        }
        for (target, (name, stored)) in targets.iter().zip(&read[names.len()..]) {
            assert_eq!(name, long.as_bytes());
            assert_eq!(stored.as_deref(), Some(target.as_bytes()));
        }
    }
}
