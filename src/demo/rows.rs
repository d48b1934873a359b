//! Row values shared by the ordinary tree and the special cases: dates, sizes, metadata.
//!
//! Dates follow the device: milliseconds since the epoch; `birthTime` is the upload (2019-2021
//! here), `cTime` follows the capture time for camera uploads and the upload otherwise,
//! `imageDate`/`videoDate` hold the (earlier) capture date, and `uTime`/`mTime` stay NULL
//! unless the item was changed after upload.

use super::names::{self, FileKind, FileName};
use super::rng::Rng;
use super::sink::{Meta, Row};
use super::SizeMix;
use crate::source::schema::FOLDER_MIME;

pub(crate) const DAY_MS: i64 = 86_400_000;
/// 2019-01-01T00:00:00Z: the first uploads.
pub(crate) const UPLOADS_FROM: i64 = 1_546_300_800_000;
/// 2022-01-01T00:00:00Z: the device died.
pub(crate) const UPLOADS_UNTIL: i64 = 1_640_995_200_000;

const KIB: i64 = 1024;
const MIB: i64 = 1024 * 1024;

/// Milliseconds at the start of `year` (proleptic Gregorian, UTC).
pub(crate) fn year_start_ms(year: i64) -> i64 {
    // Days from 1970-01-01 to year-01-01 (Howard Hinnant's days_from_civil with m = 1, d = 1).
    let y = year - 1;
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = 306; // March-based day of year of January 1st
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) * DAY_MS
}

/// An upload time.
pub(crate) fn upload_time(rng: &mut Rng) -> i64 {
    rng.range(UPLOADS_FROM, UPLOADS_UNTIL)
}

/// A capture time in `year` (or 2012-2019 when unknown), always before `birth`.
pub(crate) fn capture_time(rng: &mut Rng, year: Option<u16>, birth: i64) -> i64 {
    let t = match year {
        Some(y) => {
            let start = year_start_ms(i64::from(y));
            rng.range(start, year_start_ms(i64::from(y) + 1))
        }
        None => rng.range(year_start_ms(2012), year_start_ms(2020)),
    };
    if t < birth {
        t
    } else {
        birth - rng.range(DAY_MS, 730 * DAY_MS)
    }
}

/// A file size in bytes for the mix. `ordinal` (the ordinary file's index) places the few
/// large files of the demo mix evenly, so the demo's total stays predictable.
pub(crate) fn file_size(mix: SizeMix, rng: &mut Rng, ordinal: u64) -> i64 {
    if rng.chance(0.004) {
        return 0; // every mix has a few empty files
    }
    match mix {
        SizeMix::Demo => {
            let u = rng.unit();
            if ordinal % 100 == 50 {
                2 * MIB + (4.0 * MIB as f64 * u * u * u) as i64
            } else {
                // 1-200 KiB, skewed towards the small end (mean about 12 KiB).
                (KIB as f64 * 200f64.powf(u * u * u)) as i64
            }
        }
        SizeMix::Small => rng.range(4 * KIB, 64 * KIB + 1),
        SizeMix::Real => {
            // Log-normal: median about 260 KB, mean about 1.3 MB, long tail capped at 200 MB.
            const SIGMA: f64 = 1.8;
            let mu = 1.3e6f64.ln() - SIGMA * SIGMA / 2.0;
            ((mu + SIGMA * rng.normal()).exp() as i64).clamp(1, 200 * MIB)
        }
        SizeMix::Large => rng.range(100 * MIB, 400 * MIB),
    }
}

/// What a file row is made from.
pub(crate) struct FileSpec {
    pub id: String,
    pub parent: Option<String>,
    pub content_id: Option<String>,
    pub name: FileName,
    pub size: i64,
    /// Year the content was made, when its folder says so.
    pub year: Option<u16>,
    /// Artist index for audio tags.
    pub artist: u32,
}

/// A file row with plausible dates and metadata for its kind.
pub(crate) fn file_row(rng: &mut Rng, f: FileSpec) -> Row {
    let birth = upload_time(rng);
    let mut row = Row {
        id: f.id,
        parent: f.parent,
        version: 1,
        name: f.name.name,
        birth,
        c: birth,
        size: f.size,
        mime: f.name.mime,
        content_hash: f.content_id.as_ref().map(|_| rng.hex(32)),
        content_id: f.content_id,
        ..Row::default()
    };
    match f.name.kind {
        FileKind::Photo => {
            let shot = capture_time(rng, f.year, birth);
            if rng.chance(0.6) {
                row.c = shot; // camera uploads keep the capture time
            }
            row.image_date = (!rng.chance(0.04)).then_some(shot);
            let (width, height) = *rng.pick(&names::FRAMES);
            let (make, model) = if row.mime == "image/png" {
                ("", "") // screenshots carry no camera
            } else {
                *rng.pick(&names::CAMERAS)
            };
            row.meta = Meta::Image {
                width,
                height,
                make,
                model,
            };
        }
        FileKind::Video => {
            let shot = capture_time(rng, f.year, birth);
            if rng.chance(0.5) {
                row.c = shot;
            }
            row.video_date = (!rng.chance(0.1)).then_some(shot);
            let (width, height) = *rng.pick(&names::FRAMES);
            row.meta = Meta::Video {
                width,
                height,
                duration: rng.range(3_000, 600_000) as f64 / 1000.0,
            };
        }
        FileKind::Audio => {
            let (artist, album, title) = names::audio_tags(f.artist, rng);
            row.meta = Meta::Audio {
                artist,
                album,
                title,
            };
        }
        FileKind::Document | FileKind::Other => {}
    }
    if rng.chance(0.05) {
        let changed = birth + rng.range(3_600_000, 300 * DAY_MS);
        row.u = Some(changed);
        row.m = Some(changed);
        row.version = rng.range(2, 6);
    }
    row
}

/// A folder row. Folders have a contentID (and an object) like files.
pub(crate) fn folder_row(rng: &mut Rng, id: String, parent: Option<String>, name: String) -> Row {
    let birth = upload_time(rng);
    Row {
        id,
        parent,
        content_id: Some(rng.content_id()),
        version: if rng.chance(0.2) { rng.range(2, 9) } else { 1 },
        name,
        birth,
        c: birth,
        mime: FOLDER_MIME,
        ..Row::default()
    }
}

/// The kind a special-case file's mimeType implies.
pub(crate) fn kind_of_mime(mime: &str) -> FileKind {
    match mime.split('/').next() {
        Some("image") => FileKind::Photo,
        Some("video") => FileKind::Video,
        Some("audio") => FileKind::Audio,
        _ if mime.is_empty() => FileKind::Other,
        _ => FileKind::Document,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn year_starts_are_right() {
        assert_eq!(year_start_ms(1970), 0);
        assert_eq!(year_start_ms(2019), UPLOADS_FROM);
        assert_eq!(year_start_ms(2022), UPLOADS_UNTIL);
        assert_eq!(year_start_ms(2200), 7_258_118_400_000);
        assert_eq!(year_start_ms(1969), -365 * DAY_MS);
    }

    #[test]
    fn captures_precede_uploads() {
        let mut rng = Rng::new(4);
        for i in 0..2000 {
            let birth = upload_time(&mut rng);
            let year = (i % 3 == 0).then_some(2008 + (i % 14) as u16);
            assert!(capture_time(&mut rng, year, birth) < birth);
        }
    }

    #[test]
    fn size_mixes_have_their_shape() {
        let mut rng = Rng::new(5);
        let mean = |mix, rng: &mut Rng| {
            (0..20_000)
                .map(|i| file_size(mix, rng, i) as f64)
                .sum::<f64>()
                / 20_000.0
        };
        let demo = mean(SizeMix::Demo, &mut rng);
        assert!(demo < 50_000.0, "demo mean {demo}");
        let real = mean(SizeMix::Real, &mut rng);
        assert!((0.9e6..1.8e6).contains(&real), "real mean {real}");
        for i in 0..1000 {
            let s = file_size(SizeMix::Small, &mut rng, i);
            assert!(s == 0 || (4096..=65536).contains(&s));
            let l = file_size(SizeMix::Large, &mut rng, i);
            assert!(l == 0 || l >= 100 * MIB);
        }
    }
}
