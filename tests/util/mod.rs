//! Shared helpers for the integration tests: demo dumps built from a seed, the real binary,
//! and snapshots of trees and of the source (to prove it is never written).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use mycloud_recover::demo::{self, Content, DemoManifest, DemoSpec, SizeMix};

pub fn bin() -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("mycloud-recover").expect("binary built");
    c.env_remove("MYCLOUD_RECOVER_FAULTS");
    c.timeout(std::time::Duration::from_secs(300));
    c
}

/// A generated dump in a temp folder.
pub struct Dump {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub manifest: DemoManifest,
}

impl Dump {
    pub fn new(seed: u64, files: u64, users: u32) -> Dump {
        Dump::with(seed, files, users, SizeMix::Demo, Content::Full)
    }

    pub fn with(seed: u64, files: u64, users: u32, size_mix: SizeMix, content: Content) -> Dump {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("dump");
        let manifest = demo::generate(
            &root,
            &DemoSpec {
                seed,
                files,
                users,
                size_mix,
                content,
            },
        )
        .expect("demo dump");
        Dump {
            tmp,
            root,
            manifest,
        }
    }

    /// A dump with the device's layout and full `Files` schema (87 columns, its indexes) but
    /// no rows: a demo dump of no files, its rows deleted, for tests that write their own
    /// rows with SQL (the property test of messy databases). The demo's stray objects stay,
    /// as leftovers stay on a real disk.
    pub fn empty(seed: u64) -> Dump {
        let dump = Dump::with(seed, 0, 1, SizeMix::Small, Content::Tiny);
        rusqlite::Connection::open(dump.db())
            .unwrap()
            .execute_batch("DELETE FROM Files")
            .unwrap();
        dump
    }

    /// A fresh path (not created) next to the dump.
    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    pub fn db(&self) -> PathBuf {
        self.root.join("restsdk/data/db/index.db")
    }

    /// contentID and size of every file row (read through an immutable, read-only handle).
    pub fn content_ids(&self) -> BTreeMap<String, (Option<String>, i64)> {
        let uri = format!("file:{}?mode=ro&immutable=1", self.db().display());
        let c = rusqlite::Connection::open_with_flags(
            uri,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
        )
        .unwrap();
        let mut s = c
            .prepare(
                "SELECT id, contentID, size FROM Files WHERE mimeType <> 'application/x.wd.dir'",
            )
            .unwrap();
        let rows = s
            .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
            .unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    }

    pub fn object(&self, content_id: &str) -> Option<PathBuf> {
        let files = self.root.join("restsdk/data/files");
        let first = &content_id[..1];
        [files.join(first).join(content_id), files.join(content_id)]
            .into_iter()
            .find(|p| p.is_file())
    }

    /// (row id, object) of every file row with bytes whose object is in the store, by id.
    pub fn objects_with_bytes(&self) -> Vec<(String, PathBuf)> {
        self.content_ids()
            .into_iter()
            .filter_map(|(id, (cid, size))| {
                let obj = self.object(cid.as_ref()?)?;
                (size > 0).then_some((id, obj))
            })
            .collect()
    }
}

/// Puts a symbolic link to `to` in the place of the object `obj` (a damaged or tampered
/// store; on the device's disk mounted here, an absolute link names this computer's file).
pub fn link_object_to(obj: &Path, to: &Path) {
    std::fs::remove_file(obj).unwrap();
    std::os::unix::fs::symlink(to, obj).unwrap();
}

/// Puts a FIFO in the place of the object `obj`, made by `mkfifo`.
pub fn fifo_for_object(obj: &Path) {
    std::fs::remove_file(obj).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(obj)
        .status()
        .unwrap();
    assert!(made.success());
}

/// Moves the shard folder `shard` to `host` (a folder of this computer), gives its files
/// other bytes, and links the shard folder's name to it.
pub fn link_shard_to(shard: &Path, host: &Path) {
    std::fs::rename(shard, host).unwrap();
    for e in std::fs::read_dir(host).unwrap() {
        std::fs::write(e.unwrap().path(), b"this computer's bytes").unwrap();
    }
    std::os::unix::fs::symlink(host, shard).unwrap();
}

pub fn hash_file(p: &Path) -> u128 {
    xxhash_rust::xxh3::xxh3_128(&std::fs::read(p).unwrap())
}

impl Dump {
    /// The hash a restored file must have: its object's, or an empty file's for a row with
    /// no contentID (restored as an empty file).
    pub fn expected_hash(&self, content_id: &Option<String>) -> u128 {
        match content_id {
            Some(c) => hash_file(&self.object(c).unwrap()),
            None => xxhash_rust::xxh3::xxh3_128(b""),
        }
    }
}

/// Every entry under `root`: relative path -> (is_dir, size, mtime ns). Some tests poll a
/// DEST a restore is writing: an entry gone between its listing and its `stat` (a
/// temporary file, say) is left out.
pub fn tree(root: &Path) -> BTreeMap<String, (bool, u64, i128)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let e = e.unwrap();
            let m = match e.metadata() {
                Ok(m) => m,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => panic!("{}: {err}", e.path().display()),
            };
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let mt = m
                .modified()
                .unwrap()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as i128)
                .unwrap_or(0);
            out.insert(rel, (m.is_dir(), m.len(), mt));
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}

/// Files only: relative path -> content hash.
pub fn file_hashes(root: &Path) -> BTreeMap<String, u128> {
    tree(root)
        .into_iter()
        .filter(|(_, (d, _, _))| !d)
        .map(|(p, _)| {
            let h = hash_file(&root.join(&p));
            (p, h)
        })
        .collect()
}

/// Everything observable about the source: every entry's size and mtime, and the database's
/// bytes. Equal snapshots mean nothing was written.
#[derive(Debug, PartialEq, Eq)]
pub struct SourceSnapshot {
    entries: BTreeMap<String, (bool, u64, i128)>,
    db_hash: u128,
}

impl SourceSnapshot {
    pub fn take(dump: &Dump) -> SourceSnapshot {
        SourceSnapshot {
            entries: tree(&dump.root),
            db_hash: hash_file(&dump.db()),
        }
    }
}

/// Parses `plan --json` output into (type, value) lines.
pub fn plan_json(dump: &Path, dest: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let out = bin()
        .arg("plan")
        .arg(dump)
        .arg(dest)
        .arg("--json")
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub fn of_type<'a>(lines: &'a [serde_json::Value], t: &str) -> Vec<&'a serde_json::Value> {
    lines.iter().filter(|l| l["type"] == t).collect()
}

/// The report a restore left in the state folder `state` (`report.json`).
pub fn report_in(state: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(state.join("report.json")).unwrap()).unwrap()
}

/// Runs `restore` with a state folder beside the dump; returns the output and the report.
pub fn restore(
    dump: &Dump,
    dest: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Output, serde_json::Value) {
    let mut c = bin();
    c.arg("restore").arg(&dump.root).arg(dest).args(extra);
    let state = match extra.iter().position(|a| *a == "--state-dir") {
        Some(i) => PathBuf::from(extra[i + 1]),
        None => {
            c.arg("--state-dir").arg(dump.path("state"));
            dump.path("state")
        }
    };
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let report = std::fs::read(state.join("report.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null);
    (out, report)
}

/// Runs `regen` with the state folder beside the dump (as [`restore`] uses).
/// `command` (`regen`, `verify`) of the dump into `dest`, with the dump's state folder.
fn run_on(command: &str, dump: &Dump, dest: &Path, extra: &[&str]) -> Output {
    bin()
        .arg(command)
        .arg(&dump.root)
        .arg(dest)
        .arg("--state-dir")
        .arg(dump.path("state"))
        .args(extra)
        .output()
        .unwrap()
}

pub fn regen(dump: &Dump, dest: &Path, extra: &[&str]) -> Output {
    run_on("regen", dump, dest, extra)
}

/// The entry of the file of row `id` among a restore report's problems (panics if none).
pub fn problem_of<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("{id} listed among the problems: {report}"))
}

pub fn verify(dump: &Dump, dest: &Path, extra: &[&str]) -> Output {
    run_on("verify", dump, dest, extra)
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A count as the tool prints it for people, its thousands grouped ("1,024", "24,997"), or
/// plain ("7"); `None` for any other word.
pub fn count_of(word: &str) -> Option<u64> {
    let digits = word.replace(',', "");
    (!word.starts_with(',') && !word.ends_with(',') && !word.contains(",,"))
        .then(|| digits.parse().ok())
        .flatten()
}

/// Sum of all outcome counts in a report.
pub fn outcome_sum(report: &serde_json::Value) -> u64 {
    report["outcomes"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum()
}

/// Starts `restore` in the background (for kill, signal and concurrency tests), with its
/// output captured so it can be read after `wait_with_output`.
pub fn spawn_restore(
    dump: &Dump,
    dest: &Path,
    state: &Path,
    extra: &[&str],
    faults: &str,
) -> std::process::Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("mycloud-recover"))
        .arg("restore")
        .arg(&dump.root)
        .arg(dest)
        .arg("--state-dir")
        .arg(state)
        .args(extra)
        .env("MYCLOUD_RECOVER_FAULTS", faults)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start restore")
}

/// A small tmpfs mounted beside a dump (for disk-full tests), unmounted on drop.
pub struct SmallDisk {
    pub path: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size` (e.g. "3m"); `None`, with the reason printed, where the
    /// machine does not allow it (not root, or no mount permission), so the test skips.
    pub fn mount(dump: &Dump, size: &str) -> Option<SmallDisk> {
        SmallDisk::mount_with(dump, &format!("size={size}"))
    }

    /// [`SmallDisk::mount`] with tmpfs options (`size=64m,nr_inodes=300`).
    pub fn mount_with(dump: &Dump, options: &str) -> Option<SmallDisk> {
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout.starts_with(b"0"))
            .unwrap_or(false);
        if !root {
            eprintln!("SKIPPED: mounting a small tmpfs needs root");
            return None;
        }
        let path = dump.path("small");
        std::fs::create_dir_all(&path).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(&path)
            .status();
        if !ok.map(|s| s.success()).unwrap_or(false) {
            eprintln!("SKIPPED: this machine does not allow mounting a tmpfs");
            return None;
        }
        Some(SmallDisk { path })
    }
}

impl SmallDisk {
    /// `mount -o remount,OPTIONS` (`ro`, `rw`, `nr_inodes=5000`); false if refused (busy).
    pub fn remount(&self, options: &str) -> bool {
        remount(&self.path, options)
    }
}

/// `mount -o remount,OPTIONS MOUNT_POINT`; false if refused (busy).
fn remount(mount_point: &Path, options: &str) -> bool {
    std::process::Command::new("mount")
        .args(["-o", &format!("remount,{options}")])
        .arg(mount_point)
        .output()
        .is_ok_and(|o| o.status.success())
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.path)
            .status();
    }
}

/// Runs the commands that make a loop-mounted disk, in order. At the first that fails:
/// with MCR_TEST_POWERCUT=require (`.ci/run` sets it where loop devices work, so CI cannot
/// skip) the test fails; otherwise it is skipped, saying why (`what` could not be made).
fn set_up<A: AsRef<std::ffi::OsStr> + std::fmt::Debug>(
    steps: &[(&str, Vec<A>)],
    what: &str,
) -> bool {
    let required = std::env::var("MCR_TEST_POWERCUT").as_deref() == Ok("require");
    for (cmd, args) in steps {
        let done = std::process::Command::new(cmd).args(args).output();
        if !done.as_ref().is_ok_and(|o| o.status.success()) {
            assert!(!required, "{cmd} {args:?}: {done:?}");
            eprintln!("SKIPPED: cannot make {what}: {cmd} {args:?}: {done:?}");
            return false;
        }
    }
    true
}

/// A small ext4 on a loop device (an image file beside the dump), unmounted on drop: for
/// disk-full tests where folders must take space, as they do on a disk (on a tmpfs they
/// take none). `None`, with the reason printed, where it cannot be made (needs root and
/// loop devices), unless MCR_TEST_POWERCUT=require (`.ci/run` sets it where loop devices
/// work, so CI cannot skip).
pub struct Ext4Disk {
    pub path: PathBuf,
}

impl Ext4Disk {
    /// An ext4 of `size` (e.g. "32M"), made with mkfs.ext4's defaults.
    pub fn mount(dump: &Dump, size: &str) -> Option<Ext4Disk> {
        Ext4Disk::mount_made_with(dump, size, &[])
    }

    /// [`Ext4Disk::mount`], made with these mkfs.ext4 options too (`-N 32`: few inodes).
    pub fn mount_made_with(dump: &Dump, size: &str, mkfs: &[&str]) -> Option<Ext4Disk> {
        let image = dump.path("ext4.img");
        let path = dump.path("ext4");
        std::fs::create_dir_all(&path).unwrap();
        let mut made: Vec<&std::ffi::OsStr> = vec!["-q".as_ref(), "-F".as_ref()];
        made.extend(mkfs.iter().map(std::ffi::OsStr::new));
        made.push(image.as_ref());
        let steps: [(&str, Vec<&std::ffi::OsStr>); 3] = [
            (
                "truncate",
                vec!["-s".as_ref(), size.as_ref(), image.as_ref()],
            ),
            ("mkfs.ext4", made),
            (
                "mount",
                vec![
                    "-o".as_ref(),
                    "loop".as_ref(),
                    image.as_ref(),
                    path.as_ref(),
                ],
            ),
        ];
        set_up(&steps, "a loop-mounted ext4 (needs root and loop devices)")
            .then_some(Ext4Disk { path })
    }

    /// `mount -o remount,OPTIONS` (`ro`, `rw`); false if refused (busy).
    pub fn remount(&self, options: &str) -> bool {
        remount(&self.path, options)
    }

    /// The loop device's name (`loop3`), as under `/sys/fs/ext4/`.
    pub fn device(&self) -> String {
        let at = self.path.to_string_lossy().into_owned();
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
        let source = mounts
            .lines()
            .filter_map(|l| l.split_once(' '))
            .find(|(_, rest)| rest.split(' ').next() == Some(at.as_str()))
            .map(|(source, _)| source.to_string())
            .unwrap_or_else(|| panic!("{at} is not mounted"));
        source.trim_start_matches("/dev/").to_string()
    }

    /// Unmounts the disk and mounts its image again: what is on the disk after its journal
    /// is replayed, as after a power cut or a crash of its filesystem.
    pub fn mount_again(&self) {
        must("umount", &[self.path.as_os_str()]);
        let image = self.path.with_file_name("ext4.img");
        must(
            "mount",
            &[
                "-o".as_ref(),
                "loop".as_ref(),
                image.as_os_str(),
                self.path.as_os_str(),
            ],
        );
    }

    /// Fills the disk with `filler` up to its last block (reserved blocks included, as
    /// the tests run as root), then frees `blocks` blocks of it again.
    pub fn fill_but(&self, filler: &Path, blocks: u64) {
        use std::io::Write;
        let mut f = std::fs::File::create(filler).unwrap();
        let chunk = vec![0x5a_u8; 64 << 10];
        let mut want = chunk.len();
        loop {
            match f.write(&chunk[..want]) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && want > 1 => want /= 2,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling {}: {e}", filler.display()),
            }
        }
        f.sync_all().unwrap();
        let block = rustix::fs::statvfs(&self.path).unwrap().f_frsize;
        let len = f.metadata().unwrap().len();
        f.set_len(len.saturating_sub(blocks * block)).unwrap();
        f.sync_all().unwrap();
        drop(f);
        // The freed blocks can be used once the journal has committed.
        must("sync", &["-f".as_ref(), self.path.as_os_str()]);
    }

    /// Fills the disk with `filler` up to the blocks ext4 keeps for root (`mkfs.ext4 -m`,
    /// 5% by default), as a user other than root fills it: `df` then shows none available
    /// (`f_bavail` 0), and root can still write those blocks. Returns what root may write.
    pub fn fill_to_roots_reserve(&self, filler: &Path) -> u64 {
        use std::io::Write;
        let vfs = || rustix::fs::statvfs(&self.path).unwrap();
        let mut f = (std::fs::OpenOptions::new().create(true).append(true))
            .open(filler)
            .unwrap();
        // Each write of what is available takes a few blocks of the reserve for its extents.
        while vfs().f_bavail > 0 {
            let s = vfs();
            f.write_all(&vec![0x5a_u8; (s.f_bavail * s.f_frsize) as usize])
                .unwrap();
            f.sync_all().unwrap();
            must("sync", &["-f".as_ref(), self.path.as_os_str()]);
        }
        let reserve =
            std::fs::read_to_string(format!("/sys/fs/ext4/{}/reserved_clusters", self.device()))
                .ok()
                .and_then(|n| n.trim().parse::<u64>().ok())
                .unwrap_or(0);
        let s = vfs();
        // ext4's reserved clusters are kept from root too.
        s.f_bfree.saturating_sub(reserve) * s.f_frsize
    }

    /// Uses up the disk's inodes with empty files in `folder` (made here), leaving its free
    /// blocks: a file can no longer be made ("No space left on device") though bytes are
    /// free. Returns how many files it made.
    pub fn fill_inodes(&self, folder: &Path) -> u64 {
        std::fs::create_dir_all(folder).unwrap();
        let mut made = 0;
        loop {
            match std::fs::File::create(folder.join(made.to_string())) {
                Ok(_) => made += 1,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break made,
                Err(e) => panic!("filling {}: {e}", folder.display()),
            }
        }
    }
}

impl Drop for Ext4Disk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.path)
            .status();
    }
}

/// A bind mount of `folder` at `at` (`mount --bind`): the same folders under a second path,
/// with the same device and inode numbers, as a disk mounted twice gives too; unmounted on
/// drop. `None`, with the reason printed, where mounting is not allowed (not root), unless
/// MCR_TEST_BIND=require (`.ci/run` sets it where a bind mount works, so CI cannot skip).
pub struct BindMount {
    pub path: PathBuf,
}

impl BindMount {
    pub fn new(folder: &Path, at: &Path) -> Option<BindMount> {
        let required = std::env::var("MCR_TEST_BIND").as_deref() == Ok("require");
        std::fs::create_dir_all(at).unwrap();
        let made = std::process::Command::new("mount")
            .arg("--bind")
            .arg(folder)
            .arg(at)
            .output();
        match made {
            Ok(o) if o.status.success() => Some(BindMount {
                path: at.to_path_buf(),
            }),
            other => {
                assert!(!required, "mount --bind {}: {other:?}", at.display());
                eprintln!("SKIPPED: cannot bind-mount a folder (needs root): {other:?}");
                None
            }
        }
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.path)
            .status();
    }
}

/// Runs `program ARGS...`, which must succeed.
fn must(program: &str, args: &[&std::ffi::OsStr]) {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{program} {args:?}: {out:?}");
}

/// A real ext4 disk for power-cut tests: a loop device whose backing file lies on an XFS
/// with reflinks, so [`PowerCutDisk::cut`] can copy the whole disk as it is at one instant
/// (`cp --reflink` clones the file under its lock, between two of the loop device's
/// writes). Mounted, such a copy is what a power cut at that instant leaves on a disk that
/// writes in order: ext4 replays its journal, and whatever was still in the page cache is
/// gone. Nothing is mocked; it needs root, loop devices and `mkfs.xfs` (`.ci/run` installs
/// xfsprogs and sets MCR_TEST_POWERCUT=require where loop devices work, so CI cannot skip).
pub struct PowerCutDisk {
    outer: PathBuf,
    /// Where the disk (and later each cut) is mounted.
    pub mnt: PathBuf,
    cuts: u32,
}

impl PowerCutDisk {
    pub fn mount(dump: &Dump) -> Option<PowerCutDisk> {
        let outer = dump.path("outer");
        let mnt = dump.path("disk");
        let disk = PowerCutDisk {
            outer: outer.clone(),
            mnt: mnt.clone(),
            cuts: 0,
        };
        let image = dump.path("outer.img");
        let steps: [(&str, Vec<std::ffi::OsString>); 5] = [
            (
                "truncate",
                vec!["-s".into(), "2G".into(), image.clone().into()],
            ),
            (
                "mkfs.xfs",
                vec![
                    "-q".into(),
                    "-m".into(),
                    "reflink=1".into(),
                    image.clone().into(),
                ],
            ),
            (
                "mount",
                vec![
                    "-o".into(),
                    "loop".into(),
                    image.into(),
                    outer.clone().into(),
                ],
            ),
            (
                "truncate",
                vec!["-s".into(), "512M".into(), outer.join("disk.img").into()],
            ),
            (
                "mkfs.ext4",
                vec!["-q".into(), "-F".into(), outer.join("disk.img").into()],
            ),
        ];
        std::fs::create_dir_all(&outer).unwrap();
        std::fs::create_dir_all(&mnt).unwrap();
        if !set_up(
            &steps,
            "a loop-mounted disk (needs root, loop devices, xfsprogs)",
        ) {
            return None;
        }
        disk.attach(&disk.image());
        Some(disk)
    }

    /// Mounts `image` (the disk, or a cut of it) at `mnt`.
    pub fn attach(&self, image: &Path) {
        must(
            "mount",
            &[
                "-o".as_ref(),
                "loop".as_ref(),
                image.as_os_str(),
                self.mnt.as_os_str(),
            ],
        );
    }

    pub fn detach(&self) {
        must("umount", &[self.mnt.as_os_str()]);
    }

    /// Unmounts the disk while files are open on it (`umount -l`), as when a USB disk is
    /// pulled: its path is the bare mount point again at once.
    pub fn pull(&self) {
        must("umount", &["-l".as_ref(), self.mnt.as_os_str()]);
    }

    /// The disk's own image (to mount it again after [`PowerCutDisk::pull`]).
    pub fn image(&self) -> PathBuf {
        self.outer.join("disk.img")
    }

    /// A copy of the disk as it is at this instant; returns its image.
    pub fn cut(&mut self) -> PathBuf {
        self.cuts += 1;
        let copy = self.outer.join(format!("cut-{}.img", self.cuts));
        let disk = self.image();
        must(
            "cp",
            &[
                "--reflink=always".as_ref(),
                disk.as_os_str(),
                copy.as_os_str(),
            ],
        );
        copy
    }
}

impl Drop for PowerCutDisk {
    fn drop(&mut self) {
        for m in [&self.mnt, &self.outer] {
            let _ = std::process::Command::new("umount").arg(m).output();
        }
    }
}

/// A source disk that can die: an ext4 on a loop device whose backing file lies on a FUSE
/// mount (`bindfs`) this helper owns. [`DyingDisk::fail`] kills the FUSE daemon: from then
/// on every read the loop device sends on fails, and ext4 returns EIO for each read of
/// the disk that its cache does not hold, as a dying USB disk does (not "not connected":
/// the filesystem and its open files stay). The loop device reads with direct I/O, so no
/// cache of the backing file hides the failure. Device-mapper's `error` target would do
/// the same, but this machine's kernel has no device-mapper (`/dev/mapper/control`: no
/// such device). Needs root, loop devices, `bindfs` and `/dev/fuse`: `.ci/run` installs
/// bindfs and sets MCR_TEST_POWERCUT=require and MCR_TEST_FUSE=require where they work,
/// so CI cannot skip it.
pub struct DyingDisk {
    back: PathBuf,
    fuse: PathBuf,
    /// Where the disk is mounted, read-only.
    pub mnt: PathBuf,
    daemon: Option<std::process::Child>,
    loopdev: Option<String>,
}

impl DyingDisk {
    /// The disk with a copy of `dump`'s files on it, mounted read-only at `mnt`; None (the
    /// reason printed) where it cannot be made, unless both MCR_TEST_POWERCUT and
    /// MCR_TEST_FUSE say `require`.
    pub fn with_copy_of(dump: &Dump) -> Option<DyingDisk> {
        let required = std::env::var("MCR_TEST_POWERCUT").as_deref() == Ok("require")
            && std::env::var("MCR_TEST_FUSE").as_deref() == Ok("require");
        let mut disk = DyingDisk {
            back: dump.path("dying-back"),
            fuse: dump.path("dying-fuse"),
            mnt: dump.path("dying-disk"),
            daemon: None,
            loopdev: None,
        };
        for d in [&disk.back, &disk.fuse, &disk.mnt] {
            std::fs::create_dir_all(d).unwrap();
        }
        let image = disk.back.join("disk.img");
        let made = (|| -> Result<(), String> {
            let run = |program: &str, args: &[&std::ffi::OsStr]| {
                let out = std::process::Command::new(program).args(args).output();
                match out {
                    Ok(o) if o.status.success() => {
                        Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
                    }
                    other => Err(format!("{program} {args:?}: {other:?}")),
                }
            };
            run(
                "truncate",
                &["-s".as_ref(), "256M".as_ref(), image.as_os_str()],
            )?;
            run(
                "mkfs.ext4",
                &["-q".as_ref(), "-F".as_ref(), image.as_os_str()],
            )?;
            disk.attach()?;
            let dev = disk.loopdev.clone().unwrap_or_default();
            run("mount", &[dev.as_ref(), disk.mnt.as_os_str()])?;
            run(
                "cp",
                &[
                    "-a".as_ref(),
                    dump.root.join(".").as_os_str(),
                    disk.mnt.as_os_str(),
                ],
            )?;
            run("umount", &[disk.mnt.as_os_str()])?;
            // Mounted again: nothing of the copy stays in ext4's cache.
            run(
                "mount",
                &[
                    "-o".as_ref(),
                    "ro".as_ref(),
                    dev.as_ref(),
                    disk.mnt.as_os_str(),
                ],
            )?;
            Ok(())
        })();
        match made {
            Ok(()) => Some(disk),
            Err(why) => {
                assert!(!required, "{why}");
                eprintln!("SKIPPED: cannot make a loop disk over FUSE (needs root, loop devices, bindfs, /dev/fuse): {why}");
                None
            }
        }
    }

    /// Starts the FUSE daemon and the loop device over its copy of the image.
    fn attach(&mut self) -> Result<(), String> {
        let daemon = std::process::Command::new("bindfs")
            .arg("-f")
            .arg(&self.back)
            .arg(&self.fuse)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("bindfs: {e}"))?;
        self.daemon = Some(daemon);
        let image = self.fuse.join("disk.img");
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !image.exists() {
            if std::time::Instant::now() > until {
                return Err("bindfs did not mount".into());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let out = std::process::Command::new("losetup")
            .args(["--direct-io=on", "-f", "--show"])
            .arg(&image)
            .output()
            .map_err(|e| format!("losetup: {e}"))?;
        if !out.status.success() {
            return Err(format!("losetup: {out:?}"));
        }
        self.loopdev = Some(String::from_utf8_lossy(&out.stdout).trim().to_string());
        Ok(())
    }

    /// The disk dies: every read it does not have cached fails with EIO from now on.
    pub fn fail(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.kill().unwrap();
            d.wait().unwrap();
        }
    }

    /// The disk attached again (as after plugging it back in): mounted read-only at `mnt`.
    pub fn revive(&mut self) {
        self.detach();
        self.attach().unwrap();
        let dev = self.loopdev.clone().unwrap();
        must(
            "mount",
            &[
                "-o".as_ref(),
                "ro".as_ref(),
                dev.as_ref(),
                self.mnt.as_os_str(),
            ],
        );
    }

    fn detach(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.mnt)
            .output();
        if let Some(dev) = self.loopdev.take() {
            let _ = std::process::Command::new("losetup")
                .args(["-d", &dev])
                .output();
        }
        self.fail();
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.fuse)
            .output();
    }
}

impl Drop for DyingDisk {
    fn drop(&mut self) {
        self.detach();
    }
}

/// The binary run as an unprivileged user, for permission tests: root reads everything, so
/// when the tests run as root (as in CI) the binary is started through `setpriv` as uid and
/// gid 65534, from a copy beside the dump (the build folder may not be reachable by that
/// user). Everything under the dump's temporary folder is made readable by all first; the
/// test then takes away what it means to. `None`, with the reason printed, where that
/// user cannot run it (a temporary folder under a folder it cannot search).
pub fn unprivileged(dump: &Dump) -> Option<impl Fn() -> std::process::Command> {
    use std::os::unix::fs::PermissionsExt;
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false);
    let mut stack = vec![dump.tmp.path().to_path_buf()];
    while let Some(p) = stack.pop() {
        let dir = p.is_dir();
        let mode = if dir { 0o755 } else { 0o644 };
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        if dir {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    let exe = dump.path("mycloud-recover");
    std::fs::copy(assert_cmd::cargo::cargo_bin("mycloud-recover"), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let command = move || {
        let mut c = if root {
            let mut c = std::process::Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(&exe);
            c
        } else {
            std::process::Command::new(&exe)
        };
        c.env_remove("MYCLOUD_RECOVER_FAULTS");
        c
    };
    match command().arg("--version").output() {
        Ok(o) if o.status.success() => Some(command),
        other => {
            eprintln!(
                "SKIPPED: cannot run the binary as uid 65534 from {} (setpriv missing, or a folder above it not searchable by that user): {other:?}",
                dump.tmp.path().display()
            );
            None
        }
    }
}

/// Waits until `done` holds, looking every `every`; fails the test with `what` if it does
/// not within `limit`. Returns how long it took.
pub fn wait_until(
    what: &str,
    limit: std::time::Duration,
    every: std::time::Duration,
    mut done: impl FnMut() -> bool,
) -> std::time::Duration {
    let began = std::time::Instant::now();
    while !done() {
        assert!(began.elapsed() < limit, "{what} within {limit:?}");
        std::thread::sleep(every);
    }
    began.elapsed()
}

/// Runs `command` (this program and its arguments, environment included) with its stdout a
/// pipe whose reader is gone before it starts: `command | true` without its race (`true`
/// may end after the first write). `sh` waits for a line on its input, sent once this end
/// of the pipe is closed, then runs the command. Its stdout is therefore empty; its exit
/// code and stderr are the command's.
pub fn output_with_stdout_gone(command: &std::process::Command) -> Output {
    let mut c = std::process::Command::new("sh");
    c.arg("-c")
        .arg(r#"read _ && exec "$@""#)
        .arg("sh")
        .arg(command.get_program())
        .args(command.get_args())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in command.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    if let Some(d) = command.get_current_dir() {
        c.current_dir(d);
    }
    let mut child = c.spawn().expect("start sh");
    drop(child.stdout.take());
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"go\n").unwrap();
    child.wait_with_output().unwrap()
}
