//! Demo dumps: realistic, seeded My Cloud Home dumps for the demo, the tests and benchmarks.
//!
//! Nobody can hand us a real user's disk, and the predecessor tools broke on exactly the
//! data a clean fixture leaves out. So the demo mirrors the device's messy reality listed in
//! DOMAIN.md, not an idealised tree:
//!
//! - the full 87-column `Files` table among other tables, in `restsdk/data/db/index.db`, plus
//!   a `dbBackup` copy; objects in 32 shard folders `files/<c>/<contentID>`, a few in the flat
//!   layout `files/<contentID>`, and more objects than rows (previews and leftovers);
//! - folders that have contentIDs and objects (the rule that broke the predecessors);
//! - `auth0|<hex>` user roots and a `Trash` root, with deleted items below it;
//! - broken trees: parents that do not exist, two- and one-folder cycles, a file whose parent
//!   is a file, `''` instead of NULL for "no parent", rows inserted before their parent;
//! - names that hurt: NFC and NFD twins, emoji, `|:<>"?*\`, a `/`, trailing dots and spaces,
//!   reserved Windows names, `.`, `..`, empty, a control character, over 255 bytes, duplicates
//!   and case-only twins in one folder, a folder and a file sharing a name;
//! - dates in milliseconds with capture dates before uploads, NULL, 0, negative and year-2200
//!   `imageDate`s; files whose objects are missing or whose contentID is NULL.
//!
//! Everything comes from one seed through a generator of our own (`rng.rs`), so a seed gives
//! byte-identical databases and objects on every machine. The [`DemoManifest`] (also written
//! to `demo-manifest.json` beside `restsdk/`) lists what was generated so tests can assert
//! the restore's handling of each case. Rows stream into SQLite (one transaction, one
//! prepared statement, no journal while building, indexes built at the end) and objects go to
//! writer threads, so 1.7M rows build in seconds without holding the rows in memory.

mod names;
mod objects;
mod rng;
mod rows;
mod sink;
mod specials;
mod tree;

use std::path::Path;

use anyhow::{bail, Context};
use rusqlite::Connection;

use crate::source::schema::{FILES_INDEX_SQL, FILES_TABLE_SQL};
use rng::Rng;
use sink::{Place, Sink, Totals};

/// Sizes of the file rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SizeMix {
    /// Mostly 1-200 KB with about 1% of 2-6 MB files: 40-56 MB per 1000 files, so the
    /// default demo runs in seconds.
    Demo,
    /// 4-64 KB, uniform.
    Small,
    /// The real device's mix: log-normal, mean about 1.3 MB, long tail capped at 200 MB.
    Real,
    /// 100-400 MB each.
    Large,
}

/// What goes into the object store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Content {
    /// Objects as long as their rows' sizes.
    Full,
    /// 16-64-byte objects; the rows' sizes are set to match.
    Tiny,
    /// The database only; `files/` is created empty.
    None,
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DemoSpec {
    pub seed: u64,
    /// File rows in total, special cases included (folders are extra).
    pub files: u64,
    /// User accounts (`auth0|...` roots); at least 1.
    pub users: u32,
    pub size_mix: SizeMix,
    pub content: Content,
}

impl Default for DemoSpec {
    /// The `demo` command's defaults.
    fn default() -> DemoSpec {
        DemoSpec {
            seed: 1,
            files: 1000,
            users: 1,
            size_mix: SizeMix::Demo,
            content: Content::Full,
        }
    }
}

/// What a generated dump contains. Ids are `Files.id` values. Lists of special rows are empty
/// when the dump was too small for their group (see `special_groups`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DemoManifest {
    /// File rows (non-folder rows), special cases included: equals `spec.files`.
    pub files: u64,
    /// Folder rows, user roots and Trash included.
    pub folders: u64,
    /// Sum of the file rows' sizes.
    pub bytes: u64,
    /// Objects written to `files/` (0 with [`Content::None`]), strays and previews included.
    pub objects: u64,
    /// Bytes of all objects written.
    pub object_bytes: u64,
    /// Names of the user roots (`auth0|<24 hex>`), in creation order.
    pub users: Vec<String>,
    /// Ids of the user roots, in the order of `users`.
    pub user_root_ids: Vec<String>,
    /// Id of the `Trash` root.
    pub trash_id: String,
    /// File rows whose ancestor chain reaches Trash.
    pub trash_files: u64,
    /// File rows whose object is deliberately absent: contentID set but no object, plus the
    /// NULL-contentID row with size > 0.
    pub missing_object_ids: Vec<String>,
    /// File rows whose contentID is NULL (one with size > 0, one with size 0).
    pub null_content_ids: Vec<String>,
    /// Objects in `files/` that no row's contentID names (leftovers and previews).
    pub stray_objects: u64,
    /// How many of `stray_objects` are previews named by a `previewSourceContentID`.
    pub preview_objects: u64,
    /// File rows whose object is in the flat layout `files/<contentID>`.
    pub flat_object_ids: Vec<String>,
    /// Rows whose ancestor chain reaches a parent id no row has (a folder, the two files in it,
    /// and two loose files).
    pub unlinked_ids: Vec<String>,
    /// Folders in parent cycles: A and B (each other's parent), then S (its own parent).
    pub cycle_folder_ids: Vec<String>,
    /// Files inside the cycles (one in A, one in S).
    pub cycle_file_ids: Vec<String>,
    /// File rows whose parent is a file row.
    pub file_under_file_ids: Vec<String>,
    /// Rows whose parentID is `''` rather than NULL (a file and a folder).
    pub empty_parent_ids: Vec<String>,
    /// Photos whose imageDate is 0, negative, in the year 2200, or NULL (in that order).
    pub odd_date_ids: Vec<String>,
    /// Rows with names that are awkward on some destination (see the module docs).
    pub awkward_name_ids: Vec<String>,
    /// The special-case groups included, in priority order.
    pub special_groups: Vec<String>,
    pub spec: DemoSpec,
}

/// Name of the manifest written beside `restsdk/` in the dump root.
pub const MANIFEST_FILE: &str = "demo-manifest.json";

/// The device's other tables (empty here), so `Files` is not alone in the database.
const OTHER_TABLES_SQL: &str = "
CREATE TABLE Versions(id INTEGER PRIMARY KEY, component TEXT NOT NULL, version TEXT NOT NULL);
CREATE TABLE Users(id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL DEFAULT '',
    email TEXT NOT NULL DEFAULT '', cTime INTEGER NOT NULL DEFAULT 0);
CREATE TABLE FileLocations(fileID TEXT NOT NULL, storageID TEXT NOT NULL,
    path TEXT NOT NULL DEFAULT '');
CREATE TABLE Storages(id TEXT PRIMARY KEY NOT NULL, type TEXT NOT NULL,
    path TEXT NOT NULL DEFAULT '');
CREATE TABLE Shares(id TEXT PRIMARY KEY NOT NULL, fileID TEXT NOT NULL, ownerID TEXT NOT NULL,
    cTime INTEGER NOT NULL DEFAULT 0);
CREATE TABLE ChangeLog(autoID INTEGER PRIMARY KEY AUTOINCREMENT, fileID TEXT NOT NULL,
    action INTEGER NOT NULL, time INTEGER NOT NULL);
CREATE TABLE Settings(key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL DEFAULT '');
";

/// Leftover objects no row names.
const STRAY_OBJECTS: u64 = 10;

/// Writes a demo dump under `dump_root` (`restsdk/data/...` and `demo-manifest.json`).
/// Refuses to write into a non-empty `dump_root/restsdk`.
pub fn generate(dump_root: &Path, spec: &DemoSpec) -> anyhow::Result<DemoManifest> {
    if spec.users == 0 {
        bail!("a demo dump needs at least one user account (users = 0 given)");
    }
    let restsdk = dump_root.join("restsdk");
    ensure_empty(&restsdk)?;
    // The demo's mark comes first (the manifest is written over it at the end): a demo
    // stopped while it writes its dump is still known as one, and `demo --force` replaces it.
    std::fs::create_dir_all(dump_root)
        .and_then(|_| std::fs::write(dump_root.join(MANIFEST_FILE), "unfinished demo dump\n"))
        .with_context(|| format!("cannot write into {}", dump_root.display()))?;
    let data = restsdk.join("data");
    let db_dir = data.join("db");
    let files_dir = data.join("files");
    for dir in [&db_dir, &files_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if spec.content != Content::None {
        objects::create_shards(&files_dir)?;
    }

    let db = db_dir.join("index.db");
    let mut manifest = DemoManifest {
        spec: spec.clone(),
        ..DemoManifest::default()
    };
    build_index(&db, &files_dir, spec, &mut manifest)?;

    let backup_dir = data.join("dbBackup");
    std::fs::create_dir_all(&backup_dir)
        .with_context(|| format!("cannot create {}", backup_dir.display()))?;
    let backup = backup_dir.join("index.db");
    std::fs::copy(&db, &backup)
        .with_context(|| format!("cannot copy {} to {}", db.display(), backup.display()))?;

    let path = dump_root.join(MANIFEST_FILE);
    let json =
        serde_json::to_string_pretty(&manifest).context("cannot encode the demo manifest")?;
    std::fs::write(&path, json + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(manifest)
}

/// Reads the manifest a previous [`generate`] wrote into `dump_root`.
pub fn read_manifest(dump_root: &Path) -> anyhow::Result<DemoManifest> {
    let path = dump_root.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a demo manifest", path.display()))
}

fn ensure_empty(restsdk: &Path) -> anyhow::Result<()> {
    match std::fs::read_dir(restsdk) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} already exists and is not empty; choose another folder or remove it first",
                    restsdk.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => {
            Err(e).with_context(|| format!("cannot use {} for a demo dump", restsdk.display()))
        }
    }
}

/// Builds `index.db` and (through writer threads) the objects.
fn build_index(
    db: &Path,
    files_dir: &Path,
    spec: &DemoSpec,
    manifest: &mut DemoManifest,
) -> anyhow::Result<()> {
    let sql = |e: rusqlite::Error| {
        anyhow::Error::new(e).context(format!("cannot build {}", db.display()))
    };
    let mut conn = Connection::open(db).map_err(sql)?;
    // No journal and no fsync while building: a crash just means generating again.
    conn.query_row("PRAGMA journal_mode=OFF", [], |r| r.get::<_, String>(0))
        .map_err(sql)?;
    conn.execute_batch("PRAGMA synchronous=OFF; PRAGMA cache_size=-65536;")
        .map_err(sql)?;
    conn.execute_batch(FILES_TABLE_SQL).map_err(sql)?;
    conn.execute_batch(OTHER_TABLES_SQL).map_err(sql)?;

    let writers = match spec.content {
        Content::None => 0,
        _ => std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4)),
    };
    let totals = std::thread::scope(|s| -> anyhow::Result<Totals> {
        let (tx, rx) = crossbeam_channel::bounded(4 * writers.max(1));
        let handles: Vec<_> = (0..writers)
            .map(|_| {
                let rx = rx.clone();
                s.spawn(move || objects::worker(rx))
            })
            .collect();
        drop(rx);
        let jobs = (writers > 0).then_some(tx);
        // The sender lives in the sink, which `fill` drops on return: the writers then finish.
        let filled = (|| {
            let txn = conn.transaction().map_err(sql)?;
            let stmt = txn.prepare(sink::INSERT_SQL).map_err(sql)?;
            let totals = fill(
                Sink::new(stmt, jobs, files_dir.to_path_buf(), spec.seed, spec.content),
                spec,
                manifest,
            )?;
            txn.commit().map_err(sql)?;
            Ok::<_, anyhow::Error>(totals)
        })();
        let mut writer_error = None;
        for h in handles {
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    writer_error.get_or_insert(e);
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        match writer_error {
            Some(e) => Err(e),
            None => filled,
        }
    })?;

    for index in FILES_INDEX_SQL {
        conn.execute_batch(index).map_err(sql)?;
    }
    // Leave a plain rollback-journal database, as on the device.
    conn.query_row("PRAGMA journal_mode=DELETE", [], |r| r.get::<_, String>(0))
        .map_err(sql)?;
    conn.close().map_err(|(_, e)| sql(e))?;

    manifest.files = totals.files;
    manifest.folders = totals.folders;
    manifest.bytes = totals.bytes;
    manifest.objects = totals.objects;
    manifest.object_bytes = totals.object_bytes;
    manifest.stray_objects = totals.stray_objects;
    manifest.preview_objects = totals.preview_objects;
    Ok(())
}

/// Emits every row: roots, the ordinary tree, the special cases, then the stray objects.
fn fill(
    mut sink: Sink<'_>,
    spec: &DemoSpec,
    manifest: &mut DemoManifest,
) -> anyhow::Result<Totals> {
    let mut rng = Rng::stream(spec.seed, 2);
    for _ in 0..spec.users {
        let id = rng.root_id();
        let name = format!("auth0|{}", rng.hex(12));
        let row = rows::folder_row(&mut rng, id, None, name.clone());
        let id = sink.emit(row, Place::Shard)?;
        manifest.users.push(name);
        manifest.user_root_ids.push(id);
    }
    let trash = rng.root_id();
    let row = rows::folder_row(&mut rng, trash, None, "Trash".to_string());
    manifest.trash_id = sink.emit(row, Place::Shard)?;

    let groups = specials::choose(spec.files);
    let special_files: u64 = groups.iter().map(|g| g.files()).sum();
    let roots = manifest.user_root_ids.clone();
    tree::generate(
        &mut sink,
        &mut Rng::stream(spec.seed, 1),
        &roots,
        spec.files - special_files,
        spec.size_mix,
        manifest,
    )?;
    let trash = manifest.trash_id.clone();
    specials::generate(&mut sink, spec.seed, &groups, &roots[0], &trash, manifest)?;

    let mut rng = Rng::stream(spec.seed, 3);
    for _ in 0..STRAY_OBJECTS {
        let len = rng.range(1024, 100 * 1024) as u64;
        sink.stray(&rng.content_id(), len)?;
    }
    Ok(sink.totals.clone())
}

#[cfg(test)]
mod tests;
