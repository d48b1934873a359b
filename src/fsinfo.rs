//! What filesystem a path lives on, from the mount table (with statfs as a fallback).
//!
//! The destination's type decides the name policy (SMB, NTFS, FAT and exFAT refuse
//! characters that Linux accepts and ignore case) and the thread count (a network
//! filesystem hides per-file round trips only with many requests in flight).

use std::path::{Path, PathBuf};

/// The filesystem holding a path.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FsInfo {
    /// Type as the mount table names it (`ext4`, `nfs4`, `cifs`, `fuseblk`, ...).
    pub fstype: String,
    #[serde(serialize_with = "crate::report::lossy::path")]
    pub mount_point: PathBuf,
    pub source: String,
    pub options: String,
}

const WINDOWS_LIKE: &[&str] = &[
    "ntfs", "ntfs3", "vfat", "msdos", "fat", "exfat", "cifs", "smb3", "smbfs", "fuseblk",
];
const NETWORK: &[&str] = &[
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "fuse.sshfs",
    "9p",
    "afs",
    "ceph",
    "glusterfs",
    "fuse.rclone",
    "davfs",
];

/// Filesystems whose change time (`ctime`) is set by the filesystem when a file changes,
/// on the clock of the machine that stores it. FAT and exFAT have no change time (Linux
/// reports the modification time, which the restore sets to a date years back), a FUSE
/// filesystem reports whatever it likes, and an SMB client may set it from its own clock.
const TRUE_CTIME: &[&str] = &[
    "ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "tmpfs", "nfs", "nfs4",
];

impl FsInfo {
    /// A file's change time here is a real one: when it last changed, on one clock.
    pub fn keeps_change_times(&self) -> bool {
        TRUE_CTIME.contains(&self.fstype.as_str())
    }

    /// Names on this filesystem follow Windows rules.
    pub fn wants_windows_names(&self) -> bool {
        WINDOWS_LIKE.contains(&self.fstype.as_str())
    }

    /// Each file operation is a network round trip.
    pub fn is_network(&self) -> bool {
        NETWORK.contains(&self.fstype.as_str())
    }

    /// The filesystem in a message: `ext4 from /dev/sdb1 at /mnt/new` (`?` for an unknown
    /// source), as pre-flight shows it.
    pub fn described(&self) -> String {
        format!(
            "{} from {} at {}",
            self.fstype,
            if self.source.is_empty() {
                "?"
            } else {
                &self.source
            },
            self.mount_point.display()
        )
    }

    /// A mount option's value (`vers`, `rsize`...), or `Some("")` for a bare flag.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .split(',')
            .find_map(|o| match o.split_once('=') {
                Some((k, v)) if k == key => Some(v),
                None if o == key => Some(""),
                _ => None,
            })
    }
}

/// What of a filesystem's free blocks this process may write ([`writable_blocks`]), in
/// units of its `f_frsize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Writable {
    pub blocks: u64,
    /// Of `blocks`, those the filesystem keeps for root (ext4's 5% by default, `mkfs.ext4
    /// -m`): 0 where they are not counted.
    pub roots_reserve: u64,
}

/// The free and total inodes (files and folders it can still hold, and in all) of a
/// filesystem's `statvfs`, where they limit what it holds apart from its bytes; `None` where
/// they are not counted (some network filesystems) or are its free clusters under another
/// name (exFAT through `exfat-fuse` gives as many free files as free blocks). Until round 24
/// a full exFAT was said to be "out of inodes", with advice about `mkfs.ext4 -N`. Used by the
/// restore's room (`restore::Room`) and pre-flight's disks alike.
pub fn inodes(vfs: &rustix::fs::StatVfs) -> Option<(u64, u64)> {
    (vfs.f_files > 0 && vfs.f_ffree != vfs.f_bfree).then_some((vfs.f_favail, vfs.f_files))
}

/// The free blocks of `fs` (its `statvfs`, `vfs`) this process may write: as root on a
/// filesystem of this machine, the blocks it keeps for root too, which `f_bavail` leaves
/// out, less those ext4 keeps even from root (its `reserved_clusters`, 2% up to 4,096);
/// elsewhere `f_bavail`. A share's server decides whose writes may use its reserve (an NFS
/// export squashes root; sshfs writes as its login), so there `f_bavail`, also as root.
/// The restore counts room so (`restore::copy::full_by_room`: round 21, as root on an
/// ext4 filled up to the reserve, one file's failed close stopped the run as "full" with
/// megabytes left for it), and so does pre-flight, which warns when the files fit only in
/// root's reserve.
pub fn writable_blocks(vfs: &rustix::fs::StatVfs, fs: &FsInfo) -> Writable {
    let reserve_is_ours =
        rustix::process::geteuid().is_root() && !fs.is_network() && !fs.fstype.starts_with("fuse");
    if !reserve_is_ours {
        return Writable {
            blocks: vfs.f_bavail,
            roots_reserve: 0,
        };
    }
    let blocks = (vfs.f_bfree)
        .saturating_sub(ext4_reserved_clusters(fs))
        .max(vfs.f_bavail);
    Writable {
        blocks,
        roots_reserve: blocks - vfs.f_bavail,
    }
}

/// The clusters an ext4 keeps from every writer, root included
/// (`/sys/fs/ext4/<device>/reserved_clusters`); 0 elsewhere or where it cannot be read.
fn ext4_reserved_clusters(fs: &FsInfo) -> u64 {
    if fs.fstype != "ext4" {
        return 0;
    }
    // The mount table's `/dev/mapper/x` is a link to `/dev/dm-0`: /sys names the latter.
    let Some(device) = std::fs::canonicalize(&fs.source)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
    else {
        return 0;
    };
    std::fs::read_to_string(format!("/sys/fs/ext4/{device}/reserved_clusters"))
        .ok()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// The nearest existing ancestor of `path` (a destination may not exist yet), absolute.
pub fn existing_ancestor(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut cur: &Path = &abs;
    loop {
        if let Ok(c) = cur.canonicalize() {
            return c;
        }
        match cur.parent() {
            Some(p) => cur = p,
            None => return PathBuf::from("/"),
        }
    }
}

/// What a folder (or file) is, whatever path reaches it: its device and inode. Two paths
/// with one identity are one folder, reached through a bind mount or a disk mounted twice.
pub fn identity(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok((m.dev(), m.ino()))
}

/// Where `path` is, or would be once created: its components applied one by one from the
/// root, each step made real (symlinks followed) while it exists and applied by name once it
/// does not (`..` going up). Neither a symlink nor a `..` after a folder not yet created can
/// hide where a write would land; `existing_ancestor` alone would stop at the first missing
/// folder and miss a `..` after it.
pub fn resolved_path(path: &Path) -> PathBuf {
    use std::path::Component;
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut cur = PathBuf::from("/");
    for c in abs.components() {
        match c {
            Component::Prefix(_) | Component::RootDir | Component::CurDir => continue,
            Component::ParentDir => {
                cur.pop();
            }
            Component::Normal(n) => cur.push(n),
        }
        if let Ok(real) = cur.canonicalize() {
            cur = real;
        }
    }
    cur
}

/// Where `path` (absolute, resolved) lies within its filesystem, whatever mount reaches it:
/// the filesystem (mountinfo's `major:minor`) and the path from that filesystem's own root
/// (the mount's root, which a bind mount of a folder sets to that folder, then the rest of
/// the path below the mount point). Two paths with one place are one file or folder, also
/// below a bind mount of a folder in between or a disk mounted twice. `table` is the text of
/// `/proc/self/mountinfo` ([`mount_table`]), read once for several paths. The entry used is
/// the one whose mount point is the longest prefix of `p` (the last such line: a mount on
/// top of another is listed after it).
pub fn place_in_filesystem(table: &str, p: &Path) -> Option<(String, PathBuf)> {
    let mut best: Option<(usize, String, PathBuf)> = None;
    for line in table.lines() {
        let Some((pre, _)) = line.split_once(" - ") else {
            continue;
        };
        let f: Vec<&str> = pre.split(' ').collect();
        if f.len() < 5 {
            continue;
        }
        let mount_point = PathBuf::from(unescape(f[4]));
        let Ok(rest) = p.strip_prefix(&mount_point) else {
            continue;
        };
        let len = mount_point.as_os_str().len();
        if best.as_ref().is_none_or(|b| len >= b.0) {
            let inner = PathBuf::from(unescape(f[3])).join(rest);
            best = Some((len, f[2].to_string(), inner));
        }
    }
    best.map(|(_, device, inner)| (device, inner))
}

/// The mount table (`/proc/self/mountinfo`), `None` where it cannot be read.
pub fn mount_table() -> Option<String> {
    std::fs::read_to_string("/proc/self/mountinfo").ok()
}

/// The mount point `path` lies on as named (made absolute, not resolved: resolving asks
/// the disk, which may not answer), from the mount table alone; `None` for `/`, or where
/// the table cannot be read. What `umount -f` needs to end a call a hung share holds.
pub fn mount_point_as_named(path: &Path) -> Option<PathBuf> {
    let p = std::path::absolute(path).ok()?;
    let m = from_mountinfo(&mount_table()?, &p)?.mount_point;
    (m != Path::new("/")).then_some(m)
}

/// Unescapes the octal escapes (`\040` for space) used in /proc/self/mountinfo.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The entries of mountinfo text.
fn mount_entries(text: &str) -> impl Iterator<Item = FsInfo> + '_ {
    text.lines().filter_map(|line| {
        let (pre, post) = line.split_once(" - ")?;
        let f: Vec<&str> = pre.split(' ').collect();
        let g: Vec<&str> = post.split(' ').collect();
        if f.len() < 6 || g.len() < 3 {
            return None;
        }
        Some(FsInfo {
            fstype: g[0].to_string(),
            mount_point: PathBuf::from(unescape(f[4])),
            source: unescape(g[1]),
            options: merged_options(f[5], g[2]),
        })
    })
}

/// The mount's own options, then the filesystem's that the mount's do not already say
/// (both lists start with `rw` or `ro`: shown once, not as "rw,...,rw").
fn merged_options(mount: &str, fs: &str) -> String {
    let mut all: Vec<&str> = mount.split(',').collect();
    for o in fs.split(',') {
        if !all.contains(&o) {
            all.push(o);
        }
    }
    all.join(",")
}

/// Parses mountinfo text and returns the entry whose mount point is the longest prefix of `p`.
fn from_mountinfo(text: &str, p: &Path) -> Option<FsInfo> {
    let mut best: Option<FsInfo> = None;
    for m in mount_entries(text) {
        if !p.starts_with(&m.mount_point) {
            continue;
        }
        let better = best
            .as_ref()
            .is_none_or(|b| m.mount_point.as_os_str().len() >= b.mount_point.as_os_str().len());
        if better {
            best = Some(m);
        }
    }
    best
}

/// Mount points strictly inside `p`, from mountinfo text.
fn mounts_below(text: &str, p: &Path) -> Vec<PathBuf> {
    let mut inside: Vec<PathBuf> = mount_entries(text)
        .map(|m| m.mount_point)
        .filter(|mp| mp != p && mp.starts_with(p))
        .collect();
    inside.sort();
    inside.dedup();
    inside
}

/// Filesystems mounted inside the folder `path` (a second disk mounted in a destination):
/// flushing `path`'s own filesystem does not flush theirs. A folder that does not exist has
/// none.
pub fn mounts_inside(path: &Path) -> Vec<PathBuf> {
    let Ok(p) = path.canonicalize() else {
        return Vec::new();
    };
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|text| mounts_below(&text, &p))
        .unwrap_or_default()
}

/// Fallback names for statfs magic numbers.
fn magic_name(magic: i64) -> &'static str {
    match magic as u32 {
        0xEF53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x0102_1994 => "tmpfs",
        0x6969 => "nfs",
        0xFF53_4D42 => "cifs",
        0xFE53_4D42 => "smb3",
        0x517B => "smbfs",
        0x4d44 => "vfat",
        0x2011_BAB0 => "exfat",
        0x5346_544e => "ntfs",
        0x6573_5546 => "fuseblk",
        0x794c_7630 => "overlay",
        _ => "unknown",
    }
}

/// Describes the filesystem holding `path` (or its nearest existing ancestor).
pub fn probe(path: &Path) -> FsInfo {
    let p = existing_ancestor(path);
    if let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") {
        if let Some(info) = from_mountinfo(&text, &p) {
            return info;
        }
    }
    // f_type's integer type differs between architectures.
    #[allow(clippy::unnecessary_cast)]
    let fstype = rustix::fs::statfs(&p)
        .map(|s| magic_name(s.f_type as i64).to_string())
        .unwrap_or_else(|_| "unknown".into());
    FsInfo {
        fstype,
        mount_point: p,
        source: String::new(),
        options: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:50 / /mnt/nas rw,relatime shared:2 - nfs 192.0.2.1:/vol rw,vers=3,rsize=131072,wsize=131072,hard
41 22 0:51 / /mnt/my\\040share rw - cifs //nas/share rw,vers=3.0
42 22 8:17 / /media/usb rw - fuseblk /dev/sdb1 rw,user_id=0";

    /// A bind mount's root is the folder it shows: a path below it has the place of the
    /// same path below that folder, on the same filesystem.
    #[test]
    fn a_path_below_a_bind_mount_has_the_place_of_the_folder_it_shows() {
        let text = format!("{SAMPLE}\n50 22 8:1 /srv/dump/restsdk /mnt/b rw - ext4 /dev/sda1 rw");
        assert_eq!(
            place_in_filesystem(&text, Path::new("/mnt/b/data/out")),
            Some(("8:1".into(), PathBuf::from("/srv/dump/restsdk/data/out")))
        );
        assert_eq!(
            place_in_filesystem(&text, Path::new("/srv/dump/restsdk/data")),
            Some(("8:1".into(), PathBuf::from("/srv/dump/restsdk/data")))
        );
        assert_eq!(
            place_in_filesystem(&text, Path::new("/mnt/nas/x")),
            Some(("0:50".into(), PathBuf::from("/x")))
        );
    }

    #[test]
    fn longest_mount_prefix_wins_and_options_parse() {
        let i = from_mountinfo(SAMPLE, Path::new("/mnt/nas/photos")).unwrap();
        assert_eq!(i.fstype, "nfs");
        assert!(i.is_network() && !i.wants_windows_names());
        assert_eq!(i.option("vers"), Some("3"));
        assert_eq!(i.option("hard"), Some(""));
        // Each option once: `rw` is in both the mount's list and the filesystem's.
        assert_eq!(
            i.options,
            "rw,relatime,vers=3,rsize=131072,wsize=131072,hard"
        );
        let i = from_mountinfo(SAMPLE, Path::new("/mnt/my share/x")).unwrap();
        assert_eq!(i.fstype, "cifs");
        assert!(i.wants_windows_names());
        assert_eq!(
            from_mountinfo(SAMPLE, Path::new("/home")).unwrap().fstype,
            "ext4"
        );
        assert!(from_mountinfo(SAMPLE, Path::new("/media/usb"))
            .unwrap()
            .wants_windows_names());
    }

    #[test]
    fn mounts_below_a_folder_are_found_and_not_the_folder_itself() {
        assert_eq!(
            mounts_below(SAMPLE, Path::new("/mnt")),
            ["/mnt/my share", "/mnt/nas"].map(PathBuf::from)
        );
        assert!(mounts_below(SAMPLE, Path::new("/mnt/nas")).is_empty());
        assert!(
            mounts_below(SAMPLE, Path::new("/mn")).is_empty(),
            "whole components, not string prefixes"
        );
        assert_eq!(mounts_below(SAMPLE, Path::new("/")).len(), 3);
    }

    #[test]
    fn probes_this_machine_without_failing() {
        let t = tempfile::tempdir().unwrap();
        let i = probe(&t.path().join("not/yet/there"));
        assert_ne!(i.fstype, "");
    }
}
