//! `pack -T FILE`: the names a file (or standard input) lists, one per line or, with
//! `--null`, separated by NUL bytes, as GNU tar's `--files-from` reads them.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use anyhow::{Result, anyhow};

use crate::error::describe_io;

/// Every name `list` holds (`-`: standard input), in order. Names are taken verbatim:
/// unlike GNU tar without `--verbatim-files-from`, a line starting with `-` is a name,
/// never an option, so a list from `find` cannot change how the archive is made.
/// Empty names are skipped (tar skips them too); a line's `\r` is kept, as tar keeps it.
pub fn read(list: &Path, null: bool) -> Result<Vec<OsString>> {
    let shown = if list.as_os_str() == "-" {
        "standard input".to_string()
    } else {
        list.display().to_string()
    };
    let fail = |e: std::io::Error| anyhow!("{shown}: {}", describe_io(&e));
    let source: Box<dyn Read> = if list.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(list).map_err(fail)?)
    };
    let mut reader = BufReader::new(source);
    let separator = if null { 0 } else { b'\n' };
    let mut names = Vec::new();
    loop {
        let mut name = Vec::new();
        if reader.read_until(separator, &mut name).map_err(fail)? == 0 {
            break;
        }
        if name.last() == Some(&separator) {
            name.pop();
        }
        if !name.is_empty() {
            names.push(OsString::from_vec(name));
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_nul_separated_names_are_read_verbatim() {
        let dir = tempfile::tempdir().unwrap();
        let lines = dir.path().join("l");
        std::fs::write(&lines, b"a b\n-C\n\nlast").unwrap();
        assert_eq!(read(&lines, false).unwrap(), ["a b", "-C", "last"]);
        let nul = dir.path().join("n");
        std::fs::write(&nul, b"x\ny\0\0z\0").unwrap();
        assert_eq!(read(&nul, true).unwrap(), ["x\ny", "z"]);
        let err = read(&dir.path().join("missing"), false).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("missing: No such file or directory")
        );
    }
}
