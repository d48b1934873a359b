//! The messy cases real devices hold, each as a small deterministic group of rows under the
//! first user (see DOMAIN.md: broken trees, awkward names, odd dates, missing objects).
//!
//! Groups are listed by priority; a small dump includes the groups that fit, in order, and
//! fills the rest with ordinary files, so the file count is always exact. Each group draws from
//! its own stream of the seed, so its rows do not change when another group is left out.

use super::names::FileName;
use super::rng::Rng;
use super::rows::{self, FileSpec, DAY_MS};
use super::sink::{Place, Row, Sink};
use super::DemoManifest;

/// One group of special rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    Trash,
    MissingObjects,
    NullContent,
    Cycles,
    Unlinked,
    FileUnderFile,
    EmptyParent,
    Duplicates,
    Unicode,
    CaseOnly,
    IllegalChars,
    WindowsNames,
    DotNames,
    LongNames,
    OddDates,
    EmptyMime,
}

/// All groups, most important first.
pub(crate) const GROUPS: [Group; 16] = [
    Group::Trash,
    Group::MissingObjects,
    Group::NullContent,
    Group::Cycles,
    Group::Unlinked,
    Group::FileUnderFile,
    Group::EmptyParent,
    Group::Duplicates,
    Group::Unicode,
    Group::CaseOnly,
    Group::IllegalChars,
    Group::WindowsNames,
    Group::DotNames,
    Group::LongNames,
    Group::OddDates,
    Group::EmptyMime,
];

impl Group {
    /// File rows the group adds (folders are extra).
    pub(crate) fn files(self) -> u64 {
        match self {
            Group::Trash | Group::MissingObjects => 3,
            Group::NullContent
            | Group::Cycles
            | Group::FileUnderFile
            | Group::EmptyParent
            | Group::CaseOnly
            | Group::LongNames
            | Group::EmptyMime => 2,
            Group::Unlinked | Group::Duplicates | Group::Unicode | Group::DotNames => 4,
            Group::OddDates => 4,
            Group::WindowsNames => 5,
            Group::IllegalChars => 8,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Group::Trash => "trash",
            Group::MissingObjects => "missing-objects",
            Group::NullContent => "null-content-id",
            Group::Cycles => "parent-cycles",
            Group::Unlinked => "unlinked",
            Group::FileUnderFile => "file-under-file",
            Group::EmptyParent => "empty-parent-id",
            Group::Duplicates => "duplicate-names",
            Group::Unicode => "unicode-names",
            Group::CaseOnly => "case-only-names",
            Group::IllegalChars => "illegal-characters",
            Group::WindowsNames => "windows-names",
            Group::DotNames => "dot-and-control-names",
            Group::LongNames => "long-names",
            Group::OddDates => "odd-dates",
            Group::EmptyMime => "empty-mime-type",
        }
    }

    /// Whether the group's rows sit in the shared "Odd names" folder.
    fn uses_odd_names(self) -> bool {
        matches!(
            self,
            Group::Duplicates
                | Group::Unicode
                | Group::CaseOnly
                | Group::IllegalChars
                | Group::WindowsNames
                | Group::DotNames
                | Group::LongNames
        )
    }
}

/// The groups that fit a dump of `files` files: at most three quarters of the files are
/// special, taken greedily in priority order.
pub(crate) fn choose(files: u64) -> Vec<Group> {
    let mut budget = files - files / 4;
    let mut chosen = Vec::new();
    for g in GROUPS {
        if g.files() <= budget {
            budget -= g.files();
            chosen.push(g);
        }
    }
    chosen
}

/// Emits the chosen groups' rows.
pub(crate) fn generate(
    sink: &mut Sink<'_>,
    seed: u64,
    groups: &[Group],
    user_root: &str,
    trash: &str,
    manifest: &mut DemoManifest,
) -> anyhow::Result<()> {
    let mut ids = Rng::stream(seed, 100);
    let odd_names = ids.row_id();
    let mut ctx = Ctx {
        sink,
        rng: ids,
        m: manifest,
        root: user_root.to_string(),
        trash: trash.to_string(),
        odd: odd_names.clone(),
    };
    for (i, g) in GROUPS.iter().enumerate() {
        if !groups.contains(g) {
            continue;
        }
        ctx.rng = Rng::stream(seed, 1000 + i as u64);
        ctx.m.special_groups.push(g.label().to_string());
        ctx.group(*g)?;
    }
    if groups.iter().any(|g| g.uses_odd_names()) {
        // Inserted after its children: readers must not assume parents come first.
        ctx.rng = Rng::stream(seed, 101);
        let row = rows::folder_row(
            &mut ctx.rng,
            odd_names,
            Some(user_root.to_string()),
            "Odd names".to_string(),
        );
        ctx.sink.emit(row, Place::Shard)?;
    }
    Ok(())
}

struct Ctx<'s, 'c> {
    sink: &'s mut Sink<'c>,
    rng: Rng,
    m: &'s mut DemoManifest,
    root: String,
    trash: String,
    /// The "Odd names" folder (emitted last).
    odd: String,
}

impl Ctx<'_, '_> {
    fn group(&mut self, g: Group) -> anyhow::Result<()> {
        let (root, trash, odd) = (self.root.clone(), self.trash.clone(), self.odd.clone());
        match g {
            Group::Trash => {
                // Deleted items: there is no deleted flag, only the Trash root above them.
                self.file(&trash, "old photo.jpg", "image/jpeg")?;
                self.file(&trash, "Draft (deleted).docx", DOCX)?;
                let old = self.folder(&trash, "Old stuff")?;
                self.file(&old, "list.txt", "text/plain")?;
                self.m.trash_files += 3;
            }
            Group::MissingObjects => {
                for (name, mime) in [
                    ("IMG_0420.JPG", "image/jpeg"),
                    ("Thesis final.pdf", "application/pdf"),
                    ("Wedding.mp4", "video/mp4"),
                ] {
                    let size = self.small_size();
                    let row = self.file_row(&root, name, mime, size, true);
                    let id = self.sink.emit(row, Place::Missing)?;
                    self.m.missing_object_ids.push(id);
                }
            }
            Group::NullContent => {
                let row = self.file_row(&root, "sync-conflict.tmp", "", 4096, false);
                let id = self.sink.emit(row, Place::Shard)?;
                self.m.missing_object_ids.push(id.clone());
                self.m.null_content_ids.push(id);
                let row = self.file_row(&root, "empty.txt", "text/plain", 0, false);
                let id = self.sink.emit(row, Place::Shard)?;
                self.m.null_content_ids.push(id);
            }
            Group::Cycles => {
                // A.parent = B, B.parent = A, and S.parent = S.
                let (a, b, s) = (self.rng.row_id(), self.rng.row_id(), self.rng.row_id());
                self.folder_with_id(&a, &b, "Loop A")?;
                self.folder_with_id(&b, &a, "Loop B")?;
                let f = self.file(&a, "inside loop.txt", "text/plain")?;
                self.folder_with_id(&s, &s, "Self loop")?;
                let g = self.file(&s, "inside self loop.txt", "text/plain")?;
                self.m.cycle_folder_ids.extend([a, b, s]);
                self.m.cycle_file_ids.extend([f, g]);
            }
            Group::Unlinked => {
                // Parents that no row has: deleted from the database but not from the tree.
                let gone: Vec<String> = (0..3).map(|_| self.rng.row_id()).collect();
                let dir = self.folder(&gone[0], "Orphaned folder")?;
                let a = self.file(&dir, "orphan 1.jpg", "image/jpeg")?;
                let b = self.file(&dir, "orphan 2.jpg", "image/jpeg")?;
                let c = self.file(&gone[1], "lost.pdf", "application/pdf")?;
                let d = self.file(&gone[2], "lost song.mp3", "audio/mpeg")?;
                self.m.unlinked_ids.extend([dir, a, b, c, d]);
            }
            Group::FileUnderFile => {
                let host = self.file(&root, "notes.txt", "text/plain")?;
                let child = self.file(&host, "attachment.pdf", "application/pdf")?;
                self.m.file_under_file_ids.push(child);
            }
            Group::EmptyParent => {
                let f = self.file("", "loose at top.txt", "text/plain")?;
                let dir = self.folder("", "Shared")?;
                self.file(&dir, "shared doc.pdf", "application/pdf")?;
                self.m.empty_parent_ids.extend([f, dir]);
            }
            Group::Duplicates => {
                // Two files of one name, and a folder and a file of one name, in one folder.
                let a = self.file(&odd, "photo.jpg", "image/jpeg")?;
                let b = self.file(&odd, "photo.jpg", "image/jpeg")?;
                let dir = self.folder(&odd, "Holiday")?;
                let c = self.file(&odd, "Holiday", "")?;
                self.file(&dir, "beach.jpg", "image/jpeg")?;
                self.m.awkward_name_ids.extend([a, b, dir, c]);
            }
            Group::Unicode => {
                let a = self.file(&odd, "Caf\u{e9}.txt", "text/plain")?; // NFC
                let b = self.file(&odd, "Cafe\u{301}.txt", "text/plain")?; // NFD
                let c = self.file(&odd, "\u{1f389} Party \u{1f382}.jpg", "image/jpeg")?;
                let dir = self.folder(&odd, "Fotos Ko\u{308}ln")?; // NFD folder name
                self.file(&dir, "Dom.jpg", "image/jpeg")?;
                self.m.awkward_name_ids.extend([a, b, c, dir]);
            }
            Group::CaseOnly => {
                let a = self.file(&odd, "Readme.md", "text/markdown")?;
                let b = self.file(&odd, "README.md", "text/markdown")?;
                self.m.awkward_name_ids.extend([a, b]);
            }
            Group::IllegalChars => {
                for (name, mime) in [
                    ("a|b.txt", "text/plain"),
                    ("10:30 meeting.txt", "text/plain"),
                    ("<draft>.txt", "text/plain"),
                    ("say \"hi\".txt", "text/plain"),
                    ("why?.txt", "text/plain"),
                    ("star*.txt", "text/plain"),
                    ("back\\slash.txt", "text/plain"),
                    ("AC/DC - Back in Black.mp3", "audio/mpeg"),
                ] {
                    let id = self.file(&odd, name, mime)?;
                    self.m.awkward_name_ids.push(id);
                }
            }
            Group::WindowsNames => {
                for name in [
                    "ends with dot.",
                    "ends with space ",
                    "CON",
                    "nul.txt",
                    "COM1.log",
                ] {
                    let id = self.file(&odd, name, "text/plain")?;
                    self.m.awkward_name_ids.push(id);
                }
            }
            Group::DotNames => {
                for name in [".", "..", "", "bell\u{7}.txt"] {
                    let id = self.file(&odd, name, "text/plain")?;
                    self.m.awkward_name_ids.push(id);
                }
            }
            Group::LongNames => {
                // Over 255 bytes: 300 ASCII bytes, and 100 three-byte characters (300 bytes).
                let ascii = format!("{}.txt", "a long name ".repeat(25));
                let wide = format!("{}.txt", "\u{9577}\u{3044}\u{540d}\u{524d}".repeat(25));
                for name in [ascii, wide] {
                    let id = self.file(&odd, &name, "text/plain")?;
                    self.m.awkward_name_ids.push(id);
                }
            }
            Group::OddDates => {
                // imageDate 0, 1969-12-31, 2200-01-01, and NULL: a date policy must fall through.
                for (name, date) in [
                    ("DSC_0001.JPG", Some(0)),
                    ("DSC_0002.JPG", Some(-DAY_MS)),
                    ("DSC_0003.JPG", Some(rows::year_start_ms(2200))),
                    ("DSC_0004.JPG", None),
                ] {
                    let size = self.small_size();
                    let mut row = self.file_row(&root, name, "image/jpeg", size, true);
                    row.image_date = date;
                    let id = self.sink.emit(row, Place::Shard)?;
                    self.m.odd_date_ids.push(id);
                }
            }
            Group::EmptyMime => {
                self.file(&root, "unknown.bin", "")?;
                self.file(&root, "LICENSE", "")?;
            }
        }
        Ok(())
    }

    fn small_size(&mut self) -> i64 {
        self.rng.range(100, 50_000)
    }

    fn file_row(
        &mut self,
        parent: &str,
        name: &str,
        mime: &'static str,
        size: i64,
        content: bool,
    ) -> Row {
        let id = self.rng.row_id();
        let content_id = content.then(|| self.rng.content_id());
        rows::file_row(
            &mut self.rng,
            FileSpec {
                id,
                parent: Some(parent.to_string()),
                content_id,
                name: FileName {
                    name: name.to_string(),
                    mime,
                    kind: rows::kind_of_mime(mime),
                },
                size,
                year: None,
                artist: 0,
            },
        )
    }

    /// A small file with an object; returns its id.
    fn file(&mut self, parent: &str, name: &str, mime: &'static str) -> anyhow::Result<String> {
        let size = self.small_size();
        let row = self.file_row(parent, name, mime, size, true);
        self.sink.emit(row, Place::Shard)
    }

    fn folder(&mut self, parent: &str, name: &str) -> anyhow::Result<String> {
        let id = self.rng.row_id();
        self.folder_with_id(&id, parent, name)?;
        Ok(id)
    }

    fn folder_with_id(&mut self, id: &str, parent: &str, name: &str) -> anyhow::Result<()> {
        let row = rows::folder_row(
            &mut self.rng,
            id.to_string(),
            Some(parent.to_string()),
            name.to_string(),
        );
        self.sink.emit(row, Place::Shard)?;
        Ok(())
    }
}

const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_counts_and_choice() {
        let all: u64 = GROUPS.iter().map(|g| g.files()).sum();
        assert_eq!(choose(1_000).len(), GROUPS.len());
        assert_eq!(choose(0), vec![]);
        for n in 0..200 {
            let used: u64 = choose(n).iter().map(|g| g.files()).sum();
            assert!(used <= n - n / 4 && used <= all, "{n}");
        }
        assert_eq!(choose(20)[0], Group::Trash);
    }
}
