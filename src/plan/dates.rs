//! Date policy: which database field becomes the restored file's modification time.
//!
//! The object's own mtime on the device is the upload time, not the date the photo was
//! taken (a real restore was off by up to seven years). Users sort photos by date, so the
//! default takes the EXIF capture date first, then the video date, then the data creation
//! time, then the upload time. Values outside 1990..now+1 year (0, seconds instead of
//! milliseconds, a camera clock never set) are treated as absent, because the device stores
//! such junk for some files.

use crate::source::index::RowDates;

/// A date column that may supply the modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum DateField {
    ImageDate,
    VideoDate,
    CTime,
    BirthTime,
    MTime,
    UTime,
}

impl DateField {
    /// The column's name, as `--mtime-from` takes it.
    pub fn name(self) -> &'static str {
        match self {
            DateField::ImageDate => "imageDate",
            DateField::VideoDate => "videoDate",
            DateField::CTime => "cTime",
            DateField::BirthTime => "birthTime",
            DateField::MTime => "mTime",
            DateField::UTime => "uTime",
        }
    }

    fn get(self, d: &RowDates) -> Option<i64> {
        match self {
            DateField::ImageDate => d.image,
            DateField::VideoDate => d.video,
            DateField::CTime => d.c,
            DateField::BirthTime => d.birth,
            DateField::MTime => d.m,
            DateField::UTime => d.u,
        }
    }
}

/// Parses `imageDate,videoDate,cTime,birthTime` (case-insensitive, commas or spaces).
pub fn parse_fields(list: &str) -> Result<Vec<DateField>, String> {
    let mut out = Vec::new();
    for word in list.split([',', ' ']).filter(|w| !w.is_empty()) {
        let f = match word.to_ascii_lowercase().as_str() {
            "imagedate" => DateField::ImageDate,
            "videodate" => DateField::VideoDate,
            "ctime" => DateField::CTime,
            "birthtime" => DateField::BirthTime,
            "mtime" => DateField::MTime,
            "utime" => DateField::UTime,
            _ => {
                return Err(format!(
                    "unknown date field `{word}`; use imageDate, videoDate, cTime, birthTime, mTime, uTime"
                ))
            }
        };
        if !out.contains(&f) {
            out.push(f);
        }
    }
    if out.is_empty() {
        return Err("--mtime-from needs at least one field".into());
    }
    Ok(out)
}

/// 1990-01-01T00:00:00Z in milliseconds.
const MIN_PLAUSIBLE_MS: i64 = 631_152_000_000;
const YEAR_MS: i64 = 366 * 24 * 3600 * 1000;

/// The ordered field list plus the plausibility window.
#[derive(Debug, Clone)]
pub struct DatePolicy {
    pub fields: Vec<DateField>,
    max_ms: i64,
}

impl DatePolicy {
    /// `now_ms` bounds the window (now + 1 year); passed in so tests are deterministic.
    pub fn new(fields: Vec<DateField>, now_ms: i64) -> Self {
        DatePolicy {
            fields,
            max_ms: now_ms + YEAR_MS,
        }
    }

    /// The fields in order, as `--mtime-from` takes them (`imageDate,videoDate,...`).
    pub fn describe(&self) -> String {
        let names: Vec<&str> = self.fields.iter().map(|f| f.name()).collect();
        names.join(",")
    }

    pub fn now(fields: Vec<DateField>) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Self::new(fields, now)
    }

    /// The first plausible value in field order, in milliseconds.
    pub fn pick(&self, d: &RowDates) -> Option<i64> {
        self.fields
            .iter()
            .filter_map(|f| f.get(d))
            .find(|&v| (MIN_PLAUSIBLE_MS..=self.max_ms).contains(&v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_790_000_000_000; // 2026-09

    #[test]
    fn first_plausible_wins_and_junk_falls_through() {
        let p = DatePolicy::new(
            parse_fields("imageDate,videoDate,cTime,birthTime").unwrap(),
            NOW,
        );
        let d = RowDates {
            image: Some(0),
            video: Some(7_258_118_400_000), // year 2200
            c: Some(1_400_000_000_000),
            birth: Some(1_500_000_000_000),
            ..Default::default()
        };
        assert_eq!(p.pick(&d), Some(1_400_000_000_000));
        let d = RowDates {
            image: Some(-5),
            ..Default::default()
        };
        assert_eq!(p.pick(&d), None);
        let d = RowDates {
            image: Some(1_300_000_000_000),
            c: Some(1_400_000_000_000),
            ..Default::default()
        };
        assert_eq!(p.pick(&d), Some(1_300_000_000_000));
    }

    #[test]
    fn parse_rejects_unknown_fields_with_the_list() {
        assert!(parse_fields("imageDate,exif").unwrap_err().contains("exif"));
        assert_eq!(parse_fields("BIRTHTIME").unwrap(), [DateField::BirthTime]);
        assert!(parse_fields(",").is_err());
    }
}
