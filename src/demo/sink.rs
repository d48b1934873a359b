//! Where generated rows go: one prepared `INSERT` into `Files`, plus the object (if any) for
//! the writer threads. Keeping both in one place is what keeps the database and the object
//! store consistent: a row's size is fixed here (tiny mode) before either is written.

use std::path::PathBuf;

use anyhow::Context;
use crossbeam_channel::Sender;
use rusqlite::Statement;

use super::objects::{self, Job};
use super::Content;
use crate::source::schema::FOLDER_MIME;

/// The columns the demo fills; every other column keeps the table's default.
pub(crate) const INSERT_SQL: &str = "INSERT INTO Files (
    id, parentID, contentID, version, name, birthTime, cTime, uTime, mTime, size, mimeType,
    storageID, hidden, previewSourceContentID, imageDate, videoDate, contentHash,
    imageWidth, imageHeight, imageCameraMake, imageCameraModel,
    videoWidth, videoHeight, videoDuration, audioArtist, audioAlbum, audioTitle
) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'local', 1, ?12, ?13, ?14, ?15,
          ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)";

/// Media metadata of a row (the device fills these from EXIF and tags).
#[derive(Debug, Clone, Default)]
pub(crate) enum Meta {
    #[default]
    None,
    Image {
        width: i64,
        height: i64,
        make: &'static str,
        model: &'static str,
    },
    Video {
        width: i64,
        height: i64,
        duration: f64,
    },
    Audio {
        artist: String,
        album: String,
        title: String,
    },
}

/// One `Files` row as generated.
#[derive(Debug, Clone, Default)]
pub(crate) struct Row {
    pub id: String,
    /// `Some("")` writes an empty string, which the device also uses for "no parent".
    pub parent: Option<String>,
    pub content_id: Option<String>,
    pub version: i64,
    pub name: String,
    pub birth: i64,
    pub c: i64,
    pub u: Option<i64>,
    pub m: Option<i64>,
    pub size: i64,
    pub mime: &'static str,
    pub preview: Option<String>,
    pub image_date: Option<i64>,
    pub video_date: Option<i64>,
    pub content_hash: Option<String>,
    pub meta: Meta,
}

impl Row {
    pub(crate) fn is_folder(&self) -> bool {
        self.mime == FOLDER_MIME
    }
}

/// Where a row's object goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// `files/<c>/<contentID>`, the normal layout.
    Shard,
    /// `files/<contentID>`, the flat layout some tools met.
    Flat,
    /// Nowhere: the object is deliberately missing.
    Missing,
}

/// Totals of what was written.
#[derive(Debug, Clone, Default)]
pub(crate) struct Totals {
    pub files: u64,
    pub folders: u64,
    pub bytes: u64,
    pub objects: u64,
    pub object_bytes: u64,
    pub stray_objects: u64,
    pub preview_objects: u64,
}

/// Receives rows in insertion order.
pub(crate) struct Sink<'conn> {
    stmt: Statement<'conn>,
    jobs: Option<Sender<Job>>,
    files_dir: PathBuf,
    seed: u64,
    content: Content,
    pub totals: Totals,
}

impl<'conn> Sink<'conn> {
    /// `jobs` is `None` when no objects are written ([`Content::None`]).
    pub(crate) fn new(
        stmt: Statement<'conn>,
        jobs: Option<Sender<Job>>,
        files_dir: PathBuf,
        seed: u64,
        content: Content,
    ) -> Sink<'conn> {
        Sink {
            stmt,
            jobs,
            files_dir,
            seed,
            content,
            totals: Totals::default(),
        }
    }

    /// Inserts `row` and queues its object. In tiny mode a non-empty file's size becomes the
    /// tiny object's length, so the database always matches the objects. Returns the row id.
    pub(crate) fn emit(&mut self, mut row: Row, place: Place) -> anyhow::Result<String> {
        let key = objects::object_key(self.seed, row.content_id.as_deref().unwrap_or(&row.id));
        let folder = row.is_folder();
        if folder {
            row.size = 0;
            self.totals.folders += 1;
        } else {
            if self.content == Content::Tiny && row.size > 0 {
                row.size = objects::tiny_len(key) as i64;
            }
            self.totals.files += 1;
            self.totals.bytes += row.size.max(0) as u64;
        }
        self.insert(&row)
            .with_context(|| format!("cannot insert demo row {} ({:?})", row.id, row.name))?;

        if let Some(cid) = &row.content_id {
            let path = match place {
                Place::Shard => Some(objects::sharded_path(&self.files_dir, cid)),
                Place::Flat => Some(self.files_dir.join(cid)),
                Place::Missing => None,
            };
            if let Some(path) = path {
                let len = if folder {
                    objects::folder_object_len(key)
                } else {
                    row.size.max(0) as u64
                };
                self.object(path, key, len, super::names::magic(row.mime))?;
            }
        }
        if let Some(preview) = &row.preview {
            // Previews are objects no row's contentID names: extra objects in files/.
            let key = objects::object_key(self.seed, preview);
            let len = match self.content {
                Content::Full => 2048 + key % 14336,
                _ => objects::tiny_len(key),
            };
            let path = objects::sharded_path(&self.files_dir, preview);
            if self.object(path, key, len, super::names::magic("image/jpeg"))? {
                self.totals.stray_objects += 1;
                self.totals.preview_objects += 1;
            }
        }
        Ok(row.id)
    }

    /// Writes an object that no row names at all (a leftover).
    pub(crate) fn stray(&mut self, content_id: &str, full_len: u64) -> anyhow::Result<()> {
        let key = objects::object_key(self.seed, content_id);
        let len = match self.content {
            Content::Full => full_len,
            _ => objects::tiny_len(key),
        };
        let path = objects::sharded_path(&self.files_dir, content_id);
        if self.object(path, key, len, b"")? {
            self.totals.stray_objects += 1;
        }
        Ok(())
    }

    /// Queues one object; returns whether objects are written at all.
    fn object(
        &mut self,
        path: PathBuf,
        key: u64,
        len: u64,
        magic: &'static [u8],
    ) -> anyhow::Result<bool> {
        let Some(jobs) = &self.jobs else {
            return Ok(false);
        };
        jobs.send(Job {
            path,
            key,
            len,
            magic,
        })
        .map_err(|_| anyhow::anyhow!("the demo object writers stopped"))?;
        self.totals.objects += 1;
        self.totals.object_bytes += len;
        Ok(true)
    }

    fn insert(&mut self, r: &Row) -> rusqlite::Result<()> {
        let (iw, ih, make, model) = match &r.meta {
            Meta::Image {
                width,
                height,
                make,
                model,
            } => (*width, *height, *make, *model),
            _ => (0, 0, "", ""),
        };
        let (vw, vh, dur) = match &r.meta {
            Meta::Video {
                width,
                height,
                duration,
            } => (*width, *height, *duration),
            _ => (0, 0, 0.0),
        };
        let (artist, album, title) = match &r.meta {
            Meta::Audio {
                artist,
                album,
                title,
            } => (artist.as_str(), album.as_str(), title.as_str()),
            _ => ("", "", ""),
        };
        self.stmt.execute(rusqlite::params![
            r.id,
            r.parent,
            r.content_id,
            r.version,
            r.name,
            r.birth,
            r.c,
            r.u,
            r.m,
            r.size,
            r.mime,
            r.preview,
            r.image_date,
            r.video_date,
            r.content_hash,
            iw,
            ih,
            make,
            model,
            vw,
            vh,
            dur,
            artist,
            album,
            title,
        ])?;
        Ok(())
    }
}
