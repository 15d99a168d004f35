//! Where a manifest's names lead: as `sha256sum -c` opens them (the default), or
//! confined beneath `--root DIR` (for manifests you did not write); and the two things
//! that depend on where they lead: the form in which `--audit` compares them with a walk,
//! and the hint for a manifest checked from the wrong directory.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::listing;
use super::resolve::{self, Resolved, Root};
use crate::error::ErrorKind;

/// How a manifest's names are looked up.
pub(super) enum Names {
    /// As `sha256sum -c` and `b3sum -c`: a relative name from the current directory, an
    /// absolute one as it is, `..` and symbolic links followed. The manifest is trusted
    /// as far as the peers trust it. `cwd` is the current directory, canonical.
    AsWritten { cwd: PathBuf },
    /// `--root DIR`: every name beneath DIR, looked up by the kernel so that neither `..`
    /// nor a symbolic link leads out, and read from the descriptor that lookup returned.
    Beneath(Root),
}

/// Why an absolute name is refused with `--root`.
const ABSOLUTE: &str = "absolute path; --root checks only names beneath its directory";

impl Names {
    /// The names of one manifest: beneath `root` when given, else as written.
    pub fn new(root: Option<&Path>) -> Result<Names> {
        Ok(match root {
            Some(root) => Names::Beneath(Root::open(root)?),
            // Only the keys that catch duplicates and match `--audit` use it: in a
            // directory that was removed, absolute names still check, as with
            // `sha256sum -c`, and relative ones are keyed as written.
            None => Names::AsWritten {
                cwd: std::fs::canonicalize(".").unwrap_or_default(),
            },
        })
    }

    /// The canonical directory relative names start from: where listed names and
    /// walked paths meet.
    pub fn base(&self) -> &Path {
        match self {
            Names::AsWritten { cwd } => cwd,
            Names::Beneath(root) => root.canonical(),
        }
    }

    /// Whether names are confined beneath `--root`.
    pub fn confined(&self) -> bool {
        matches!(self, Names::Beneath(_))
    }

    /// Looks `name` up: the path the readers open it by (or shown in their errors) and
    /// what is there.
    pub fn resolve(&self, name: &Path) -> (PathBuf, Resolved) {
        match self {
            Names::AsWritten { .. } => (name.to_path_buf(), resolve::resolve_as_written(name)),
            Names::Beneath(_) if name.is_absolute() => (
                name.to_path_buf(),
                Resolved::Error(ErrorKind::OutsideRoot, ABSOLUTE.into()),
            ),
            Names::Beneath(root) => (root.join(name), root.resolve(name)),
        }
    }
}

/// The form in which `--audit` compares a listed name with the files its walk finds:
/// the canonical path of the name's directory (symbolic links resolved, as in the
/// walk's canonical root) joined with the name's last component. Without it, a
/// manifest written through a link (`spate hash /data/link`) would make every file of
/// `--audit /data/link` NEW. Manifests list files directory by directory, so the last
/// directory's canonical path is kept: one `realpath` per directory, only when auditing.
#[derive(Default)]
pub(super) struct AuditPaths {
    last: Option<(PathBuf, PathBuf)>,
}

impl AuditPaths {
    /// The audit form of `name`, relative to `base` (the canonical directory relative
    /// names start from). Falls back to the lexical form when the directory does not
    /// resolve: such a name is MISSING, and no walk finds it either.
    pub fn of(&mut self, base: &Path, name: &Path) -> PathBuf {
        let (Some(parent), Some(file)) = (name.parent(), name.file_name()) else {
            return listing::normalize(base, name);
        };
        let dir = base.join(parent);
        if let Some((written, canonical)) = &self.last
            && *written == dir
        {
            return canonical.join(file);
        }
        match std::fs::canonicalize(&dir) {
            Ok(canonical) => {
                let path = canonical.join(file);
                self.last = Some((dir, canonical));
                path
            }
            Err(_) => listing::normalize(base, name),
        }
    }
}

/// Names looked up beside the manifest before the hint is given: enough to tell a
/// manifest checked from the wrong directory from a tree that is gone, few enough to
/// cost nothing.
const PROBES: usize = 3;

/// What the lookups of one manifest found, for the hint when every file is missing.
#[derive(Default)]
pub(super) struct Tally {
    files: u64,
    missing: u64,
    /// The first few relative names that were missing.
    probes: Vec<PathBuf>,
}

impl Tally {
    /// Counts one listed file and what its lookup found.
    pub fn count(&mut self, name: &Path, resolved: &Resolved) {
        self.files += 1;
        if matches!(resolved, Resolved::Missing) {
            self.missing += 1;
            if self.probes.len() < PROBES && name.is_relative() {
                self.probes.push(name.to_path_buf());
            }
        }
    }

    /// Counts one listed file judged without a lookup (listed twice, differently).
    pub fn count_other(&mut self) {
        self.files += 1;
    }

    /// True when every listed file was missing here but the first few names exist in
    /// `dir` (the manifest's directory): the manifest was most likely written there
    /// and is checked from elsewhere.
    pub fn all_beside(&self, dir: &Path) -> bool {
        self.files > 0
            && self.missing == self.files
            && !self.probes.is_empty()
            && self.probes.iter().all(|name| dir.join(name).exists())
    }
}
