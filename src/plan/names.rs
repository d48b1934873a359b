//! Name policy: how a name from the database becomes a safe name on the destination.
//!
//! Names on the device are arbitrary Unicode: `|` in every user root, `:` and `?` from Macs,
//! even `/`. The destination decides what is legal: any POSIX filesystem refuses only `/`
//! and NUL, while SMB, NTFS, exFAT and FAT also refuse `<>:"\|?*`, control characters,
//! trailing dots and spaces and device names, and fold case. Every rule here is a pure
//! function of the name, so the same database always gives the same paths; changed names
//! are reported by the planner, never silently applied.

use std::borrow::Cow;

/// Longest file name, in bytes, most filesystems accept (ext4, XFS, btrfs, NTFS in UTF-16
/// units, which is never more than the UTF-8 byte count).
pub const MAX_NAME_BYTES: usize = 255;

/// What the destination accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NamePolicy {
    /// Linux filesystems: only `/` and NUL are illegal; case matters.
    Posix,
    /// SMB/NTFS/FAT/exFAT rules; names that differ only in case collide.
    Windows,
}

const WINDOWS_ILLEGAL: &[char] = &['<', '>', ':', '"', '\\', '|', '?', '*'];
const WINDOWS_RESERVED: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM0", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7",
    "COM8", "COM9", "LPT0", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// Prefix and suffix of the restore's temporary files.
const TEMP_PREFIX: &str = ".mcr-";
const TEMP_SUFFIX: &str = ".part";

/// The temporary name for a file id (fixed length, so it fits any folder).
pub fn temp_name(id: &str) -> String {
    format!(
        "{TEMP_PREFIX}{:016x}{TEMP_SUFFIX}",
        xxhash_rust::xxh3::xxh3_64(id.as_bytes())
    )
}

/// Whether `name` is one of the restore's temporary files: [`temp_name`]'s exact form, or a
/// destination probe's (`.mcr-probe-PID-...part`). The run after a crash deletes these
/// wherever they are in DEST, so the form is narrow, and no restored file gets such a name
/// ([`NamePolicy::sanitize`]).
pub fn is_temp_name(name: &str) -> bool {
    let Some(mid) = name
        .strip_prefix(TEMP_PREFIX)
        .and_then(|n| n.strip_suffix(TEMP_SUFFIX))
    else {
        return false;
    };
    let hex = mid.len() == 16 && mid.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let probe = mid
        .strip_prefix("probe-")
        .and_then(|p| p.split_once('-'))
        .is_some_and(|(pid, _)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()));
    hex || probe
}

impl NamePolicy {
    /// The rules' name as `--names` takes it (and the checkpoint keeps it).
    pub fn as_str(self) -> &'static str {
        match self {
            NamePolicy::Posix => "posix",
            NamePolicy::Windows => "windows",
        }
    }

    /// The rules named `name` ([`NamePolicy::as_str`]).
    pub fn named(name: &str) -> Option<NamePolicy> {
        [NamePolicy::Posix, NamePolicy::Windows]
            .into_iter()
            .find(|p| p.as_str() == name)
    }

    /// The safe form of `name` under this policy (before sibling collisions are resolved).
    /// Never empty, never `.` or `..`, never contains `/` or NUL, at most 255 bytes, never
    /// the form of a temporary file (which the run after a crash would delete).
    pub fn sanitize(self, name: &str) -> Cow<'_, str> {
        let mut out: Cow<'_, str> = Cow::Borrowed(name);
        let bad = |c: char| match self {
            NamePolicy::Posix => c == '/' || c == '\0',
            NamePolicy::Windows => c == '/' || c.is_control() || WINDOWS_ILLEGAL.contains(&c),
        };
        if out.contains(bad) {
            out = Cow::Owned(out.chars().map(|c| if bad(c) { '_' } else { c }).collect());
        }
        match &*out {
            "" => out = Cow::Borrowed("_unnamed"),
            "." => out = Cow::Borrowed("_dot"),
            ".." => out = Cow::Borrowed("_dotdot"),
            _ => {}
        }
        if self == NamePolicy::Windows {
            let trimmed = out.trim_end_matches(['.', ' ']);
            if trimmed.len() != out.len() {
                let tail = out.len() - trimmed.len();
                out = Cow::Owned(format!("{trimmed}{}", "_".repeat(tail)));
            }
            let stem = out.split('.').next().unwrap_or("");
            if WINDOWS_RESERVED
                .iter()
                .any(|r| r.eq_ignore_ascii_case(stem.trim_end()))
            {
                out = Cow::Owned(format!("_{out}"));
            }
        }
        if out.len() > MAX_NAME_BYTES {
            out = Cow::Owned(shorten(&out, name));
        }
        if is_temp_name(&out) {
            out = Cow::Owned(format!("_{out}"));
        }
        out
    }

    /// The key two sibling names collide on: the name itself, or its lowercase form where
    /// the destination ignores case.
    pub fn collision_key(self, name: &str) -> Cow<'_, str> {
        match self {
            NamePolicy::Posix => Cow::Borrowed(name),
            // Borrowed when lowercasing changes nothing (char by char is exact here: the one
            // rule of `str::to_lowercase` that looks at context, the final sigma, starts
            // from an uppercase letter).
            NamePolicy::Windows if name.chars().all(|c| c.to_lowercase().eq([c])) => {
                Cow::Borrowed(name)
            }
            NamePolicy::Windows => Cow::Owned(name.to_lowercase()),
        }
    }
}

/// Splits `name` into stem and extension (with its dot); a leading dot is not an extension,
/// and neither is a long "extension" (more than 16 bytes), which is just part of the name.
fn split_ext(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) if i > 0 && name.len() - i <= 17 => (&name[..i], &name[i..]),
        _ => (name, ""),
    }
}

/// Longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Shortens an over-long name to 255 bytes keeping its extension, and adds a short hash of
/// the original so that two long names sharing a prefix stay distinct and stable.
fn shorten(name: &str, original: &str) -> String {
    let hash = xxhash_rust::xxh3::xxh3_64(original.as_bytes());
    let tag = format!("~{:08x}", hash as u32);
    let (stem, ext) = split_ext(name);
    let room = MAX_NAME_BYTES - tag.len() - ext.len();
    format!("{}{tag}{ext}", truncate_bytes(stem, room))
}

/// `stem (n).ext`, kept within 255 bytes.
pub fn with_suffix(name: &str, n: u64) -> String {
    let (stem, ext) = split_ext(name);
    let tag = format!(" ({n})");
    let room = MAX_NAME_BYTES.saturating_sub(tag.len() + ext.len());
    format!("{}{tag}{ext}", truncate_bytes(stem, room))
}

/// Assigns final names to one folder's children.
///
/// `entries` must be in ascending id order; the result is parallel to it. Each entry gets its
/// sanitized name unless an earlier entry (by id) already holds it, in which case it gets the
/// first `name (n).ext` (n = 2, 3, ...) that neither an earlier entry holds nor any sibling
/// has as its own natural name. `reserved` names are taken before any entry.
pub fn assign_sibling_names<'a>(
    policy: NamePolicy,
    entries: impl IntoIterator<Item = &'a str>,
    reserved: &[&str],
) -> Vec<Cow<'a, str>> {
    assign_counting(policy, entries, reserved).0
}

/// [`assign_sibling_names`], and how many suffixed candidates it tried.
///
/// The search for a free `name (n).ext` resumes where the previous one for the same name
/// stopped: the names tried below that point were taken, and stay taken (nothing is ever
/// released), so the first free one is the same as a search from 2. Without this, n
/// siblings sharing a name cost n²/2 tries: 50,000 copies of `IMG_0001.JPG` in one folder
/// (round 13) took minutes to plan. The search is shared by names that collide, so 50,000
/// spellings of one name differing only in case (under Windows rules) resume it too: for
/// an ASCII name, `name (n).ext` collides exactly where the name does, whatever its case;
/// other names share it only with themselves, where that is always exact.
fn assign_counting<'a>(
    policy: NamePolicy,
    entries: impl IntoIterator<Item = &'a str>,
    reserved: &[&str],
) -> (Vec<Cow<'a, str>>, u64) {
    use std::collections::{HashMap, HashSet};
    // Borrowed throughout where a name is kept as it is (most of them): at 1.7M rows the
    // plan otherwise made five strings per row here.
    let sanitized: Vec<Cow<'a, str>> = entries.into_iter().map(|n| policy.sanitize(n)).collect();
    let keys: Vec<Cow<'_, str>> = sanitized.iter().map(|s| policy.collision_key(s)).collect();
    let natural: HashSet<&str> = keys.iter().map(|k| &**k).collect();
    let mut taken: HashSet<Cow<'_, str>> =
        reserved.iter().map(|r| policy.collision_key(r)).collect();
    let mut resume_at: HashMap<&str, u64> = HashMap::new();
    let mut tries = 0u64;
    let mut out = Vec::with_capacity(sanitized.len());
    for (s, key) in sanitized.iter().zip(&keys) {
        if taken.insert(Cow::Borrowed(&**key)) {
            out.push(s.clone());
            continue;
        }
        let search: &str = if s.is_ascii() { key } else { s };
        let mut n = resume_at.get(search).copied().unwrap_or(2);
        loop {
            tries += 1;
            let cand = with_suffix(s, n);
            let k = policy.collision_key(&cand).into_owned();
            if !natural.contains(k.as_str()) && taken.insert(Cow::Owned(k)) {
                out.push(Cow::Owned(cand));
                break;
            }
            n += 1;
        }
        resume_at.insert(search, n + 1);
    }
    (out, tries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use NamePolicy::*;

    #[test]
    fn no_restored_name_has_the_form_of_a_temporary_file() {
        let ours = temp_name("some id");
        for policy in [Posix, Windows] {
            let safe = policy.sanitize(&ours);
            assert_ne!(safe, ours);
            assert!(!is_temp_name(&safe), "{safe}");
            assert_eq!(policy.sanitize(".mcr-notes.part"), ".mcr-notes.part");
        }
    }

    #[test]
    fn posix_replaces_only_slash_and_nul() {
        assert_eq!(Posix.sanitize("a|b:c?.jpg"), "a|b:c?.jpg");
        assert_eq!(Posix.sanitize("a/b\0c"), "a_b_c");
        assert_eq!(Posix.sanitize("name. "), "name. ");
    }

    #[test]
    fn dot_names_and_empty_get_placeholders() {
        for p in [Posix, Windows] {
            assert_eq!(p.sanitize(""), "_unnamed");
            assert_eq!(p.sanitize("."), "_dot");
            assert_eq!(p.sanitize(".."), "_dotdot");
        }
        assert_eq!(Posix.sanitize("..."), "...");
        assert_eq!(Windows.sanitize("..."), "___");
    }

    #[test]
    fn windows_illegal_chars_trailing_and_reserved() {
        assert_eq!(
            Windows.sanitize(r#"a<b>c:d"e\f|g?h*i"#),
            "a_b_c_d_e_f_g_h_i"
        );
        assert_eq!(Windows.sanitize("bell\u{7}.txt"), "bell_.txt");
        assert_eq!(Windows.sanitize("name."), "name_");
        assert_eq!(Windows.sanitize("name .. "), "name____");
        assert_eq!(Windows.sanitize("CON"), "_CON");
        assert_eq!(Windows.sanitize("nul.txt"), "_nul.txt");
        assert_eq!(Windows.sanitize("com1.tar.gz"), "_com1.tar.gz");
        assert_eq!(Windows.sanitize("CONSOLE.txt"), "CONSOLE.txt");
        assert_eq!(Windows.sanitize("auth0|5f3a"), "auth0_5f3a");
    }

    #[test]
    fn long_names_keep_extension_and_differ_by_hash() {
        let a = format!("{}A.jpg", "x".repeat(300));
        let b = format!("{}B.jpg", "x".repeat(300));
        let (sa, sb) = (Posix.sanitize(&a), Posix.sanitize(&b));
        assert!(sa.len() <= 255 && sb.len() <= 255);
        assert!(sa.ends_with(".jpg"));
        assert_ne!(sa, sb);
        assert_eq!(sa, Posix.sanitize(&a), "stable");
        let multi = "é".repeat(200);
        let s = Posix.sanitize(&multi);
        assert!(s.len() <= 255);
    }

    #[test]
    fn suffixes_follow_id_order_and_skip_natural_names() {
        let names = assign_sibling_names(
            Posix,
            ["photo.jpg", "photo.jpg", "photo (2).jpg", "photo.jpg"],
            &[],
        );
        assert_eq!(
            names,
            [
                "photo.jpg",
                "photo (3).jpg",
                "photo (2).jpg",
                "photo (4).jpg"
            ]
        );
    }

    #[test]
    fn case_collisions_only_under_windows() {
        let n = ["Readme.md", "README.md"];
        assert_eq!(
            assign_sibling_names(Posix, n, &[]),
            ["Readme.md", "README.md"]
        );
        assert_eq!(
            assign_sibling_names(Windows, n, &[]),
            ["Readme.md", "README (2).md"]
        );
    }

    #[test]
    fn sanitizing_can_create_collisions_that_are_resolved() {
        let n = ["a:b", "a|b", "a_b"];
        assert_eq!(
            assign_sibling_names(Windows, n, &[]),
            ["a_b", "a_b (2)", "a_b (3)"]
        );
    }

    #[test]
    fn reserved_names_are_taken_first() {
        let n = assign_sibling_names(Posix, ["_unlinked", "x"], &["_unlinked"]);
        assert_eq!(n, ["_unlinked (2)", "x"]);
    }

    /// The search for a free suffix before round 13: from 2 for every entry.
    fn assign_from_two(policy: NamePolicy, entries: &[String]) -> Vec<String> {
        use std::collections::HashSet;
        let sanitized: Vec<String> = entries.iter().map(|n| policy.sanitize(n).into()).collect();
        let keys: Vec<String> = sanitized
            .iter()
            .map(|s| policy.collision_key(s).into())
            .collect();
        let natural: HashSet<&str> = keys.iter().map(|k| k.as_str()).collect();
        let mut taken: HashSet<String> = HashSet::new();
        let mut out = Vec::new();
        for (s, key) in sanitized.iter().zip(&keys) {
            if taken.insert(key.clone()) {
                out.push(s.clone());
                continue;
            }
            let mut n = 2;
            loop {
                let cand = with_suffix(s, n);
                let k = policy.collision_key(&cand).into_owned();
                if !natural.contains(k.as_str()) && taken.insert(k) {
                    out.push(cand);
                    break;
                }
                n += 1;
            }
        }
        out
    }

    #[test]
    fn many_siblings_sharing_a_name_cost_one_try_each_regression_round_13() {
        // 3,000 copies of one name: 2,999 suffixes, one try each (the search from 2 for
        // every entry made 4.5 million tries; 50,000 copies took minutes to plan).
        let same = vec!["IMG_0001.JPG"; 3000];
        let (names, tries) = assign_counting(Posix, same.iter().copied(), &[]);
        assert_eq!(names[2999], "IMG_0001 (3000).JPG");
        assert_eq!(tries, 2999);
        // 3,000 spellings of one name differing only in case, under Windows rules.
        let spellings: Vec<String> = (0..3000u32)
            .map(|i| {
                let stem: String = "photographs"
                    .chars()
                    .enumerate()
                    .map(|(b, c)| {
                        if i >> b & 1 == 1 {
                            c.to_ascii_uppercase()
                        } else {
                            c
                        }
                    })
                    .collect();
                format!("{stem}.jpg")
            })
            .collect();
        let (names, tries) = assign_counting(Windows, spellings.iter().map(|s| s.as_str()), &[]);
        assert_eq!(tries, 2999);
        assert_eq!(names[1], "Photographs (2).jpg");
        // 3,000 copies of a name so long that every suffix shortens it.
        let long = format!("{}.jpg", "q".repeat(246));
        let (names, tries) = assign_counting(Posix, vec![long.as_str(); 3000], &[]);
        assert_eq!(tries, 2999);
        assert!(names[2999].ends_with(" (3000).jpg") && names[2999].len() == 255);
    }

    proptest::proptest! {
        #[test]
        fn resuming_the_suffix_search_gives_the_names_a_search_from_two_gives(
            picks in proptest::collection::vec((0usize..12, 0u32..4), 0..60),
            win in proptest::bool::ANY,
        ) {
            // Few distinct names, in several spellings, some already of the suffixed form,
            // some long enough that a suffix shortens them, some whose lowercase form has
            // another length (Kelvin sign, dotted I) or another final sigma.
            let long = "L".repeat(250);
            let bases = [
                "a.jpg", "A.JPG", "a (2).jpg", "a (3).JPG", "b", "B (2)", "\u{212a}.txt",
                "k.txt", "İx", "ΟΔΟΣ.txt", long.as_str(), "a:b",
            ];
            let entries: Vec<String> = picks
                .iter()
                .map(|&(b, v)| match v {
                    0 => bases[b].to_string(),
                    1 => bases[b].to_uppercase(),
                    2 => bases[b].to_lowercase(),
                    _ => format!("{}{}", bases[b], "x".repeat(5)),
                })
                .collect();
            let p = if win { Windows } else { Posix };
            let ours: Vec<String> = assign_sibling_names(p, entries.iter().map(|s| s.as_str()), &[])
                .into_iter()
                .map(|c| c.into_owned())
                .collect();
            proptest::prop_assert_eq!(ours, assign_from_two(p, &entries));
        }
    }

    #[test]
    fn suffix_stays_within_limit() {
        let long = format!("{}.jpg", "y".repeat(251));
        assert_eq!(long.len(), 255);
        let s = with_suffix(&long, 12);
        assert!(s.len() <= 255 && s.ends_with(" (12).jpg"), "{s}");
    }

    #[test]
    fn windows_collision_keys_are_lowercase_and_borrowed_when_already_so() {
        for name in [
            "readme.md",
            "straße",
            "ǆ",
            "Readme.md",
            "ǅx",
            "ΟΔΟΣ",
            "İstanbul",
        ] {
            let k = Windows.collision_key(name);
            assert_eq!(k, name.to_lowercase(), "{name}");
            assert_eq!(
                matches!(k, Cow::Borrowed(_)),
                name == name.to_lowercase(),
                "{name}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn collision_keys_are_what_lowercasing_gives(name in "\\PC{0,40}") {
            proptest::prop_assert_eq!(Windows.collision_key(&name), name.to_lowercase());
            proptest::prop_assert_eq!(Posix.collision_key(&name), name.as_str());
        }

        #[test]
        fn sanitized_names_are_always_single_safe_components(name in "\\PC{0,300}", win in proptest::bool::ANY) {
            let p = if win { Windows } else { Posix };
            let s = p.sanitize(&name);
            proptest::prop_assert!(!s.is_empty() && s != "." && s != "..");
            proptest::prop_assert!(!s.contains('/') && !s.contains('\0'));
            proptest::prop_assert!(s.len() <= MAX_NAME_BYTES);
            let joined = std::path::Path::new("/dest").join(&*s);
            proptest::prop_assert_eq!(joined.parent(), Some(std::path::Path::new("/dest")));
            if win {
                proptest::prop_assert!(!s.ends_with('.') && !s.ends_with(' '));
                proptest::prop_assert!(!s.chars().any(|c| c.is_control() || WINDOWS_ILLEGAL.contains(&c)));
            }
        }
    }
}
