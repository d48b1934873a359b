//! The plan: where every row of the index will be restored.
//!
//! Memory grows with the number of folders, not files: folders (id, parent, name) are held
//! in memory; files are streamed from SQLite (the one exception: the names pass below holds
//! an 8-byte hash per row while it runs, a set of about 19 MB at 1.7M rows). Names are
//! fixed first: siblings that collide (once made safe) get `name (n)` suffixes in
//! ascending id order. One pass in the database's own order hashes every row's (parent,
//! collision key) to find the folders where two names collide; only their rows, and the
//! top of DEST, are then read sorted by parent and named together, and only the names that
//! got a suffix are kept. Folder paths are then resolved iteratively (no recursion) with
//! memoisation; broken chains and cycles are placed under `_unlinked/` and reported. The
//! files' stream ([`Plan::for_each_file`]) yields a [`PlannedFile`] for each file row,
//! filtered ones included, so every file gets exactly one outcome downstream.

pub mod dates;
pub mod names;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use crate::source::index::{ChildRow, FileRow, Index, IndexError};
use crate::state::KeyHashing;
use dates::DatePolicy;
use names::{assign_sibling_names, NamePolicy};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// Top folder for rows whose parent chain is broken (missing parent or a cycle).
pub const UNLINKED_DIR: &str = "_unlinked";

/// Longest path Linux takes (`PATH_MAX`, the final NUL included). A folder whose restored
/// path, with the shortest DEST (`/`) before it, would leave no room for a name below it
/// ([`MAX_FOLDER_PATH_BYTES`]) cannot hold files on any destination; the plan places it
/// under `_unlinked/deep-<id>/` instead. This also bounds
/// every folder path the plan keeps: a chain of 50,000 nested folders (or a parent cycle of
/// 100,000 rows, broken open into one) made paths of every length up to the chain's,
/// gigabytes in all (round 13), and listed each folder of the chain that could not be made
/// in the report.
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest folder path the plan keeps (3,838 bytes): one that leaves room below the
/// shortest DEST (`/`) for a `/` and a name of [`names::MAX_NAME_BYTES`] in it, and the
/// final NUL. A folder path that fit with nothing below it held files Linux could not
/// name: the copy made them relative to their open folder, and every later look by path
/// (`verify`, the resume's look at DEST, `regen`) failed with "File name too long".
pub const MAX_FOLDER_PATH_BYTES: usize = MAX_PATH_BYTES - 1 - 1 - names::MAX_NAME_BYTES - 1;
/// Top folder for the device's Trash when `--include-trash` is given.
pub const TRASH_NAME: &str = "Trash";
const USER_PREFIX: &str = "auth0|";

/// What the user asked to restore, validated.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub policy: NamePolicy,
    pub include_trash: bool,
    /// Restored-path prefixes (component-wise); empty means everything.
    pub only: Vec<String>,
    /// User labels or auth0 ids to keep; empty means all users.
    pub users: Vec<String>,
    pub limit: Option<u64>,
    pub dates: DatePolicy,
}

impl PlanOptions {
    /// Whether `--only`, `--user` or `--limit` narrow the selection (a run over part of it
    /// cannot speak for all: folder dates it owes, the whole restore's count).
    pub fn narrowed(&self) -> bool {
        !self.only.is_empty() || !self.users.is_empty() || self.limit.is_some()
    }
}

/// Where a folder's chain ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Below user root number n (index into [`Plan::users`]).
    User(u16),
    Trash,
    /// Below a parentless row that is neither a user nor Trash.
    OtherRoot,
    /// Below a missing parent or a cycle.
    Unlinked,
}

#[derive(Debug, Clone, Copy)]
enum ParentRef {
    Root,
    Folder(u32),
    Missing,
}

/// Why a planned file is not restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    InTrash,
    OtherUser,
    NotUnderOnly,
    BeyondLimit,
}

impl SkipReason {
    pub fn describe(self) -> &'static str {
        match self {
            SkipReason::InTrash => "in the device's Trash (use --include-trash)",
            SkipReason::OtherUser => "belongs to a user not selected with --user",
            SkipReason::NotUnderOnly => "outside the --only paths",
            SkipReason::BeyondLimit => "beyond --limit",
        }
    }
}

/// A structural problem found while planning.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Problem {
    pub id: String,
    pub kind: ProblemKind,
    pub name: String,
    pub restored_path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ProblemKind {
    /// The parent row does not exist or is not a folder.
    MissingParent { parent_id: String },
    /// The folder is on a parent cycle.
    Cycle { cycle_root: String },
    /// The file's stored size is not a byte count (`stored`, as stored): it counts as
    /// unknown (0 bytes) in totals; the object is copied whole.
    UnusableSize { stored: String },
    /// The folder's restored path would be longer than any Linux path (a chain of folders
    /// thousands deep, or a long parent cycle broken open): it is restored with its
    /// contents under `_unlinked/deep-<id>/` instead. `parent_id` is where it belongs.
    TooDeep { parent_id: String },
}

impl std::fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProblemKind::MissingParent { parent_id } => {
                write!(f, "parent {parent_id} is missing or not a folder")
            }
            ProblemKind::Cycle { cycle_root } => {
                write!(f, "on a parent cycle (broken at {cycle_root})")
            }
            ProblemKind::UnusableSize { stored } => write!(
                f,
                "its size in the database ({stored}) is not a byte count; counted as unknown (0 bytes), the object is restored whole"
            ),
            ProblemKind::TooDeep { parent_id } => write!(
                f,
                "its path below its parent {parent_id} would leave no room for the names below it within the longest path Linux allows ({MAX_PATH_BYTES} bytes); restored with its contents under {UNLINKED_DIR}/deep-<id>/"
            ),
        }
    }
}

/// A name the policy changed: original path (names from the database) -> restored path.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rename {
    pub id: String,
    pub original: String,
    pub restored: String,
}

/// One file row, resolved.
#[derive(Debug, Clone)]
pub struct PlannedFile {
    pub id: String,
    pub content_id: Option<String>,
    /// Path under the destination, `/`-separated, every component sanitized.
    pub rel_path: String,
    /// Bytes the database says (0 when its value is not usable: see `size_unusable`).
    pub size: u64,
    /// The stored size, written out, when it is not a byte count (the size is unknown).
    pub size_unusable: Option<String>,
    /// Modification time to set, in milliseconds (None: no plausible date).
    pub mtime_ms: Option<i64>,
    pub origin: Origin,
    /// Set when the file's own name was changed: its original path.
    pub renamed_from: Option<String>,
    pub skip: Option<SkipReason>,
    /// Set when the file's own parent row is missing or is not a folder (it is then placed
    /// under `_unlinked/`): a structural problem to report.
    pub missing_parent: Option<String>,
}

impl PlannedFile {
    /// The structural problems of the file's own row: a missing parent, an unusable size.
    pub fn problems(&self) -> impl Iterator<Item = Problem> + '_ {
        let parent = self
            .missing_parent
            .clone()
            .map(|parent_id| ProblemKind::MissingParent { parent_id });
        let size = self
            .size_unusable
            .clone()
            .map(|stored| ProblemKind::UnusableSize { stored });
        parent.into_iter().chain(size).map(|kind| Problem {
            id: self.id.clone(),
            kind,
            name: self.rel_path.rsplit('/').next().unwrap_or("").to_string(),
            restored_path: self.rel_path.clone(),
        })
    }
}

/// What [`Plan::resolve_files`] decides for one file row, borrowed.
struct Resolved<'a> {
    rel_path: &'a str,
    origin: Origin,
    /// The file's folder (an index into the plan's folders), when its parent is one.
    parent_folder: Option<usize>,
    renamed: bool,
    skip: Option<SkipReason>,
}

/// One folder, resolved.
#[derive(Debug, Clone)]
pub struct PlannedFolder {
    pub rel_path: String,
    pub mtime_ms: Option<i64>,
    pub origin: Origin,
    pub depth: usize,
}

/// Whether an earlier run finished a file: (id, restored path, size, date) -> done.
pub type DoneBefore<'a> = &'a dyn Fn(&str, &str, u64, Option<i64>) -> bool;

/// Counts of what the plan holds (files include filtered ones).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PlanTotals {
    pub files: u64,
    pub selected_files: u64,
    pub selected_bytes: u64,
    pub filtered: u64,
    pub folders: u64,
    /// Selected files restored under another name than the database's.
    pub renamed_files: u64,
    /// Selected files with no plausible date in any of the `--mtime-from` fields: they keep
    /// the time they are restored at.
    pub undated_files: u64,
    /// Selected files an earlier run finished (a resume's checkpoint says so), and their
    /// bytes: zero where the count was not told.
    #[serde(skip)]
    pub done_before_files: u64,
    #[serde(skip)]
    pub done_before_bytes: u64,
}

struct Folders {
    /// Hashed with xxh3 ([`KeyHashing`]), not SipHash: looked up once per row by the plan
    /// and once per file by every stream of files.
    ids: HashMap<Box<str>, u32, KeyHashing>,
    raw_parent: Vec<Option<Box<str>>>,
    name: Vec<Box<str>>,
    mtime: Vec<Option<i64>>,
    final_name: Vec<Option<Box<str>>>,
    parent: Vec<ParentRef>,
    path: Vec<Box<str>>,
    /// Stored names that are not valid UTF-8, escaped (few, so a map): for the report.
    escaped: HashMap<u32, Box<str>>,
    origin: Vec<Origin>,
}

/// The resolved plan.
pub struct Plan {
    opts: PlanOptions,
    folders: Folders,
    /// Files (by rowid) whose final name is not simply their sanitized name (sibling
    /// suffixes). By rowid, not id: where a damaged index let two rows share an id, both
    /// took the second one's suffix (one file failed as "already exists", and the advice to
    /// use --overwrite would have replaced the other).
    suffixed: HashMap<i64, Box<str>>,
    users: Vec<UserRoot>,
    problems: Vec<Problem>,
    folder_renames: Vec<Rename>,
    unlinked: UnlinkedNames,
    /// Folders placed under `_unlinked/deep-<id>/` for being too deep: (folder, the parent
    /// it belongs under).
    relocated: Vec<(u32, u32)>,
    /// The restored paths of the relocated folders that `--only` selects with the folder
    /// they belong under ([`Plan::select_relocated`]).
    only_relocated: Vec<String>,
}

/// The folders directly in `_unlinked/`: one per missing parent id, one per parent cycle.
/// Named like siblings anywhere else (made safe, then `name (n)` where two collide), not
/// each on its own: two missing parents whose ids are one name once made safe (`a/b` and
/// `a_b`, or `AB` and `ab` where case is ignored) shared one folder, and a file there was
/// taken for an earlier copy of another row's file of the same name, size and date.
struct UnlinkedNames {
    policy: NamePolicy,
    /// Missing parent id -> its folder's name.
    by_parent: HashMap<Box<str>, Box<str>>,
    /// Collision keys of the names given so far.
    taken: std::collections::HashSet<String>,
}

impl UnlinkedNames {
    /// Names the folders of the missing parent ids `parents` (in ascending id order, as
    /// siblings are).
    fn new(policy: NamePolicy, mut parents: Vec<String>) -> UnlinkedNames {
        parents.sort_unstable();
        parents.dedup();
        let names = assign_sibling_names(policy, parents.iter().map(|p| p.as_str()), &[]);
        let mut u = UnlinkedNames {
            policy,
            by_parent: HashMap::with_capacity(parents.len()),
            taken: std::collections::HashSet::with_capacity(parents.len()),
        };
        for (p, n) in parents.iter().zip(names) {
            u.taken.insert(policy.collision_key(&n).into_owned());
            u.by_parent
                .insert(p.as_str().into(), n.into_owned().into_boxed_str());
        }
        u
    }

    /// The folder of missing parent `id` (made safe alone if pass 1 did not see it).
    fn parent_dir<'a>(&'a self, id: &'a str) -> Cow<'a, str> {
        match self.by_parent.get(id) {
            Some(n) => Cow::Borrowed(&**n),
            None => self.policy.sanitize(id),
        }
    }

    /// A new folder for the cycle broken at folder `id`: `cycle-<id>`, or `cycle-<id> (n)`
    /// where that name is taken.
    fn cycle_dir(&mut self, id: &str) -> String {
        self.fresh_dir("cycle", id)
    }

    /// A new folder for folder `id`, whose path would be too long where it belongs:
    /// `deep-<id>`, or `deep-<id> (n)` where that name is taken.
    fn deep_dir(&mut self, id: &str) -> String {
        self.fresh_dir("deep", id)
    }

    /// `<kind>-<id>` made safe, suffixed until no folder in `_unlinked/` has its name.
    fn fresh_dir(&mut self, kind: &str, id: &str) -> String {
        let policy = self.policy;
        let natural = policy
            .sanitize(&format!("{kind}-{}", policy.sanitize(id)))
            .into_owned();
        let mut name = natural.clone();
        let mut n = 2;
        while !self.taken.insert(policy.collision_key(&name).into_owned()) {
            name = names::with_suffix(&natural, n);
            n += 1;
        }
        name
    }
}

/// A user account root.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UserRoot {
    pub id: String,
    pub name: String,
    /// Folder the user's files go to ("" when there is one user: the top of DEST).
    pub label: String,
}

/// The restored label of a user root: readable and safe (`auth0|abc` -> `auth0_abc`).
fn user_label(name: &str) -> String {
    name.replace('|', "_")
}

impl UserRoot {
    /// Whether `--user given` names this user: its label (`auth0_abc`), its auth0 id with
    /// or without the prefix (`auth0|abc`, `abc`: the root's name in the index), or its
    /// row id. The bare id was refused, though the help offers "its auth0 id".
    fn is(&self, given: &str) -> bool {
        given == self.id
            || given == self.name
            || given == user_label(&self.name)
            || (!given.is_empty() && self.name.strip_prefix(USER_PREFIX) == Some(given))
    }
}

impl Plan {
    /// Reads the index and resolves every folder. Files are resolved by [`Plan::for_each_file`].
    pub fn build(index: &Index, opts: PlanOptions) -> Result<Plan, PlanError> {
        Plan::build_naming(index, opts, false)
    }

    /// [`Plan::build`]; `every_folder` names the rows of every folder together, not only
    /// those of folders where two names collide (what the plan did before round 18: the
    /// tests hold the two to the same result).
    fn build_naming(
        index: &Index,
        opts: PlanOptions,
        every_folder: bool,
    ) -> Result<Plan, PlanError> {
        let mut f = Folders {
            ids: HashMap::default(),
            raw_parent: Vec::new(),
            name: Vec::new(),
            mtime: Vec::new(),
            final_name: Vec::new(),
            parent: Vec::new(),
            path: Vec::new(),
            origin: Vec::new(),
            escaped: HashMap::new(),
        };
        index.for_each_folder(|row| {
            let i = f.name.len() as u32;
            if let Some(e) = row.name_escaped {
                f.escaped.insert(i, e.into_boxed_str());
            }
            let id = row.id.into_boxed_str();
            if let Some(first) = f.ids.insert(id.clone(), i) {
                // Duplicate id (the schema says unique): the later row is unreachable by id
                // anyway; the first keeps the id, so its children find it.
                f.ids.insert(id, first);
            }
            f.raw_parent.push(row.parent.map(String::into_boxed_str));
            f.name.push(row.name.into_boxed_str());
            f.mtime.push(opts.dates.pick(&row.dates));
        })?;
        let n = f.name.len();
        f.final_name = vec![None; n];
        f.origin = vec![Origin::OtherRoot; n];
        f.path = vec![Box::from(""); n];
        f.parent = f
            .raw_parent
            .iter()
            .map(|p| match p {
                None => ParentRef::Root,
                Some(p) => match f.ids.get(p) {
                    Some(&j) => ParentRef::Folder(j),
                    None => ParentRef::Missing,
                },
            })
            .collect();

        // Users are parentless folders named auth0|...; Trash is the parentless `Trash`.
        let mut id_of = vec![Box::<str>::from(""); n];
        for (id, &i) in &f.ids {
            id_of[i as usize] = id.clone();
        }
        let mut users: Vec<UserRoot> = Vec::new();
        let mut user_idx: HashMap<u32, u16> = HashMap::new();
        let mut trash: Option<u32> = None;
        let mut roots: Vec<u32> = (0..n as u32)
            .filter(|&i| matches!(f.parent[i as usize], ParentRef::Root))
            .collect();
        roots.sort_by(|a, b| id_of[*a as usize].cmp(&id_of[*b as usize]));
        for &i in &roots {
            let name = &f.name[i as usize];
            if name.starts_with(USER_PREFIX) {
                user_idx.insert(i, users.len() as u16);
                users.push(UserRoot {
                    id: id_of[i as usize].to_string(),
                    name: name.to_string(),
                    label: String::new(),
                });
            } else if &**name == TRASH_NAME && trash.is_none() {
                trash = Some(i);
            }
        }
        for u in &opts.users {
            if !users.iter().any(|x| x.is(u)) {
                let known: Vec<String> = users.iter().map(|x| user_label(&x.name)).collect();
                return Err(PlanError::UnknownUser {
                    user: u.clone(),
                    known: known.join(", "),
                });
            }
        }
        let single_user = (users.len() == 1).then(|| users[0].id.clone());

        // Pass 1: names. Siblings are named together (`name (n)` suffixes in ascending id
        // order), but in most folders no two names collide, and there each keeps its own
        // name, made safe: a pass in the database's own order finds the folders where two
        // do, by a hash of (parent, collision key) per row, and only their rows and the top
        // of DEST (where user folders are relabelled and `_unlinked` is reserved) are sorted
        // into groups and named. Sorting every row by parent was the plan's largest cost
        // and kept the copy waiting (docs/PERFORMANCE.md, round 18). A hash collision only
        // sends a folder to be named that did not need it; a real collision is always found.
        let policy = opts.policy;
        let mut missing: HashSet<String> = HashSet::new();
        let mut crowded: HashSet<String> = HashSet::new();
        {
            let mut seen: HashSet<u64, KeyHashing> = HashSet::with_capacity_and_hasher(
                usize::try_from(index.row_count()?).unwrap_or(0),
                KeyHashing::default(),
            );
            index.for_each_name(|row| {
                let Some(p) = row.parent else { return };
                if single_user.as_deref() == Some(p) {
                    return;
                }
                if !f.ids.contains_key(p) && !missing.contains(p) {
                    missing.insert(p.to_string());
                }
                let safe = policy.sanitize(&row.name);
                let key = policy.collision_key(&safe);
                let crowd = !seen.insert(xxh3_64_with_seed(key.as_bytes(), xxh3_64(p.as_bytes())));
                if (crowd || every_folder) && !crowded.contains(p) {
                    crowded.insert(p.to_string());
                }
            })?;
        }
        let missing_parents: Vec<String> = missing.into_iter().collect();
        let mut named: Vec<&str> = crowded.iter().map(String::as_str).collect();
        named.extend(single_user.as_deref());
        let mut suffixed: HashMap<i64, Box<str>> = HashMap::new();
        let mut group: Vec<ChildRow> = Vec::new();
        let mut top: Vec<ChildRow> = Vec::new();
        let mut top_done = false;
        {
            let mut finish = |group: &mut Vec<ChildRow>, is_top: bool| {
                if group.is_empty() && !is_top {
                    return;
                }
                group.sort_by(|a, b| a.id.cmp(&b.id).then(a.rowid.cmp(&b.rowid)));
                let naming: Vec<Cow<str>> = group
                    .iter()
                    .map(|r| {
                        let is_user =
                            r.parent.is_none() && r.is_folder && r.name.starts_with(USER_PREFIX);
                        if is_user {
                            Cow::Owned(user_label(&r.name))
                        } else {
                            Cow::Borrowed(r.name.as_str())
                        }
                    })
                    .collect();
                let reserved: &[&str] = if is_top { &[UNLINKED_DIR] } else { &[] };
                let finals =
                    assign_sibling_names(opts.policy, naming.iter().map(|n| &**n), reserved);
                for ((row, natural), fin) in group.iter().zip(&naming).zip(finals) {
                    if row.is_folder {
                        if let Some(&i) = f.ids.get(row.id.as_str()) {
                            f.final_name[i as usize] = Some(fin.into_owned().into_boxed_str());
                        }
                    } else if opts.policy.sanitize(natural) != fin {
                        suffixed.insert(row.rowid, fin.into_owned().into_boxed_str());
                    }
                }
                drop(naming);
                group.clear();
            };
            let mut current: Option<Option<String>> = None;
            index.for_each_child_of(&named, |row| {
                if current.as_ref() != Some(&row.parent) {
                    let prev = current.replace(row.parent.clone());
                    if let Some(prev) = prev {
                        let is_top_group =
                            prev.is_none() || (single_user.is_some() && prev == single_user);
                        if is_top_group {
                            top.append(&mut group);
                            // The single user's children join the parentless rows; both are
                            // known once the user's own group has passed.
                            if prev.is_some() || single_user.is_none() {
                                finish(&mut top, true);
                                top_done = true;
                            }
                        } else {
                            finish(&mut group, false);
                        }
                    }
                }
                // The single user root itself is the top of DEST, not an entry in it.
                let is_single_root =
                    row.parent.is_none() && single_user.as_deref() == Some(row.id.as_str());
                if !is_single_root {
                    group.push(row);
                }
            })?;
            if let Some(prev) = current {
                let is_top_group = prev.is_none() || (single_user.is_some() && prev == single_user);
                if is_top_group {
                    top.append(&mut group);
                } else {
                    finish(&mut group, false);
                }
            }
            if !top_done {
                finish(&mut top, true);
            }
        }

        if single_user.is_none() {
            for u in &mut users {
                let i = f.ids[u.id.as_str()];
                u.label = f.final_name[i as usize]
                    .as_deref()
                    .unwrap_or("")
                    .to_string();
            }
        }

        let opts_policy = opts.policy;
        let mut plan = Plan {
            opts,
            folders: f,
            suffixed,
            users,
            problems: Vec::new(),
            folder_renames: Vec::new(),
            unlinked: UnlinkedNames::new(opts_policy, missing_parents),
            relocated: Vec::new(),
            only_relocated: Vec::new(),
        };
        plan.resolve_folders(&id_of, &user_idx, trash, single_user.is_some());
        plan.select_relocated();
        plan.check_only(index)?;
        Ok(plan)
    }

    /// Refuses an `--only` path that cannot select anything, before anything is written: a
    /// typo (`photos` for `Photos`, `Photos/2091`, `Photo`) would otherwise restore nothing
    /// and report success. A path at or under the device's Trash is refused without
    /// `--include-trash` (it would select nothing, and the user plainly wants the Trash). A
    /// path is accepted when a folder is at or below it, when it is under `_unlinked/`
    /// (whose folders for missing parents are not in the plan), or when it is the restored
    /// path of a file ([`Plan::file_names_in`]: files are not in memory here, one query for
    /// the rows of its folder). Every part of the path is checked, the last one too: it
    /// was once taken for a file name without a look, and a typo there restored nothing,
    /// made DEST and a checkpoint, and ended with exit 0.
    fn check_only(&self, index: &Index) -> Result<(), PlanError> {
        let folders = || {
            self.folders
                .path
                .iter()
                .map(|p| &**p)
                .filter(|p| !p.is_empty())
        };
        let trash = self.trash_path().filter(|_| !self.opts.include_trash);
        for only in &self.opts.only {
            let want = only.trim_matches('/');
            if let Some(trash) = trash.filter(|t| !want.is_empty() && under(want, t)) {
                return Err(PlanError::OnlyInTrash {
                    only: only.clone(),
                    trash: trash.to_string(),
                });
            }
            // A path in the folders of a user `--user` leaves out selects nothing: said, with
            // the user to add (it was accepted, and the run ended with a hint about case).
            let (parent, leaf) = want.rsplit_once('/').unwrap_or(("", want));
            let other_user = |i: &usize| {
                self.skip_for(self.folders.origin[*i], &self.folders.path[*i])
                    == Some(SkipReason::OtherUser)
            };
            let mut hits = (0..self.folders.path.len()).filter(|&i| {
                let p = &*self.folders.path[i];
                !want.is_empty() && !p.is_empty() && (under(p, want) || p == parent)
            });
            if let Some(first) = hits.next() {
                if let (Origin::User(u), true) = (self.folders.origin[first], other_user(&first)) {
                    if hits.all(|i| other_user(&i)) {
                        return Err(PlanError::OnlyMatchesNothing {
                            only: only.clone(),
                            hint: format!(
                                "it is in the folders of user `{}`, which --user {} leaves out: add --user {0}, or leave --user out",
                                user_label(&self.users[u as usize].name),
                                self.opts.users.join(" --user ")
                            ),
                        });
                    }
                }
            }
            if want.is_empty() || under(want, UNLINKED_DIR) || folders().any(|f| under(f, want)) {
                continue;
            }
            let is_folder = |p: &str| p.is_empty() || folders().any(|f| f == p);
            // The deepest folder the path names (`base`), and its first part below that no
            // folder has (`part`): the leaf itself when its folder exists.
            let mut base = "";
            let mut part = want.split('/').next().unwrap_or(want);
            for (i, _) in want.match_indices('/') {
                if !is_folder(&want[..i]) {
                    break;
                }
                base = &want[..i];
                part = want[i + 1..].split('/').next().unwrap_or("");
            }
            let is_leaf = base == parent;
            // Names in `base` close to `part`: the same but for case, or one the start of
            // the other (`Photo` for `Photos`); files only where `part` is the leaf.
            let lower = part.to_lowercase();
            let mut near: Vec<String> = Vec::new();
            let mut is_near = |name: &str| {
                let l = name.to_lowercase();
                // Bounded: a folder of 100,000 `IMG_...` files and `--only IMG`.
                if near.len() < 256
                    && (l == lower || l.starts_with(&lower) || lower.starts_with(&l))
                {
                    near.push(match base {
                        "" => format!("`{name}`"),
                        _ => format!("`{base}/{name}`"),
                    });
                }
            };
            let fail = |hint: String| {
                Err(PlanError::OnlyMatchesNothing {
                    only: only.clone(),
                    hint,
                })
            };
            if is_leaf {
                let mut named = false;
                self.file_names_in(index, parent, |name| {
                    named |= name == leaf;
                    is_near(name);
                })?;
                if named {
                    continue;
                }
            } else {
                // A path through a file (`Bank/Budget.xlsx/x`): said as such.
                let mut a_file = false;
                self.file_names_in(index, base, |name| a_file |= name == part)?;
                if a_file {
                    let file = match base {
                        "" => part.to_string(),
                        _ => format!("{base}/{part}"),
                    };
                    return fail(format!(
                        "`{file}` is a file, not a folder: give the path of the file itself, or of a folder"
                    ));
                }
            }
            if let Some(f) = folders().find(|f| f.to_lowercase() == want.to_lowercase()) {
                return fail(format!("did you mean `{f}`? (paths are case-sensitive)"));
            }
            // Listed names: at most 12.
            let list = |mut names: Vec<&str>| {
                names.sort_unstable();
                names.dedup();
                let more = if names.len() > 12 { ", ..." } else { "" };
                names.truncate(12);
                format!("{}{more}", names.join(", "))
            };
            // The folders in `base`, but the Trash a run without --include-trash leaves out.
            let here: Vec<&str> = folders()
                .filter(|f| Some(*f) != trash)
                .filter_map(|f| match f.rsplit_once('/') {
                    Some((dir, name)) => (dir == base).then_some(name),
                    None => base.is_empty().then_some(f),
                })
                .collect();
            for name in &here {
                is_near(name);
            }
            let missing = match (base, is_leaf) {
                ("", true) => format!("no folder or file `{part}` at the top of the restore"),
                (_, true) => format!("no folder or file `{part}` in `{base}`"),
                _ if base.is_empty() => format!("no folder `{part}`"),
                _ => format!("no folder `{base}/{part}`"),
            };
            let hint = if !near.is_empty() {
                format!(
                    "there is {missing}; did you mean {}? (paths are case-sensitive and name whole folders or files)",
                    list(near.iter().map(String::as_str).collect())
                )
            } else if here.is_empty() {
                let holder = match base {
                    "" => "the top of the restore".to_string(),
                    _ => format!("`{base}`"),
                };
                format!("there is {missing}; {holder} holds no folder")
            } else if base.is_empty() {
                format!("there is {missing}; the top folders are {}", list(here))
            } else {
                format!(
                    "there is {missing}; the folders in `{base}` are {}",
                    list(here)
                )
            };
            return fail(hint);
        }
        Ok(())
    }

    /// Calls `f` with the restored name of every file directly in the folder at restored
    /// path `dir` (`""`: the top of the restore, parentless files included), named as
    /// [`Plan::resolve_files`] names them. One query for the rows of those folders, through
    /// the device's index on `parentID` where there is one.
    fn file_names_in(
        &self,
        index: &Index,
        dir: &str,
        mut f: impl FnMut(&str),
    ) -> Result<(), PlanError> {
        let parents: Vec<&str> = self
            .folders
            .ids
            .iter()
            .filter(|(_, &i)| &*self.folders.path[i as usize] == dir)
            .map(|(id, _)| &**id)
            .collect();
        let policy = self.opts.policy;
        index.for_each_child_of(&parents, |row| {
            let in_dir = match &row.parent {
                // Parentless rows come with every answer: at the top of the restore.
                None => dir.is_empty(),
                Some(_) => true,
            };
            if row.is_folder || !in_dir {
                return;
            }
            match self.suffixed.get(&row.rowid) {
                Some(n) => f(n),
                None => f(&policy.sanitize(&row.name)),
            }
        })?;
        Ok(())
    }

    /// The device's Trash: the parentless `Trash` row, at the top of DEST under its final
    /// name (`Trash`, unless a user's own top folder took that name first).
    pub fn trash_path(&self) -> Option<&str> {
        (0..self.folders.path.len())
            .find(|&i| {
                self.folders.origin[i] == Origin::Trash
                    && matches!(self.folders.parent[i], ParentRef::Root)
            })
            .map(|i| &*self.folders.path[i])
    }

    /// Final name of folder `i` (sanitized original when pass 1 did not see it).
    fn folder_final(&self, i: usize) -> Box<str> {
        match &self.folders.final_name[i] {
            Some(n) => n.clone(),
            None => Box::from(self.opts.policy.sanitize(&self.folders.name[i])),
        }
    }

    /// Resolves every folder's restored path iteratively: walk up until a resolved folder,
    /// a root, a missing parent or a cycle, then assign paths on the way back down.
    fn resolve_folders(
        &mut self,
        id_of: &[Box<str>],
        user_idx: &HashMap<u32, u16>,
        trash: Option<u32>,
        single_user: bool,
    ) {
        const NEW: u8 = 0;
        const ON_STACK: u8 = 1;
        const DONE: u8 = 2;
        let n = self.folders.name.len();
        let mut state = vec![NEW; n];
        let mut stack: Vec<usize> = Vec::new();
        for start in 0..n {
            'again: loop {
                stack.clear();
                let mut cur = start;
                loop {
                    match state[cur] {
                        DONE => break,
                        ON_STACK => {
                            // A cycle: the members are on the stack from `cur` upward. Break
                            // it at the smallest id, which becomes an unlinked root.
                            let pos = stack.iter().position(|&x| x == cur).unwrap_or(0);
                            let members: Vec<usize> = stack[pos..].to_vec();
                            let breaker = *members
                                .iter()
                                .min_by(|a, b| id_of[**a].cmp(&id_of[**b]))
                                .unwrap_or(&cur);
                            let name = self.folder_final(breaker);
                            let dir = self.unlinked.cycle_dir(&id_of[breaker]);
                            let path = format!("{UNLINKED_DIR}/{dir}/{name}");
                            self.folders.path[breaker] = path.into_boxed_str();
                            self.folders.origin[breaker] = Origin::Unlinked;
                            self.folders.parent[breaker] = ParentRef::Missing;
                            for &m in &members {
                                self.problems.push(Problem {
                                    id: id_of[m].to_string(),
                                    kind: ProblemKind::Cycle {
                                        cycle_root: id_of[breaker].to_string(),
                                    },
                                    name: self.folders.name[m].to_string(),
                                    restored_path: String::new(), // filled below
                                });
                            }
                            for &s in &stack {
                                state[s] = NEW;
                            }
                            state[breaker] = DONE;
                            continue 'again;
                        }
                        _ => {}
                    }
                    state[cur] = ON_STACK;
                    stack.push(cur);
                    match self.folders.parent[cur] {
                        ParentRef::Folder(p) => cur = p as usize,
                        ParentRef::Root => {
                            let (path, origin) = if let Some(&u) = user_idx.get(&(cur as u32)) {
                                let p = if single_user {
                                    String::new()
                                } else {
                                    self.folder_final(cur).to_string()
                                };
                                (p, Origin::User(u))
                            } else if Some(cur as u32) == trash {
                                (self.folder_final(cur).to_string(), Origin::Trash)
                            } else {
                                (self.folder_final(cur).to_string(), Origin::OtherRoot)
                            };
                            self.folders.path[cur] = path.into_boxed_str();
                            self.folders.origin[cur] = origin;
                            state[cur] = DONE;
                            break;
                        }
                        ParentRef::Missing => {
                            let pid = self.folders.raw_parent[cur].as_deref().unwrap_or("");
                            let path = format!(
                                "{UNLINKED_DIR}/{}/{}",
                                self.unlinked.parent_dir(pid),
                                self.folder_final(cur)
                            );
                            // Cycle breakers were marked Missing above and already have a
                            // path and a problem entry.
                            if self.folders.origin[cur] != Origin::Unlinked {
                                self.problems.push(Problem {
                                    id: id_of[cur].to_string(),
                                    kind: ProblemKind::MissingParent {
                                        parent_id: pid.to_string(),
                                    },
                                    name: self.folders.name[cur].to_string(),
                                    restored_path: path.clone(),
                                });
                                self.folders.path[cur] = path.into_boxed_str();
                                self.folders.origin[cur] = Origin::Unlinked;
                            }
                            state[cur] = DONE;
                            break;
                        }
                    }
                }
                // Unwind: every element below the top now has a resolved parent.
                while let Some(c) = stack.pop() {
                    if state[c] == DONE {
                        continue;
                    }
                    let ParentRef::Folder(p) = self.folders.parent[c] else {
                        unreachable!("only folder-parented entries are left unresolved")
                    };
                    let p = p as usize;
                    let name = self.folder_final(c);
                    let parent_path = &self.folders.path[p];
                    let mut path = if parent_path.is_empty() {
                        name.to_string()
                    } else {
                        format!("{parent_path}/{name}")
                    };
                    if path.len() > MAX_FOLDER_PATH_BYTES {
                        let dir = self.unlinked.deep_dir(&id_of[c]);
                        path = format!("{UNLINKED_DIR}/{dir}/{name}");
                        self.problems.push(Problem {
                            id: id_of[c].to_string(),
                            kind: ProblemKind::TooDeep {
                                parent_id: id_of[p].to_string(),
                            },
                            name: self.folders.name[c].to_string(),
                            restored_path: path.clone(),
                        });
                        self.relocated.push((c as u32, p as u32));
                    }
                    self.folders.path[c] = path.into_boxed_str();
                    self.folders.origin[c] = self.folders.origin[p];
                    state[c] = DONE;
                }
                break;
            }
        }
        // Fill restored paths of cycle members and record folder renames.
        let index_of: HashMap<&str, usize> =
            id_of.iter().enumerate().map(|(i, s)| (&**s, i)).collect();
        for p in &mut self.problems {
            if p.restored_path.is_empty() {
                if let Some(&i) = index_of.get(p.id.as_str()) {
                    p.restored_path = self.folders.path[i].to_string();
                }
            }
        }
        for (i, id) in id_of.iter().enumerate() {
            let single_root = single_user && user_idx.contains_key(&(i as u32));
            if single_root {
                continue;
            }
            let natural = if user_idx.contains_key(&(i as u32)) {
                user_label(&self.folders.name[i])
            } else {
                self.folders.name[i].to_string()
            };
            let escaped = self.folders.escaped.get(&(i as u32));
            if *self.folder_final(i) != *natural || escaped.is_some() {
                let leaf = escaped.unwrap_or(&self.folders.name[i]);
                let original = self.original_path(self.folders.parent[i], leaf);
                self.folder_renames.push(Rename {
                    id: id.to_string(),
                    original,
                    restored: self.folders.path[i].to_string(),
                });
            }
        }
        self.folder_renames
            .sort_by(|a, b| a.restored.cmp(&b.restored));
        self.problems.sort_by(|a, b| a.id.cmp(&b.id));
    }

    /// The original path of `leaf` in folder `parent`, as the device showed it: the
    /// database's own names from the top down. The only user's root folder (`auth0|...`) is
    /// left out, as the restore leaves it out (its folders are at the top of DEST, where the
    /// device's apps showed them), so a renamed file's original and restored paths can be
    /// matched; with several users each one's folder stays, as each is restored in its own.
    /// Every original path a user reads comes from here. Bounded by the folder count, so a
    /// cycle cannot make it loop, and by [`MAX_PATH_BYTES`]: past that it starts with
    /// `.../` (each renamed folder of a chain thousands deep had its whole path, gigabytes
    /// in all).
    fn original_path(&self, parent: ParentRef, leaf: &str) -> String {
        let mut parts = vec![leaf.to_string()];
        let mut len = leaf.len();
        let mut cur = parent;
        let mut steps = 0;
        while let ParentRef::Folder(p) = cur {
            steps += 1;
            if steps > self.folders.name.len() || self.is_dest_top(p as usize) {
                break;
            }
            if len > MAX_PATH_BYTES {
                parts.push("...".to_string());
                break;
            }
            let name = match self.folders.escaped.get(&p) {
                Some(e) => e,
                None => &self.folders.name[p as usize],
            };
            len += name.len() + 1;
            parts.push(name.to_string());
            cur = self.folders.parent[p as usize];
        }
        parts.reverse();
        parts.join("/")
    }

    /// Whether folder `i` is restored as DEST itself (the only user's root).
    fn is_dest_top(&self, i: usize) -> bool {
        matches!(self.folders.origin[i], Origin::User(_)) && self.folders.path[i].is_empty()
    }

    pub fn users(&self) -> &[UserRoot] {
        &self.users
    }

    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    pub fn folder_renames(&self) -> &[Rename] {
        &self.folder_renames
    }

    pub fn options(&self) -> &PlanOptions {
        &self.opts
    }

    /// What the user should know about how `index` is read for this plan, said once per
    /// command: its write-ahead log ([`Index::wal_note`]), and date fields the plan takes
    /// dates from that the database has no column for (each file's date then silently came
    /// from the next field: capture dates lost without a word).
    pub fn index_notes(&self, index: &Index) -> Vec<String> {
        let mut notes: Vec<String> = index.wal_note().into_iter().collect();
        let absent: Vec<&str> = (self.opts.dates.fields.iter())
            .map(|f| f.name())
            .filter(|n| !index.has_date_column(n))
            .collect();
        if !absent.is_empty() {
            notes.push(format!(
                "the database's Files table has no {} column: dates come from the other fields of {} that it has",
                absent.join(" or "),
                self.opts.dates.describe()
            ));
        }
        notes
    }

    /// What decides which folders exist and where: equal signatures give equal folder sets.
    pub fn signature(&self) -> (names::NamePolicy, bool, &[String], &[String], usize) {
        (
            self.opts.policy,
            self.opts.include_trash,
            &self.opts.only,
            &self.opts.users,
            self.folders.name.len(),
        )
    }

    /// Selects with `--only` the folders moved under `_unlinked/deep-<id>/` out of a
    /// selected folder's tree (and, in turn, those moved out of theirs): `--only` matches
    /// restored paths, and `--only Photos` left the part of `Photos` too deep for a Linux
    /// path "not selected", without a word (round 14).
    fn select_relocated(&mut self) {
        if self.opts.only.is_empty() {
            return;
        }
        let mut picked = vec![false; self.relocated.len()];
        let mut extra: Vec<String> = Vec::new();
        loop {
            let before = extra.len();
            for (k, &(c, p)) in self.relocated.iter().enumerate() {
                let parent = &*self.folders.path[p as usize];
                if !picked[k]
                    && self
                        .opts
                        .only
                        .iter()
                        .chain(&extra)
                        .any(|o| under(parent, o))
                {
                    picked[k] = true;
                    extra.push(self.folders.path[c as usize].to_string());
                }
            }
            if extra.len() == before {
                break;
            }
        }
        self.only_relocated = extra;
    }

    /// Whether the restored path `rel_path` is outside this selection for certain: in the
    /// Trash without --include-trash, or outside the --only paths (--user and --limit are
    /// not told by a path). A file an earlier run restored there is no concern of this run.
    pub fn leaves_out(&self, rel_path: &str) -> bool {
        let trash =
            !self.opts.include_trash && self.trash_path().is_some_and(|t| under(rel_path, t));
        trash || !self.opts.only.is_empty() && !self.only_paths().any(|p| under(rel_path, p))
    }

    /// The `--only` paths, and the relocated folders they select ([`Plan::select_relocated`]).
    fn only_paths(&self) -> impl Iterator<Item = &String> {
        self.opts.only.iter().chain(&self.only_relocated)
    }

    /// Whether `rel_path` is selected by the origin and `--only`/`--user` filters.
    fn skip_for(&self, origin: Origin, rel_path: &str) -> Option<SkipReason> {
        match origin {
            Origin::Trash if !self.opts.include_trash => return Some(SkipReason::InTrash),
            Origin::User(u) if !self.opts.users.is_empty() => {
                let user = &self.users[u as usize];
                if !self.opts.users.iter().any(|x| user.is(x)) {
                    return Some(SkipReason::OtherUser);
                }
            }
            _ => {}
        }
        if !self.opts.only.is_empty() && !self.only_paths().any(|p| under(rel_path, p)) {
            return Some(SkipReason::NotUnderOnly);
        }
        None
    }

    /// Whether a folder is restored: in the selection, or above an `--only` path. The
    /// folders above an --only path hold it; but not in a part of the tree the selection
    /// leaves out whatever --only says (Trash without --include-trash, another user's
    /// folders), where it would be an empty folder of nothing.
    fn folder_kept(&self, origin: Origin, rel_path: &str) -> bool {
        match self.skip_for(origin, rel_path) {
            None => true,
            Some(SkipReason::NotUnderOnly) => self.only_paths().any(|p| under(p, rel_path)),
            Some(_) => false,
        }
    }

    /// Whether the folder with this id is restored ([`Plan::folder_kept`]).
    fn folder_id_kept(&self, id: &str) -> bool {
        self.folders.ids.get(id).is_some_and(|&i| {
            let i = i as usize;
            self.folder_kept(self.folders.origin[i], &self.folders.path[i])
        })
    }

    /// The folders' structure problems ([`Plan::problems`]) among the folders restored: a
    /// restore with `--only Photos` does not restore `_unlinked/`, nor a user left out.
    pub fn kept_problems(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| self.folder_id_kept(&p.id))
    }

    /// The renamed folders ([`Plan::folder_renames`]) among the folders restored.
    pub fn kept_folder_renames(&self) -> impl Iterator<Item = &Rename> {
        self.folder_renames
            .iter()
            .filter(|r| self.folder_id_kept(&r.id))
    }

    /// Every folder that holds restored content (folders of filtered origins excluded),
    /// deepest first: the order in which folder dates must be set.
    pub fn folders_deepest_first(&self) -> Vec<PlannedFolder> {
        let mut out: Vec<PlannedFolder> = (0..self.folders.name.len())
            .filter(|&i| !self.folders.path[i].is_empty())
            .map(|i| PlannedFolder {
                rel_path: self.folders.path[i].to_string(),
                mtime_ms: self.folders.mtime[i],
                origin: self.folders.origin[i],
                depth: self.folders.path[i].matches('/').count(),
            })
            .filter(|f| self.folder_kept(f.origin, &f.rel_path))
            .collect();
        out.sort_by(|a, b| {
            b.depth
                .cmp(&a.depth)
                .then_with(|| a.rel_path.cmp(&b.rel_path))
        });
        out
    }

    /// Streams every file row, resolved, folder by folder in path order (as a walk of the
    /// restored tree would meet them). Filtered files are yielded too, with `skip` set.
    pub fn for_each_file(
        &self,
        index: &Index,
        f: impl FnMut(PlannedFile),
    ) -> Result<(), PlanError> {
        self.stream_files(index, Some(&self.folder_order()), f)
    }

    /// (folder id, rank) pairs: folders ranked by restored path.
    fn folder_order(&self) -> Vec<(&str, u32)> {
        let mut by_path: Vec<u32> = (0..self.folders.path.len() as u32).collect();
        by_path.sort_unstable_by(|&a, &b| {
            self.folders.path[a as usize].cmp(&self.folders.path[b as usize])
        });
        let mut rank = vec![0u32; by_path.len()];
        for (r, &i) in by_path.iter().enumerate() {
            rank[i as usize] = r as u32;
        }
        drop(by_path);
        self.folders
            .ids
            .iter()
            .map(|(id, &i)| (&**id, rank[i as usize]))
            .collect()
    }

    /// [`Plan::for_each_file`] for callers that only count or match files: the database's
    /// own order skips the sort (3 s at 1.35M files), unless `--limit` picks the first N
    /// files, which must be the same N the restore meets.
    pub fn for_each_file_any_order(
        &self,
        index: &Index,
        f: impl FnMut(PlannedFile),
    ) -> Result<(), PlanError> {
        self.for_each_file_by(index, false, f)
    }

    /// Folder by folder ([`Plan::for_each_file`]) when `by_folder`, else in any order
    /// ([`Plan::for_each_file_any_order`]).
    pub fn for_each_file_by(
        &self,
        index: &Index,
        by_folder: bool,
        f: impl FnMut(PlannedFile),
    ) -> Result<(), PlanError> {
        self.stream_files(index, self.order_for(by_folder).as_deref(), f)
    }

    /// The folder ranks to stream by: folder by folder when `by_folder`, or when `--limit`
    /// picks the first N files (which must be the same N the restore meets); else none, the
    /// database's own order.
    fn order_for(&self, by_folder: bool) -> Option<Vec<(&str, u32)>> {
        (by_folder || self.opts.limit.is_some()).then(|| self.folder_order())
    }

    /// Streams the files in the order `order` gives ([`Index::for_each_file`]), each one
    /// made a [`PlannedFile`] from what [`Plan::resolve_files`] decided.
    fn stream_files(
        &self,
        index: &Index,
        order: Option<&[(&str, u32)]>,
        mut f: impl FnMut(PlannedFile),
    ) -> Result<(), PlanError> {
        self.resolve_files(index, order, |row, r| {
            f(PlannedFile {
                id: row.id.to_string(),
                content_id: row.content_id.map(str::to_string),
                rel_path: r.rel_path.to_string(),
                size: row.size,
                size_unusable: row.size_unusable.clone(),
                mtime_ms: self.opts.dates.pick(&row.dates),
                origin: r.origin,
                renamed_from: r.renamed.then(|| {
                    let name = row.name_escaped.as_deref().unwrap_or(&row.name);
                    match (r.parent_folder, row.parent) {
                        (Some(i), _) => self.original_path(ParentRef::Folder(i as u32), name),
                        (None, Some(p)) => format!("<missing {p}>/{name}"),
                        (None, None) => name.to_string(),
                    }
                }),
                skip: r.skip,
                missing_parent: (r.parent_folder.is_none() && r.origin == Origin::Unlinked)
                    .then(|| row.parent.unwrap_or_default().to_string()),
            })
        })
    }

    /// The one place where a file row gets its restored path, origin, rename and skip
    /// reason, handed over borrowed (the path is built in a buffer reused from row to row),
    /// so a caller that only counts, like [`Plan::totals`], allocates nothing per file.
    fn resolve_files(
        &self,
        index: &Index,
        order: Option<&[(&str, u32)]>,
        mut f: impl FnMut(&FileRow<'_>, &Resolved<'_>),
    ) -> Result<(), PlanError> {
        let mut selected = 0u64;
        let policy = self.opts.policy;
        let mut path = String::new();
        index.for_each_file(order, |row| {
            let (dir, origin, parent_folder): (Cow<str>, Origin, Option<usize>) = match row.parent {
                None => (Cow::Borrowed(""), Origin::OtherRoot, None),
                Some(p) => match self.folders.ids.get(p) {
                    Some(&i) => (
                        Cow::Borrowed(&*self.folders.path[i as usize]),
                        self.folders.origin[i as usize],
                        Some(i as usize),
                    ),
                    None => (
                        Cow::Owned(format!("{UNLINKED_DIR}/{}", self.unlinked.parent_dir(p))),
                        Origin::Unlinked,
                        None,
                    ),
                },
            };
            let name: Cow<str> = match self.suffixed.get(&row.rowid) {
                Some(n) => Cow::Borrowed(&**n),
                None => policy.sanitize(&row.name),
            };
            path.clear();
            if !dir.is_empty() {
                path.push_str(&dir);
                path.push('/');
            }
            path.push_str(&name);
            let mut skip = self.skip_for(origin, &path);
            if skip.is_none() {
                if let Some(limit) = self.opts.limit {
                    if selected >= limit {
                        skip = Some(SkipReason::BeyondLimit);
                    }
                }
            }
            if skip.is_none() {
                selected += 1;
            }
            let resolved = Resolved {
                rel_path: &path,
                origin,
                parent_folder,
                renamed: name != row.name || row.name_escaped.is_some(),
                skip,
            };
            f(&row, &resolved);
        })?;
        Ok(())
    }

    /// Folder rows the plan read from the database (every folder, selected or not).
    pub fn folder_rows(&self) -> u64 {
        self.folders.name.len() as u64
    }

    /// Counts what [`Plan::for_each_file`] would yield (one streaming pass).
    pub fn totals(&self, index: &Index) -> Result<PlanTotals, PlanError> {
        self.totals_knowing(index, &|_, _, _, _| false)
    }

    /// [`Plan::totals`], with the selected files that `done_before(id, path, size, mtime)`
    /// says an earlier run finished counted apart (a resume's progress counts them as settled
    /// from the start, not as the stream passes them).
    pub fn totals_knowing(
        &self,
        index: &Index,
        done_before: DoneBefore<'_>,
    ) -> Result<PlanTotals, PlanError> {
        let mut t = PlanTotals {
            folders: self.folders.name.len() as u64,
            ..Default::default()
        };
        let count = |row: &FileRow<'_>, r: &Resolved<'_>| {
            t.files += 1;
            match r.skip {
                None => {
                    t.selected_files += 1;
                    // Of the files restored: a renamed file left out is not restored renamed.
                    t.renamed_files += r.renamed as u64;
                    t.selected_bytes = t.selected_bytes.saturating_add(row.size);
                    let mtime = self.opts.dates.pick(&row.dates);
                    t.undated_files += mtime.is_none() as u64;
                    if done_before(row.id, r.rel_path, row.size, mtime) {
                        t.done_before_files += 1;
                        t.done_before_bytes = t.done_before_bytes.saturating_add(row.size);
                    }
                }
                Some(_) => t.filtered += 1,
            }
        };
        self.resolve_files(index, self.order_for(false).as_deref(), count)?;
        Ok(t)
    }
}

/// Whether `path` is `prefix` or below it, comparing whole components.
pub fn under(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_matches('/');
    prefix.is_empty()
        || path == prefix
        || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("no user `{user}` in this dump; users are: {known}")]
    UnknownUser { user: String, known: String },
    #[error(
        "--only `{only}` matches nothing in this dump: {hint} (`plan` lists every restored path)"
    )]
    OnlyMatchesNothing { only: String, hint: String },
    #[error(
        "--only `{only}` is in the device's Trash, and `{trash}` is restored only with --include-trash: add --include-trash to restore it"
    )]
    OnlyInTrash { only: String, trash: String },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::schema::{FILES_TABLE_SQL, FOLDER_MIME};
    use std::path::Path;

    /// (id, parent, name, is_folder)
    fn db(dir: &Path, rows: &[(&str, Option<&str>, &str, bool)]) -> Index {
        let p = dir.join("index.db");
        let c = rusqlite::Connection::open(&p).unwrap();
        c.execute_batch(FILES_TABLE_SQL).unwrap();
        for (i, (id, parent, name, folder)) in rows.iter().enumerate() {
            c.execute(
                "INSERT INTO Files(id,parentID,contentID,version,name,birthTime,cTime,size,mimeType,storageID,hidden)
                 VALUES (?1,?2,?3,1,?4,1600000000000,1600000000000,?5,?6,'local',1)",
                rusqlite::params![id, parent, format!("c{i}"), name, if *folder { 0 } else { 3 },
                    if *folder { FOLDER_MIME } else { "image/jpeg" }],
            )
            .unwrap();
        }
        drop(c);
        Index::open(&p, None).unwrap()
    }

    fn opts() -> PlanOptions {
        PlanOptions {
            policy: NamePolicy::Posix,
            include_trash: false,
            only: vec![],
            users: vec![],
            limit: None,
            dates: DatePolicy::now(dates::parse_fields("cTime").unwrap()),
        }
    }

    fn paths(idx: &Index, o: PlanOptions) -> (Plan, Vec<(String, String, Option<SkipReason>)>) {
        let plan = Plan::build(idx, o).unwrap();
        let mut v = vec![];
        plan.for_each_file(idx, |f| v.push((f.id, f.rel_path, f.skip)))
            .unwrap();
        v.sort();
        (plan, v)
    }

    /// Every file's and folder's restored path, sorted.
    fn all_paths(idx: &Index, o: PlanOptions, every_folder: bool) -> Vec<(String, String)> {
        let plan = Plan::build_naming(idx, o, every_folder).unwrap();
        let mut v = vec![];
        plan.for_each_file_any_order(idx, |f| v.push((f.id, f.rel_path)))
            .unwrap();
        for (id, &i) in &plan.folders.ids {
            v.push((id.to_string(), plan.folders.path[i as usize].to_string()));
        }
        v.sort();
        v
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(96))]
        /// The plan names together only the rows of folders where two names collide (and
        /// the top of DEST): every row must get the path it gets when every folder is named
        /// so. Names are drawn from a few that collide as they are, by case, by Unicode
        /// form, once made safe, with a suffix the naming makes, or with `_unlinked`;
        /// parents from the roots, folders made before, a missing id and the users.
        #[test]
        fn naming_only_crowded_folders_names_every_row_as_naming_all_would(
            rows in proptest::collection::vec((0usize..8, 0usize..12, proptest::bool::ANY), 1..50),
            users in 1usize..3,
            windows in proptest::bool::ANY,
            trash in proptest::bool::ANY,
        ) {
            const NAMES: [&str; 12] = [
                "a", "A", "a:b", "a_b", "IMG.JPG", "img.jpg", "_unlinked", "Trash",
                "x (2)", "x", "\u{e9}", "e\u{301}",
            ];
            let t = tempfile::tempdir().unwrap();
            let mut owned: Vec<(String, Option<String>, String, bool)> = vec![];
            let mut folders: Vec<String> = vec![];
            for u in 0..users {
                owned.push((format!("user{u}"), None, format!("auth0|{u}"), true));
                folders.push(format!("user{u}"));
            }
            owned.push(("trash".into(), None, "Trash".into(), true));
            for (i, (parent, name, folder)) in rows.iter().enumerate() {
                let parent = match parent {
                    0 => None,
                    1 => Some("gone".to_string()),
                    2 if trash => Some("trash".to_string()),
                    n => Some(folders[n % folders.len()].clone()),
                };
                let id = format!("r{:02}", (i * 7) % 50);
                let id = if owned.iter().any(|r| r.0 == id) { format!("s{i}") } else { id };
                if *folder {
                    folders.push(id.clone());
                }
                owned.push((id, parent, NAMES[*name].to_string(), *folder));
            }
            let rows: Vec<(&str, Option<&str>, &str, bool)> = owned
                .iter()
                .map(|(id, p, n, f)| (id.as_str(), p.as_deref(), n.as_str(), *f))
                .collect();
            let idx = db(t.path(), &rows);
            let mut o = opts();
            o.include_trash = true;
            if windows {
                o.policy = NamePolicy::Windows;
            }
            proptest::prop_assert_eq!(
                all_paths(&idx, o.clone(), false),
                all_paths(&idx, o, true)
            );
        }
    }

    const U1: &str = "u1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const U2: &str = "u2aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const TR: &str = "traaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    #[test]
    fn folders_too_deep_for_a_linux_path_continue_under_unlinked_regression_round_13() {
        // A chain of 2,500 nested folders named `d` (5,000 bytes of path at the bottom) and
        // a parent cycle of 600 folders with 10-byte names, broken open into a chain of the
        // same length. Every folder path used to be kept whole: paths no destination can
        // make (each of those folders failed, listed), gigabytes at 50,000 deep.
        let t = tempfile::tempdir().unwrap();
        let chain: Vec<String> = (0..2500).map(|i| format!("c{i:05}")).collect();
        let ring: Vec<String> = (0..600).map(|i| format!("r{i:05}")).collect();
        let mut rows: Vec<(&str, Option<&str>, &str, bool)> = vec![(U1, None, "auth0|abc", true)];
        for (i, id) in chain.iter().enumerate() {
            let parent = if i == 0 { U1 } else { chain[i - 1].as_str() };
            rows.push((id, Some(parent), "d", true));
        }
        rows.push(("fdeep", Some(chain[2499].as_str()), "bottom.jpg", false));
        for (i, id) in ring.iter().enumerate() {
            rows.push((id, Some(ring[(i + 1) % 600].as_str()), "ring:12345", true));
        }
        rows.push(("fring", Some(ring[1].as_str()), "in ring.jpg", false));
        let idx = db(t.path(), &rows);
        let (plan, v) = paths(&idx, opts());
        let folders = plan.folders_deepest_first();
        assert_eq!(folders.len(), 3100);
        for f in &folders {
            assert!(
                f.rel_path.len() <= MAX_FOLDER_PATH_BYTES,
                "{}",
                f.rel_path.len()
            );
        }
        let get = |id: &str| v.iter().find(|x| x.0 == id).unwrap().1.clone();
        // The chain goes on under the first folder whose path would not fit.
        let deep: Vec<&Problem> = plan
            .problems()
            .iter()
            .filter(|p| matches!(p.kind, ProblemKind::TooDeep { .. }))
            .collect();
        let first = deep.iter().find(|p| p.id.starts_with('c')).unwrap();
        let at = chain.iter().position(|c| *c == first.id).unwrap();
        // `d` and 1,919 x `/d` is 3,839 bytes: with `/` before it, a `/` and a 255-byte
        // name below it and the NUL, 4,097.
        assert_eq!(at, 1919);
        assert_eq!(
            first.kind,
            ProblemKind::TooDeep {
                parent_id: chain[at - 1].clone()
            }
        );
        assert_eq!(
            first.restored_path,
            format!("_unlinked/deep-{}/d", first.id)
        );
        let bottom = get("fdeep");
        assert!(bottom.starts_with(&format!("_unlinked/deep-{}/d/", first.id)));
        assert!(bottom.ends_with("/d/bottom.jpg"), "{bottom}");
        assert_eq!(bottom.split('/').filter(|c| *c == "d").count(), 2500 - at);
        // The ring: broken at its smallest id, then split where its path would not fit.
        let fring = get("fring");
        assert!(fring.starts_with("_unlinked/deep-r"), "{fring}");
        assert!(deep.iter().filter(|p| p.id.starts_with('r')).count() >= 1);
        // Renamed folders (`:` is kept under posix, so none here) and cycle members keep
        // bounded restored paths.
        for p in plan.problems() {
            assert!(p.restored_path.len() + 2 <= MAX_PATH_BYTES);
        }
    }

    #[test]
    fn original_paths_of_renamed_folders_stay_bounded() {
        let t = tempfile::tempdir().unwrap();
        let chain: Vec<String> = (0..1100).map(|i| format!("c{i:05}")).collect();
        let mut rows: Vec<(&str, Option<&str>, &str, bool)> = vec![(U1, None, "auth0|abc", true)];
        for (i, id) in chain.iter().enumerate() {
            let parent = if i == 0 { U1 } else { chain[i - 1].as_str() };
            rows.push((id, Some(parent), "a:b", true));
        }
        let idx = db(t.path(), &rows);
        let mut o = opts();
        o.policy = NamePolicy::Windows;
        let (plan, _) = paths(&idx, o);
        assert_eq!(plan.folder_renames().len(), 1100);
        for r in plan.folder_renames() {
            assert!(
                r.original.len() < MAX_PATH_BYTES + 16,
                "{}",
                r.original.len()
            );
            assert!(r.original.ends_with("a:b"));
        }
        let deepest = plan
            .folder_renames()
            .iter()
            .map(|r| r.original.len())
            .max()
            .unwrap();
        assert!(deepest > MAX_PATH_BYTES - 8, "{deepest}");
        assert!(plan
            .folder_renames()
            .iter()
            .any(|r| r.original.starts_with(".../")));
    }

    #[test]
    fn a_duplicated_folder_id_keeps_its_first_row_and_its_children() {
        let t = tempfile::tempdir().unwrap();
        // The real schema's unique index on id is damaged: two folder rows share `d1`.
        let idx = db(
            t.path(),
            &[
                (U1, None, "auth0|abc", true),
                ("d1", Some(U1), "Photos", true),
                ("d1", Some(U1), "Other", true),
                ("f1", Some("d1"), "a.jpg", false),
            ],
        );
        let (_, v) = paths(&idx, opts());
        // In one of the two (whichever row the database lists first), not under `_unlinked`
        // as if its parent were missing.
        assert!(
            matches!(v[0].1.as_str(), "Photos/a.jpg" | "Other/a.jpg"),
            "{v:?}"
        );
    }

    #[test]
    fn single_user_children_go_to_the_top_and_trash_is_filtered() {
        let t = tempfile::tempdir().unwrap();
        let idx = db(
            t.path(),
            &[
                (U1, None, "auth0|abc", true),
                (TR, None, "Trash", true),
                ("d1", Some(U1), "Photos", true),
                ("f1", Some("d1"), "a.jpg", false),
                ("f2", Some(U1), "top.txt", false),
                ("f3", Some(TR), "gone.jpg", false),
            ],
        );
        let (_, v) = paths(&idx, opts());
        assert_eq!(
            v,
            [
                ("f1".into(), "Photos/a.jpg".into(), None),
                ("f2".into(), "top.txt".into(), None),
                (
                    "f3".into(),
                    "Trash/gone.jpg".into(),
                    Some(SkipReason::InTrash)
                ),
            ]
        );
        let (_, v) = paths(
            &idx,
            PlanOptions {
                include_trash: true,
                ..opts()
            },
        );
        assert_eq!(v[2].2, None);
    }

    /// Review A5: `--only Trash` without --include-trash selected nothing, exited 0 with a
    /// warning about case, and made an empty `Trash/` on DEST (the folders above an --only
    /// path were made whatever their origin). Now refused while planning, and no folder of
    /// a part the selection leaves out is made.
    #[test]
    fn only_in_trash_needs_include_trash_and_makes_no_folder_of_a_filtered_part() {
        let t = tempfile::tempdir().unwrap();
        let idx = db(
            t.path(),
            &[
                (U1, None, "auth0|abc", true),
                (TR, None, "Trash", true),
                ("d1", Some(U1), "Photos", true),
                ("d2", Some(TR), "Old", true),
                ("f1", Some("d1"), "a.jpg", false),
                ("f2", Some("d2"), "gone.jpg", false),
            ],
        );
        let only = |only: &str, include_trash: bool| {
            Plan::build(
                &idx,
                PlanOptions {
                    only: vec![only.into()],
                    include_trash,
                    ..opts()
                },
            )
        };
        for o in [
            "Trash",
            "Trash/",
            "Trash/Old",
            "Trash/Old/gone.jpg",
            "Trash/nope",
        ] {
            let e = only(o, false).err().expect(o).to_string();
            assert!(e.contains("restored only with --include-trash"), "{o}: {e}");
        }
        let plan = only("Trash/Old", true).unwrap();
        let folders: Vec<String> = plan
            .folders_deepest_first()
            .into_iter()
            .map(|f| f.rel_path)
            .collect();
        assert_eq!(folders, ["Trash/Old", "Trash"]);
        // A refusal's list of top folders leaves out the Trash it would not restore.
        let e = only("Nope/x", false).err().unwrap().to_string();
        assert!(e.contains("Photos") && !e.contains("Trash"), "{e}");

        // An --only path in another user's folders than --user selects is refused, naming
        // the user (round 10 made no folder for it; it selected nothing, exit 0).
        let idx = db(
            &{
                let d = t.path().join("two");
                std::fs::create_dir(&d).unwrap();
                d
            },
            &[
                (U1, None, "auth0|abc", true),
                (U2, None, "auth0|def", true),
                ("d1", Some(U2), "Docs", true),
                ("f1", Some("d1"), "a.txt", false),
            ],
        );
        let e = Plan::build(
            &idx,
            PlanOptions {
                users: vec!["auth0_abc".into()],
                only: vec!["auth0_def/Docs".into()],
                ..opts()
            },
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("add --user auth0_def"), "{e}");
    }

    /// An `--only` path whose last part names no folder was accepted as a possible file name
    /// without a look (exit 0, nothing restored). It is now accepted only as the restored
    /// path of a file, named as the plan names it (made safe, suffixed, at the top for a
    /// parentless row), and refused otherwise, with the close names.
    #[test]
    fn only_a_file_path_the_plan_restores_is_accepted_for_the_last_part() {
        let t = tempfile::tempdir().unwrap();
        let idx = db(
            t.path(),
            &[
                (U1, None, "auth0|abc", true),
                (U2, None, "auth0|def", true),
                ("d1", Some(U1), "Photos", true),
                ("f1", Some("d1"), "a:b.jpg", false),
                ("f2", Some("d1"), "x.jpg", false),
                ("f3", Some("d1"), "X.JPG", false),
                ("f4", None, "loose.txt", false),
            ],
        );
        let windows = || PlanOptions {
            policy: NamePolicy::Windows,
            ..opts()
        };
        let restored: Vec<String> = paths(&idx, windows()).1.into_iter().map(|f| f.1).collect();
        let suffixed = restored
            .iter()
            .find(|p| p.contains(" (2)"))
            .expect("x.jpg and X.JPG collide");
        let only = |o: &str| {
            Plan::build(
                &idx,
                PlanOptions {
                    only: vec![o.into()],
                    ..windows()
                },
            )
        };
        for o in [
            "auth0_abc/Photos/a_b.jpg",
            suffixed,
            "loose.txt",
            "auth0_abc/Photos",
        ] {
            let (_, v) = paths(
                &idx,
                PlanOptions {
                    only: vec![o.into()],
                    ..windows()
                },
            );
            assert!(v.iter().any(|f| f.2.is_none()), "{o} selects a file: {v:?}");
        }
        for (o, hint) in [
            (
                "auth0_abc/Photos/a:b.jpg",
                "no folder or file `a:b.jpg` in `auth0_abc/Photos`",
            ),
            ("auth0_abc/Photos/zzz", "no folder or file `zzz`"),
            (
                "auth0_abc/Photos/A_B.JPG",
                "did you mean `auth0_abc/Photos/a_b.jpg`",
            ),
            ("loose", "did you mean `loose.txt`"),
            ("auth0_abc/Phot", "did you mean `auth0_abc/Photos`"),
            (
                "auth0_abc/Phot/x.jpg",
                "there is no folder `auth0_abc/Phot`; did you mean `auth0_abc/Photos`",
            ),
            ("zzz", "the top folders are auth0_abc, auth0_def"),
        ] {
            let e = only(o).err().expect(o).to_string();
            assert!(
                e.contains("matches nothing") && e.contains(hint),
                "{o}: {e}"
            );
        }
    }

    #[test]
    fn several_users_get_one_labelled_folder_each() {
        let t = tempfile::tempdir().unwrap();
        let idx = db(
            t.path(),
            &[
                (U1, None, "auth0|abc", true),
                (U2, None, "auth0|def", true),
                ("f1", Some(U1), "a.jpg", false),
                ("f2", Some(U2), "a.jpg", false),
            ],
        );
        let (plan, v) = paths(
            &idx,
            PlanOptions {
                users: vec!["auth0_def".into()],
                ..opts()
            },
        );
        assert_eq!(v[0].1, "auth0_abc/a.jpg");
        assert_eq!(v[0].2, Some(SkipReason::OtherUser));
        assert_eq!(v[1].1, "auth0_def/a.jpg");
        assert_eq!(v[1].2, None);
        assert_eq!(plan.users().len(), 2);
        // The auth0 id, with or without its prefix, names the same user.
        for given in ["auth0|def", "def"] {
            let (_, by_id) = paths(
                &idx,
                PlanOptions {
                    users: vec![given.into()],
                    ..opts()
                },
            );
            assert_eq!(by_id, v, "--user {given}");
        }
        for unknown in ["nobody", "de", "auth0_de", ""] {
            let e = Plan::build(
                &idx,
                PlanOptions {
                    users: vec![unknown.into()],
                    ..opts()
                },
            );
            let e = e.err().unwrap().to_string();
            assert!(e.contains("auth0_abc, auth0_def"), "{unknown}: {e}");
        }
    }

    #[test]
    fn unlinked_rows_and_cycles_are_placed_and_reported_without_hanging() {
        let t = tempfile::tempdir().unwrap();
        let idx = db(
            t.path(),
            &[
                (U1, None, "auth0|abc", true),
                ("da", Some("db"), "A", true),
                ("db", Some("da"), "B", true),
                ("dc", Some("dc"), "Self", true),
                ("f1", Some("da"), "in-cycle.txt", false),
                ("dx", Some("gone"), "Orphan", true),
                ("f2", Some("dx"), "o.txt", false),
                ("f3", Some("gone2"), "loose.txt", false),
                ("f4", Some("f3"), "under-file.txt", false),
            ],
        );
        let (plan, v) = paths(&idx, opts());
        let get = |id: &str| v.iter().find(|x| x.0 == id).unwrap().1.clone();
        assert_eq!(get("f1"), "_unlinked/cycle-da/A/in-cycle.txt");
        assert_eq!(get("f2"), "_unlinked/gone/Orphan/o.txt");
        assert_eq!(get("f3"), "_unlinked/gone2/loose.txt");
        assert_eq!(get("f4"), "_unlinked/f3/under-file.txt");
        let kinds: Vec<_> = plan
            .problems()
            .iter()
            .map(|p| (p.id.as_str(), p.kind.clone()))
            .collect();
        assert!(kinds.contains(&(
            "da",
            ProblemKind::Cycle {
                cycle_root: "da".into()
            }
        )));
        assert!(kinds.contains(&(
            "db",
            ProblemKind::Cycle {
                cycle_root: "da".into()
            }
        )));
        assert!(kinds.contains(&(
            "dc",
            ProblemKind::Cycle {
                cycle_root: "dc".into()
            }
        )));
        assert!(kinds.contains(&(
            "dx",
            ProblemKind::MissingParent {
                parent_id: "gone".into()
            }
        )));
        let b = plan.folders_deepest_first();
        assert!(b.iter().any(|f| f.rel_path == "_unlinked/cycle-da/A/B"));
    }

    /// Folders moved to `_unlinked/` for being too deep are named there like the others:
    /// two whose ids are one name once made safe, or one whose `deep-<id>` is a missing
    /// parent's id, shared a folder (and a file there could be taken for another's copy).
    #[test]
    fn folders_too_deep_get_their_own_unlinked_folders() {
        let t = tempfile::tempdir().unwrap();
        // Two chains of 2,100 `d` folders; each has its 1,920th folder (the first whose
        // path would not fit) with an id that is `k_1` once made safe.
        let chain = |tag: &str, deep: &str| -> Vec<String> {
            (0..2100)
                .map(|i| match i {
                    1919 => deep.to_string(),
                    _ => format!("{tag}{i:05}"),
                })
                .collect()
        };
        let (a, b) = (chain("a", "k/1"), chain("b", "k_1"));
        let mut rows: Vec<(&str, Option<&str>, &str, bool)> = vec![(U1, None, "auth0|abc", true)];
        for (c, top) in [(&a, "d"), (&b, "e")] {
            for (i, id) in c.iter().enumerate() {
                let parent = if i == 0 { U1 } else { c[i - 1].as_str() };
                rows.push((id, Some(parent), if i == 0 { top } else { "d" }, true));
            }
        }
        rows.push(("fa", Some(a[2099].as_str()), "x.txt", false));
        rows.push(("fb", Some(b[2099].as_str()), "x.txt", false));
        rows.push(("fm", Some("deep-k_1"), "x.txt", false));
        let idx = db(t.path(), &rows);
        let (_, v) = paths(&idx, opts());
        let get = |id: &str| v.iter().find(|x| x.0 == id).unwrap().1.clone();
        assert_eq!(get("fm"), "_unlinked/deep-k_1/x.txt");
        let under = |id: &str| get(id).split('/').take(2).collect::<Vec<_>>().join("/");
        assert_eq!(under("fa"), "_unlinked/deep-k_1 (2)");
        assert_eq!(under("fb"), "_unlinked/deep-k_1 (3)");
    }

    /// The folders in `_unlinked/` are named as siblings are: missing parents whose ids are
    /// one name once made safe, and a missing parent named like a cycle's folder, each get
    /// their own folder (they shared one, and a file there was taken for another's copy).
    #[test]
    fn missing_parents_and_cycles_that_sanitize_alike_get_their_own_unlinked_folders() {
        let t = tempfile::tempdir().unwrap();
        let idx = db(
            t.path(),
            &[
                (U1, None, "auth0|abc", true),
                ("f1", Some("a/b"), "x.txt", false),
                ("f2", Some("a_b"), "x.txt", false),
                ("f3", Some("AB"), "x.txt", false),
                ("f4", Some("ab"), "x.txt", false),
                ("f5", Some("cycle-da"), "x.txt", false),
                ("da", Some("da"), "Self", true),
                ("f6", Some("da"), "x.txt", false),
            ],
        );
        let (_, posix) = paths(&idx, opts());
        let (_, windows) = paths(
            &idx,
            PlanOptions {
                policy: NamePolicy::Windows,
                ..opts()
            },
        );
        let get = |v: &[(String, String, Option<SkipReason>)], id: &str| {
            v.iter().find(|x| x.0 == id).unwrap().1.clone()
        };
        assert_eq!(get(&posix, "f1"), "_unlinked/a_b/x.txt");
        assert_eq!(get(&posix, "f2"), "_unlinked/a_b (2)/x.txt");
        assert_eq!(get(&posix, "f3"), "_unlinked/AB/x.txt");
        assert_eq!(get(&posix, "f4"), "_unlinked/ab/x.txt");
        assert_eq!(get(&posix, "f5"), "_unlinked/cycle-da/x.txt");
        assert_eq!(get(&posix, "f6"), "_unlinked/cycle-da (2)/Self/x.txt");
        assert_eq!(get(&windows, "f3"), "_unlinked/AB/x.txt");
        assert_eq!(get(&windows, "f4"), "_unlinked/ab (2)/x.txt");
        let distinct: std::collections::BTreeSet<String> =
            windows.iter().map(|x| x.1.to_lowercase()).collect();
        assert_eq!(distinct.len(), windows.len(), "{windows:?}");
    }

    #[test]
    fn duplicate_names_get_suffixes_in_id_order_including_folders() {
        let t = tempfile::tempdir().unwrap();
        let idx = db(
            t.path(),
            &[
                (U1, None, "auth0|abc", true),
                ("b2", Some(U1), "x.jpg", false),
                ("a1", Some(U1), "x.jpg", false),
                ("c3", Some(U1), "x.jpg", true),
                ("d4", Some("c3"), "inner", false),
                ("e5", Some(U1), "_unlinked", false),
            ],
        );
        let (plan, v) = paths(&idx, opts());
        let get = |id: &str| v.iter().find(|x| x.0 == id).unwrap().1.clone();
        assert_eq!(get("a1"), "x.jpg");
        assert_eq!(get("b2"), "x (2).jpg");
        assert_eq!(get("d4"), "x (3).jpg/inner");
        assert_eq!(get("e5"), "_unlinked (2)");
        assert_eq!(plan.folder_renames().len(), 1);
        assert_eq!(plan.folder_renames()[0].original, "x.jpg");
    }

    /// Original paths as the device showed them: the only user's folder, which the restore
    /// leaves out, is left out of them too; with several users each one's folder stays.
    /// (They began with `auth0|abc/` while the restored paths did not: round 16.)
    #[test]
    fn original_paths_leave_out_the_only_users_folder_regression_round_16() {
        let renames = |dir: &str, rows: &[(&str, Option<&str>, &str, bool)]| {
            let d = tempfile::tempdir().unwrap();
            let d = d.path().join(dir);
            std::fs::create_dir_all(&d).unwrap();
            let idx = db(&d, rows);
            let plan = Plan::build(
                &idx,
                PlanOptions {
                    policy: NamePolicy::Windows,
                    ..opts()
                },
            )
            .unwrap();
            let mut v: Vec<(String, String)> = (plan.folder_renames().iter())
                .map(|r| (r.original.clone(), r.restored.clone()))
                .collect();
            plan.for_each_file(&idx, |f| {
                if let Some(o) = f.renamed_from {
                    v.push((o, f.rel_path));
                }
            })
            .unwrap();
            v.sort();
            v
        };
        let one = [
            (U1, None, "auth0|abc", true),
            ("d1", Some(U1), "a:b", true),
            ("f1", Some("d1"), "x?.jpg", false),
            ("f2", Some(U1), "y?.jpg", false),
        ];
        assert_eq!(
            renames("one", &one),
            [
                ("a:b".into(), "a_b".into()),
                ("a:b/x?.jpg".into(), "a_b/x_.jpg".into()),
                ("y?.jpg".into(), "y_.jpg".into()),
            ]
        );
        let mut two = one.to_vec();
        two.push((U2, None, "auth0|def", true));
        assert_eq!(
            renames("two", &two),
            [
                ("auth0|abc/a:b".into(), "auth0_abc/a_b".into()),
                ("auth0|abc/a:b/x?.jpg".into(), "auth0_abc/a_b/x_.jpg".into()),
                ("auth0|abc/y?.jpg".into(), "auth0_abc/y_.jpg".into()),
            ]
        );
    }

    #[test]
    fn only_and_limit_select_and_every_file_is_still_yielded() {
        let t = tempfile::tempdir().unwrap();
        let idx = db(
            t.path(),
            &[
                (U1, None, "auth0|abc", true),
                ("d1", Some(U1), "Photos", true),
                ("d2", Some(U1), "Photos2", true),
                ("f1", Some("d1"), "1", false),
                ("f2", Some("d1"), "2", false),
                ("f3", Some("d2"), "3", false),
            ],
        );
        let (plan, v) = paths(
            &idx,
            PlanOptions {
                only: vec!["Photos/".into()],
                limit: Some(1),
                ..opts()
            },
        );
        let skips: Vec<_> = v.iter().map(|x| x.2).collect();
        assert_eq!(
            skips,
            [
                None,
                Some(SkipReason::BeyondLimit),
                Some(SkipReason::NotUnderOnly)
            ]
        );
        let t = plan.totals(&idx).unwrap();
        assert_eq!((t.files, t.selected_files, t.filtered), (3, 1, 2));
    }

    #[test]
    fn under_compares_whole_components() {
        assert!(under("Photos/a", "Photos"));
        assert!(under("Photos", "Photos/"));
        assert!(!under("Photos2/a", "Photos"));
        assert!(under("x", ""));
    }
}
