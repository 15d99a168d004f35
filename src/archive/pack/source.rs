//! Pack's source: the walk of every root, turned into one item per entry — a file for
//! the readers, a directory or link for the writer, or a notice — in walk order.

use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;

use super::shard::ShardSelect;
use super::{INLINE_MAX, Kind, Member};
use crate::archive::stored_names::{Root, stored_name};
use crate::archive::streamed::{self, Slots};
use crate::error::{ErrorKind, describe_io};
use crate::pipeline::{Feed, Item};
use crate::walk::{self, Entry, Notice, NoticeKind};

/// The source: walks every root in order and pushes one item per entry. Roots are
/// walked one at a time so that each entry's name can be made from the name its root
/// was given by.
pub(super) fn list_members(
    roots: &[Root],
    options: &walk::WalkOptions,
    buffer_size: usize,
    feed: &mut Feed<Member>,
) -> Result<()> {
    let mut inodes: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    let mut select = ShardSelect::new(options.shard);
    // `--shard`: removed prefixes announced for entries of other shards.
    let mut announced = HashSet::new();
    let mut going = true;
    let slots = Slots::new();
    for root in roots {
        let disk = [root.disk().as_os_str().to_owned()];
        walk::entries(&disk, options, |item| {
            let item = match item {
                Ok(entry) => member_item(entry, root, &mut inodes, &mut select, &mut announced),
                Err(notice) => Some(Item::Notice(notice)),
            };
            going = match item {
                Some(Item::File(
                    entry,
                    member @ Member {
                        kind: Kind::LargeFile,
                        ..
                    },
                )) => push_streamed(feed, &slots, buffer_size, entry, member),
                Some(item) => feed.push(item),
                None => true,
            };
            going
        })?;
        if !going {
            break;
        }
    }
    Ok(())
}

/// Pushes a large file as a stream: once one of the [`streamed::OPEN`] places is free,
/// so that memory stays bounded however many large files follow.
fn push_streamed(
    feed: &mut Feed<Member>,
    slots: &Arc<Slots>,
    buffer_size: usize,
    entry: Entry,
    member: Member,
) -> bool {
    let slot = match slots.try_take() {
        Some(slot) => slot,
        // The writer gives a place back only once it has reached a streamed file, so
        // everything before it goes out first.
        None if feed.flush() => slots.take(),
        None => return false,
    };
    let (outgoing, incoming) = streamed::stream(member.size, buffer_size, slot);
    let start = member.with_kind(Kind::StreamStart(incoming));
    let read = member.with_kind(Kind::StreamRead(outgoing));
    feed.push_streamed(start, entry, read)
}

impl Member {
    /// No member: only the announcement that GNU tar removes `removed` from names, for
    /// an entry another shard packs.
    fn announcing(removed: Vec<u8>) -> Member {
        Member {
            name: Vec::new(),
            removed,
            given: PathBuf::new(),
            path: PathBuf::new(),
            kind: Kind::Announce,
            mode: 0,
            uid: 0,
            gid: 0,
            mtime: (0, 0),
            size: 0,
            inode: None,
        }
    }

    /// The same member, as another step of its way into the archive.
    fn with_kind(&self, kind: Kind) -> Member {
        Member {
            name: self.name.clone(),
            removed: self.removed.clone(),
            given: self.given.clone(),
            path: self.path.clone(),
            kind,
            ..*self
        }
    }
}

fn notice(path: PathBuf, kind: NoticeKind) -> Item<Member> {
    Item::Notice(Notice { seq: 0, path, kind })
}

/// Decides what one walked entry becomes.
fn member_item(
    entry: walkdir::DirEntry,
    root: &Root,
    inodes: &mut HashMap<(u64, u64), Vec<u8>>,
    select: &mut ShardSelect,
    announced: &mut HashSet<Vec<u8>>,
) -> Option<Item<Member>> {
    let ft = entry.file_type();
    if let Some(what) = walk::special_kind(&ft) {
        // Every shard walks the whole tree: one of them says it, so that the N shards'
        // messages together are the unsharded run's.
        if !select.says_notices() {
            return None;
        }
        return Some(notice(entry.into_path(), NoticeKind::Skipped(what)));
    }
    let meta = match entry.metadata() {
        Ok(meta) => meta,
        Err(err) => {
            // The entry's failure belongs to the shard that would have packed it.
            let given = root.given_path(entry.path());
            if !select.may_keep(&given, &ft) {
                return None;
            }
            return Some(notice(entry.into_path(), walk::walk_error(&err)));
        }
    };
    let path = entry.into_path();
    let given = root.given_path(&path);
    let kept = select.keeps(&given, &ft, &meta);
    let (name, removed) = stored_name(&given);
    let removed = removed.to_vec();
    if !kept {
        // Another `--shard`'s. What GNU tar removes from its name is announced all the
        // same, by the shard that says the notices, when it is news.
        if select.says_notices() && !removed.is_empty() && announced.insert(removed.clone()) {
            return Some(Item::Note(Member::announcing(removed)));
        }
        return None;
    }
    let Some(mut name) = name else {
        return None; // the root `/` or `..` itself: nothing to store
    };
    let kind = if ft.is_dir() {
        name.push(b'/');
        Kind::Dir
    } else if ft.is_symlink() {
        match std::fs::read_link(&path) {
            Ok(target) => Kind::Symlink(target.into_os_string().into_vec()),
            Err(e) => {
                return Some(notice(
                    path,
                    NoticeKind::Error(
                        ErrorKind::of_io(&e),
                        format!("reading link: {}", describe_io(&e)),
                    ),
                ));
            }
        }
    } else if meta.nlink() > 1
        && let Some(first) = inodes.get(&(meta.dev(), meta.ino()))
    {
        Kind::HardLink(first.clone())
    } else if meta.len() <= INLINE_MAX {
        Kind::File
    } else {
        Kind::LargeFile
    };
    let is_file = matches!(kind, Kind::File | Kind::LargeFile);
    let linked = matches!(kind, Kind::File | Kind::LargeFile | Kind::HardLink(_));
    let inode = (linked && meta.nlink() > 1).then(|| (meta.dev(), meta.ino()));
    if let (Some(inode), true) = (inode, is_file) {
        inodes.insert(inode, name.clone());
    }
    let member = Member {
        name,
        removed,
        given,
        kind,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        mtime: (meta.mtime(), meta.mtime_nsec()),
        size: if is_file { meta.len() } else { 0 },
        inode,
        path: path.clone(),
    };
    if matches!(member.kind, Kind::File | Kind::LargeFile) {
        let entry = Entry {
            seq: 0,
            path,
            size: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            stat_known: true,
            identity: Default::default(),
            beneath: None,
        };
        return Some(Item::File(entry, member));
    }
    Some(Item::Note(member))
}
