//! The entry loop's side of `unpack`: what each kind of entry becomes beneath the
//! destination, and the directory attributes set at the end.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use humansize::{BINARY, format_size};

use super::confine::{self, Root, WalkError};
use super::frames::{Data, Frames};
use super::header::{Kind, Layout, Meta, Mtime, quote};
use super::names::{self, Placement, RelPath};
use super::temp::{self, Finish, Temps};
use super::write::{Copier, DataError};
use super::writers::{self, Done, Job, Writers};
use super::{Problem, corrupt, failed, refused};
use crate::archive::UnpackConfig;
use crate::error::ErrorKind;
use crate::report::{self, Reporter};

/// Attributes of a directory, applied once everything inside it is written.
struct DirAttrs {
    mode: u32,
    mtime: Mtime,
    owner: (u64, u64),
}

pub(super) struct Extractor<'a> {
    config: &'a UnpackConfig,
    root: Root,
    copier: Copier,
    /// Bytes of file data `--max-size` still allows.
    budget: u64,
    /// Directories the archive names, by path.
    dirs: HashMap<Vec<Vec<u8>>, DirAttrs>,
    /// Restore owners (as GNU tar does when run by root).
    chown: bool,
    /// Who we are, and our umask, for [`Extractor::finish`].
    euid: u32,
    umask: u32,
    temps: Arc<Temps>,
    /// Writer threads, when files are written off the entry loop (indexed archives).
    writers: Option<Writers>,
    /// The decompressed frames the entries come from (indexed archives): a small
    /// file's data is handed to a writer as a range of its frame, not copied out.
    frames: Option<Frames>,
    pub failures: u64,
    /// Entries left out because their name was taken (counted in `failures` too).
    pub existing: u64,
    /// Hard links not made because their target was not there (counted in `failures`
    /// too): the run's exit status is then 2, as GNU tar's.
    pub unlinkable: u64,
    /// Where messages go while the bar is up.
    reporter: Reporter,
    /// The archive as messages name it.
    label: String,
}

/// Whether the entry loop goes on after a problem.
#[derive(PartialEq, Eq)]
pub(super) enum Flow {
    Go,
    Stop,
}

impl<'a> Extractor<'a> {
    pub(super) fn new(
        config: &'a UnpackConfig,
        root: Root,
        temps: Arc<Temps>,
        writers: Option<Writers>,
        frames: Option<Frames>,
        reporter: Reporter,
        label: String,
    ) -> Extractor<'a> {
        Extractor {
            config,
            root,
            copier: Copier::default(),
            budget: config.max_size,
            dirs: HashMap::new(),
            // SAFETY: geteuid has no preconditions.
            chown: unsafe { libc::geteuid() } == 0,
            // SAFETY: geteuid has no preconditions.
            euid: unsafe { libc::geteuid() },
            umask: confine::umask(),
            temps,
            writers,
            frames,
            failures: 0,
            existing: 0,
            unlinkable: 0,
            reporter,
            label,
        }
    }

    /// Bytes of file data written (or being written).
    pub(super) fn written(&self) -> u64 {
        self.config.max_size - self.budget
    }

    /// Reports the problem with entry `name`; whether the loop can go on.
    pub(super) fn report(&mut self, name: &[u8], problem: Problem) -> Flow {
        self.failures += 1;
        match problem {
            // Counted, not reported one by one: unpacking over an earlier unpack would
            // otherwise print a line per file.
            Problem::Exists => self.existing += 1,
            Problem::Refused(kind, why) => {
                let words = format!("refused: {why}");
                self.reporter
                    .error(&report::Problem::new(quote(name), kind, words));
            }
            Problem::Failed(kind, why) => {
                self.reporter
                    .error(&report::Problem::new(quote(name), kind, why));
            }
            Problem::NoLinkTarget(target) => {
                self.unlinkable += 1;
                let words = format!(
                    "cannot hard link to \"{}\": no such file (it is not in the archive \
                     before the link, or was not selected)",
                    quote(&target)
                );
                self.reporter.error(&report::Problem::new(
                    quote(name),
                    ErrorKind::NotFound,
                    words,
                ));
            }
            Problem::Stream { what, cause } => {
                let words = format!("{what} in entry \"{}\": {cause}", quote(name));
                self.reporter.error(&corrupt(&self.label, words));
                return Flow::Stop;
            }
            Problem::Budget { size } => {
                let words = format!(
                    "refused: its {} would exceed --max-size ({}); stopping",
                    format_size(size, BINARY),
                    format_size(self.config.max_size, BINARY)
                );
                let kind = ErrorKind::Refused;
                self.reporter
                    .error(&report::Problem::new(quote(name), kind, words));
                return Flow::Stop;
            }
        }
        Flow::Go
    }

    /// Accounts for files the writer threads finished.
    fn finished(&mut self, done: Vec<Done>) {
        for Done {
            name, size, result, ..
        } in done
        {
            if let Err(problem) = result {
                // Not written: its bytes do not count against --max-size.
                self.budget += size;
                self.report(&name, problem);
            }
        }
    }

    /// Waits for the files being written at `path` or on its way.
    fn settle(&mut self, path: &[Vec<u8>]) {
        if let Some(writers) = &mut self.writers {
            let mut done = Vec::new();
            writers.settle(path, &mut done);
            self.finished(done);
        }
    }

    pub(super) fn extract<R: Read>(
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
        self.settle(path.components());
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

    /// What is set on the file `meta` describes, in the directory last walked to.
    fn finish(&self, meta: &Meta) -> Finish {
        let mode = self.mode(meta);
        let owner = self.chown.then_some((meta.uid, meta.gid));
        let creates = self.root.creates();
        // Created with its mode, a file has it exactly when the umask takes nothing
        // from it and no default ACL decides instead; and it has its owner when that
        // is who creates it. Setuid, setgid and sticky bits are set after the owner
        // (chown clears them), and other bits of a file owned by somebody else only
        // once it is theirs (as GNU tar does): those keep the two calls.
        let preset = creates.open_mode
            && mode & 0o7000 == 0
            && mode & self.umask == 0
            && owner.is_none_or(|owner| self.created_as(owner));
        Finish {
            mode,
            mtime: meta.mtime,
            owner,
            overwrite: self.config.overwrite,
            preset,
        }
    }

    /// Whether what is created in the directory last walked to is owned by `owner`
    /// already: made by that user, in a directory that gives it that group.
    fn created_as(&self, (uid, gid): (u64, u64)) -> bool {
        uid == u64::from(self.euid) && gid == u64::from(self.root.creates().gid)
    }

    /// Permission bits to set: setuid, setgid and sticky only when asked for.
    fn mode(&self, meta: &Meta) -> u32 {
        if self.config.same_permissions {
            meta.mode & 0o7777
        } else {
            meta.mode & 0o777
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
        let finish = self.finish(meta);
        if let Some(writers) = &mut self.writers
            && meta.layout == Layout::Plain
            && meta.size <= writers::LARGEST_JOB
        {
            let shared = self.frames.as_ref().and_then(|frames| {
                // Not read yet: the tar reader passes over it afterwards.
                frames.data(entry.raw_file_position(), meta.size)
            });
            let data = match shared {
                Some(data) => data,
                None => Data::Owned(read_data(entry, meta.size)?),
            };
            self.budget -= meta.size;
            let job = Job {
                name: meta.name.clone(),
                path: path.components().to_vec(),
                dir,
                data,
                finish,
            };
            let mut done = Vec::new();
            writers.send(job, &mut done);
            self.finished(done);
            return Ok(());
        }
        if self.writers.is_none()
            && meta.layout == Layout::Plain
            && let Some(data) = self.frames.as_ref().and_then(|frames| {
                // Not read yet: the tar reader passes over it afterwards.
                frames.data(entry.raw_file_position(), meta.size)
            })
        {
            // No copy through the entry: written from the frame it is in.
            temp::write_file(&self.temps, &dir, path.name(), &finish, |file| {
                file.write_all(data.bytes()).map_err(failed("writing"))
            })?;
            self.budget -= meta.size;
            return Ok(());
        }
        let copier = &mut self.copier;
        temp::write_file(&self.temps, &dir, path.name(), &finish, |file| {
            Ok(copier.write_entry(entry, file, meta)?)
        })?;
        self.budget -= meta.size;
        Ok(())
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
        // The name is looked into only when it is taken: one call less per link.
        match confine::symlinkat(target, &dir, path.name()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                self.clear(&dir, path.name())?;
                confine::symlinkat(target, &dir, path.name())
                    .map_err(failed("creating the link"))?;
            }
            Err(e) => return Err(failed("creating the link")(e)),
        }
        // A link made by its owner has that owner: one call less per link.
        if self.chown && !self.created_as((meta.uid, meta.gid)) {
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
        // After its target is written.
        self.settle(target.components());
        // A target that is not there was not extracted before the link: not in the
        // archive ahead of it, or not selected. GNU tar cannot make it either ("Cannot
        // hard link to ...") and ends with status 2.
        let unlinkable = || Problem::NoLinkTarget(meta.link.clone().unwrap_or_default());
        let target_dir = self.root.existing_parent_of(&target).map_err(|e| match e {
            WalkError::Missing(_) => unlinkable(),
            e => Problem::from(e),
        })?;
        let st = confine::lstat(target_dir.as_raw_fd(), target.name())
            .map_err(failed("checking the hard link target"))?
            .ok_or_else(unlinkable)?;
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
        if temp::make_room(dir, name, self.config.overwrite)? {
            confine::unlinkat(dir, name).map_err(failed("removing the existing file"))?;
        }
        Ok(())
    }

    /// Sets the mode, owner and time of every directory the archive named, deepest
    /// first, so that no later write changes a time already set and a read-only mode
    /// comes after the writes beneath it.
    pub(super) fn finish_dirs(&mut self) {
        if let Some(writers) = &mut self.writers {
            let mut done = Vec::new();
            writers.drain(&mut done);
            self.finished(done);
        }
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

/// The `size` bytes of an entry's data, whole.
fn read_data(entry: &mut impl Read, size: u64) -> Result<Vec<u8>, Problem> {
    let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    match entry.take(size).read_to_end(&mut data) {
        Ok(n) if n as u64 == size => Ok(data),
        Ok(n) => Err(DataError::Truncated {
            missing: size - n as u64,
        }
        .into()),
        Err(e) => Err(DataError::Stream(e).into()),
    }
}
