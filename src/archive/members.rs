//! The member filters of `unpack` and `list` (`spate unpack ARCHIVE [MEMBER|GLOB…]`):
//! which entries a run is about, and which filters matched nothing.
//!
//! As GNU tar: a name selects the entry of that name and, when it is a directory,
//! everything under it (a trailing `/` on either side does not matter); a filter that
//! selected nothing is an error (`NAME: not found in archive`, exit 2) once the rest is
//! done. A filter with a glob character (`*`, `?`, `[`) is a pattern, as with tar's
//! `--wildcards` (GNU tar without it takes patterns literally and warns; bsdtar matches
//! them by default): it must match the whole name or one of its leading directories,
//! and `*` matches `/` too, as in tar. `\` escapes a glob character.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

use crate::error::ErrorKind;
use crate::report::{Problem, Reporter};
use anyhow::{Context, Result, anyhow};
use globset::{GlobBuilder, GlobMatcher};

use super::unpack::header::quote;

/// The filters, and which have matched so far.
pub struct Members {
    filters: Vec<Filter>,
}

struct Filter {
    /// As typed, for the message.
    given: OsString,
    test: Test,
    matched: bool,
}

enum Test {
    /// Exact name, trailing `/` removed.
    Name(Vec<u8>),
    Glob(GlobMatcher),
}

impl Members {
    /// Filters from the command line; none selects every entry.
    pub fn new(given: &[OsString]) -> Result<Members> {
        let filters = given
            .iter()
            .map(|g| {
                let bytes = g.as_bytes();
                let test = if bytes.iter().any(|b| b"*?[".contains(b)) {
                    let text = g
                        .to_str()
                        .with_context(|| format!("{}: a pattern must be UTF-8", g.display()))?;
                    let glob = GlobBuilder::new(text.trim_end_matches('/'))
                        .literal_separator(false)
                        .backslash_escape(true)
                        .build()
                        .map_err(|e| anyhow!("{}: invalid pattern: {}", g.display(), e.kind()))?;
                    Test::Glob(glob.compile_matcher())
                } else {
                    Test::Name(trim(bytes).to_vec())
                };
                Ok(Filter {
                    given: g.clone(),
                    test,
                    matched: false,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Members { filters })
    }

    /// Whether every entry is selected (no filters were given).
    pub fn selects_all(&self) -> bool {
        self.filters.is_empty()
    }

    /// Whether the entry `name` is selected; notes which filters selected it.
    pub fn select(&mut self, name: &[u8]) -> bool {
        if self.filters.is_empty() {
            return true;
        }
        let name = trim(name);
        let mut any = false;
        for filter in &mut self.filters {
            if filter.test.selects(name) {
                filter.matched = true;
                any = true;
            }
        }
        any
    }

    /// `Err` naming the filters that selected nothing (GNU tar: "Not found in
    /// archive", exit 2). Every one but the last is written here; the last is the
    /// error, which the caller reports as the run's fatal error.
    pub fn finish(&self, reporter: &Reporter) -> Result<()> {
        let missing: Vec<String> = self
            .filters
            .iter()
            .filter(|f| !f.matched)
            .map(|f| quote(f.given.as_bytes()))
            .collect();
        let Some((last, rest)) = missing.split_last() else {
            return Ok(());
        };
        for name in rest {
            reporter.error(&Problem::new(
                name,
                ErrorKind::NotFound,
                "not found in archive",
            ));
        }
        Err(anyhow!("{last}: not found in archive"))
    }
}

impl Test {
    /// The name itself, or one of its leading directories, matches.
    fn selects(&self, name: &[u8]) -> bool {
        let prefixes = name
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'/')
            .map(|(i, _)| &name[..i])
            .chain(std::iter::once(name));
        match self {
            Test::Name(want) => {
                name.starts_with(want) && (name.len() == want.len() || name[want.len()] == b'/')
            }
            Test::Glob(glob) => {
                let mut prefixes = prefixes;
                prefixes.any(|p| glob.is_match(std::ffi::OsStr::from_bytes(p)))
            }
        }
    }
}

/// Without trailing `/`, so that `dir` and `dir/` name the same entry.
fn trim(name: &[u8]) -> &[u8] {
    let end = name.iter().rposition(|&b| b != b'/').map_or(0, |i| i + 1);
    &name[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reporter for tests: nothing is shown but stderr lines.
    fn quiet() -> Reporter {
        Reporter::new(crate::progress::Progress::hidden())
    }

    fn members(given: &[&str]) -> Members {
        let given: Vec<OsString> = given.iter().map(OsString::from).collect();
        Members::new(&given).unwrap()
    }

    #[test]
    fn names_select_themselves_and_what_is_under_them() {
        let mut m = members(&["a/b", "c/"]);
        assert!(m.select(b"a/b"));
        assert!(m.select(b"a/b/"));
        assert!(m.select(b"a/b/x/y"));
        assert!(!m.select(b"a/bc"));
        assert!(!m.select(b"a"));
        assert!(m.finish(&quiet()).is_err(), "c/ matched nothing");
        assert!(m.select(b"c"));
        assert!(m.finish(&quiet()).is_ok());
    }

    #[test]
    fn globs_match_across_slashes_and_leading_directories() {
        let mut m = members(&["*.txt", "d?r"]);
        assert!(m.select(b"x/y/z.txt"));
        assert!(m.select(b"dir/inner/file.bin"));
        assert!(!m.select(b"dir2/file.bin"));
        assert!(!m.select(b"a.txt.bak"));
        let mut literal = members(&["\\*"]);
        assert!(literal.select(b"*"));
        assert!(!literal.select(b"x"));
    }

    #[test]
    fn no_filters_select_everything() {
        let mut m = members(&[]);
        assert!(m.select(b"anything"));
        assert!(m.finish(&quiet()).is_ok());
    }
}
