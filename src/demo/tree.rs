//! The ordinary part of the dump: each user's Photos, Documents, Music, Videos and Backups
//! folders grown into a tree up to six levels deep, with about one folder per four files (the
//! real device had 344K folders for 1.31M files).
//!
//! Folders and files are generated and inserted interleaved, as uploads would be: after each
//! new folder the files due so far are placed, mostly into recently created folders (an upload
//! fills the folder it just made), some anywhere, a few directly in a user root. New folders
//! aim at typical depths and respect soft fan-outs (about 14 years of about 24 events), so
//! the tree looks like a family's library rather than a random graph. Only a compact record
//! per folder is kept in memory; rows stream straight into the database.

use super::names::{self, Area, FileKind, Tags, AREAS};
use super::rng::{id24, Rng};
use super::rows::{self, FileSpec};
use super::sink::{Place, Sink};
use super::{DemoManifest, SizeMix};

/// Deepest folder level below a user root.
const MAX_DEPTH: u8 = 6;
/// Share of new folders aimed at each depth, 2 to 6 (the area folders are depth 1): most
/// folders are events, albums and years; deeper levels are rarer.
const DEPTH_SHARE: [f64; 5] = [0.12, 0.40, 0.28, 0.13, 0.07];
/// How many files go to flat-layout objects (`files/<contentID>`).
const FLAT_OBJECTS: u64 = 5;
/// Folders per user the fan-outs of [`names::fanout`] hold; bigger dumps widen deep levels.
const FOLDERS_AT_FANOUT: f64 = 45_000.0;

/// What the generator remembers of a folder (about 40 bytes).
struct Folder {
    id: u128,
    user: u32,
    area: Area,
    depth: u8,
    tags: Tags,
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
    let target = files / 4;
    let per_user = target as f64 / roots.len() as f64;
    let mut gen = TreeGen {
        rng,
        roots,
        mix,
        folders: Vec::new(),
        by_depth: vec![vec![Vec::new(); usize::from(MAX_DEPTH) + 1]; roots.len()],
        files_done: 0,
        flat_stride: (files / FLAT_OBJECTS).max(1),
        widen: (per_user / FOLDERS_AT_FANOUT).max(1.0).powf(0.25),
    };
    let areas = (roots.len() * AREAS.len()) as u64;
    for i in 0..target {
        if i < areas {
            gen.area_folder(sink, i)?;
        } else {
            gen.child_folder(sink, i)?;
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
    /// Indexes into `folders` by user, then depth.
    by_depth: Vec<Vec<Vec<u32>>>,
    files_done: u64,
    flat_stride: u64,
    /// Factor on the fan-out of levels below the years, so huge dumps stay plausible.
    widen: f64,
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
            tags: Tags::default(),
            children: 0,
        });
        Ok(())
    }

    /// The `i`-th folder below the area folders; users take turns so each gets a similar tree.
    fn child_folder(&mut self, sink: &mut Sink<'_>, i: u64) -> anyhow::Result<()> {
        let parent = self.pick_parent((i % self.roots.len() as u64) as usize);
        let p = &mut self.folders[parent];
        let ci = p.children;
        p.children += 1;
        let (area, depth, user, parent_id) = (p.area, p.depth + 1, p.user, p.id);
        let (name, tags) = names::child_folder(area, depth, ci, p.tags);
        let id = self.rng.id_bits();
        let row = rows::folder_row(self.rng, id24(id), Some(id24(parent_id)), name);
        sink.emit(row, Place::Shard)?;
        self.push(Folder {
            id,
            user,
            area,
            depth,
            tags,
            children: 0,
        });
        Ok(())
    }

    /// A parent for a new folder: aim at a depth, try a few folders there (favouring the
    /// photo areas) that still have room under their fan-out, and go one level deeper when
    /// those are full.
    fn pick_parent(&mut self, user: usize) -> usize {
        let u = self.rng.unit();
        let mut acc = 0.0;
        let aim = DEPTH_SHARE
            .iter()
            .position(|share| {
                acc += share;
                u < acc
            })
            .unwrap_or(DEPTH_SHARE.len() - 1) as u8
            + 1; // parent depth 1..=5
        let deepest = (1..MAX_DEPTH)
            .rev()
            .find(|d| !self.by_depth[user][usize::from(*d)].is_empty())
            .unwrap_or(1);
        let mut depth = aim.min(deepest);
        loop {
            let level = &self.by_depth[user][usize::from(depth)];
            for _ in 0..8 {
                let i = level[self.rng.below(level.len() as u64) as usize] as usize;
                let f = &self.folders[i];
                if !self.rng.chance(names::weight(f.area)) {
                    continue;
                }
                let mut room = f64::from(names::fanout(f.area, f.depth));
                if f.depth >= 2 {
                    room *= self.widen;
                }
                if f64::from(f.children) < room {
                    return i;
                }
            }
            let deeper = usize::from(depth) + 1;
            if deeper < usize::from(MAX_DEPTH) && !self.by_depth[user][deeper].is_empty() {
                depth += 1;
            } else {
                // Everything tried is full: grow wider here.
                return level[self.rng.below(level.len() as u64) as usize] as usize;
            }
        }
    }

    fn push(&mut self, f: Folder) {
        self.by_depth[f.user as usize][usize::from(f.depth)].push(self.folders.len() as u32);
        self.folders.push(f);
    }

    /// Places the next file: in a recent folder (an upload filling its folder), anywhere, or
    /// directly in a user root.
    fn file(&mut self, sink: &mut Sink<'_>, manifest: &mut DemoManifest) -> anyhow::Result<()> {
        let ordinal = self.files_done;
        self.files_done += 1;
        let n = self.folders.len() as u64;
        let folder = if n == 0 || self.rng.chance(0.01) {
            None
        } else if self.rng.chance(0.65) {
            Some((n - 1 - self.rng.below(n.min(8))) as usize)
        } else {
            Some(self.rng.below(n) as usize)
        };
        let (parent, area, tags) = match folder {
            Some(i) => {
                let f = &self.folders[i];
                (id24(f.id), Some(f.area), f.tags)
            }
            None => {
                let user = self.rng.below(self.roots.len() as u64) as usize;
                (self.roots[user].clone(), None, Tags::default())
            }
        };
        let kind = names::kind_for(area, self.rng);
        let year = tags.year;
        let name_year = year.unwrap_or_else(|| self.rng.range(2012, 2022) as u16);
        let name = names::file_name(kind, name_year, self.rng);
        let artist = tags.artist.unwrap_or_else(|| self.rng.below(12) as u32);
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
