//! Property test: random small messy databases, restored end to end by the real binary.
//!
//! The seeded demo dumps hold each awkward case of DOMAIN.md once, in a fixed arrangement;
//! real disks combine them: two `CON` files in a folder with a missing parent, a case twin
//! of a name that already needed a suffix, a parent loop under Trash. This test draws small
//! dumps (5-60 rows) mixing every case, restores each with `--names posix` and with
//! `--names windows`, and checks the promises against a model of the rows it wrote, not
//! against `plan` (which shares the restore's code):
//!
//! - every file row gets exactly one outcome and the counts add up; the exit code follows;
//! - every restored file holds exactly its object's bytes (each object's bytes are unique,
//!   so a file's content says which row it came from), once, and nothing else is in DEST;
//!   no two rows land on one path; every path stays inside DEST;
//! - a name that differs from the database's is listed as renamed (file and folders);
//!   rows with broken chains land under `_unlinked/` with a structure problem listed;
//! - Windows rules: no refused character, trailing dot or space, device name, and no two
//!   names in a folder that differ only by case;
//! - missing and unreadable objects, and objects of another length, are listed by id;
//! - dates follow the first plausible field;
//! - a second run copies nothing and finds every restored file done;
//! - the source (database and objects) is unchanged, with no `-wal`/`-shm` beside it.
//!
//! `MCR_PROP_CASES` sets the number of cases (default 10, about 10 s in a debug build) and
//! `MCR_PROP_SEED` the seed (default fixed, so CI runs the same cases every time; a failure
//! prints the shrunk case to rerun).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

use crate::util::*;

/// First characters of contentIDs (the device's shard folders).
const SHARDS: &[u8] = b"234567abcdefghijklmnopqrstuvwxyz";

/// Names that hurt somewhere (DOMAIN.md rule 4), with twins and near-twins so that
/// siblings collide: as they are, after sanitizing, or by case only.
const NAMES: &[&str] = &[
    "photo.jpg",
    "Photo.JPG",
    "PHOTO.jpg",
    "photo (2).jpg",
    "notes.txt",
    "a",
    "A",
    "a|b.txt",
    "a:b.txt",
    "a_b.txt",
    "what?.doc",
    "<tag>",
    "quote\".txt",
    "back\\slash",
    "star*.png",
    "name.",
    "name ",
    "name. .",
    " ",
    "...",
    "CON",
    "con.txt",
    "nul.txt",
    "NUL",
    "Aux.tar.gz",
    "COM1",
    "lpt9.log",
    ".",
    "..",
    "",
    "a/b",
    "/",
    "../x",
    "x/../..",
    "caf\u{e9}.txt",
    "cafe\u{301}.txt",
    "Stra\u{df}e",
    "STRASSE",
    "bell\u{7}",
    "emoji \u{1f600}.png",
    ".mcr-0123456789abcdef.part",
    "_unlinked",
    "Trash",
    "trash",
    "auth0|5f3a",
    "_dot",
    "_unnamed",
    "_dotdot",
];

/// parentIDs no row has (a damaged index): some collide once sanitized or by case.
const MISSING_PARENTS: &[&str] = &[
    "gone00000000000000000000",
    "a/b",
    "a_b",
    "a|b",
    "a:b",
    "AB",
    "ab",
    ".",
    "..",
];

/// Date values: plausible (2000-2023) or each kind of implausible one the device has.
fn date() -> impl Strategy<Value = i64> {
    prop_oneof![
        6 => 946_684_800_000i64..1_700_000_000_000,
        1 => Just(0i64),
        1 => Just(-86_400_000i64),
        1 => Just(1_500_000_000i64),        // seconds, not ms
        1 => Just(315_532_800_000i64),      // 1980-01-01, a camera clock never set
        1 => Just(7_258_118_400_000i64),    // year 2200
    ]
}

#[derive(Debug, Clone)]
struct Dates {
    birth: i64,
    c: i64,
    image: Option<i64>,
    video: Option<i64>,
}

fn dates() -> impl Strategy<Value = Dates> {
    (
        date(),
        date(),
        proptest::option::weighted(0.4, date()),
        proptest::option::weighted(0.2, date()),
    )
        .prop_map(|(birth, c, image, video)| Dates {
            birth,
            c,
            image,
            video,
        })
}

fn name() -> impl Strategy<Value = String> {
    let pool = proptest::sample::select(NAMES).prop_map(str::to_string);
    prop_oneof![
        10 => pool.clone(),
        2 => (pool, 0..4u8).prop_map(|(n, t)| match t {
            0 => n.to_uppercase(),
            1 => format!("{n}."),
            2 => format!("{n} "),
            _ => format!("{n}.txt"),
        }),
        2 => (
            prop_oneof![Just("x"), Just("\u{e9}"), Just("\u{65e5}"), Just("\u{1f600}")],
            60..300usize,
            proptest::sample::select(&["", ".jpg", ".tar.gz"][..]),
        )
            .prop_map(|(c, n, ext)| {
                let mut s = c.repeat(n);
                while s.len() > 300 {
                    s.pop();
                }
                s + ext
            }),
        1 => "\\PC{0,12}",
    ]
}

/// Where a folder row's parentID points.
#[derive(Debug, Clone)]
enum FolderParent {
    /// A folder generated before this one (a tree).
    Earlier(Index),
    /// Any folder, this one included (loops).
    Any(Index),
    User(Index),
    Trash,
    Missing(Index),
    Null,
    Empty,
    /// A file row (not a folder).
    File(Index),
}

/// Where a file row's parentID points.
#[derive(Debug, Clone)]
enum FileParent {
    Folder(Index),
    User(Index),
    Trash,
    Missing(Index),
    Null,
    Empty,
    /// A file row (not a folder).
    File(Index),
}

/// What a file row's contentID and object are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Obj {
    /// `files/<c>/<contentID>`, as long as `size` says.
    Exact,
    /// `files/<contentID>`, the flat layout.
    Flat,
    /// Shorter than `size` says.
    Short,
    /// Longer than `size` says.
    Long,
    /// contentID set, no object.
    Missing,
    /// contentID NULL, size 0 (an empty file).
    NullCid,
    /// contentID '', size 0.
    EmptyCid,
    /// contentID NULL, size > 0 (no object was ever stored).
    NullCidSized,
    /// A 0-byte object, size 0.
    EmptyObject,
    /// An object the restore cannot read (the fault `unreadable=`: root reads everything).
    Unreadable,
    /// A folder where the object should be.
    Directory,
}

fn obj() -> impl Strategy<Value = Obj> {
    prop_oneof![
        8 => Just(Obj::Exact),
        2 => Just(Obj::Flat),
        1 => Just(Obj::Short),
        1 => Just(Obj::Long),
        2 => Just(Obj::Missing),
        1 => Just(Obj::NullCid),
        1 => Just(Obj::EmptyCid),
        1 => Just(Obj::NullCidSized),
        1 => Just(Obj::EmptyObject),
        1 => Just(Obj::Unreadable),
        1 => Just(Obj::Directory),
    ]
}

#[derive(Debug, Clone)]
struct FolderSpec {
    parent: FolderParent,
    name: String,
    has_object: bool,
    key: u8,
    dates: Dates,
}

#[derive(Debug, Clone)]
struct FileSpec {
    parent: FileParent,
    name: String,
    obj: Obj,
    len: u16,
    key: u8,
    dates: Dates,
}

#[derive(Debug, Clone)]
struct Case {
    users: u8,
    trash: bool,
    include_trash: bool,
    threads: u8,
    folders: Vec<FolderSpec>,
    files: Vec<FileSpec>,
}

fn case() -> impl Strategy<Value = Case> {
    let folder = (
        prop_oneof![
            10 => any::<Index>().prop_map(FolderParent::Earlier),
            1 => any::<Index>().prop_map(FolderParent::Any),
            5 => any::<Index>().prop_map(FolderParent::User),
            2 => Just(FolderParent::Trash),
            1 => any::<Index>().prop_map(FolderParent::Missing),
            1 => Just(FolderParent::Null),
            1 => Just(FolderParent::Empty),
            1 => any::<Index>().prop_map(FolderParent::File),
        ],
        name(),
        proptest::bool::weighted(0.8),
        any::<u8>(),
        dates(),
    )
        .prop_map(|(parent, name, has_object, key, dates)| FolderSpec {
            parent,
            name,
            has_object,
            key,
            dates,
        });
    let file = (
        prop_oneof![
            10 => any::<Index>().prop_map(FileParent::Folder),
            4 => any::<Index>().prop_map(FileParent::User),
            1 => Just(FileParent::Trash),
            1 => any::<Index>().prop_map(FileParent::Missing),
            1 => Just(FileParent::Null),
            1 => Just(FileParent::Empty),
            1 => any::<Index>().prop_map(FileParent::File),
        ],
        name(),
        obj(),
        0..600u16,
        any::<u8>(),
        dates(),
    )
        .prop_map(|(parent, name, obj, len, key, dates)| FileSpec {
            parent,
            name,
            obj,
            len,
            key,
            dates,
        });
    (
        1..=3u8,
        proptest::bool::weighted(0.7),
        any::<bool>(),
        prop_oneof![Just(1u8), Just(2), Just(4)],
        proptest::collection::vec(folder, 0..16),
        proptest::collection::vec(file, 1..44),
    )
        .prop_map(
            |(users, trash, include_trash, threads, folders, files)| Case {
                users,
                trash,
                include_trash,
                threads,
                folders,
                files,
            },
        )
}

/// One row as written to the database, with its object.
#[derive(Debug, Clone)]
struct Row {
    id: String,
    /// As stored: `Some("")` is the device's other way to say "no parent".
    parent: Option<String>,
    content_id: Option<String>,
    name: String,
    size: i64,
    folder: bool,
    /// The object's bytes, when there is a readable regular object.
    object: Option<Vec<u8>>,
    obj: Obj,
    dates: Dates,
}

impl Row {
    fn parent(&self) -> Option<&str> {
        self.parent.as_deref().filter(|p| !p.is_empty())
    }
}

/// Bytes unique to a contentID: its tag, then filler up to `len` bytes.
fn object_bytes(cid: &str, len: usize) -> Vec<u8> {
    let mut b = format!("object {cid}\n").into_bytes();
    let mut x = xxhash_rust::xxh3::xxh3_64(cid.as_bytes());
    while b.len() < len {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        b.push(b'a' + (x >> 59) as u8);
    }
    b
}

/// The rows of a case: user roots, Trash, folders, files (ids in a shuffled order, so that
/// sibling suffixes do not simply follow generation order).
fn rows(case: &Case) -> Vec<Row> {
    let mut out = Vec::new();
    let mut cid_n = 0u32;
    let mut next_cid = |key: u8| {
        cid_n += 1;
        format!("{}c{cid_n:030}", SHARDS[key as usize % 32] as char)
    };
    let base = |id: String, parent: Option<String>, name: String, dates: Dates| Row {
        id,
        parent,
        content_id: None,
        name,
        size: 0,
        folder: true,
        object: None,
        obj: Obj::Exact,
        dates,
    };
    let root_dates = Dates {
        birth: 1_500_000_000_000,
        c: 1_500_000_000_000,
        image: None,
        video: None,
    };
    let users: Vec<String> = (0..case.users)
        .map(|u| format!("{u}u{:038}", u as u32 * 7))
        .collect();
    for (u, id) in users.iter().enumerate() {
        let name = format!("auth0|{:024x}", 0xabc0 + u);
        out.push(base(id.clone(), None, name, root_dates.clone()));
    }
    let trash = "7t00000000000000000000000000000000000000".to_string();
    if case.trash {
        out.push(base(
            trash.clone(),
            None,
            "Trash".into(),
            root_dates.clone(),
        ));
    }
    let folder_id = |i: usize| {
        let k = case.folders[i].key;
        format!("{}d{i:022}", SHARDS[k as usize % 32] as char)
    };
    let file_id = |i: usize| {
        let k = case.files[i].key;
        format!("{}f{i:022}", SHARDS[k as usize % 32] as char)
    };
    let user = |ix: &Index| users[ix.index(users.len())].clone();
    let missing = |ix: &Index| MISSING_PARENTS[ix.index(MISSING_PARENTS.len())].to_string();
    let trash_or_user = || {
        if case.trash {
            trash.clone()
        } else {
            users[0].clone()
        }
    };
    for (i, f) in case.folders.iter().enumerate() {
        let parent = match &f.parent {
            FolderParent::Earlier(_) if i == 0 => Some(users[0].clone()),
            FolderParent::Earlier(ix) => Some(folder_id(ix.index(i))),
            FolderParent::Any(ix) => Some(folder_id(ix.index(case.folders.len()))),
            FolderParent::User(ix) => Some(user(ix)),
            FolderParent::Trash => Some(trash_or_user()),
            FolderParent::Missing(ix) => Some(missing(ix)),
            FolderParent::Null => None,
            FolderParent::Empty => Some(String::new()),
            FolderParent::File(ix) => Some(file_id(ix.index(case.files.len()))),
        };
        let mut row = base(folder_id(i), parent, f.name.clone(), f.dates.clone());
        if f.has_object {
            let cid = next_cid(f.key);
            row.object = Some(object_bytes(&cid, 40));
            row.content_id = Some(cid);
        }
        out.push(row);
    }
    let mut empty_cid_taken = false;
    for (i, f) in case.files.iter().enumerate() {
        let parent = match &f.parent {
            FileParent::Folder(_) if case.folders.is_empty() => Some(users[0].clone()),
            FileParent::Folder(ix) => Some(folder_id(ix.index(case.folders.len()))),
            FileParent::User(ix) => Some(user(ix)),
            FileParent::Trash => Some(trash_or_user()),
            FileParent::Missing(ix) => Some(missing(ix)),
            FileParent::Null => None,
            FileParent::Empty => Some(String::new()),
            FileParent::File(ix) => Some(file_id(ix.index(case.files.len()))),
        };
        // The first file always has its object: a dump with none is refused before
        // anything is written (another test covers that).
        // contentID is unique (an index on the device), '' included: one row may have it.
        let obj = match f.obj {
            _ if i == 0 => Obj::Exact,
            Obj::EmptyCid if empty_cid_taken => Obj::NullCid,
            o => o,
        };
        empty_cid_taken |= obj == Obj::EmptyCid;
        let cid = next_cid(f.key);
        let bytes = object_bytes(&cid, f.len as usize);
        let len = bytes.len();
        let (content_id, object, size) = match obj {
            Obj::Exact | Obj::Flat | Obj::Unreadable => (Some(cid), Some(bytes), len as i64),
            Obj::Short => (Some(cid), Some(bytes), len as i64 + 7),
            Obj::Long => (Some(cid), Some(bytes), len as i64 - 7),
            Obj::Missing => (Some(cid), None, len as i64),
            Obj::NullCid => (None, None, 0),
            Obj::EmptyCid => (Some(String::new()), None, 0),
            Obj::NullCidSized => (None, None, len as i64),
            Obj::EmptyObject => (Some(cid), Some(Vec::new()), 0),
            Obj::Directory => (Some(cid), None, len as i64),
        };
        out.push(Row {
            id: file_id(i),
            parent,
            content_id,
            name: f.name.clone(),
            size,
            folder: false,
            object,
            obj,
            dates: f.dates.clone(),
        });
    }
    out
}

/// Writes the rows into the dump's database (full schema, other columns defaulted) and
/// their objects into its object store.
fn write(dump: &Dump, rows: &[Row]) {
    let mut conn = rusqlite::Connection::open(dump.db()).unwrap();
    let txn = conn.transaction().unwrap();
    for r in rows {
        txn.execute(
            "INSERT INTO Files (id, parentID, contentID, version, name, birthTime, cTime,
                 size, mimeType, storageID, hidden, imageDate, videoDate)
             VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6, ?7, ?8, 'local', 1, ?9, ?10)",
            rusqlite::params![
                r.id,
                r.parent,
                r.content_id,
                r.name,
                r.dates.birth,
                r.dates.c,
                r.size,
                if r.folder {
                    "application/x.wd.dir"
                } else {
                    "image/jpeg"
                },
                r.dates.image,
                r.dates.video,
            ],
        )
        .unwrap();
    }
    txn.commit().unwrap();
    drop(conn);
    let files = dump.root.join("restsdk/data/files");
    for r in rows {
        let Some(cid) = r.content_id.as_deref().filter(|c| !c.is_empty()) else {
            continue;
        };
        let sharded = files.join(&cid[..1]).join(cid);
        match (r.obj, &r.object) {
            (Obj::Flat, Some(b)) => std::fs::write(files.join(cid), b).unwrap(),
            (Obj::Directory, _) => std::fs::create_dir_all(sharded).unwrap(),
            (_, Some(b)) => std::fs::write(sharded, b).unwrap(),
            (_, None) => {}
        }
    }
}

/// Where a row's parent chain ends (DOMAIN.md rules 2 and 3), as the model sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fate {
    /// Below a root: the folder ids from the top down (roots included).
    Rooted(Vec<usize>),
    /// Below a missing parent, a file, or a loop: the row ids met on the way up, and
    /// (not for a loop) the folders below the break from the top down.
    Unlinked(Vec<String>, Option<Vec<usize>>),
}

struct Model<'a> {
    rows: &'a [Row],
    by_id: HashMap<&'a str, usize>,
    users: Vec<usize>,
    trash: Option<usize>,
}

impl<'a> Model<'a> {
    fn new(rows: &'a [Row]) -> Model<'a> {
        let by_id = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.as_str(), i))
            .collect();
        let roots = |pred: &dyn Fn(&Row) -> bool| -> Vec<usize> {
            let mut v: Vec<usize> = (0..rows.len())
                .filter(|&i| rows[i].folder && rows[i].parent().is_none() && pred(&rows[i]))
                .collect();
            v.sort_by(|a, b| rows[*a].id.cmp(&rows[*b].id));
            v
        };
        let users = roots(&|r| r.name.starts_with("auth0|"));
        let trash = roots(&|r| r.name == "Trash").first().copied();
        Model {
            rows,
            by_id,
            users,
            trash,
        }
    }

    /// The chain above row `i`: folders from the top down, or why it is broken.
    fn fate(&self, i: usize) -> Fate {
        let mut chain = Vec::new();
        let mut seen = BTreeSet::new();
        let mut met = vec![self.rows[i].id.clone()];
        let mut cur = i;
        loop {
            let Some(p) = self.rows[cur].parent() else {
                chain.reverse();
                return Fate::Rooted(chain);
            };
            match self.by_id.get(p) {
                Some(&j) if self.rows[j].folder && seen.insert(j) => {
                    chain.push(j);
                    met.push(self.rows[j].id.clone());
                    cur = j;
                }
                Some(&j) if self.rows[j].folder => return Fate::Unlinked(met, None),
                _ => {
                    chain.reverse();
                    return Fate::Unlinked(met, Some(chain));
                }
            }
        }
    }

    fn in_trash(&self, fate: &Fate) -> bool {
        matches!((fate, self.trash), (Fate::Rooted(c), Some(t)) if c.first() == Some(&t))
    }

    /// The names a clean chain's folders should keep (the single user's root is the top of
    /// DEST; several users get `auth0_<id>` folders).
    fn natural_dirs(&self, chain: &[usize]) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for (k, &j) in chain.iter().enumerate() {
            let user = self.users.contains(&j);
            if k == 0 && user && self.users.len() == 1 {
                continue;
            }
            let name = &self.rows[j].name;
            out.push((
                j,
                if user {
                    name.replace('|', "_")
                } else {
                    name.clone()
                },
            ));
        }
        out
    }
}

/// The first plausible date of imageDate, videoDate, cTime, birthTime (1990 to a year from
/// now; README "Dates").
fn expected_mtime(d: &Dates) -> Option<i64> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let plausible = |ms: i64| (631_152_000_000..now + 365 * 86_400_000).contains(&ms);
    [d.image, d.video, Some(d.c), Some(d.birth)]
        .into_iter()
        .flatten()
        .find(|&ms| plausible(ms))
}

/// Every entry below `root`: relative path -> (is_dir, bytes of a file). Fails on a
/// symbolic link (nothing the restore makes is one).
fn walk(root: &Path) -> Result<BTreeMap<String, Option<Vec<u8>>>, TestCaseError> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap();
            let rel = rel
                .to_str()
                .ok_or_else(|| TestCaseError::fail(format!("{rel:?} is not UTF-8")))?
                .to_string();
            prop_assert!(!m.file_type().is_symlink(), "{rel} is a symbolic link");
            if m.is_dir() {
                out.insert(rel, None);
                todo.push(p);
            } else {
                out.insert(rel, Some(std::fs::read(&p).unwrap()));
            }
        }
    }
    Ok(out)
}

fn windows_safe(c: &str) -> bool {
    const RESERVED: &[&str] = &[
        "CON", "PRN", "AUX", "NUL", "COM0", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7",
        "COM8", "COM9", "LPT0", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8",
        "LPT9",
    ];
    let stem = c.split('.').next().unwrap_or("").trim_end();
    !c.chars()
        .any(|ch| ch.is_control() || "<>:\"\\|?*".contains(ch))
        && !c.ends_with(['.', ' '])
        && !RESERVED.iter().any(|r| r.eq_ignore_ascii_case(stem))
}

fn ids(list: &serde_json::Value) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in list.as_array().unwrap() {
        out.entry(p["id"].as_str().unwrap().to_string())
            .or_default()
            .push(p["outcome"].as_str().unwrap_or("").to_string());
    }
    out
}

/// Restores `case` with one name policy and checks every promise; returns nothing, fails
/// with what broke.
fn check(dump: &Dump, rows: &[Row], case: &Case, names: &str) -> Result<(), TestCaseError> {
    let model = Model::new(rows);
    let dest = dump.path(&format!("dest-{names}"));
    let state = dump.path(&format!("state-{names}"));
    let state_s = state.to_str().unwrap();
    let threads = case.threads.to_string();
    let mut args = vec![
        "--names",
        names,
        "--state-dir",
        state_s,
        "--threads",
        &threads,
        "--quiet",
    ];
    if case.include_trash {
        args.push("--include-trash");
    }
    let faults: Vec<String> = rows
        .iter()
        .filter(|r| r.obj == Obj::Unreadable && !r.folder)
        .map(|r| format!("unreadable={}", r.content_id.as_deref().unwrap()))
        .collect();
    let faults = faults.join(";");
    let env = [("MYCLOUD_RECOVER_FAULTS", faults.as_str())];
    let started = std::time::SystemTime::now();
    let (out, report) = restore(dump, &dest, &args, &env);
    let ended = std::time::SystemTime::now();
    let log = text(&out);
    prop_assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "exit {:?}: {log}",
        out.status.code()
    );

    // What the model expects of each file row.
    let files: Vec<usize> = (0..rows.len()).filter(|&i| !rows[i].folder).collect();
    let mut filtered = 0u64;
    let mut expect_missing = BTreeSet::new();
    let mut expect_failed_or_missing = BTreeSet::new();
    let mut expect_restored: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
    let mut expect_noted = BTreeSet::new();
    for &i in &files {
        let r = &rows[i];
        if model.in_trash(&model.fate(i)) && !case.include_trash {
            filtered += 1;
            continue;
        }
        match r.obj {
            Obj::Missing | Obj::NullCidSized => {
                expect_missing.insert(r.id.clone());
            }
            Obj::Unreadable | Obj::Directory => {
                expect_failed_or_missing.insert(r.id.clone());
            }
            Obj::NullCid | Obj::EmptyCid => {
                expect_restored.insert(i, Vec::new());
            }
            Obj::Short | Obj::Long => {
                expect_noted.insert(r.id.clone());
                expect_restored.insert(i, r.object.clone().unwrap());
            }
            Obj::Exact | Obj::Flat | Obj::EmptyObject => {
                expect_restored.insert(i, r.object.clone().unwrap());
            }
        }
    }

    // Outcomes: one per file row, and they add up.
    let outcome = |k: &str| report["outcomes"][k].as_u64().unwrap_or(0);
    prop_assert_eq!(outcome_sum(&report), files.len() as u64, "{}", log);
    prop_assert_eq!(report["not_processed"].as_u64(), Some(0));
    prop_assert_eq!(report["complete"].as_bool(), Some(true), "{}", log);
    prop_assert_eq!(outcome("filtered"), filtered);
    prop_assert_eq!(outcome("copied"), expect_restored.len() as u64, "{}", log);
    prop_assert_eq!(outcome("missing"), expect_missing.len() as u64);
    prop_assert_eq!(
        outcome("failed") + outcome("missing"),
        (expect_missing.len() + expect_failed_or_missing.len()) as u64,
        "problems: {}",
        report["problems"]
    );
    let bad = expect_missing.len() + expect_failed_or_missing.len();
    prop_assert_eq!(
        out.status.code(),
        Some(if bad > 0 { 1 } else { 0 }),
        "{}",
        log
    );
    let problems = ids(&report["problems"]);
    let want: BTreeSet<String> = expect_missing
        .union(&expect_failed_or_missing)
        .cloned()
        .collect();
    prop_assert_eq!(
        problems.keys().cloned().collect::<BTreeSet<_>>(),
        want,
        "every missing or unreadable object is listed by id"
    );
    for id in &expect_missing {
        prop_assert_eq!(&problems[id], &vec!["missing".to_string()]);
    }
    let notes = ids(&report["notes"]);
    for id in &expect_noted {
        prop_assert!(
            notes.contains_key(id),
            "{id}: object of another length not noted"
        );
    }
    prop_assert!(report["folders_failed"].as_array().unwrap().is_empty());

    // DEST: each restored file is exactly one row's object, once; nothing else.
    let tree = walk(&dest)?;
    let by_bytes: HashMap<&[u8], usize> = expect_restored
        .iter()
        .filter(|(_, b)| !b.is_empty())
        .map(|(&i, b)| (b.as_slice(), i))
        .collect();
    let mut found: BTreeMap<usize, String> = BTreeMap::new();
    let mut empties: Vec<String> = Vec::new();
    for (path, bytes) in &tree {
        let Some(bytes) = bytes else { continue };
        if bytes.is_empty() {
            empties.push(path.clone());
            continue;
        }
        let i = *by_bytes.get(bytes.as_slice()).ok_or_else(|| {
            TestCaseError::fail(format!(
                "{path} holds bytes of no restored row: {:?}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(60)])
            ))
        })?;
        if let Some(other) = found.insert(i, path.clone()) {
            return Err(TestCaseError::fail(format!(
                "row {} restored twice: {other} and {path}",
                rows[i].id
            )));
        }
    }
    let want_empty = expect_restored.values().filter(|b| b.is_empty()).count();
    prop_assert_eq!(
        found.len() + empties.len(),
        expect_restored.len(),
        "every restored row is one file on DEST: missing {:?}",
        expect_restored
            .keys()
            .filter(|i| !found.contains_key(i))
            .map(|&i| (&rows[i].id, &rows[i].name))
            .collect::<Vec<_>>()
    );
    prop_assert_eq!(empties.len(), want_empty);

    // Names: single safe components; Windows rules; no case twins under Windows.
    let mut siblings: BTreeMap<(String, String), String> = BTreeMap::new();
    for path in tree.keys() {
        let (dir, leaf) = path.rsplit_once('/').unwrap_or(("", path));
        prop_assert!(leaf.len() <= 255, "{path}: a name over 255 bytes");
        if names == "windows" {
            prop_assert!(windows_safe(leaf), "{path}: refused by Windows");
            let key = (dir.to_string(), leaf.to_lowercase());
            if let Some(twin) = siblings.insert(key, path.clone()) {
                return Err(TestCaseError::fail(format!(
                    "{twin} and {path} are one name on a case-insensitive disk"
                )));
            }
        }
    }

    // Every changed name is reported; broken chains are under `_unlinked/`, reported.
    let renamed: BTreeMap<String, String> = report["renamed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["restored"].as_str().unwrap().to_string(),
                r["original"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let structure: BTreeSet<String> = report["structure_problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    let with_empties = found
        .iter()
        .map(|(&i, p)| (Some(i), p.clone()))
        .chain(empties.iter().map(|p| (None, p.clone())));
    for (row, path) in with_empties {
        let parts: Vec<&str> = path.split('/').collect();
        let Some(i) = row else {
            continue;
        };
        let r = &rows[i];
        let leaf = *parts.last().unwrap();
        if leaf != r.name {
            let orig = renamed.get(&path);
            prop_assert!(
                orig.is_some_and(|o| o.ends_with(&r.name)),
                "{path} (row {} named {:?}) renamed without a report entry",
                r.id,
                r.name
            );
        }
        let mtime = std::fs::metadata(dest.join(&path))
            .unwrap()
            .modified()
            .unwrap();
        match expected_mtime(&r.dates) {
            Some(ms) => {
                let got = mtime
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(-1);
                prop_assert_eq!(got, ms, "{} date from {:?}", path, r.dates);
            }
            None => prop_assert!(
                mtime >= started - std::time::Duration::from_secs(2) && mtime <= ended,
                "{path}: undated, keeps the restore's time"
            ),
        }
        match model.fate(i) {
            Fate::Unlinked(met, below) => {
                prop_assert_eq!(parts[0], "_unlinked", "{} has a broken chain", path);
                prop_assert!(
                    met.iter().any(|id| structure.contains(id)),
                    "{path}: broken chain {met:?} not in structure_problems"
                );
                // Below a missing parent: `_unlinked/<its folder>/` then the folders down.
                if let Some(chain) = below {
                    let dirs = chain.iter().map(|&j| (j, rows[j].name.clone()));
                    let dirs: Vec<(usize, String)> = dirs.collect();
                    prop_assert_eq!(parts.len(), dirs.len() + 3, "{} under {:?}", path, dirs);
                    for (k, (j, natural)) in dirs.iter().enumerate() {
                        if parts[k + 2] != natural {
                            let prefix = parts[..k + 3].join("/");
                            prop_assert!(
                                renamed.contains_key(&prefix),
                                "folder {} ({natural:?}) restored as {prefix} without a report entry",
                                rows[*j].id
                            );
                        }
                    }
                }
            }
            Fate::Rooted(chain) => {
                let dirs = model.natural_dirs(&chain);
                prop_assert_eq!(
                    parts.len(),
                    dirs.len() + 1,
                    "{} under folders {:?}",
                    path,
                    dirs
                );
                for (k, (j, natural)) in dirs.iter().enumerate() {
                    if parts[k] != natural {
                        let prefix = parts[..=k].join("/");
                        prop_assert!(
                            renamed.contains_key(&prefix),
                            "folder {} ({natural:?}) restored as {prefix} without a report entry",
                            rows[*j].id
                        );
                    }
                }
            }
        }
    }

    // A second run copies nothing and finds every restored file done.
    let (again, report2) = restore(dump, &dest, &args, &env);
    let outcome2 = |k: &str| report2["outcomes"][k].as_u64().unwrap_or(0);
    prop_assert_eq!(again.status.code(), out.status.code(), "{}", text(&again));
    prop_assert_eq!(outcome2("copied"), 0);
    prop_assert_eq!(outcome2("adopted"), 0);
    prop_assert_eq!(
        outcome2("already_done"),
        expect_restored.len() as u64,
        "{}",
        report2["outcomes"]
    );
    prop_assert_eq!(outcome_sum(&report2), files.len() as u64);
    prop_assert_eq!(walk(&dest)?, tree, "the second run changed DEST");
    Ok(())
}

fn run_case(case: &Case) -> Result<(), TestCaseError> {
    let dump = Dump::empty(1);
    let rows = rows(case);
    write(&dump, &rows);
    let before = SourceSnapshot::take(&dump);
    for names in ["posix", "windows"] {
        check(&dump, &rows, case, names)?;
    }
    prop_assert_eq!(
        SourceSnapshot::take(&dump),
        before,
        "the source was written"
    );
    let db = dump.db();
    for ext in ["-wal", "-shm", "-journal"] {
        let mut p = db.clone().into_os_string();
        p.push(ext);
        prop_assert!(!Path::new(&p).exists(), "{:?} beside the database", p);
    }
    // Nothing outside DEST and the state folders.
    let beside: BTreeSet<String> = std::fs::read_dir(dump.tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let want: BTreeSet<String> = ["dump", "dest-posix", "dest-windows", "state-posix"]
        .into_iter()
        .chain(["state-windows"])
        .map(String::from)
        .collect();
    prop_assert_eq!(beside, want);
    Ok(())
}

/// See the module docs. Fails with the smallest case proptest could shrink to.
#[test]
fn messy_databases_restore_every_file_once_under_a_reported_name() {
    let env = |k: &str, default: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let cases = env("MCR_PROP_CASES", 10) as u32;
    let seed = env("MCR_PROP_SEED", 13);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 400,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
    if let Err(e) = runner.run(&case(), |c| run_case(&c)) {
        panic!("MCR_PROP_SEED={seed}: {e}");
    }
}
/// The user root of the hand-written dumps below.
const USER: &str = "2u00000000000000000000000000000000000000";

/// A folder row named `name` under `parent` (`None`: a user root).
fn folder_row(id: &str, parent: Option<&str>, name: &str) -> Row {
    Row {
        id: id.into(),
        parent: parent.map(Into::into),
        content_id: None,
        name: name.into(),
        size: 0,
        folder: true,
        object: None,
        obj: Obj::Exact,
        dates: plain_dates(),
    }
}

/// A file row of `len` bytes under `parent`, its object in the sharded layout.
fn file_row(id: &str, parent: &str, cid: &str, name: &str, len: usize) -> Row {
    Row {
        id: id.into(),
        parent: Some(parent.into()),
        content_id: Some(cid.into()),
        name: name.into(),
        size: len as i64,
        folder: false,
        object: Some(object_bytes(cid, len)),
        obj: Obj::Exact,
        dates: plain_dates(),
    }
}

/// Plausible upload dates (2020), no capture date.
fn plain_dates() -> Dates {
    Dates {
        birth: 1_600_000_000_000,
        c: 1_600_000_000_000,
        image: None,
        video: None,
    }
}

/// Found by the property test: rows under two missing parents whose ids are one name once
/// made safe (`a/b` and `a_b` under any rules; `AB` and `ab` where case is ignored) went to
/// one `_unlinked/` folder. Two files of one name, size and date there: the second was
/// taken for an earlier copy of itself (adopted, reported done) and its bytes were never
/// restored.
#[test]
fn rows_under_missing_parents_whose_ids_sanitize_alike_are_all_restored() {
    for (names, a, b) in [("posix", "a/b", "a_b"), ("windows", "AB", "ab")] {
        let dump = Dump::empty(1);
        let mut rows = vec![folder_row(USER, None, "auth0|abc")];
        rows.push(file_row(
            "af0000000000000000000001",
            a,
            "ac01",
            "photo.jpg",
            30,
        ));
        rows.push(file_row(
            "af0000000000000000000002",
            b,
            "ac02",
            "photo.jpg",
            30,
        ));
        write(&dump, &rows);
        let dest = dump.path("restored");
        let (out, report) = restore(&dump, &dest, &["--names", names], &[]);
        assert_eq!(out.status.code(), Some(0), "{names}: {}", text(&out));
        assert_eq!(report["outcomes"]["copied"], 2, "{names}: {report}");
        let on_dest: BTreeSet<Vec<u8>> = walk(&dest).unwrap().into_values().flatten().collect();
        for r in &rows[1..] {
            assert!(
                on_dest.contains(r.object.as_ref().unwrap()),
                "{names}: {}",
                r.id
            );
        }
        let folders: BTreeSet<String> = walk(&dest.join("_unlinked"))
            .unwrap()
            .into_iter()
            .filter(|(p, bytes)| bytes.is_none() && !p.contains('/'))
            .map(|(p, _)| p.to_lowercase())
            .collect();
        assert_eq!(
            folders.len(),
            2,
            "{names}: one folder per missing parent: {folders:?}"
        );
    }
}

/// A chain of `depth` folders named `d` below a user root, with a file of a 200-byte name
/// in each folder of `files_at` (depths from 0); the file ids are `f<depth>`.
fn deep_chain(depth: usize, files_at: &[usize]) -> Vec<Row> {
    let folder = |i: usize| format!("2d{i:022}");
    let mut rows = vec![folder_row(USER, None, "auth0|abc")];
    for i in 0..depth {
        let parent = if i == 0 {
            USER.to_string()
        } else {
            folder(i - 1)
        };
        rows.push(folder_row(&folder(i), Some(&parent), "d"));
    }
    let long = format!("{}.jpg", "p".repeat(196));
    for &i in files_at {
        rows.push(file_row(
            &format!("f{i:023}"),
            &folder(i),
            &format!("ac{i:030}"),
            &long,
            60,
        ));
    }
    rows
}

/// Output shortened for a failure message: the paths here are 4,000 bytes each.
fn clip(s: &str) -> String {
    let mut keep = s.chars().take(1500).collect::<String>();
    if keep.len() < s.len() {
        keep.push_str(" ...");
    }
    keep
}

fn said(o: &std::process::Output) -> String {
    clip(&text(o))
}

fn verify(dump: &Dump, dest: &Path) -> std::process::Output {
    bin()
        .arg("verify")
        .arg(&dump.root)
        .arg(dest)
        .arg("--state-dir")
        .arg(dump.path("state"))
        .output()
        .unwrap()
}

/// Found reviewing round 13: the plan kept each folder's path within PATH_MAX, but not the
/// paths of the files in it, and the copy, which creates a file relative to its open
/// folder, placed files whose whole path Linux refuses. Every later look by path failed:
/// `verify` listed them as differing ("File name too long"), the resume warned that files
/// it had restored were "no longer on the destination" (and refuses a DEST where none of
/// its 16 samples is found), `regen` could not see them. Folders now keep room for a
/// 255-byte name below them (deeper ones go on under `_unlinked/deep-<id>/`), and a file
/// whose path on this DEST would not fit fails, listed, as its folder would.
#[test]
fn every_restored_file_is_reachable_by_its_path_regression_round_14() {
    // Folder paths: `d` at depth 0 is 1 byte, each level 2 more (depth 1880: 3,761 bytes;
    // 2,046: 4,093, the last that fit below `/` before).
    let at = [1880, 1950, 2000, 2040, 2046];
    let dump = Dump::empty(1);
    write(&dump, &deep_chain(2100, &at));
    let dest = dump.path("restored");
    let (out, report) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    assert_eq!(
        report["outcomes"]["copied"],
        at.len(),
        "{}",
        clip(&report.to_string())
    );
    let v = verify(&dump, &dest);
    assert_eq!(v.status.code(), Some(0), "{}", said(&v));
    let (again, report) = restore(&dump, &dest, &[], &[]);
    assert_eq!(again.status.code(), Some(0), "{}", said(&again));
    assert!(!text(&again).contains("no longer on the destination"));
    assert_eq!(
        report["outcomes"]["already_done"],
        at.len(),
        "{}",
        clip(&report.to_string())
    );

    // Below a DEST of 230 bytes the file at depth 1,880 (3,761 + 1 + 200 bytes) does not
    // fit: it fails, said so, and is nowhere (verify cannot read it either); the resume
    // tries it again without a word about files gone.
    let dump = Dump::empty(1);
    write(&dump, &deep_chain(2100, &at));
    let dest = dump.path(&format!("{}/restored", "x".repeat(200)));
    let (out, report) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert_eq!(
        report["outcomes"]["copied"],
        at.len() - 1,
        "{}",
        clip(&report.to_string())
    );
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{}", clip(&format!("{problems:?}")));
    assert_eq!(problems[0]["id"], format!("f{:023}", 1880));
    assert!(
        problems[0]["reason"]
            .as_str()
            .unwrap()
            .contains("File name too long"),
        "{}",
        clip(&format!("{problems:?}"))
    );
    let v = verify(&dump, &dest);
    assert_eq!(v.status.code(), Some(1), "{}", said(&v));
    assert!(text(&v).contains("4 match, 1 differ"), "{}", said(&v));
    // Said as what it is (round 14: "cannot read ...: File name too long").
    assert!(
        text(&v).contains("not on the destination: its path on DEST is longer than Linux allows"),
        "{}",
        said(&v)
    );
    let (again, report) = restore(&dump, &dest, &[], &[]);
    assert_eq!(again.status.code(), Some(1), "{}", said(&again));
    assert!(!text(&again).contains("no longer on the destination"));
    assert_eq!(
        report["outcomes"]["failed"],
        1,
        "{}",
        clip(&report.to_string())
    );
}

/// Found reviewing round 13: `--only` naming a folder selected the folders below it by
/// their restored paths, and a part of its tree too deep for a Linux path goes on under
/// `_unlinked/deep-<id>/`: `--only d` on a chain 2,100 deep restored the file at depth
/// 1,000 and left the two below the relocation "not selected", exit 0, the relocation not
/// mentioned (its structure problem was left out with the folder). The folders moved out
/// of a selected folder's tree are selected with it.
#[test]
fn only_a_folder_selects_what_of_it_went_under_unlinked_for_being_too_deep() {
    let dump = Dump::empty(1);
    write(&dump, &deep_chain(2100, &[1000, 2000, 2050]));
    let dest = dump.path("restored");
    let (out, report) = restore(&dump, &dest, &["--only", "d"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    assert_eq!(report["outcomes"]["copied"], 3, "{}", said(&out));
    assert_eq!(report["outcomes"]["filtered"], 0, "{}", said(&out));
    assert!(
        text(&out).contains("too deep for a Linux path"),
        "{}",
        said(&out)
    );
    // A selection inside the chain below the first relocation, by its restored path,
    // still takes only what is below it.
    let plan = plan_json(&dump.root, &dest, &[]);
    let deeper = of_type(&plan, "file")
        .into_iter()
        .find(|f| f["id"] == format!("f{:023}", 2000))
        .unwrap()["path"]
        .as_str()
        .unwrap()
        .rsplit_once('/')
        .unwrap()
        .0
        .to_string();
    let state = dump.path("state-deeper");
    let (out, report) = restore(
        &dump,
        &dump.path("deeper"),
        &["--only", &deeper, "--state-dir", state.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    assert_eq!(report["outcomes"]["copied"], 2, "{}", said(&out));
}
