//! `hash_tree`: hash a tree from Rust code and get the results as an
//! iterator, in walk order, through the same walker, readers and digests as
//! `spate hash`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;

use super::options::{ReadOptions, WalkOptions};
use crate::algo::{Algo, Digests};
use crate::error::ErrorKind;
use crate::hash::digest::HasherFactory;
use crate::pipeline::{self, Outcome};
use crate::progress::Progress;
use crate::walk::NoticeKind;

/// How [`hash_tree`] walks and reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashOptions {
    /// The digests to compute for every file, from one read.
    pub algos: Vec<Algo>,
    /// Which files: excludes, links, file systems.
    pub walk: WalkOptions,
    /// How to read: backend, threads, files in flight, buffer size.
    pub read: ReadOptions,
}

impl Default for HashOptions {
    /// BLAKE3, the whole tree, and `spate hash`'s read settings.
    fn default() -> Self {
        HashOptions {
            algos: vec![Algo::Blake3],
            walk: WalkOptions::default(),
            read: ReadOptions::default(),
        }
    }
}

/// One file's digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    /// The path as walked: a root as given, joined with the names below it.
    pub path: PathBuf,
    /// Bytes read.
    pub size: u64,
    /// Lower-case hex digests, in the order of [`HashOptions::algos`].
    pub digests: Digests,
}

/// Why [`hash_tree`] has no digest for a file, or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// One file or directory could not be read; the walk goes on.
    #[error("{}: {message}", path.display())]
    File {
        /// The file or directory.
        path: PathBuf,
        /// The stable kind (`not_found`, `permission_denied`, …).
        kind: ErrorKind,
        /// The cause in words.
        message: String,
    },
    /// The run could not go on (a thread died, the options were refused); the last item.
    #[error("{0}")]
    Fatal(String),
}

/// Hashes every regular file below `paths`, in walk order (each directory's entries
/// sorted by name, depth first), computing every digest of `options.algos` from one
/// read. Links that are not followed, FIFOs, sockets and devices are left out, as
/// `spate hash` leaves them out. The work runs on threads of its own; memory stays
/// bounded however slowly the iterator is consumed, and dropping it stops the run.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("a"), b"hello")?;
/// std::fs::write(dir.path().join("b"), b"world")?;
///
/// let files: Vec<_> = spate::hash_tree(&[dir.path()], &spate::HashOptions::default())
///     .collect::<Result<_, _>>()?;
/// assert_eq!(files.len(), 2);
/// assert_eq!(files[0].path, dir.path().join("a"));
/// assert_eq!(files[0].digests[0].1, blake3::hash(b"hello").to_hex().as_str());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn hash_tree<P: AsRef<Path>>(paths: &[P], options: &HashOptions) -> HashTree {
    let roots = paths
        .iter()
        .map(|p| p.as_ref().as_os_str().to_os_string())
        .collect::<Vec<_>>();
    let options = options.clone();
    // A bounded queue: a consumer that falls behind pauses the readers instead of
    // letting results pile up.
    let (tx, rx) = mpsc::sync_channel(1024);
    let runner = std::thread::spawn(move || {
        let read = match options.read.resolve() {
            Ok(read) => read,
            Err(why) => {
                let _ = tx.send(Err(HashError::Fatal(why)));
                return;
            }
        };
        let walk = options.walk.to_walk();
        let factory = Arc::new(HasherFactory::new(options.algos.clone()));
        let progress = Progress::hidden();
        let sent = tx.clone();
        let result = pipeline::run(&roots, &walk, &read, factory, &progress, |outcome| {
            let item = match outcome {
                Outcome::Read {
                    path, output, len, ..
                } => Ok(FileDigest {
                    path,
                    size: len,
                    digests: output,
                }),
                Outcome::Failed { path, error, .. } => Err(HashError::File {
                    path,
                    kind: error.kind(),
                    message: error.to_string(),
                }),
                Outcome::Notice(notice) => match notice.kind {
                    NoticeKind::Skipped(_) => return Ok(()),
                    NoticeKind::Error(kind, message) => Err(HashError::File {
                        path: notice.path,
                        kind,
                        message,
                    }),
                },
                Outcome::Note(()) => return Ok(()),
            };
            sent.send(item)
                .map_err(|_| anyhow::anyhow!("the iterator was dropped"))
        });
        if let Err(err) = result {
            let _ = tx.send(Err(HashError::Fatal(format!("{err:#}"))));
        }
    });
    HashTree {
        results: rx,
        runner: Some(runner),
    }
}

/// The results of [`hash_tree`], in walk order.
pub struct HashTree {
    results: mpsc::Receiver<Result<FileDigest, HashError>>,
    runner: Option<JoinHandle<()>>,
}

impl Iterator for HashTree {
    type Item = Result<FileDigest, HashError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.results.recv() {
            Ok(item) => Some(item),
            Err(_) => {
                // Every result is in; a runner that panicked is the run's last word.
                let panicked = self.runner.take().is_some_and(|r| r.join().is_err());
                panicked.then(|| Err(HashError::Fatal("internal error: the run panicked".into())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_come_in_walk_order_with_a_kind_and_the_run_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"a").unwrap();
        let missing = dir.path().join("missing");
        let roots = [dir.path().to_path_buf(), missing.clone()];
        let items: Vec<_> = hash_tree(&roots, &HashOptions::default()).collect();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].as_ref().unwrap().size, 1);
        match &items[1] {
            Err(HashError::File {
                path,
                kind,
                message,
            }) => {
                assert_eq!(path, &missing);
                assert_eq!(*kind, ErrorKind::NotFound);
                assert!(message.contains("No such file"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn dropping_the_iterator_early_stops_the_run() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..3000 {
            std::fs::write(dir.path().join(format!("f{i:04}")), b"x").unwrap();
        }
        let mut tree = hash_tree(&[dir.path()], &HashOptions::default());
        assert!(tree.next().is_some());
        drop(tree); // must not hang or panic
    }
}
