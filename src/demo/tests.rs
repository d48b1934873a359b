use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use super::*;
use crate::source::schema::FOLDER_MIME;

fn spec(seed: u64, files: u64, users: u32, size_mix: SizeMix, content: Content) -> DemoSpec {
    DemoSpec {
        seed,
        files,
        users,
        size_mix,
        content,
    }
}

fn gen(spec: &DemoSpec) -> (tempfile::TempDir, DemoManifest) {
    let t = tempfile::tempdir().unwrap();
    let m = generate(t.path(), spec).unwrap();
    (t, m)
}

fn data(root: &Path) -> PathBuf {
    root.join("restsdk/data")
}

fn open(root: &Path) -> Connection {
    Connection::open_with_flags(
        data(root).join("db/index.db"),
        OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap()
}

/// Every row of `Files`, every column, as text (tests may use `SELECT *`; readers must not).
fn dump_rows(c: &Connection) -> Vec<String> {
    let mut stmt = c.prepare("SELECT * FROM Files ORDER BY autoID").unwrap();
    let n = stmt.column_count();
    let mut rows = stmt.query([]).unwrap();
    let mut out = Vec::new();
    while let Some(r) = rows.next().unwrap() {
        let cols: Vec<String> = (0..n)
            .map(|i| match r.get_ref(i).unwrap() {
                ValueRef::Null => "NULL".to_string(),
                ValueRef::Integer(v) => v.to_string(),
                ValueRef::Real(v) => v.to_string(),
                ValueRef::Text(t) => format!("{:?}", String::from_utf8_lossy(t)),
                ValueRef::Blob(b) => format!("{b:?}"),
            })
            .collect();
        out.push(cols.join("|"));
    }
    out
}

/// Every object under `files/`, by path relative to it.
fn objects(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let files = data(root).join("files");
    let mut out = BTreeMap::new();
    let mut stack = vec![files.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(&files)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

struct R {
    parent: Option<String>,
    content_id: Option<String>,
    name: String,
    size: i64,
    folder: bool,
}

fn rows(c: &Connection) -> HashMap<String, R> {
    let mut stmt = c
        .prepare("SELECT id, parentID, contentID, name, size, mimeType FROM Files")
        .unwrap();
    stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            R {
                parent: r.get(1)?,
                content_id: r.get(2)?,
                name: r.get(3)?,
                size: r.get(4)?,
                folder: r.get::<_, String>(5)? == FOLDER_MIME,
            },
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// Where a row's ancestor chain ends.
#[derive(Debug, PartialEq, Eq)]
enum Top {
    Root(String),
    Missing(String),
    Cycle,
}

fn top(rows: &HashMap<String, R>, id: &str) -> Top {
    let mut seen = HashSet::new();
    let mut cur = id.to_string();
    loop {
        if !seen.insert(cur.clone()) {
            return Top::Cycle;
        }
        match rows.get(&cur) {
            None => return Top::Missing(cur),
            Some(r) => match r.parent.as_deref() {
                None | Some("") => return Top::Root(cur),
                Some(p) => cur = p.to_string(),
            },
        }
    }
}

fn object_path(root: &Path, cid: &str) -> Option<PathBuf> {
    let files = data(root).join("files");
    [files.join(&cid[..1]).join(cid), files.join(cid)]
        .into_iter()
        .find(|p| p.is_file())
}

#[test]
fn same_seed_gives_identical_dumps() {
    let s = spec(7, 300, 2, SizeMix::Small, Content::Full);
    let (a, ma) = gen(&s);
    let (b, mb) = gen(&s);
    assert_eq!(ma, mb);
    assert_eq!(dump_rows(&open(a.path())), dump_rows(&open(b.path())));
    let (oa, ob) = (objects(a.path()), objects(b.path()));
    assert_eq!(oa.len() as u64, ma.objects);
    assert!(oa == ob, "object stores differ");
    let db = |r: &Path| std::fs::read(data(r).join("db/index.db")).unwrap();
    assert!(db(a.path()) == db(b.path()), "index.db bytes differ");
}

#[test]
fn different_seeds_differ() {
    let (a, _) = gen(&spec(1, 200, 1, SizeMix::Demo, Content::Tiny));
    let (b, _) = gen(&spec(2, 200, 1, SizeMix::Demo, Content::Tiny));
    let (ra, rb) = (dump_rows(&open(a.path())), dump_rows(&open(b.path())));
    assert_ne!(ra, rb);
    let ids = |r: &Path| rows(&open(r)).into_keys().collect::<HashSet<_>>();
    assert!(ids(a.path()).is_disjoint(&ids(b.path())));
    assert_ne!(objects(a.path()), objects(b.path()));
}

#[test]
fn file_count_is_exact_for_any_size() {
    for n in [0, 1, 5, 20, 71, 200, 500, 2001] {
        let (t, m) = gen(&spec(3, n, 1, SizeMix::Real, Content::None));
        let c = open(t.path());
        let (files, folders, bytes): (u64, u64, u64) = c
            .query_row(
                "SELECT SUM(mimeType <> ?1), SUM(mimeType = ?1),
                        COALESCE(SUM(CASE WHEN mimeType <> ?1 THEN size END), 0) FROM Files",
                [FOLDER_MIME],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((m.files, files), (n, n), "n = {n}");
        assert_eq!(m.folders, folders, "n = {n}");
        assert_eq!(m.bytes, bytes, "n = {n}");
        assert!(folders >= 2, "a user root and Trash at least");
        assert_eq!(m.objects, 0);
        if n >= 200 {
            assert!(
                (n / 5..=n / 3).contains(&folders),
                "about one folder per four files: {folders} for {n}"
            );
        }
    }
}

#[test]
fn small_dumps_keep_the_most_important_special_cases() {
    let (_t, m) = gen(&spec(1, 20, 1, SizeMix::Demo, Content::Tiny));
    assert_eq!(m.files, 20);
    assert_eq!(
        m.special_groups[..3],
        ["trash", "missing-objects", "null-content-id"]
    );
    assert_eq!(m.trash_files, 3);
    assert!(!m.cycle_folder_ids.is_empty());
    let (_t, m) = gen(&spec(1, 200, 1, SizeMix::Demo, Content::None));
    assert_eq!(m.special_groups.len(), specials::GROUPS.len());
}

#[test]
fn special_cases_are_in_the_database_as_described() {
    let (t, m) = gen(&spec(11, 400, 2, SizeMix::Demo, Content::Tiny));
    let root = t.path();
    let c = open(root);
    let rows = rows(&c);
    let get = |id: &String| rows.get(id).unwrap_or_else(|| panic!("no row {id}"));

    // Roots: two users and Trash, 40-character ids, no parent.
    assert_eq!(m.users.len(), 2);
    for (name, id) in m.users.iter().zip(&m.user_root_ids) {
        let r = get(id);
        assert!(r.parent.is_none() && r.folder && &r.name == name);
        assert!(name.starts_with("auth0|") && name.len() == 30, "{name}");
        assert_eq!(id.len(), 40);
    }
    let trash = get(&m.trash_id);
    assert!(trash.parent.is_none() && trash.folder && trash.name == "Trash");
    assert_eq!(m.trash_id.len(), 40);
    let roots: HashSet<&String> = m.user_root_ids.iter().chain([&m.trash_id]).collect();
    for (id, _) in rows.iter().filter(|(id, _)| !roots.contains(id)) {
        assert_eq!(id.len(), 24, "{id}");
        assert!(
            id.bytes().all(|b| matches!(b, b'a'..=b'z' | b'2'..=b'7')),
            "{id}"
        );
    }

    // Cycles.
    let [a, b, s] = &m.cycle_folder_ids[..] else {
        panic!("{:?}", m.cycle_folder_ids)
    };
    assert_eq!(get(a).parent.as_ref(), Some(b));
    assert_eq!(get(b).parent.as_ref(), Some(a));
    assert_eq!(get(s).parent.as_ref(), Some(s));
    for f in &m.cycle_file_ids {
        assert!(!get(f).folder);
        assert_eq!(top(&rows, f), Top::Cycle);
    }

    // Unlinked rows reach a parent no row has.
    assert_eq!(m.unlinked_ids.len(), 5);
    for id in &m.unlinked_ids {
        assert!(matches!(top(&rows, id), Top::Missing(_)), "{id}");
    }
    let dangling = rows
        .values()
        .filter(
            |r| matches!(r.parent.as_deref(), Some(p) if !p.is_empty() && !rows.contains_key(p)),
        )
        .count();
    assert_eq!(dangling, 3, "one orphaned folder and two loose files");

    // Missing objects.
    assert_eq!(m.missing_object_ids.len(), 4);
    for id in &m.missing_object_ids {
        let r = get(id);
        assert!(r.size > 0 && !r.folder);
        if let Some(cid) = &r.content_id {
            assert!(object_path(root, cid).is_none(), "{id} has an object");
        }
    }
    assert_eq!(m.null_content_ids.len(), 2);
    let sizes: Vec<i64> = m.null_content_ids.iter().map(|id| get(id).size).collect();
    assert!(sizes[0] > 0 && sizes[1] == 0);
    assert!(m
        .null_content_ids
        .iter()
        .all(|id| get(id).content_id.is_none()));

    // File under a file; '' parents.
    for id in &m.file_under_file_ids {
        let parent = get(id).parent.clone().unwrap();
        assert!(!get(&parent).folder);
    }
    assert_eq!(m.empty_parent_ids.len(), 2);
    for id in &m.empty_parent_ids {
        assert_eq!(get(id).parent.as_deref(), Some(""));
    }

    // Trash holds exactly `trash_files` files.
    let in_trash = rows
        .iter()
        .filter(|(id, r)| !r.folder && top(&rows, id) == Top::Root(m.trash_id.clone()))
        .count() as u64;
    assert_eq!(in_trash, m.trash_files);
    assert_eq!(m.trash_files, 3);

    // Odd dates.
    let dates: Vec<Option<i64>> = m
        .odd_date_ids
        .iter()
        .map(|id| {
            c.query_row("SELECT imageDate FROM Files WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap()
        })
        .collect();
    assert_eq!(
        dates,
        [Some(0), Some(-86_400_000), Some(7_258_118_400_000), None]
    );

    // Flat-layout objects.
    assert_eq!(m.flat_object_ids.len(), 5);
    for id in &m.flat_object_ids {
        let cid = get(id).content_id.clone().unwrap();
        assert!(data(root).join("files").join(&cid).is_file());
        assert!(!data(root).join("files").join(&cid[..1]).join(&cid).exists());
    }
}

#[test]
fn awkward_names_are_all_there() {
    let (t, m) = gen(&spec(5, 300, 1, SizeMix::Small, Content::None));
    let c = open(t.path());
    let rows = rows(&c);
    let names: Vec<&str> = m
        .awkward_name_ids
        .iter()
        .map(|id| rows[id].name.as_str())
        .collect();
    for want in [
        "Caf\u{e9}.txt",
        "Cafe\u{301}.txt",
        "a|b.txt",
        "10:30 meeting.txt",
        "<draft>.txt",
        "say \"hi\".txt",
        "why?.txt",
        "star*.txt",
        "back\\slash.txt",
        "AC/DC - Back in Black.mp3",
        "ends with dot.",
        "ends with space ",
        "CON",
        "nul.txt",
        "COM1.log",
        ".",
        "..",
        "",
        "bell\u{7}.txt",
        "Readme.md",
        "README.md",
        "photo.jpg",
        "Holiday",
    ] {
        assert!(names.contains(&want), "missing {want:?}");
    }
    assert!(
        names.iter().any(|n| n.chars().any(|ch| ch as u32 > 0xffff)),
        "an emoji"
    );
    assert!(names.iter().any(|n| n.len() > 255 && n.is_ascii()));
    assert!(names.iter().any(|n| n.len() > 255 && !n.is_ascii()));

    // Same-folder clashes.
    let siblings = |name: &str| -> Vec<(&Option<String>, bool)> {
        rows.values()
            .filter(|r| r.name == name)
            .map(|r| (&r.parent, r.folder))
            .collect()
    };
    let photos = siblings("photo.jpg");
    assert_eq!(photos.len(), 2);
    assert_eq!(photos[0].0, photos[1].0);
    let holiday = siblings("Holiday");
    assert_eq!(holiday.len(), 2);
    assert_eq!(holiday[0].0, holiday[1].0);
    assert_ne!(holiday[0].1, holiday[1].1, "a folder and a file");
    assert_eq!(siblings("Readme.md")[0].0, siblings("README.md")[0].0);
    assert_eq!(
        siblings("Caf\u{e9}.txt")[0].0,
        siblings("Cafe\u{301}.txt")[0].0
    );
    let mimes: u64 = c
        .query_row("SELECT COUNT(*) FROM Files WHERE mimeType = ''", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(mimes >= 2);
}

#[test]
fn full_objects_match_row_sizes_and_strays_are_counted() {
    for (content, mix) in [
        (Content::Full, SizeMix::Small),
        (Content::Tiny, SizeMix::Real),
    ] {
        let (t, m) = gen(&spec(9, 250, 1, mix, content));
        let root = t.path();
        let rows = rows(&open(root));
        let on_disk = objects(root);
        let mut named = HashSet::new();
        for (id, r) in &rows {
            let Some(cid) = &r.content_id else { continue };
            named.insert(cid.clone());
            let Some(path) = object_path(root, cid) else {
                assert!(m.missing_object_ids.contains(id), "{id} lacks its object");
                continue;
            };
            let len = std::fs::metadata(path).unwrap().len();
            if r.folder {
                assert!((8..=40).contains(&len), "folder object of {len} bytes");
            } else {
                assert_eq!(len, r.size as u64, "{content:?} {id}");
                if content == Content::Tiny {
                    assert!(len == 0 || (16..=64).contains(&len));
                }
            }
        }
        let stray = on_disk
            .keys()
            .filter(|k| !named.contains(k.rsplit('/').next().unwrap()))
            .count() as u64;
        assert_eq!(stray, m.stray_objects, "{content:?}");
        assert!(m.stray_objects >= 10 && m.preview_objects > 0);
        assert_eq!(on_disk.len() as u64, m.objects);
        let total: u64 = on_disk.values().map(|v| v.len() as u64).sum();
        assert_eq!(total, m.object_bytes);
        assert!(
            rows.values().any(|r| !r.folder && r.size == 0),
            "zero-byte files"
        );
    }
}

#[test]
fn every_folder_has_a_content_id_and_an_object() {
    let (t, m) = gen(&spec(4, 300, 2, SizeMix::Demo, Content::Tiny));
    let rows = rows(&open(t.path()));
    let folders: Vec<_> = rows.values().filter(|r| r.folder).collect();
    assert_eq!(folders.len() as u64, m.folders);
    for r in folders {
        let cid = r.content_id.as_ref().expect("folders have contentIDs");
        assert!(
            object_path(t.path(), cid).is_some(),
            "folder {:?} has no object",
            r.name
        );
        assert_eq!(r.size, 0);
    }
}

#[test]
fn database_has_the_device_shape_and_no_leftover_journal() {
    let (t, m) = gen(&spec(2, 100, 1, SizeMix::Demo, Content::None));
    let db_dir = data(t.path()).join("db");
    let c = open(t.path());
    let cols: u64 = c
        .query_row("SELECT COUNT(*) FROM pragma_table_info('Files')", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(cols, 87);
    let tables: u64 = c
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(tables >= 6, "{tables} tables");
    for index in ["Files_id", "Files_contentID", "Files_parentID"] {
        let n: u64 = c
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = ?1",
                [index],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "{index}");
    }
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete");
    let storage: u64 = c
        .query_row(
            "SELECT COUNT(*) FROM Files WHERE storageID <> 'local' OR hidden <> 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(storage, 0);
    drop(c);
    let left: Vec<_> = std::fs::read_dir(&db_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["index.db"]);
    let backup = data(t.path()).join("dbBackup/index.db");
    assert!(std::fs::read(backup).unwrap() == std::fs::read(db_dir.join("index.db")).unwrap());
    // Content::None still leaves an (empty) object store.
    assert_eq!(
        std::fs::read_dir(data(t.path()).join("files"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(read_manifest(t.path()).unwrap(), m);
}

#[test]
fn the_read_only_index_reader_agrees_with_the_manifest() {
    let (t, m) = gen(&spec(6, 300, 1, SizeMix::Demo, Content::Tiny));
    let layout = crate::source::SourceLayout::discover(t.path(), None, None).unwrap();
    assert!(layout.backup_db.is_some());
    let index = crate::source::index::Index::open(&layout.db, None).unwrap();
    let counts = index.counts().unwrap();
    assert_eq!(
        (counts.files, counts.folders, counts.bytes),
        (m.files, m.folders, m.bytes)
    );
    assert_eq!(counts.files_without_content_id, 2);
    for id in &m.flat_object_ids {
        let cid: String = open(t.path())
            .query_row("SELECT contentID FROM Files WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(layout.find_object(&cid).unwrap().is_some());
    }
}

#[test]
fn users_each_get_part_of_the_tree() {
    let (t, m) = gen(&spec(8, 600, 3, SizeMix::Small, Content::None));
    let rows = rows(&open(t.path()));
    for root in &m.user_root_ids {
        let (folders, files) = rows
            .iter()
            .filter(|(id, _)| *id != root && top(&rows, id) == Top::Root(root.clone()))
            .fold(
                (0, 0),
                |(d, f), (_, r)| if r.folder { (d + 1, f) } else { (d, f + 1) },
            );
        assert!(
            folders >= 10 && files >= 50,
            "{root}: {folders} folders, {files} files"
        );
    }
    let depth = |id: &str| {
        let mut d = 0;
        let mut cur = id;
        while let Some(Some(p)) = rows.get(cur).map(|r| r.parent.as_deref()) {
            cur = p;
            d += 1;
            if d > 20 {
                break;
            }
        }
        d
    };
    let deepest = rows
        .keys()
        .map(|id| depth(id))
        .filter(|d| *d <= 20)
        .max()
        .unwrap();
    assert!((4..=8).contains(&deepest), "deepest chain {deepest}");
}

#[test]
fn demo_mix_stays_small_enough_for_a_quick_demo() {
    let (t, m) = gen(&spec(1, 1000, 1, SizeMix::Demo, Content::None));
    assert!(m.bytes < 60_000_000, "{} bytes", m.bytes);
    let c = open(t.path());
    let (empty, big): (u64, u64) = c
        .query_row(
            "SELECT SUM(size = 0), SUM(size >= 2097152) FROM Files WHERE mimeType <> ?1",
            [FOLDER_MIME],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(
        empty >= 1 && (5..=15).contains(&big),
        "{empty} empty, {big} big"
    );
}

#[test]
fn refuses_a_non_empty_restsdk_and_names_it() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("restsdk")).unwrap();
    // An empty restsdk is fine.
    generate(t.path(), &spec(1, 20, 1, SizeMix::Small, Content::None)).unwrap();
    let e = generate(t.path(), &spec(1, 20, 1, SizeMix::Small, Content::None)).unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.contains(&t.path().join("restsdk").display().to_string()),
        "{msg}"
    );
    assert!(msg.contains("not empty"), "{msg}");
    let e = generate(t.path(), &spec(1, 20, 0, SizeMix::Small, Content::None)).unwrap_err();
    assert!(format!("{e:#}").contains("user"));
}

/// Builds a dump the size of the real device (1.7M files, database only) and prints how long
/// it took. Ignored because it takes a while and ~1 GB of disk; run it with
/// `cargo test --release --lib demo::tests::real_device_scale -- --ignored --nocapture`.
#[test]
#[ignore = "slow: builds a 1.7M-row database; run in release mode when timing the generator"]
fn real_device_scale() {
    let t = tempfile::tempdir().unwrap();
    let start = std::time::Instant::now();
    let m = generate(
        t.path(),
        &spec(1, 1_700_000, 2, SizeMix::Real, Content::None),
    )
    .unwrap();
    eprintln!(
        "1.7M files + {} folders in {:.1?} ({} bytes of rows)",
        m.folders,
        start.elapsed(),
        m.bytes
    );
    assert_eq!(m.files, 1_700_000);
}
