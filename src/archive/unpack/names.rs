//! Deciding, from names alone, where an entry goes and whether a hard link's target
//! or a relative symbolic link's target stays beneath the destination. This is the first of two fences: names that could leave
//! the destination are refused here, and [`super::confine`] then makes sure no path
//! operation follows a symbolic link on the way.

/// A path beneath the destination: one or more plain components (no `.`, no `..`,
/// no `/`, no NUL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelPath(Vec<Vec<u8>>);

impl RelPath {
    /// The directories leading to the last component.
    pub fn dirs(&self) -> &[Vec<u8>] {
        &self.0[..self.0.len() - 1]
    }

    /// The last component.
    pub fn name(&self) -> &[u8] {
        &self.0[self.0.len() - 1]
    }

    pub fn components(&self) -> &[Vec<u8>] {
        &self.0
    }
}

/// Where an entry goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Placement {
    /// Fewer components than `--strip-components` removes: skipped silently, as
    /// GNU tar does.
    Skip,
    /// The destination directory itself (`./`).
    Root,
    At(RelPath),
}

/// Places an entry named `name` after removing `strip` leading components. `Err` is
/// the reason for refusing it.
pub fn place(name: &[u8], strip: usize) -> Result<Placement, String> {
    if name.starts_with(b"/") {
        return Err("absolute path".into());
    }
    match components(name, strip)? {
        None => Ok(Placement::Skip),
        Some(parts) if parts.is_empty() => Ok(Placement::Root),
        Some(parts) => Ok(Placement::At(RelPath(parts))),
    }
}

/// The components left after stripping (`.` removed); `None` when stripping takes them
/// all. GNU tar counts `.` as a component when stripping (`./a/b` with 1 gives `a/b`),
/// so `.` is removed only afterwards.
fn components(name: &[u8], strip: usize) -> Result<Option<Vec<Vec<u8>>>, String> {
    if name.contains(&0) {
        return Err("name contains a NUL byte".into());
    }
    let all: Vec<&[u8]> = name
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    if strip > 0 && all.len() <= strip {
        return Ok(None);
    }
    let mut parts = Vec::with_capacity(all.len() - strip);
    for part in &all[strip..] {
        match *part {
            b"." => {}
            b".." => return Err("path contains '..'".into()),
            _ => parts.push(part.to_vec()),
        }
    }
    Ok(Some(parts))
}

/// Where a hard link's target is: a path beneath the destination, stripped like every
/// name. GNU tar stores hard link targets as names of earlier entries.
pub fn hard_link_target(target: &[u8], strip: usize) -> Result<RelPath, String> {
    if target.starts_with(b"/") {
        return Err("hard link target is an absolute path".into());
    }
    match components(target, strip) {
        Err(why) => Err(format!("hard link target: {why}")),
        Ok(None) => Err("hard link target has too few components for --strip-components".into()),
        Ok(Some(parts)) if parts.is_empty() => {
            Err("hard link target is the destination directory".into())
        }
        Ok(Some(parts)) => Ok(RelPath(parts)),
    }
}

/// Checks a symbolic link's target before the link is created at `link`.
///
/// An absolute target is created as stored, as GNU tar and bsdtar do: trees hold such
/// links everywhere (`/usr`, `/etc`, home directories), creating one writes nothing
/// through it, and [`super::confine`] never follows a link for a later entry, whether
/// it points inside or out. A relative target is still held beneath the destination:
/// it may climb with `..` only at its start, and no higher than the link's own
/// directory's depth:
/// the link's parents are real directories (nothing is ever created through a
/// symbolic link), so those `..` are exact. A `..` after a name is refused, since the
/// name may itself be a symbolic link (`a -> .`, then `b -> a/..` reads as `.` but
/// resolves to the destination's parent).
pub fn check_symlink_target(link: &RelPath, target: &[u8]) -> Result<(), String> {
    if target.is_empty() {
        return Err("empty symbolic link target".into());
    }
    if target.contains(&0) {
        return Err("symbolic link target contains a NUL byte".into());
    }
    if target.starts_with(b"/") {
        return Ok(());
    }
    let mut depth = link.dirs().len();
    let mut named = false;
    for part in target.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." if named => {
                return Err(
                    "symbolic link target has '..' after a name (which may itself be a link)"
                        .into(),
                );
            }
            b".." => {
                depth = depth
                    .checked_sub(1)
                    .ok_or("symbolic link target points outside the destination")?;
            }
            _ => named = true,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(name: &str) -> RelPath {
        match place(name.as_bytes(), 0) {
            Ok(Placement::At(p)) => p,
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn places_plain_names_and_refuses_escapes() {
        assert_eq!(at("a/b/c").components().len(), 3);
        assert_eq!(at("./a//b/").components(), &[b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(place(b"./", 0), Ok(Placement::Root));
        assert_eq!(place(b".", 0), Ok(Placement::Root));
        for bad in ["/etc/passwd", "../x", "a/../../x", "a/..", "..", "a/b\0c"] {
            assert!(place(bad.as_bytes(), 0).is_err(), "{bad}");
        }
    }

    #[test]
    fn strips_like_gnu_tar() {
        assert_eq!(place(b"./a/b", 1).unwrap(), Placement::At(at("a/b")));
        assert_eq!(place(b"top/a/b", 2).unwrap(), Placement::At(at("b")));
        assert_eq!(place(b"top/", 1).unwrap(), Placement::Skip);
        assert_eq!(place(b"top", 2).unwrap(), Placement::Skip);
        // A `..` that stripping removes is harmless; one left over is not.
        assert_eq!(place(b"../a", 1).unwrap(), Placement::At(at("a")));
        assert!(place(b"a/../b", 1).is_err());
        assert_eq!(hard_link_target(b"top/a", 1), Ok(at("a")));
        assert!(hard_link_target(b"top", 1).is_err());
        assert!(hard_link_target(b"/etc/passwd", 0).is_err());
        assert!(hard_link_target(b"../outside", 0).is_err());
    }

    #[test]
    fn symlink_targets_stay_beneath() {
        let ok = |link: &str, target: &str| check_symlink_target(&at(link), target.as_bytes());
        assert!(ok("l", "target").is_ok());
        assert!(ok("l", "./a/b").is_ok());
        assert!(ok("d/l", "../x").is_ok());
        assert!(ok("d/e/l", "../../x/y").is_ok());
        assert!(ok("d/l", "..").is_ok());
        assert!(ok("l", "..").is_err());
        assert!(ok("l", "/etc").is_ok());
        assert!(ok("d/l", "/").is_ok());
        assert!(ok("d/l", "../../x").is_err());
        assert!(ok("d/l", "x/../../y").is_err());
        assert!(ok("l", "a/..").is_err());
        assert!(ok("l", "").is_err());
    }

    proptest! {
        /// Whatever the bytes, a placed name has only plain components.
        #[test]
        fn placed_names_are_plain(name in proptest::collection::vec(
            prop_oneof![Just(b'/'), Just(b'.'), Just(b'a'), Just(0u8), any::<u8>()], 0..24),
            strip in 0usize..3)
        {
            if let Ok(Placement::At(path)) = place(&name, strip) {
                for part in path.components() {
                    prop_assert!(!part.is_empty());
                    prop_assert!(part != b"." && part != b"..");
                    prop_assert!(!part.contains(&b'/') && !part.contains(&0));
                }
            }
        }

        /// A lexically accepted symlink target never climbs above the destination.
        #[test]
        fn accepted_targets_never_climb_out(
            depth in 0usize..4,
            target in proptest::collection::vec(
                prop_oneof![Just(&b".."[..]), Just(&b"."[..]), Just(&b"x"[..]), Just(&b""[..])], 0..8))
        {
            let mut link = "l".to_string();
            for _ in 0..depth {
                link = format!("d/{link}");
            }
            let target = target.join(&b'/');
            // Absolute targets are created as stored, by design.
            prop_assume!(!target.starts_with(b"/"));
            if check_symlink_target(&at(&link), &target).is_ok() {
                let mut level = depth as isize;
                for part in target.split(|&b| b == b'/') {
                    if part == b".." { level -= 1; } else if part == b"x" { level += 1; }
                    prop_assert!(level >= 0);
                }
            }
        }
    }
}
