//! Whether an archive named on the command line can be read from its index: a regular
//! file (not standard input, not a pipe) whose table checks out. A table that is there
//! but disagrees with the file is one warning line, and the caller reads the archive
//! from the start as if it had none.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use super::{Digests, Found, Table, read_table};
use crate::report::Reporter;

/// The archive at `path` and its index, as the [`Table`] [`read_table`] returns (no
/// allocation per member; with [`Digests::Skip`] the digest section is neither read
/// nor hashed), every member's block decoded once and checked; or `None` when it has
/// to be read from the start: standard input, a pipe, no index, or an index found
/// broken (said on `reporter`). Errors opening the file are left to the scan, which
/// reports them as it always has.
pub(crate) fn indexed_table(
    path: &Path,
    reporter: &Reporter,
    digests: Digests,
) -> Option<(Arc<File>, Table)> {
    let (file, table) = indexed_blocks(path, reporter, digests)?;
    match table.toc.check_members() {
        Ok(()) => Some((file, table)),
        Err(why) => {
            ignored(path, &why, reporter);
            None
        }
    }
}

/// As [`indexed_table`], the members' blocks not decoded yet: for a reader that goes
/// through them once anyway ([`super::TocView::members`] checks each block as it
/// decodes it) and can still read the whole archive instead when one fails.
pub(crate) fn indexed_blocks(
    path: &Path,
    reporter: &Reporter,
    digests: Digests,
) -> Option<(Arc<File>, Table)> {
    if path.as_os_str() == "-" {
        return None;
    }
    let file = File::open(path).ok()?;
    // A pipe or a device cannot be read from its end.
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    match read_table(&file, digests) {
        Ok(Found::Indexed(index)) => Some((Arc::new(file), index)),
        Ok(Found::Plain) => None,
        Ok(Found::Broken(why)) => {
            ignored(path, &why, reporter);
            None
        }
        Err(e) => {
            let why = format!("cannot be read: {}", crate::error::describe_io(&e));
            ignored(path, &why, reporter);
            None
        }
    }
}

/// The one line that says the table is not used, and why.
pub(crate) fn ignored(path: &Path, why: &str, reporter: &Reporter) {
    let words = format!("index ignored: {why}; reading the whole archive");
    reporter.notice(path, &words);
}
