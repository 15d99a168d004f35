//! The names `pack` stores: each path as given (relative to `-C DIR` when it is
//! relative), with what GNU tar removes taken off the front — leading `/`, and
//! everything up to and including a last `..` component — so that no stored name can
//! point outside the directory it is unpacked into. Each distinct removed prefix is
//! announced once, in GNU tar's words (`Removing leading '/' from member names`):
//! `spate pack -o photos.tar.zst ~/Photos` stores `home/USER/Photos/…`, and says so.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// One path to pack: the name it was given by, and where it is on disk.
#[derive(Clone)]
pub struct Root {
    given: OsString,
    disk: PathBuf,
}

impl Root {
    /// `given` found beneath `dir` when it is relative (as `tar -C DIR` does), else as is.
    pub fn new(dir: Option<&Path>, given: &OsStr) -> Root {
        let disk = match dir {
            Some(dir) if !Path::new(given).is_absolute() => dir.join(given),
            _ => PathBuf::from(given),
        };
        Root {
            given: given.to_owned(),
            disk,
        }
    }

    /// Where to walk.
    pub fn disk(&self) -> &Path {
        &self.disk
    }

    /// The path a walked entry (a path beneath [`Root::disk`], as the walk built it by
    /// joining names onto it) has under the name the root was given by.
    pub fn given_path(&self, walked: &Path) -> PathBuf {
        if self.disk.as_os_str() == self.given {
            return walked.to_path_buf();
        }
        let rest = walked
            .as_os_str()
            .as_bytes()
            .get(self.disk.as_os_str().len()..)
            .unwrap_or_default();
        let mut given = self.given.clone().into_vec();
        given.extend_from_slice(rest);
        PathBuf::from(OsString::from_vec(given))
    }
}

/// A path's stored name and the prefix GNU tar would remove from it (empty when none).
/// The name is `None` when nothing is left (`/`, `..`): there is nothing to store.
pub fn stored_name(path: &Path) -> (Option<Vec<u8>>, &[u8]) {
    let bytes = path.as_os_str().as_bytes();
    let mut cut = bytes.iter().take_while(|&&b| b == b'/').count();
    let mut at = cut;
    while at < bytes.len() {
        let end = bytes[at..]
            .iter()
            .position(|&b| b == b'/')
            .map_or(bytes.len(), |i| at + i);
        let next = end + bytes[end..].iter().take_while(|&&b| b == b'/').count();
        if &bytes[at..end] == b".." {
            cut = next;
        }
        at = next;
    }
    // Components again, to drop doubled and trailing slashes (`dir/` walks as `dir/x`).
    let rest: PathBuf = Path::new(OsStr::from_bytes(&bytes[cut..]))
        .components()
        .collect();
    let name = rest.into_os_string().into_vec();
    ((!name.is_empty()).then_some(name), &bytes[..cut])
}

/// Bytes of a header's name and link name fields.
const NAME_FIELD: usize = 100;

/// What a member's header will say its name (or, with `link`, its link target) is,
/// for a name handed to the `tar` crate's builder, which the table of contents must
/// repeat exactly. A name that fits the header is stored as the crate writes it there:
/// components joined by one `/`, a trailing `/` kept, and (in a name, not in a link
/// target) `.` components dropped unless the name is only `.`; a longer one goes
/// whole, as given, into a GNU long-name entry.
pub fn as_stored(given: &[u8], link: bool) -> Vec<u8> {
    let path = Path::new(OsStr::from_bytes(given));
    let only = path.components().count() == 1;
    let mut out = Vec::with_capacity(given.len());
    let mut slash = false;
    for component in path.components() {
        if !link && !only && component == std::path::Component::CurDir {
            continue;
        }
        if slash {
            out.push(b'/');
        }
        let bytes = component.as_os_str().as_bytes();
        out.extend_from_slice(bytes);
        slash = bytes != b"/";
    }
    if given.last() == Some(&b'/') && out.last() != Some(&b'/') {
        out.push(b'/');
    }
    if out.len() <= NAME_FIELD {
        out
    } else {
        given.to_vec()
    }
}

/// The prefixes already announced: GNU tar says each once per run.
#[derive(Default)]
pub struct Removed(HashSet<Vec<u8>>);

impl Removed {
    /// The notice for `prefix` (GNU tar's words), the first time it is removed.
    pub fn notice(&mut self, prefix: &[u8]) -> Option<String> {
        (!prefix.is_empty() && self.0.insert(prefix.to_vec())).then(|| {
            format!(
                "Removing leading '{}' from member names",
                String::from_utf8_lossy(prefix)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(path: &str) -> (Option<String>, String) {
        let (name, removed) = stored_name(Path::new(path));
        (
            name.map(|n| String::from_utf8(n).unwrap()),
            String::from_utf8(removed.to_vec()).unwrap(),
        )
    }

    #[test]
    fn names_lose_what_gnu_tar_removes() {
        let some = |n: &str, r: &str| (Some(n.to_string()), r.to_string());
        assert_eq!(split("/a/b"), some("a/b", "/"));
        assert_eq!(split("../../x"), some("x", "../../"));
        assert_eq!(split("b/../b"), some("b", "b/../"));
        assert_eq!(split("../a/../a/b"), some("a/b", "../a/../"));
        assert_eq!(split("dir/f"), some("dir/f", ""));
        assert_eq!(split("./d//f/"), some("./d/f", ""));
        assert_eq!(split("//x"), some("x", "//"));
        assert_eq!(split("/"), (None, "/".into()));
        assert_eq!(split("a/.."), (None, "a/..".into()));
    }

    #[test]
    fn stored_names_are_what_the_tar_crate_writes_and_reads_back() {
        let long = format!("./{}/x", "n".repeat(120));
        let names = [
            "./", "./a.txt", "./sub/", "a//b", "a/./b/", "./d/f", "plain", "x/", &long,
        ];
        let targets = ["./a.txt", "../up", "a//b/./c", "/abs/x", &long];
        let mut builder = tar::Builder::new(Vec::new());
        for name in names {
            let mut header = tar::Header::new_gnu();
            header.set_size(0);
            header.set_entry_type(tar::EntryType::Directory);
            builder
                .append_data(&mut header, name, std::io::empty())
                .unwrap();
        }
        for target in targets {
            let mut header = tar::Header::new_gnu();
            header.set_size(0);
            header.set_entry_type(tar::EntryType::Symlink);
            builder.append_link(&mut header, "l", target).unwrap();
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
        for (name, (stored, _)) in names.iter().zip(&read) {
            assert_eq!(as_stored(name.as_bytes(), false), *stored, "{name}");
        }
        for (target, (_, stored)) in targets.iter().zip(&read[names.len()..]) {
            let stored = stored.clone().unwrap();
            assert_eq!(as_stored(target.as_bytes(), true), stored, "{target}");
        }
    }

    #[test]
    fn walked_paths_map_back_to_the_name_given_under_a_directory() {
        let root = Root::new(Some(Path::new("/home/u")), OsStr::new("Photos/"));
        assert_eq!(root.disk(), Path::new("/home/u/Photos/"));
        let walked = root.disk().join("a.jpg");
        assert_eq!(root.given_path(&walked), Path::new("Photos/a.jpg"));
        let absolute = Root::new(Some(Path::new("/home/u")), OsStr::new("/etc"));
        assert_eq!(absolute.disk(), Path::new("/etc"));
        assert_eq!(
            absolute.given_path(Path::new("/etc/x")),
            Path::new("/etc/x")
        );
    }

    #[test]
    fn each_prefix_is_announced_once() {
        let mut removed = Removed::default();
        assert!(removed.notice(b"").is_none());
        assert_eq!(
            removed.notice(b"/").unwrap(),
            "Removing leading '/' from member names"
        );
        assert!(removed.notice(b"/").is_none());
        assert!(removed.notice(b"../").is_some());
    }
}
