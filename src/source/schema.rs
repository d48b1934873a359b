//! The shape of the My Cloud Home `Files` table.
//!
//! The real table has 87 columns. Fixtures and the demo generator create it in full so that
//! any reader that does `SELECT *` or depends on column order is caught: the reader in
//! [`crate::source::index`] names every column it uses and checks them at open time.

/// Columns the restore depends on. A database lacking any of them is rejected at open time
/// with a message naming the missing column.
pub const REQUIRED_COLUMNS: &[&str] = &[
    "id",
    "parentID",
    "contentID",
    "name",
    "size",
    "mimeType",
    "birthTime",
    "cTime",
];

/// Optional date columns, in [`crate::source::index::RowDates`] field order: used by the
/// date policy when present.
pub const DATE_COLUMNS: [&str; 6] = [
    "imageDate",
    "videoDate",
    "cTime",
    "birthTime",
    "mTime",
    "uTime",
];

/// mimeType that marks a folder row. Folders also have a contentID and an object on disk.
pub const FOLDER_MIME: &str = "application/x.wd.dir";

/// `CREATE TABLE` for the full 87-column `Files` table, in the device's column order as far as
/// it is known. Metadata columns the restore ignores are NOT NULL with defaults, as on the device.
pub const FILES_TABLE_SQL: &str = r#"CREATE TABLE Files(
    id TEXT NOT NULL,
    parentID TEXT,
    contentID TEXT,
    version INTEGER NOT NULL,
    name TEXT NOT NULL,
    birthTime INTEGER NOT NULL,
    cTime INTEGER NOT NULL,
    uTime INTEGER,
    mTime INTEGER,
    size INTEGER NOT NULL,
    mimeType TEXT NOT NULL,
    storageID TEXT NOT NULL,
    hidden INTEGER NOT NULL,
    previewSourceContentID TEXT,
    autoID INTEGER PRIMARY KEY AUTOINCREMENT,
    imageDate INTEGER,
    videoDate INTEGER,
    contentHash TEXT,
    description TEXT NOT NULL DEFAULT '',
    custom TEXT NOT NULL DEFAULT '',
    category INTEGER NOT NULL DEFAULT 0,
    extension TEXT NOT NULL DEFAULT '',
    creatorEntityID TEXT NOT NULL DEFAULT '',
    ownerID TEXT NOT NULL DEFAULT '',
    favorite INTEGER NOT NULL DEFAULT 0,
    rating INTEGER NOT NULL DEFAULT 0,
    viewCount INTEGER NOT NULL DEFAULT 0,
    lastViewedTime INTEGER NOT NULL DEFAULT 0,
    thumbnailState INTEGER NOT NULL DEFAULT 0,
    previewState INTEGER NOT NULL DEFAULT 0,
    indexState INTEGER NOT NULL DEFAULT 0,
    mediaState INTEGER NOT NULL DEFAULT 0,
    sourceApp TEXT NOT NULL DEFAULT '',
    imageWidth INTEGER NOT NULL DEFAULT 0,
    imageHeight INTEGER NOT NULL DEFAULT 0,
    imageCameraMake TEXT NOT NULL DEFAULT '',
    imageCameraModel TEXT NOT NULL DEFAULT '',
    imageAperture REAL NOT NULL DEFAULT 0,
    imageExposureTime REAL NOT NULL DEFAULT 0,
    imageISOSpeed INTEGER NOT NULL DEFAULT 0,
    imageFocalLength REAL NOT NULL DEFAULT 0,
    imageFlashFired INTEGER NOT NULL DEFAULT 0,
    imageOrientation INTEGER NOT NULL DEFAULT 0,
    imageLatitude REAL NOT NULL DEFAULT 0,
    imageLongitude REAL NOT NULL DEFAULT 0,
    imageAltitude REAL NOT NULL DEFAULT 0,
    imageCity TEXT NOT NULL DEFAULT '',
    imageProvince TEXT NOT NULL DEFAULT '',
    imageCountry TEXT NOT NULL DEFAULT '',
    videoWidth INTEGER NOT NULL DEFAULT 0,
    videoHeight INTEGER NOT NULL DEFAULT 0,
    videoDuration REAL NOT NULL DEFAULT 0,
    videoCodec TEXT NOT NULL DEFAULT '',
    videoBitRate INTEGER NOT NULL DEFAULT 0,
    videoFrameRate REAL NOT NULL DEFAULT 0,
    videoRotation INTEGER NOT NULL DEFAULT 0,
    videoLatitude REAL NOT NULL DEFAULT 0,
    videoLongitude REAL NOT NULL DEFAULT 0,
    videoAltitude REAL NOT NULL DEFAULT 0,
    videoCity TEXT NOT NULL DEFAULT '',
    videoProvince TEXT NOT NULL DEFAULT '',
    videoCountry TEXT NOT NULL DEFAULT '',
    audioTitle TEXT NOT NULL DEFAULT '',
    audioAlbum TEXT NOT NULL DEFAULT '',
    audioArtist TEXT NOT NULL DEFAULT '',
    audioAlbumArtist TEXT NOT NULL DEFAULT '',
    audioComposer TEXT NOT NULL DEFAULT '',
    audioGenre TEXT NOT NULL DEFAULT '',
    audioYear INTEGER NOT NULL DEFAULT 0,
    audioTrackNumber INTEGER NOT NULL DEFAULT 0,
    audioDiscNumber INTEGER NOT NULL DEFAULT 0,
    audioDuration REAL NOT NULL DEFAULT 0,
    audioBitRate INTEGER NOT NULL DEFAULT 0,
    audioSampleRate INTEGER NOT NULL DEFAULT 0,
    audioChannels INTEGER NOT NULL DEFAULT 0,
    audioCoverArt INTEGER NOT NULL DEFAULT 0,
    docTitle TEXT NOT NULL DEFAULT '',
    docAuthor TEXT NOT NULL DEFAULT '',
    docPageCount INTEGER NOT NULL DEFAULT 0,
    docWordCount INTEGER NOT NULL DEFAULT 0,
    docCreatedTime INTEGER NOT NULL DEFAULT 0,
    docModifiedTime INTEGER NOT NULL DEFAULT 0,
    locationName TEXT NOT NULL DEFAULT '',
    locationLatitude REAL NOT NULL DEFAULT 0,
    locationLongitude REAL NOT NULL DEFAULT 0,
    tags TEXT NOT NULL DEFAULT '',
    originalName TEXT NOT NULL DEFAULT ''
)"#;

/// Indexes the device keeps on `Files` (uniqueness of id and contentID is a documented fact;
/// the parentID index is what makes per-folder listing cheap on the device).
pub const FILES_INDEX_SQL: &[&str] = &[
    "CREATE UNIQUE INDEX Files_id ON Files(id)",
    "CREATE UNIQUE INDEX Files_contentID ON Files(contentID)",
    "CREATE INDEX Files_parentID ON Files(parentID)",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_table_has_87_columns_and_all_required_ones() {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        db.execute_batch(FILES_TABLE_SQL).unwrap();
        for sql in FILES_INDEX_SQL {
            db.execute_batch(sql).unwrap();
        }
        let mut stmt = db
            .prepare("SELECT name FROM pragma_table_info('Files')")
            .unwrap();
        let cols: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(cols.len(), 87, "{cols:?}");
        for c in REQUIRED_COLUMNS.iter().chain(&DATE_COLUMNS) {
            assert!(cols.iter().any(|x| x == c), "missing {c}");
        }
    }
}
