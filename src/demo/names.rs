//! Ordinary, realistic names for the demo tree: what a family's photo, music and document
//! folders look like after years of phone and PC uploads.
//!
//! Sibling folder names are unique (derived from the child's position, Windows-style
//! `Name (2)` once a list runs out), so duplicates appear only where the special cases put
//! them on purpose. File names are drawn at random and may repeat within a folder, as
//! camera names do on the real device.

use super::rng::Rng;

/// The top-level area a folder belongs to; it decides child folder names and file types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Area {
    Photos,
    Documents,
    Music,
    Videos,
    Backups,
}

/// The order in which areas are created under each user root.
pub(crate) const AREAS: [Area; 5] = [
    Area::Photos,
    Area::Documents,
    Area::Music,
    Area::Videos,
    Area::Backups,
];

impl Area {
    pub(crate) fn top_name(self) -> &'static str {
        match self {
            Area::Photos => "Photos",
            Area::Documents => "Documents",
            Area::Music => "Music",
            Area::Videos => "Videos",
            Area::Backups => "Backups",
        }
    }
}

/// The kind of a file, for its metadata columns and dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    Photo,
    Video,
    Audio,
    Document,
    Other,
}

/// A file's name, mimeType and kind.
pub(crate) struct FileName {
    pub name: String,
    pub mime: &'static str,
    pub kind: FileKind,
}

const YEARS: [&str; 14] = [
    "2021", "2020", "2019", "2018", "2017", "2016", "2015", "2014", "2013", "2012", "2011", "2010",
    "2009", "2008",
];
const EVENTS: [&str; 16] = [
    "Holiday",
    "Birthday",
    "Beach",
    "Christmas",
    "Wedding",
    "Hiking",
    "School trip",
    "Garden",
    "New Year",
    "Camping",
    "Zoo",
    "Skiing",
    "Road trip",
    "Easter",
    "Concert",
    "Grandma",
];
const PHOTO_SUBS: [&str; 8] = [
    "Edited", "RAW", "Selected", "Best of", "Print", "Export", "Phone", "Camera",
];
const PHOTO_DEEP: [&str; 4] = ["Small", "Originals", "Crops", "Web"];
const VIDEO_SUBS: [&str; 4] = ["Clips", "Raw footage", "Export", "Edited"];
const VIDEO_DEEP: [&str; 3] = ["Cuts", "Audio", "Stills"];
const ARTISTS: [&str; 12] = [
    "The Beatles",
    "Miles Davis",
    "Adele",
    "Daft Punk",
    "Nina Simone",
    "Radiohead",
    "Fleetwood Mac",
    "Bach",
    "Queen",
    "Norah Jones",
    "Pink Floyd",
    "Amy Winehouse",
];
const ALBUMS: [&str; 10] = [
    "Greatest Hits",
    "Live",
    "Abbey Road",
    "Kind of Blue",
    "21",
    "Discovery",
    "Rumours",
    "OK Computer",
    "The Wall",
    "Back to Black",
];
const DISCS: [&str; 4] = ["Disc 1", "Disc 2", "Disc 3", "Bonus"];
const MUSIC_DEEP: [&str; 3] = ["Artwork", "Scans", "Booklet"];
const TOPICS: [&str; 10] = [
    "Taxes",
    "Work",
    "School",
    "Recipes",
    "Bank",
    "Insurance",
    "Medical",
    "Letters",
    "Manuals",
    "House",
];
const DOC_SUBS: [&str; 6] = ["Drafts", "Final", "Old", "Scans", "Archive", "Signed"];
const DOC_DEEP: [&str; 4] = ["v1", "v2", "v3", "Attachments"];
const PCS: [&str; 5] = [
    "LAPTOP-ANNA",
    "Desktop-PC",
    "MacBook Pro",
    "Dad's PC",
    "WORKSTATION",
];
const BACKUP_SETS: [&str; 3] = ["Users", "Backup 2019-03-01", "Backup 2020-11-15"];
const PEOPLE: [&str; 4] = ["anna", "peter", "Public", "admin"];
const USER_DIRS: [&str; 6] = [
    "Desktop",
    "Documents",
    "Downloads",
    "Pictures",
    "Music",
    "AppData",
];
const LEFTOVERS: [&str; 4] = ["old", "misc", "tmp", "New folder"];
const WORDS: [&str; 16] = [
    "Summer", "Letter", "Blue", "Morning", "River", "Home", "Dream", "Night", "Road", "Light",
    "Paper", "Garden", "Winter", "Song", "Ocean", "City",
];

/// The `ci`-th entry of `list`, continuing Windows-style (`Name (2)`) once the list runs out.
fn nth(list: &[&str], ci: u32) -> String {
    let len = list.len() as u32;
    if ci < len {
        list[ci as usize].to_string()
    } else {
        format!("{} ({})", list[(ci % len) as usize], ci / len + 1)
    }
}

/// `name`, or `name (k)` when `k > 1`.
fn numbered(name: String, k: u32) -> String {
    if k > 1 {
        format!("{name} ({k})")
    } else {
        name
    }
}

/// The `i`-th artist: well-known names, then "The <Word> <Word>s" bands (256 of them).
pub(crate) fn artist_name(i: u32) -> String {
    let known = ARTISTS.len() as u32;
    if i < known {
        return ARTISTS[i as usize].to_string();
    }
    let j = i - known;
    let w = WORDS.len() as u32;
    let band = format!(
        "The {} {}s",
        WORDS[(j % w) as usize],
        WORDS[(j / w % w) as usize]
    );
    numbered(band, j / (w * w) + 1)
}

/// What a folder tells about its contents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tags {
    /// The year of a year folder and everything below it.
    pub year: Option<u16>,
    /// The artist of an artist folder and everything below it.
    pub artist: Option<u32>,
}

/// A year folder (`2021`, `2020`, ... then `2021 (2)`), tagging its subtree with the year.
fn year_folder(ci: u32, tags: Tags) -> (String, Tags) {
    let year = 2021 - (ci % YEARS.len() as u32) as u16;
    (
        nth(&YEARS, ci),
        Tags {
            year: Some(year),
            ..tags
        },
    )
}

/// Name of the `ci`-th child folder at `depth` (the area's top folder is depth 1) in `area`,
/// below a parent tagged `tags`; returns the name and the child's tags. Names depend only on
/// the arguments, and siblings (distinct `ci`) always get distinct names.
pub(crate) fn child_folder(area: Area, depth: u8, ci: u32, tags: Tags) -> (String, Tags) {
    let year = tags.year.unwrap_or(2015);
    let name = match (area, depth) {
        (Area::Photos | Area::Videos, 2) | (Area::Documents, 3) => return year_folder(ci, tags),
        (Area::Photos, 3) => {
            // Two events a month; the event cycles so that a month never repeats one (for the
            // first 48 children), then Windows-style numbering keeps later ones distinct.
            let event = EVENTS[((ci * 7 + u32::from(year)) % EVENTS.len() as u32) as usize];
            numbered(format!("{year}-{:02} {event}", ci % 12 + 1), ci / 48 + 1)
        }
        (Area::Photos, 4) => nth(&PHOTO_SUBS, ci),
        (Area::Photos, _) => nth(&PHOTO_DEEP, ci),
        (Area::Videos, 3) => {
            let n = EVENTS.len() as u32;
            numbered(format!("{} {year}", EVENTS[(ci % n) as usize]), ci / n + 1)
        }
        (Area::Videos, 4) => nth(&VIDEO_SUBS, ci),
        (Area::Videos, _) => nth(&VIDEO_DEEP, ci),
        (Area::Music, 2) => {
            let tags = Tags {
                artist: Some(ci),
                ..tags
            };
            return (artist_name(ci), tags);
        }
        (Area::Music, 3) => {
            // Rotate the album list by artist so that artists do not all share one discography.
            let shift = tags.artist.unwrap_or(0) as usize;
            let rotated: Vec<&str> = (0..ALBUMS.len())
                .map(|i| ALBUMS[(i + shift) % ALBUMS.len()])
                .collect();
            nth(&rotated, ci)
        }
        (Area::Music, 4) => nth(&DISCS, ci),
        (Area::Music, _) => nth(&MUSIC_DEEP, ci),
        (Area::Documents, 2) => nth(&TOPICS, ci),
        (Area::Documents, 4) => nth(&DOC_SUBS, ci),
        (Area::Documents, _) => nth(&DOC_DEEP, ci),
        (Area::Backups, 2) => nth(&PCS, ci),
        (Area::Backups, 3) => nth(&BACKUP_SETS, ci),
        (Area::Backups, 4) => nth(&PEOPLE, ci),
        (Area::Backups, 5) => nth(&USER_DIRS, ci),
        (Area::Backups, _) => nth(&LEFTOVERS, ci),
    };
    (name, tags)
}

/// How likely a new folder lands in `area` rather than another at the same level: photos
/// dominate a family's library.
pub(crate) fn weight(area: Area) -> f64 {
    match area {
        Area::Photos => 1.0,
        Area::Documents => 0.5,
        Area::Videos => 0.4,
        Area::Music => 0.3,
        Area::Backups => 0.3,
    }
}

/// How many child folders a folder at `depth` in `area` gets before new folders go to its
/// siblings or deeper (a soft limit: Photos has about 14 years of about 24 events each).
pub(crate) fn fanout(area: Area, depth: u8) -> u32 {
    let per_depth: [u32; 5] = match area {
        Area::Photos => [14, 24, 3, 2, 2],
        Area::Videos => [14, 16, 3, 2, 2],
        Area::Music => [40, 4, 2, 3, 2],
        Area::Documents => [10, 14, 4, 3, 2],
        Area::Backups => [5, 3, 4, 6, 4],
    };
    per_depth[usize::from(depth.clamp(1, 5)) - 1]
}

/// A random file kind for a file placed in `area` (`None`: directly in a user root).
pub(crate) fn kind_for(area: Option<Area>, rng: &mut Rng) -> FileKind {
    let u = rng.unit();
    let table: &[(f64, FileKind)] = match area {
        Some(Area::Photos) => &[
            (0.86, FileKind::Photo),
            (0.96, FileKind::Video),
            (0.98, FileKind::Document),
        ],
        Some(Area::Videos) => &[(0.90, FileKind::Video), (0.98, FileKind::Photo)],
        Some(Area::Music) => &[(0.88, FileKind::Audio), (0.96, FileKind::Photo)],
        Some(Area::Documents) => &[
            (0.75, FileKind::Document),
            (0.92, FileKind::Photo),
            (0.95, FileKind::Audio),
        ],
        Some(Area::Backups) => &[
            (0.30, FileKind::Document),
            (0.60, FileKind::Photo),
            (0.70, FileKind::Audio),
            (0.80, FileKind::Video),
        ],
        None => &[
            (0.40, FileKind::Photo),
            (0.70, FileKind::Document),
            (0.80, FileKind::Video),
        ],
    };
    table
        .iter()
        .find(|(p, _)| u < *p)
        .map_or(FileKind::Other, |(_, k)| *k)
}

/// A random, realistic name of the given kind; `year` shapes date-stamped camera names.
pub(crate) fn file_name(kind: FileKind, year: u16, rng: &mut Rng) -> FileName {
    let (m, d) = (rng.range(1, 13), rng.range(1, 29));
    let (hh, mm, ss) = (rng.range(0, 24), rng.range(0, 60), rng.range(0, 60));
    let (name, mime) = match kind {
        FileKind::Photo => match rng.below(7) {
            0 | 1 => (format!("IMG_{:04}.JPG", rng.range(1, 10000)), "image/jpeg"),
            2 => (format!("DSC{:05}.JPG", rng.range(1, 100000)), "image/jpeg"),
            3 => (
                format!(
                    "PXL_{year}{m:02}{d:02}_{hh:02}{mm:02}{ss:02}{:03}.jpg",
                    rng.below(1000)
                ),
                "image/jpeg",
            ),
            4 => (format!("IMG_{:04}.HEIC", rng.range(1, 10000)), "image/heic"),
            5 => (
                format!("Screenshot_{year}-{m:02}-{d:02}-{hh:02}-{mm:02}-{ss:02}.png"),
                "image/png",
            ),
            _ => (
                format!("P{:07}.JPG", rng.range(1000000, 10000000)),
                "image/jpeg",
            ),
        },
        FileKind::Video => match rng.below(4) {
            0 => (
                format!("VID_{year}{m:02}{d:02}_{hh:02}{mm:02}{ss:02}.mp4"),
                "video/mp4",
            ),
            1 => (
                format!("MVI_{:04}.MOV", rng.range(1, 10000)),
                "video/quicktime",
            ),
            2 => (format!("GOPR{:04}.MP4", rng.range(1, 10000)), "video/mp4"),
            _ => (
                format!("{} {year}.mkv", rng.pick(&EVENTS)),
                "video/x-matroska",
            ),
        },
        FileKind::Audio => {
            let track = rng.range(1, 21);
            let title = format!("{} {}", rng.pick(&WORDS), rng.pick(&WORDS));
            match rng.below(5) {
                0 => (format!("{track:02} {title}.flac"), "audio/flac"),
                1 => (format!("{track:02} {title}.m4a"), "audio/mp4"),
                _ => (format!("{track:02} {title}.mp3"), "audio/mpeg"),
            }
        }
        FileKind::Document => match rng.below(8) {
            0 => (
                format!("Report {year}.docx"),
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            ),
            1 => (
                format!("Invoice {}.pdf", rng.range(10000, 100000)),
                "application/pdf",
            ),
            2 => (format!("Scan {year}-{m:02}-{d:02}.pdf"), "application/pdf"),
            3 => (
                format!("Budget {year}.xlsx"),
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ),
            4 => (format!("{} notes.txt", rng.pick(&WORDS)), "text/plain"),
            5 => (
                format!("Letter to {}.odt", rng.pick(&PEOPLE)),
                "application/vnd.oasis.opendocument.text",
            ),
            6 => (
                format!("{} presentation.pptx", rng.pick(&WORDS)),
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            ),
            _ => (format!("CV {}.pdf", rng.pick(&PEOPLE)), "application/pdf"),
        },
        // The device stores '' for types it does not know (octet-stream).
        FileKind::Other => match rng.below(6) {
            0 => ("Thumbs.db".to_string(), ""),
            1 => (format!("data{}.bin", rng.below(100)), ""),
            2 => (format!("backup {year}.bak"), ""),
            3 => (format!("{}.dat", rng.range(1000, 10000)), ""),
            4 => (format!("photos {year}.zip"), "application/zip"),
            _ => ("setup.exe".to_string(), "application/x-msdownload"),
        },
    };
    FileName { name, mime, kind }
}

/// Camera makes and models for photo metadata.
pub(crate) const CAMERAS: [(&str, &str); 5] = [
    ("Apple", "iPhone 8"),
    ("samsung", "SM-G960F"),
    ("Canon", "Canon EOS 600D"),
    ("NIKON CORPORATION", "NIKON D3300"),
    ("Google", "Pixel 4a"),
];

/// Common photo and video frame sizes.
pub(crate) const FRAMES: [(i64, i64); 5] = [
    (4032, 3024),
    (3024, 4032),
    (6000, 4000),
    (1920, 1080),
    (3840, 2160),
];

/// An artist, album and title for audio metadata.
pub(crate) fn audio_tags(artist: u32, rng: &mut Rng) -> (String, String, String) {
    let album = rng.pick(&ALBUMS);
    let title = format!("{} {}", rng.pick(&WORDS), rng.pick(&WORDS));
    (artist_name(artist), album.to_string(), title)
}

/// Leading bytes that make an object look like its type to `file(1)` (cosmetic only).
pub(crate) fn magic(mime: &str) -> &'static [u8] {
    match mime {
        "image/jpeg" => b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
        "image/png" => b"\x89PNG\r\n\x1a\n",
        "application/pdf" => b"%PDF-1.4\n",
        "video/mp4" | "video/quicktime" => b"\x00\x00\x00\x18ftypmp42",
        "audio/mpeg" => b"ID3\x03\x00",
        "audio/flac" => b"fLaC",
        "application/zip" => b"PK\x03\x04",
        _ => b"",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sibling_folder_names_are_unique() {
        let tags = Tags {
            year: Some(2017),
            artist: Some(3),
        };
        for area in AREAS {
            for depth in 2..=6 {
                let names: Vec<String> = (0..2000)
                    .map(|ci| child_folder(area, depth, ci, tags).0)
                    .collect();
                let set: std::collections::HashSet<_> = names.iter().collect();
                assert_eq!(set.len(), names.len(), "{area:?} depth {depth}: {names:?}");
            }
        }
    }

    #[test]
    fn every_area_gets_mostly_its_own_kind() {
        let mut rng = Rng::new(9);
        let photos = (0..1000)
            .filter(|_| kind_for(Some(Area::Photos), &mut rng) == FileKind::Photo)
            .count();
        assert!(photos > 800, "{photos}");
    }
}
