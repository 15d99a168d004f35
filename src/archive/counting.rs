//! What `pack` counts besides packing: the bytes of the tree ahead of the job, for the
//! progress display's total, and the tar stream's bytes, for the summary's ratio.

use std::collections::HashSet;
use std::io;
use std::os::unix::fs::MetadataExt;

use anyhow::Result;

use super::pack::ShardSelect;
use super::stored_names::Root;
use crate::progress::Tally;
use crate::walk;

/// The progress display's count, ahead of the job: the bytes of every regular file
/// the walk will store data for (a further hard link stores none) — with `--shard`,
/// only this shard's, chosen by the rule the job's own walk applies.
pub(super) fn count_files(
    roots: &[Root],
    options: &walk::WalkOptions,
    tally: &Tally,
) -> Result<()> {
    let mut linked: HashSet<(u64, u64)> = HashSet::new();
    let mut select = ShardSelect::new(options.shard);
    let mut going = true;
    for root in roots {
        let disk = [root.disk().as_os_str().to_owned()];
        walk::entries(&disk, options, |item| {
            let Ok(entry) = item else { return true };
            let ft = entry.file_type();
            if !ft.is_file() {
                return true;
            }
            let Ok(meta) = entry.metadata() else {
                return true;
            };
            // The shard decides by the name as given, as the job's walk does.
            if !select.keeps(&root.given_path(entry.path()), &ft, &meta) {
                return true;
            }
            if meta.nlink() > 1 && !linked.insert((meta.dev(), meta.ino())) {
                return true;
            }
            going = tally.add(meta.len());
            going
        })?;
        if !going {
            break;
        }
    }
    Ok(())
}

/// Counts the tar stream's bytes on their way to the compressor, for the summary's
/// ratio.
pub(super) struct Counted<W> {
    pub(super) inner: W,
    pub(super) bytes: u64,
}

impl<W: io::Write> io::Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
