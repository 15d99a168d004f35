//! `spate unpack`: archive → decompressor thread → tar entries → writes confined
//! beneath the destination directory.
//!
//! Safety rests on two fences: [`names`] refuses names and link targets that could
//! leave the destination, and [`confine`] performs every path operation from a
//! directory descriptor without ever following a symbolic link. An entry that fails
//! either is reported (`spate: NAME: refused: WHY`), its data skipped, and the run goes
//! on; the exit status is then 1.
//!
//! Files are written under a temporary name beside their target and renamed when
//! complete, so an error or a truncated archive never leaves a half file under an
//! entry's name; on SIGINT/SIGTERM the signal thread removes the temporary file
//! (registered by its `/proc/self/fd/DIR/NAME` path). Directory modes and
//! times are set at the end, deepest first, once nothing more is written into them.

pub mod confine;
pub mod header;
pub mod names;
pub mod sparse;
mod to_stdout;
pub mod write;

use std::collections::HashMap;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use humansize::{BINARY, format_size};

use super::UnpackConfig;
use super::index;
use super::input::{self, Input};
use super::members::Members;
use crate::error::ErrorKind;
use crate::output::Cleanup;
use crate::progress::{ArchiveSummary, Progress};
use crate::report::{self, Reporter};
use confine::{Root, WalkError};
use header::{Kind, Meta, Mtime, quote, short_cause};
use names::{Placement, RelPath};
use write::{Copier, DataError};

/// Extracts the archive (the entries the member filters select); `Ok(false)` when some
/// entries failed or were refused, `Err` when a filter matched nothing.
pub fn run(config: &UnpackConfig, cleanup: &Arc<Cleanup>) -> Result<bool> {
    if config.to_stdout {
        return to_stdout::run(config);
    }
    let started = Instant::now();
    let reporter = Reporter::with_skipped(
        Progress::with_unit(config.progress, "entries"),
        !config.quiet,
    );
    let result = extract_all(config, cleanup, None, &reporter);
    reporter.finish();
    let (ok, summary, label) = result?;
    if config.summary {
        reporter.say(&summary.render_unpack(&label, started));
    }
    Ok(ok)
}

/// Extracts every entry of `config.archive`, or of `reader` when given: whether all
/// went well, what was moved, and the archive's name for messages. Everything it has to
/// say goes through `reporter`.
pub(crate) fn extract_all(
    config: &UnpackConfig,
    cleanup: &Arc<Cleanup>,
    reader: Option<Box<dyn Read + Send>>,
    reporter: &Reporter,
) -> Result<(bool, ArchiveSummary, String)> {
    let progress = reporter.progress();
    let mut members = Members::new(&config.members)?;
    // Before the destination is created: input that is not an archive creates nothing.
    let Input { stream, label } = match reader {
        Some(reader) => input::from_reader(reader, "the archive".into(), progress)?,
        // Named members of an indexed archive: only the frames that hold them.
        None => match index::extract::open(&config.archive, &config.members, reporter)? {
            Some(input) => input,
            None => input::open(&config.archive, progress)?,
        },
    };
    let root = Root::open(&config.dest)?;
    let mut archive = tar::Archive::new(stream);
    let entries = archive
        .entries()
        .with_context(|| format!("reading {label}"))?;
    let mut extractor = Extractor::new(config, root, Arc::clone(cleanup), reporter.clone());
    let mut last: Option<Vec<u8>> = None;
    let mut count = 0u64;
    for entry in entries {
        let mut entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                let cause = short_cause(&e);
                let words = format!("{}: {cause}", after(last.as_deref()));
                reporter.error(&corrupt(&label, words));
                extractor.failures += 1;
                break;
            }
        };
        progress.done(0);
        count += 1;
        let meta = match Meta::read(&mut entry) {
            Ok(meta) => meta,
            Err(e) => {
                let name = entry.path_bytes().into_owned();
                if !members.select(&name) {
                    last = Some(name);
                    continue;
                }
                let cause = short_cause(&e);
                let words = format!("refused: unreadable header: {cause}");
                reporter.error(&corrupt(&quote(&name), words));
                extractor.failures += 1;
                last = Some(name);
                continue;
            }
        };
        // The real name (a PAX sparse entry's header holds a stand-in).
        let name = meta.name.clone();
        if meta.kind == Kind::Meta || !members.select(&name) {
            last = Some(name);
            continue;
        }
        match extractor.extract(&mut entry, &meta) {
            Ok(()) => {}
            // Counted, not reported one by one: unpacking over an earlier unpack would
            // otherwise print a line per file.
            Err(Problem::Exists) => {
                extractor.existing += 1;
                extractor.failures += 1;
            }
            Err(Problem::Refused(kind, why)) => {
                let words = format!("refused: {why}");
                reporter.error(&report::Problem::new(quote(&name), kind, words));
                extractor.failures += 1;
            }
            Err(Problem::Failed(kind, why)) => {
                reporter.error(&report::Problem::new(quote(&name), kind, why));
                extractor.failures += 1;
            }
            Err(Problem::Stream { what, cause }) => {
                let words = format!("{what} in entry \"{}\": {cause}", quote(&name));
                reporter.error(&corrupt(&label, words));
                extractor.failures += 1;
                break;
            }
            Err(Problem::Budget { size }) => {
                let words = format!(
                    "refused: its {} would exceed --max-size ({}); stopping",
                    format_size(size, BINARY),
                    format_size(config.max_size, BINARY)
                );
                let kind = ErrorKind::Refused;
                reporter.error(&report::Problem::new(quote(&name), kind, words));
                extractor.failures += 1;
                break;
            }
        }
        last = Some(name);
    }
    extractor.finish_dirs();
    match extractor.existing {
        0 => {}
        1 => reporter.say("1 file exists; use --overwrite"),
        n => reporter.say(&format!("{n} files exist; use --overwrite")),
    }
    members.finish(reporter)?;
    let summary = ArchiveSummary {
        entries: count,
        tar_bytes: config.max_size - extractor.budget,
        archive_bytes: progress.totals().1,
    };
    Ok((extractor.failures == 0, summary, label))
}

/// Where a header could not be read, for the message.
fn after(last: Option<&[u8]>) -> String {
    match last {
        Some(name) => format!("truncated or corrupt after entry \"{}\"", quote(name)),
        None => "cannot read the first entry (not a tar archive, or truncated)".into(),
    }
}

/// An archive that cannot be read on at `what` (the archive, or an entry's name).
fn corrupt(what: &str, words: String) -> report::Problem {
    report::Problem::new(what, ErrorKind::CorruptArchive, words)
}

/// What went wrong with one entry.
enum Problem {
    /// The entry asks for something unsafe or not allowed (`outside_root` for a name
    /// or link that leads out, else `refused`).
    Refused(ErrorKind, String),
    /// A file (or link, or special file) of that name exists, and `--overwrite` was not
    /// given.
    Exists,
    /// Extracting it failed (permissions, disk full, ...).
    Failed(ErrorKind, String),
    /// The archive cannot be read on (truncated, corrupt compressed data).
    Stream { what: &'static str, cause: String },
    /// The entry's data would go past `--max-size`.
    Budget { size: u64 },
}

impl From<WalkError> for Problem {
    fn from(e: WalkError) -> Problem {
        if e.is_refusal() {
            Problem::Refused(ErrorKind::OutsideRoot, e.to_string())
        } else {
            Problem::Failed(e.kind(), e.to_string())
        }
    }
}

impl From<DataError> for Problem {
    fn from(e: DataError) -> Problem {
        match e {
            DataError::Stream(e) => Problem::Stream {
                what: "truncated or corrupt",
                cause: short_cause(&e),
            },
            DataError::Truncated { missing } => Problem::Stream {
                what: "truncated",
                cause: format!("the archive ends {missing} bytes short of the entry's end"),
            },
            DataError::Malformed(why) => Problem::Failed(ErrorKind::CorruptArchive, why),
            DataError::Write(e) => Problem::Failed(
                ErrorKind::of_io(&e),
                format!("writing: {}", crate::error::describe_io(&e)),
            ),
        }
    }
}

/// An entry not extracted by design, for a reason that is not a way out.
fn refused(why: &str) -> Problem {
    Problem::Refused(ErrorKind::Refused, why.into())
}

/// Context for an I/O error of one step.
fn failed(what: &str) -> impl FnOnce(io::Error) -> Problem + '_ {
    move |e| {
        let words = format!("{what}: {}", crate::error::describe_io(&e));
        Problem::Failed(ErrorKind::of_io(&e), words)
    }
}

/// Attributes of a directory, applied once everything inside it is written.
struct DirAttrs {
    mode: u32,
    mtime: Mtime,
    owner: (u64, u64),
}

struct Extractor<'a> {
    config: &'a UnpackConfig,
    root: Root,
    copier: Copier,
    /// Bytes of file data `--max-size` still allows.
    budget: u64,
    /// Directories the archive names, by path.
    dirs: HashMap<Vec<Vec<u8>>, DirAttrs>,
    /// Restore owners (as GNU tar does when run by root).
    chown: bool,
    temp_counter: u64,
    failures: u64,
    /// Entries left out because their name was taken (counted in `failures` too).
    existing: u64,
    cleanup: Arc<Cleanup>,
    /// Where messages go while the bar is up.
    reporter: Reporter,
}

impl<'a> Extractor<'a> {
    fn new(
        config: &'a UnpackConfig,
        root: Root,
        cleanup: Arc<Cleanup>,
        reporter: Reporter,
    ) -> Extractor<'a> {
        Extractor {
            config,
            root,
            copier: Copier::default(),
            budget: config.max_size,
            dirs: HashMap::new(),
            // SAFETY: geteuid has no preconditions.
            chown: unsafe { libc::geteuid() } == 0,
            temp_counter: 0,
            failures: 0,
            existing: 0,
            cleanup,
            reporter,
        }
    }

    fn extract<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        meta: &Meta,
    ) -> Result<(), Problem> {
        if meta.kind == Kind::Meta {
            return Ok(());
        }
        let path = match names::place(&meta.name, self.config.strip_components) {
            Err(why) => return Err(Problem::Refused(ErrorKind::OutsideRoot, why)),
            Ok(Placement::Skip) => return Ok(()),
            // `./`: the destination itself, which is the user's, not the archive's.
            Ok(Placement::Root) if meta.kind == Kind::Dir => return Ok(()),
            Ok(Placement::Root) => {
                return Err(refused("names the destination directory"));
            }
            Ok(Placement::At(path)) => path,
        };
        match meta.kind {
            Kind::File => self.file(entry, meta, &path),
            Kind::Dir => self.dir(meta, &path),
            Kind::Symlink => self.symlink(meta, &path),
            Kind::HardLink => self.hard_link(meta, &path),
            Kind::Char | Kind::Block | Kind::Fifo => self.special(meta, &path),
            Kind::Meta => Ok(()),
            Kind::Other(t) => Err(Problem::Refused(
                ErrorKind::Refused,
                format!("unsupported entry type '{}'", t.escape_ascii()),
            )),
        }
    }

    /// Permission bits to set: setuid, setgid and sticky only when asked for.
    fn mode(&self, meta: &Meta) -> u32 {
        if self.config.same_permissions {
            meta.mode & 0o7777
        } else {
            meta.mode & 0o777
        }
    }

    /// Checks whether `name` may be created in `dir`: `Ok(false)` free, `Ok(true)`
    /// taken by a non-directory that `--overwrite` lets us replace.
    fn make_room(&self, dir: &OwnedFd, name: &[u8]) -> Result<bool, Problem> {
        match confine::lstat(dir.as_raw_fd(), name).map_err(failed("checking the name"))? {
            None => Ok(false),
            Some(st) if confine::is_dir(&st) => Err(refused("a directory exists with that name")),
            Some(_) if self.config.overwrite => Ok(true),
            Some(_) => Err(Problem::Exists),
        }
    }

    fn file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        meta: &Meta,
        path: &RelPath,
    ) -> Result<(), Problem> {
        if meta.size > self.budget {
            return Err(Problem::Budget { size: meta.size });
        }
        let dir = self.root.parent_of(path)?;
        let taken = self.make_room(&dir, path.name())?;
        let mut temp = self.temp_file(&dir)?;
        let file = temp
            .file
            .as_mut()
            .ok_or_else(|| Problem::Failed(ErrorKind::Io, "temporary file gone".into()))?;
        self.copier.write_entry(entry, file, meta)?;
        let fd = file.as_raw_fd();
        if self.chown {
            // Ownership is best effort, as for GNU tar without --same-owner errors.
            let _ = confine::set_owner_fd(fd, meta.uid, meta.gid);
        }
        // After chown, which clears setuid/setgid.
        confine::set_mode_fd(fd, self.mode(meta)).map_err(failed("setting the mode"))?;
        confine::set_mtime_fd(fd, meta.mtime).map_err(failed("setting the time"))?;
        match confine::renameat(&dir, &temp.name, path.name(), taken) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => return Err(Problem::Exists),
            Err(e) => {
                return Err(failed("renaming into place")(e));
            }
        }
        temp.keep();
        self.budget -= meta.size;
        Ok(())
    }

    /// A new temporary file in `dir`, deleted unless kept. Short names: the target's
    /// own name may already be as long as a name can be.
    fn temp_file(&mut self, dir: &Rc<OwnedFd>) -> Result<TempFile, Problem> {
        loop {
            self.temp_counter += 1;
            let name = format!(".spate-{}-{}.tmp", std::process::id(), self.temp_counter);
            match confine::create_file(dir, name.as_bytes(), 0o600) {
                Ok(file) => {
                    // The signal thread removes it by a path through our descriptor of
                    // its directory, which stays open as long as the temporary file.
                    let by_fd = PathBuf::from(format!("/proc/self/fd/{}/{name}", dir.as_raw_fd()));
                    self.cleanup.register(&by_fd);
                    return Ok(TempFile {
                        dir: Rc::clone(dir),
                        name: name.into_bytes(),
                        file: Some(file),
                        registered: Some((by_fd, Arc::clone(&self.cleanup))),
                    });
                }
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
                Err(e) => {
                    return Err(failed("creating the file")(e));
                }
            }
        }
    }

    fn dir(&mut self, meta: &Meta, path: &RelPath) -> Result<(), Problem> {
        let parent = self.root.parent_of(path)?;
        let name = path.name();
        // Owner-only until the end: the archive's mode might not let us write into it.
        match confine::mkdirat(parent.as_raw_fd(), name, 0o700) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                let st = confine::lstat(parent.as_raw_fd(), name)
                    .map_err(failed("checking the name"))?;
                match st {
                    Some(st) if confine::is_dir(&st) => {}
                    Some(_) if self.config.overwrite => {
                        confine::unlinkat(&parent, name).map_err(failed("removing"))?;
                        confine::mkdirat(parent.as_raw_fd(), name, 0o700)
                            .map_err(failed("creating the directory"))?;
                    }
                    _ => return Err(Problem::Exists),
                }
            }
            Err(e) => {
                return Err(failed("creating the directory")(e));
            }
        }
        self.dirs.insert(
            path.components().to_vec(),
            DirAttrs {
                mode: self.mode(meta),
                mtime: meta.mtime,
                owner: (meta.uid, meta.gid),
            },
        );
        Ok(())
    }

    fn symlink(&mut self, meta: &Meta, path: &RelPath) -> Result<(), Problem> {
        let target = meta
            .link
            .as_deref()
            .ok_or_else(|| refused("symbolic link without a target"))?;
        names::check_symlink_target(path, target)
            .map_err(|why| Problem::Refused(ErrorKind::OutsideRoot, why))?;
        let dir = self.root.parent_of(path)?;
        self.clear(&dir, path.name())?;
        confine::symlinkat(target, &dir, path.name()).map_err(failed("creating the link"))?;
        if self.chown {
            let _ = confine::set_owner_at(&dir, path.name(), meta.uid, meta.gid);
        }
        confine::set_mtime_at(&dir, path.name(), meta.mtime).map_err(failed("setting the time"))
    }

    fn hard_link(&mut self, meta: &Meta, path: &RelPath) -> Result<(), Problem> {
        let target = meta
            .link
            .as_deref()
            .ok_or_else(|| refused("hard link without a target"))?;
        let target = names::hard_link_target(target, self.config.strip_components)
            .map_err(|why| Problem::Refused(ErrorKind::OutsideRoot, why))?;
        let target_dir = self.root.existing_parent_of(&target).map_err(|e| match e {
            WalkError::Missing(_) => Problem::Failed(e.kind(), format!("hard link target: {e}")),
            e => Problem::from(e),
        })?;
        let st = confine::lstat(target_dir.as_raw_fd(), target.name())
            .map_err(failed("checking the hard link target"))?
            .ok_or_else(|| {
                let why = "hard link target does not exist";
                Problem::Failed(ErrorKind::NotFound, why.into())
            })?;
        if confine::is_symlink(&st) {
            // The new name is a symbolic link too, read from a new place: check it there.
            let link = confine::readlinkat(&target_dir, target.name())
                .map_err(failed("reading the hard link target"))?;
            names::check_symlink_target(path, &link).map_err(|why| {
                Problem::Refused(
                    ErrorKind::OutsideRoot,
                    format!("hard link to a link: {why}"),
                )
            })?;
        }
        let dir = self.root.parent_of(path)?;
        if let Some(existing) =
            confine::lstat(dir.as_raw_fd(), path.name()).map_err(failed("checking the name"))?
            && existing.st_ino == st.st_ino
            && existing.st_dev == st.st_dev
        {
            return Ok(()); // already that very file
        }
        self.clear(&dir, path.name())?;
        confine::linkat(&target_dir, target.name(), &dir, path.name())
            .map_err(failed("creating the hard link"))
    }

    fn special(&mut self, meta: &Meta, path: &RelPath) -> Result<(), Problem> {
        let (what, type_bits) = match meta.kind {
            Kind::Char => ("character device", libc::S_IFCHR),
            Kind::Block => ("block device", libc::S_IFBLK),
            _ => ("FIFO", libc::S_IFIFO),
        };
        if !self.config.allow_special {
            let name = quote(&meta.name);
            let why = format!("skipped: {what} (use --allow-special)");
            self.reporter.skipped(Path::new(&name), &why);
            return Ok(());
        }
        let dir = self.root.parent_of(path)?;
        self.clear(&dir, path.name())?;
        let mode = type_bits | self.mode(meta);
        confine::mknodat(&dir, path.name(), mode, meta.device.unwrap_or((0, 0)))
            .map_err(failed(&format!("creating the {what}")))?;
        if self.chown {
            let _ = confine::set_owner_at(&dir, path.name(), meta.uid, meta.gid);
        }
        confine::set_mtime_at(&dir, path.name(), meta.mtime).map_err(failed("setting the time"))
    }

    /// Makes `name` free for a link or special file: refused if taken, unless
    /// `--overwrite` (then the old non-directory is removed; a link is removed, never
    /// followed).
    fn clear(&self, dir: &OwnedFd, name: &[u8]) -> Result<(), Problem> {
        if self.make_room(dir, name)? {
            confine::unlinkat(dir, name).map_err(failed("removing the existing file"))?;
        }
        Ok(())
    }

    /// Sets the mode, owner and time of every directory the archive named, deepest
    /// first, so that no later write changes a time already set and a read-only mode
    /// comes after the writes beneath it.
    fn finish_dirs(&mut self) {
        let mut dirs: Vec<_> = std::mem::take(&mut self.dirs).into_iter().collect();
        dirs.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        for (components, attrs) in dirs {
            if let Err(why) = self.finish_dir(&components, &attrs) {
                let path = quote(&components.join(&b'/'));
                let kind = ErrorKind::Io;
                self.reporter.error(&report::Problem::new(path, kind, why));
                self.failures += 1;
            }
        }
    }

    fn finish_dir(&mut self, components: &[Vec<u8>], attrs: &DirAttrs) -> Result<(), String> {
        let fd = self
            .root
            .dir(components, false)
            .map_err(|e| format!("setting attributes: {e}"))?;
        if self.chown {
            let _ = confine::set_owner_fd(fd.as_raw_fd(), attrs.owner.0, attrs.owner.1);
        }
        confine::set_mode_fd(fd.as_raw_fd(), attrs.mode)
            .map_err(|e| format!("setting the mode: {}", crate::error::describe_io(&e)))?;
        confine::set_mtime_fd(fd.as_raw_fd(), attrs.mtime)
            .map_err(|e| format!("setting the time: {}", crate::error::describe_io(&e)))
    }
}

/// A file being written under a temporary name; removed when dropped unless kept.
struct TempFile {
    dir: Rc<OwnedFd>,
    name: Vec<u8>,
    file: Option<std::fs::File>,
    /// Where the signal thread would remove it from.
    registered: Option<(PathBuf, Arc<Cleanup>)>,
}

impl TempFile {
    fn keep(mut self) {
        self.file = None;
        self.name.clear();
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some((path, cleanup)) = self.registered.take() {
            cleanup.unregister(&path);
        }
        if !self.name.is_empty() {
            let _ = confine::unlinkat(&self.dir, &self.name);
        }
    }
}
