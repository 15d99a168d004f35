//! What a benchmark ran on, so that two results can be told apart later: spate's
//! version, when, which host, kernel and CPU, the file system under DIR and its mount
//! options (/proc/self/mountinfo), and the block device below it (/sys/dev/block)
//! where the kernel shows one. Everything is read, nothing is required: a field the
//! system does not show is left out.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::civil::civil_from_days;

/// The machine and file system of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Meta {
    pub spate_version: &'static str,
    /// When the run started, RFC 3339 in UTC (`2026-11-30T10:05:00Z`).
    pub timestamp: String,
    pub hostname: String,
    /// `uname -srvm`: system, release, version, machine.
    pub kernel: String,
    /// `model name` of /proc/cpuinfo.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_model: Option<String>,
    /// Online CPUs.
    pub cpus: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs: Option<FsInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceInfo>,
}

/// The mount DIR is on, from /proc/self/mountinfo.
#[derive(Debug, Clone, Serialize)]
pub struct FsInfo {
    /// File system type, e.g. `ext4`, `xfs`, `tmpfs`.
    #[serde(rename = "type")]
    pub fs_type: String,
    /// What is mounted, e.g. `/dev/nvme0n1p2`.
    pub source: String,
    pub mount_point: String,
    /// Per-mount options (`rw,relatime`).
    pub mount_options: String,
    /// The file system's own options (`rw,discard,errors=remount-ro`).
    pub super_options: String,
}

/// The block device under the file system, from /sys/block/NAME.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceInfo {
    /// The whole disk's name (`nvme0n1` for a file system on `nvme0n1p2`).
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotational: Option<bool>,
    /// The I/O scheduler in use (the bracketed one of `queue/scheduler`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<String>,
}

impl Meta {
    /// The facts about this machine and the file system under `dir`.
    pub fn collect(dir: &Path) -> Meta {
        let fs = mount_of(dir);
        let dev = std::fs::metadata(dir).ok().map(|m| m.dev());
        Meta {
            spate_version: env!("CARGO_PKG_VERSION"),
            timestamp: rfc3339(SystemTime::now()),
            hostname: uname_field(|u| &u.nodename),
            kernel: [
                uname_field(|u| &u.sysname),
                uname_field(|u| &u.release),
                uname_field(|u| &u.version),
                uname_field(|u| &u.machine),
            ]
            .join(" "),
            cpu_model: cpu_model(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            device: dev
                .and_then(device_of)
                .or_else(|| fs.as_ref().and_then(|f| device_named(&f.source))),
            fs,
        }
    }

    /// The header's second line: `spate 0.1.0 on HOST, 2026-…Z, Linux 6.8 x86_64,
    /// CPU; ext4 /dev/vda (rw,relatime), disk vda: rotational, mq-deadline`.
    pub fn line(&self) -> String {
        // System, release and machine; the build string (`#1 SMP …`) stays in the JSON.
        let words: Vec<&str> = self.kernel.split_whitespace().collect();
        let kernel = match words.as_slice() {
            [sys, release, .., machine] => format!("{sys} {release} {machine}"),
            _ => self.kernel.clone(),
        };
        let mut line = format!(
            "spate {} on {}, {}, {}, {} × {}",
            self.spate_version,
            self.hostname,
            self.timestamp,
            kernel,
            self.cpus,
            self.cpu_model.as_deref().unwrap_or("unknown CPU"),
        );
        if let Some(fs) = &self.fs {
            line += &format!("; {} {} ({})", fs.fs_type, fs.source, fs.mount_options);
        }
        if let Some(dev) = &self.device {
            line += &format!(", disk {}", dev.name);
            let mut about = Vec::new();
            if let Some(model) = &dev.model {
                about.push(model.clone());
            }
            match dev.rotational {
                Some(true) => about.push("rotational".into()),
                Some(false) => about.push("non-rotational".into()),
                None => {}
            }
            if let Some(s) = &dev.scheduler {
                about.push(format!("scheduler {s}"));
            }
            if !about.is_empty() {
                line += &format!(": {}", about.join(", "));
            }
        }
        line + "\n"
    }
}

fn uname_field(field: impl Fn(&libc::utsname) -> &[libc::c_char; 65]) -> String {
    let mut uts = std::mem::MaybeUninit::<libc::utsname>::uninit();
    // SAFETY: uname fills the whole struct on success; we read it only then.
    let uts = unsafe {
        if libc::uname(uts.as_mut_ptr()) != 0 {
            return String::new();
        }
        uts.assume_init()
    };
    let bytes: Vec<u8> = field(&uts)
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines().find_map(|l| {
        let (key, value) = l.split_once(':')?;
        // x86 says "model name"; arm64 has no model name, but some kernels give "Hardware".
        matches!(key.trim(), "model name" | "Hardware").then(|| value.trim().to_string())
    })
}

/// The mount `dir` is on: the last-mounted entry whose mount point is the longest
/// prefix of `dir`'s real path (later mounts hide earlier ones at the same place).
fn mount_of(dir: &Path) -> Option<FsInfo> {
    let dir = std::fs::canonicalize(dir).ok()?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut best: Option<(usize, FsInfo)> = None;
    for line in info.lines() {
        let Some(entry) = parse_mountinfo(line) else {
            continue;
        };
        let point = PathBuf::from(&entry.mount_point);
        if dir.starts_with(&point) {
            let depth = point.components().count();
            if best.as_ref().is_none_or(|(d, _)| depth >= *d) {
                best = Some((depth, entry));
            }
        }
    }
    best.map(|(_, e)| e)
}

/// One line of /proc/self/mountinfo: `ID PARENT MAJ:MIN ROOT POINT OPTIONS [TAGS…] -
/// TYPE SOURCE SUPER_OPTIONS`.
fn parse_mountinfo(line: &str) -> Option<FsInfo> {
    let (head, tail) = line.split_once(" - ")?;
    let head: Vec<&str> = head.split(' ').collect();
    let mut tail = tail.split(' ');
    Some(FsInfo {
        mount_point: unescape(head.get(4)?),
        mount_options: (*head.get(5)?).to_string(),
        fs_type: tail.next()?.to_string(),
        source: unescape(tail.next()?),
        super_options: tail.next().unwrap_or("").to_string(),
    })
}

/// mountinfo writes space, tab, newline and backslash as `\040`-style octal.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(u8::is_ascii_digit));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The disk holding device number `dev` (the file system's `st_dev`).
fn device_of(dev: u64) -> Option<DeviceInfo> {
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let node = std::fs::canonicalize(format!("/sys/dev/block/{major}:{minor}")).ok()?;
    disk_info(&node)
}

/// The disk behind a mount source such as `/dev/nvme0n1p2` (file systems like btrfs
/// give files a device number of their own, not the disk's).
fn device_named(source: &str) -> Option<DeviceInfo> {
    let name = Path::new(source).file_name()?.to_str()?;
    let node = std::fs::canonicalize(format!("/sys/class/block/{name}")).ok()?;
    disk_info(&node)
}

/// `node` is a disk or a partition in /sys; a partition's disk is its parent.
fn disk_info(node: &Path) -> Option<DeviceInfo> {
    let disk = if node.join("partition").exists() {
        node.parent()?
    } else {
        node
    };
    let read = |rel: &str| {
        std::fs::read_to_string(disk.join(rel))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    Some(DeviceInfo {
        name: disk.file_name()?.to_string_lossy().into_owned(),
        model: read("device/model"),
        rotational: read("queue/rotational").map(|r| r == "1"),
        scheduler: read("queue/scheduler").and_then(|s| {
            // "none [mq-deadline] kyber": the one in brackets is in use.
            s.split_whitespace()
                .find(|w| w.starts_with('['))
                .map(|w| w.trim_matches(['[', ']']).to_string())
                .or(Some(s))
        }),
    })
}

/// RFC 3339 in UTC, to the second.
pub fn rfc3339(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let at = |s| rfc3339(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_798_675_199), "2026-12-30T23:59:59Z");
    }

    #[test]
    fn mountinfo_lines_parse_with_tags_and_escapes() {
        let line = "36 35 98:0 /mnt1 /mnt/my\\040disk rw,noatime master:1 shared:2 - ext4 \
                    /dev/sda1 rw,errors=continue";
        let fs = parse_mountinfo(line).unwrap();
        assert_eq!(fs.mount_point, "/mnt/my disk");
        assert_eq!(fs.mount_options, "rw,noatime");
        assert_eq!(fs.fs_type, "ext4");
        assert_eq!(fs.source, "/dev/sda1");
        assert_eq!(fs.super_options, "rw,errors=continue");
    }
}
