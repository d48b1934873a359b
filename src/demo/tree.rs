//! The ordinary part of the dump: each user's Photos, Documents, Music, Videos and Backups
//! folders grown into a tree up to six levels deep, with about one folder per four files (the
//! real device had 344K folders for 1.31M files).
//!
//! Folders and files are generated and inserted interleaved, as uploads would be: after each
//! new folder the files due so far are placed, mostly into recently created folders (an upload
//! fills the folder it just made), some anywhere, a few directly in a user root. Only a compact
//! record per folder is kept in memory; rows stream straight into the database.

use super::names::{self, Area, FileKind, AREAS};
use super::rng::{id24, Rng};
use super::rows::{self, FileSpec};
use super::sink::{Place, Sink};
use super::{DemoManifest, SizeMix};

/// Deepest folder level below a user root.
const MAX_DEPTH: u8 = 6;
/// Chance that a folder at depth `d` (index) is accepted as the parent of a new folder:
/// shallow levels branch freely, deep ones rarely, like real photo and backup trees.
const BRANCH: [f64; 6] = [1.0, 1.0, 0.9, 0.55, 0.3, 0.12];
/// How many files go to flat-layout objects (`files/<contentID>`).
const FLAT_OBJECTS: u64 = 5;

/// What the generator remembers of a folder (about 40 bytes).
struct Folder {
    id: u128,
    user: u32,
    area: Area,
    depth: u8,
    /// A year for dated folders, an artist index under Music.
    tag: u16,
    children: u32,
}

/// Generates `files` ordinary files (and their folders) under `roots`.
pub(crate) fn generate(
    sink: &mut Sink<'_>,
    rng: &mut Rng,
    roots: &[String],
    files: u64,
    mix: SizeMix,
    manifest: &mut DemoManifest,
) -> anyhow::Result<()> {
    let mut gen = TreeGen {
        rng,
        roots,
        mix,
        folders: Vec::new(),
        eligible: Vec::new(),
        files_done: 0,
        flat_stride: (files / FLAT_OBJECTS).max(1),
    };
    let target = files / 4;
    let areas = (roots.len() * AREAS.len()) as u64;
    for i in 0..target {
        if i < areas {
            gen.area_folder(sink, i)?;
        } else {
            gen.child_folder(sink)?;
        }
        let due = (i + 1) * files / target;
        while gen.files_done < due {
            gen.file(sink, manifest)?;
        }
    }
    while gen.files_done < files {
        gen.file(sink, manifest)?;
    }
    Ok(())
}

struct TreeGen<'a> {
    rng: &'a mut Rng,
    roots: &'a [String],
    mix: SizeMix,
    folders: Vec<Folder>,
    /// Indexes of folders that may still get child folders.
    eligible: Vec<u32>,
    files_done: u64,
    flat_stride: u64,
}

impl TreeGen<'_> {
    /// The `i`-th top-level area folder: areas in order, each for every user in turn.
    fn area_folder(&mut self, sink: &mut Sink<'_>, i: u64) -> anyhow::Result<()> {
        let users = self.roots.len() as u64;
        let user = (i % users) as u32;
        let area = AREAS[(i / users) as usize];
        let id = self.rng.id_bits();
        let row = rows::folder_row(
            self.rng,
            id24(id),
            Some(self.roots[user as usize].clone()),
            area.top_name().to_string(),
        );
        sink.emit(row, Place::Shard)?;
        self.push(Folder {
            id,
            user,
            area,
            depth: 1,
            tag: 0,
            children: 0,
        });
        Ok(())
    }

    fn child_folder(&mut self, sink: &mut Sink<'_>) -> anyhow::Result<()> {
        let parent = loop {
            let idx = self.eligible[self.rng.below(self.eligible.len() as u64) as usize];
            let depth = self.folders[idx as usize].depth;
            if self.rng.chance(BRANCH[usize::from(depth)]) {
                break idx as usize;
            }
        };
        let p = &mut self.folders[parent];
        let ci = p.children;
        p.children += 1;
        let (area, depth, user, parent_id) = (p.area, p.depth + 1, p.user, p.id);
        let (name, tag) = names::child_folder(area, depth, ci, p.tag, self.rng);
        let id = self.rng.id_bits();
        let row = rows::folder_row(self.rng, id24(id), Some(id24(parent_id)), name);
        sink.emit(row, Place::Shard)?;
        self.push(Folder {
            id,
            user,
            area,
            depth,
            tag,
            children: 0,
        });
        Ok(())
    }

    fn push(&mut self, f: Folder) {
        if f.depth < MAX_DEPTH {
            self.eligible.push(self.folders.len() as u32);
        }
        self.folders.push(f);
    }

    /// Places the next file: in a recent folder (an upload filling its folder), anywhere, or
    /// directly in a user root.
    fn file(&mut self, sink: &mut Sink<'_>, manifest: &mut DemoManifest) -> anyhow::Result<()> {
        let ordinal = self.files_done;
        self.files_done += 1;
        let n = self.folders.len() as u64;
        let folder = if n == 0 || self.rng.chance(0.02) {
            None
        } else if self.rng.chance(0.65) {
            Some((n - 1 - self.rng.below(n.min(8))) as usize)
        } else {
            Some(self.rng.below(n) as usize)
        };
        let (parent, area, tag) = match folder {
            Some(i) => {
                let f = &self.folders[i];
                (id24(f.id), Some(f.area), f.tag)
            }
            None => {
                let user = self.rng.below(self.roots.len() as u64) as usize;
                (self.roots[user].clone(), None, 0)
            }
        };
        let kind = names::kind_for(area, self.rng);
        let year = (tag >= 2000).then_some(tag);
        let name_year = year.unwrap_or_else(|| self.rng.range(2012, 2022) as u16);
        let name = names::file_name(kind, name_year, self.rng);
        let artist = if area == Some(Area::Music) && tag < 2000 {
            tag
        } else {
            self.rng.below(12) as u16
        };
        let size = rows::file_size(self.mix, self.rng, ordinal);
        let id = self.rng.row_id();
        let content_id = self.rng.content_id();
        let mut row = rows::file_row(
            self.rng,
            FileSpec {
                id,
                parent: Some(parent),
                content_id: Some(content_id),
                name,
                size,
                year,
                artist,
            },
        );
        if kind == FileKind::Photo {
            if self.rng.chance(0.05) {
                row.preview = Some(self.rng.content_id());
            }
            // Rare rubbish EXIF dates, as real cameras with flat clock batteries produce.
            if self.rng.chance(0.001) {
                row.image_date = Some(*self.rng.pick(&[0, -1, 7_258_118_400_000]));
            }
        }
        let flat = ordinal % self.flat_stride == self.flat_stride / 2
            && (manifest.flat_object_ids.len() as u64) < FLAT_OBJECTS;
        let id = sink.emit(row, if flat { Place::Flat } else { Place::Shard })?;
        if flat {
            manifest.flat_object_ids.push(id);
        }
        Ok(())
    }
}
