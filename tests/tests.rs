//! CLI behaviour, end to end, on seeded demo dumps and the real binary.

mod messy;
mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::Path;

use predicates::prelude::*;
use util::*;

/// Selected file entries of a plan: path -> (id, size, mtime_ms).
fn planned_files(lines: &[serde_json::Value]) -> BTreeMap<String, (String, u64, Option<i64>)> {
    of_type(lines, "file")
        .into_iter()
        .filter(|f| f["skip"].is_null())
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                (
                    f["id"].as_str().unwrap().to_string(),
                    f["size"].as_u64().unwrap(),
                    f["mtime_ms"].as_i64(),
                ),
            )
        })
        .collect()
}

/// The planned path of the file of row `id` (panics if the plan has none).
fn planned_path_of(plan: &[serde_json::Value], id: &str) -> String {
    planned_files(plan)
        .into_iter()
        .find(|(_, (i, _, _))| i == id)
        .unwrap_or_else(|| panic!("{id} planned"))
        .0
}

fn mtime_ms(p: &Path) -> i64 {
    std::fs::metadata(p)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Every file below `root`.
fn walk_files(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Every restored folder has its planned date.
fn assert_folder_dates(dump: &Dump, dest: &Path) {
    let plan = plan_json(&dump.root, dest, &[]);
    let mut checked = 0;
    for f in of_type(&plan, "folder") {
        let (Some(path), Some(ms)) = (f["path"].as_str(), f["mtime_ms"].as_i64()) else {
            continue;
        };
        assert_eq!(mtime_ms(&dest.join(path)), ms, "{path} has its date");
        checked += 1;
    }
    assert!(checked > 0);
}

#[test]
fn restored_tree_matches_the_plan_exactly() {
    restored_tree_matches_the_plan("", "unnamed", false);
}

/// The same with hidden named temporary files renamed into place: what NFS, SMB and FUSE
/// destinations get (they do not support unnamed files).
#[test]
fn restored_tree_matches_the_plan_exactly_with_named_temporary_files() {
    restored_tree_matches_the_plan("named_temps=1", "named", false);
}

/// The same with another filesystem mounted inside DEST that has no unnamed files (a FUSE
/// mount, as a second disk through ntfs-3g or exFAT-fuse would be): its files go through
/// named temporary files there, and the report says how many. Needs root and `bindfs`
/// (`.ci/run` installs it and sets MCR_TEST_FUSE=require, so CI cannot skip it).
#[test]
fn restored_tree_matches_the_plan_exactly_with_a_fuse_mount_inside_dest() {
    restored_tree_matches_the_plan("", "unnamed", true);
}

/// A `bindfs` mount of `backing` at `at`, unmounted when dropped; None (test skipped) where
/// FUSE mounts cannot be made, unless MCR_TEST_FUSE=require.
struct FuseMount(std::path::PathBuf);

impl FuseMount {
    fn new(backing: &Path, at: &Path) -> Option<FuseMount> {
        FuseMount::with("bindfs", &[backing.as_os_str()], at)
    }

    /// Mounts with `program ARGS... AT` (a FUSE filesystem).
    fn with(program: &str, args: &[&std::ffi::OsStr], at: &Path) -> Option<FuseMount> {
        let required = std::env::var("MCR_TEST_FUSE").as_deref() == Ok("require");
        let made = std::process::Command::new(program)
            .args(args)
            .arg(at)
            .output();
        match made {
            Ok(o) if o.status.success() => Some(FuseMount(at.to_path_buf())),
            other => {
                assert!(!required, "{program} {}: {other:?}", at.display());
                eprintln!("skipped: cannot mount {program} (needs root and {program}): {other:?}");
                None
            }
        }
    }
}

/// Whether `at` is a mount point now (`/proc/self/mounts`, spaces written `\040` there).
fn is_mounted(at: &Path) -> bool {
    let at = at.to_string_lossy().replace(' ', "\\040");
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(at.as_str()))
}

impl Drop for FuseMount {
    fn drop(&mut self) {
        if !is_mounted(&self.0) {
            return;
        }
        let unmounted = std::process::Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        let unmounted = unmounted
            || std::process::Command::new("fusermount3")
                .arg("-u")
                .arg(&self.0)
                .status()
                .is_ok_and(|s| s.success());
        // Still busy: a process of the test (a restore left with a call on a share whose
        // server was killed) holds a file there for a moment more. Detached lazily, so that
        // no dead mount is left behind (round 21 found one in /tmp after the suite).
        if !unmounted {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
}

fn restored_tree_matches_the_plan(faults: &str, temp_files: &str, fuse_inside: bool) {
    let dump = Dump::new(7, 400, 1);
    let dest = dump.path("restored");
    let before = SourceSnapshot::take(&dump);
    let plan = plan_json(&dump.root, &dest, &["--names", "posix"]);
    // The top folder with the most files goes to the FUSE mount.
    let mut fuse = None;
    let mut fuse_top = String::new();
    if fuse_inside {
        let mut by_top: BTreeMap<String, u64> = BTreeMap::new();
        for path in planned_files(&plan).keys() {
            if let Some((top, _)) = path.split_once('/') {
                *by_top.entry(top.to_string()).or_default() += 1;
            }
        }
        let (top, _) = by_top.into_iter().max_by_key(|(_, n)| *n).unwrap();
        let backing = dump.path("fuse-backing");
        std::fs::create_dir_all(&backing).unwrap();
        std::fs::create_dir_all(dest.join(&top)).unwrap();
        fuse = FuseMount::new(&backing, &dest.join(&top));
        if fuse.is_none() {
            return;
        }
        fuse_top = top;
    }
    let (out, report) = restore(
        &dump,
        &dest,
        &["--names", "posix", "--threads", "4"],
        &[("MYCLOUD_RECOVER_FAULTS", faults)],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "missing objects make exit 1: {}",
        text(&out)
    );
    assert_eq!(report["temp_files"], temp_files, "placement used");

    let expected = planned_files(&plan);
    let cids = dump.content_ids();
    let missing: BTreeSet<&String> = dump.manifest.missing_object_ids.iter().collect();
    let on_dest = file_hashes(&dest);
    let mut expected_present = BTreeSet::new();
    for (path, (id, size, mtime)) in &expected {
        if missing.contains(id) {
            assert!(
                !on_dest.contains_key(path),
                "missing object {id} must not appear at {path}"
            );
            continue;
        }
        expected_present.insert(path.clone());
        let p = dest.join(path);
        let have = on_dest
            .get(path)
            .unwrap_or_else(|| panic!("{path} not restored"));
        match &cids[id].0 {
            Some(cid) => assert_eq!(*have, hash_file(&dump.object(cid).unwrap()), "{path} bytes"),
            None => assert_eq!(*size, 0),
        }
        if let Some(ms) = mtime {
            assert_eq!(mtime_ms(&p), *ms, "{path} mtime follows the date policy");
        }
    }
    let present: BTreeSet<String> = on_dest.keys().cloned().collect();
    assert_eq!(
        present, expected_present,
        "nothing more, nothing less (no temp files)"
    );

    // Folder dates follow the plan too.
    for f in of_type(&plan, "folder") {
        let p = dest.join(f["path"].as_str().unwrap());
        assert!(
            p.is_dir(),
            "folder {} restored (empty folders too)",
            p.display()
        );
        if let Some(ms) = f["mtime_ms"].as_i64() {
            assert_eq!(mtime_ms(&p), ms, "folder date {}", p.display());
        }
    }

    // Every missing object is in the report with its reason, and the counts add up.
    let problems: BTreeSet<String> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    let want: BTreeSet<String> = missing.iter().map(|s| s.to_string()).collect();
    assert_eq!(problems, want);
    assert_eq!(outcome_sum(&report), dump.manifest.files);
    assert_eq!(report["outcomes"]["missing"], want.len() as u64);
    assert_eq!(report["schema_version"], 1);
    assert_eq!(SourceSnapshot::take(&dump), before, "source unchanged");

    let warnings = report["warnings"].to_string();
    if fuse.is_some() {
        let under = format!("{fuse_top}/");
        let placed = present.iter().filter(|p| p.starts_with(&under)).count();
        assert!(placed > 10, "{placed} files under {under}");
        assert_eq!(
            file_hashes(&dump.path("fuse-backing")).len(),
            placed,
            "written through the mount"
        );
        assert!(
            warnings.contains(&format!(
                "{placed} files went to folders on another filesystem"
            )),
            "{warnings}"
        );
    } else {
        assert!(!warnings.contains("another filesystem"), "{warnings}");
    }
    drop(fuse);
}

/// The checkpoint is opened for writing only once the plan is sound: a restore that fails at
/// planning (an unknown --user, even with --fresh) forgets no progress, and the next run does
/// not take it for a crash (which would walk the destination for temporary files).
#[test]
fn a_restore_that_fails_at_planning_changes_nothing_in_the_checkpoint() {
    let dump = Dump::new(9, 120, 1);
    let dest = dump.path("restored");
    let (_, first) = restore(&dump, &dest, &[], &[]);
    let copied = first["outcomes"]["copied"].as_u64().unwrap();
    assert!(copied > 80);
    bin()
        .arg("restore")
        .arg(&dump.root)
        .arg(&dest)
        .arg("--state-dir")
        .arg(dump.path("state"))
        .args(["--user", "nobody", "--fresh"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no user `nobody`"));
    let (out, second) = restore(&dump, &dest, &[], &[]);
    assert_eq!(second["outcomes"]["copied"], 0, "{}", text(&out));
    assert_eq!(second["outcomes"]["already_done"], copied);
    assert!(
        second["phases"].get("temp_cleanup").is_none(),
        "{}",
        second["phases"]
    );
}

#[test]
fn second_run_restores_nothing_and_reports_all_as_already_done() {
    let dump = Dump::new(8, 150, 1);
    let dest = dump.path("restored");
    let (_, first) = restore(&dump, &dest, &[], &[]);
    let copied = first["outcomes"]["copied"].as_u64().unwrap();
    assert!(copied > 100);
    let tree_before = tree(&dest);
    let (out, second) = restore(&dump, &dest, &[], &[]);
    assert_eq!(second["outcomes"]["copied"], 0, "{}", text(&out));
    assert_eq!(second["outcomes"]["already_done"], copied);
    assert_eq!(
        second["outcomes"]["missing"], first["outcomes"]["missing"],
        "missing ones are retried"
    );
    assert_eq!(outcome_sum(&second), dump.manifest.files);
    assert_eq!(
        tree(&dest),
        tree_before,
        "nothing on the destination was touched"
    );
}

#[test]
fn dry_run_writes_nothing_anywhere() {
    let dump = Dump::new(9, 120, 1);
    let dest = dump.path("restored");
    let before = SourceSnapshot::take(&dump);
    let (out, _) = restore(&dump, &dest, &["--dry-run"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("would copy"));
    assert!(!dest.exists(), "dry run created the destination");
    assert!(
        !dump.path("state").exists(),
        "dry run created the state folder"
    );
    assert_eq!(SourceSnapshot::take(&dump), before);
}

/// The count on the summary line that starts with `label` ("would copy", "already done"),
/// grouped ("1,024") or not: 0 when no such line.
fn summary_count(said: &str, label: &str) -> u64 {
    said.lines()
        .find(|l| l.trim_start().starts_with(label))
        .and_then(|l| l.split_whitespace().find_map(count_of))
        .unwrap_or(0)
}

/// A restore killed after placing 30 files and before recording them, then one placed file
/// given zeros for data under its size and date (what a power cut can leave on ext4). Its
/// path relative to `dest`.
fn crash_leaving_a_zeroed_file(dump: &Dump, dest: &Path) -> String {
    let (out, _) = restore(
        dump,
        dest,
        &["--threads", "2"],
        &[(
            "MYCLOUD_RECOVER_FAULTS",
            "abort_after_renames=30;commit_ms=60000",
        )],
    );
    assert!(out.status.code().is_none(), "aborted: {}", text(&out));
    let plan = plan_json(&dump.root, dest, &[]);
    let (zeroed, _) = planned_files(&plan)
        .into_iter()
        .find(|(p, (_, size, ms))| *size > 0 && ms.is_some() && dest.join(p).is_file())
        .expect("a file the killed run placed");
    let p = dest.join(&zeroed);
    let m = std::fs::metadata(&p).unwrap();
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(m.len()).unwrap();
    f.set_times(std::fs::FileTimes::new().set_modified(m.modified().unwrap()))
        .unwrap();
    zeroed
}

/// A dry run after a partial restore says what the next real run would do, from the
/// checkpoint as it is: files recorded as done count as done (not "already on
/// destination"), a file `regen --content` marked wrong is to be copied again (not kept),
/// and other name rules are refused as the real run refuses them. The state folder and DEST
/// are left exactly as they were (by `status` too).
#[test]
fn a_dry_run_reads_the_checkpoint_without_writing_it() {
    let dump = Dump::new(31, 120, 1);
    let dest = dump.path("restored");
    let state = dump.path("state");
    let (_, first) = restore(&dump, &dest, &["--limit", "60", "--names", "posix"], &[]);
    let copied = first["outcomes"]["copied"].as_u64().unwrap();
    assert!(copied > 10, "{first}");
    // One restored file gets other bytes under its size and date; `regen --content` marks it.
    let plan = planned_files(&plan_json(&dump.root, &dest, &["--names", "posix"]));
    let wrong = plan
        .keys()
        .find(|p| plan[*p].1 > 0 && dest.join(p).is_file())
        .unwrap();
    let path = dest.join(wrong);
    let date = path.metadata().unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(date)
        .unwrap();
    let out = regen(&dump, &dest, &["--names", "posix", "--content"]);
    assert!(out.status.success(), "{}", text(&out));

    let (state_before, dest_before) = (tree(&state), tree(&dest));
    let checkpoint_before = hash_file(&state.join("checkpoint.db"));
    let (out, _) = restore(&dump, &dest, &["--dry-run", "--names", "posix"], &[]);
    let said = text(&out);
    let count = |label: &str| summary_count(&said, label);
    assert_eq!(count("already done"), copied - 1, "{said}");
    assert_eq!(count("already on destination"), 0, "{said}");
    let would = count("would copy");
    assert_eq!(
        would + count("missing object") + count("not selected") + copied - 1,
        dump.manifest.files,
        "{said}"
    );

    let (out, _) = restore(&dump, &dest, &["--dry-run", "--names", "windows"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("was restored with --names posix so far"),
        "{}",
        text(&out)
    );
    // Nor does `status`, which reads the same checkpoint.
    let out = bin()
        .arg("status")
        .arg("--state-dir")
        .arg(&state)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        tree(&state),
        state_before,
        "a dry run or status writes no state"
    );
    assert_eq!(hash_file(&state.join("checkpoint.db")), checkpoint_before);
    assert_eq!(
        tree(&dest),
        dest_before,
        "a dry run changes nothing on DEST"
    );

    // The real run does what the dry run said: the marked file copied again with the rest.
    let (_, real) = restore(&dump, &dest, &["--names", "posix"], &[]);
    assert_eq!(real["outcomes"]["copied"].as_u64(), Some(would), "{real}");
    assert_eq!(std::fs::read(&path).unwrap(), {
        bytes[0] ^= 0xff;
        bytes
    });
}

/// Round 12 review: after a run that died (kill -9, a power cut), a dry run adopted by size
/// and date the files that run placed without recording them, while the real run compares
/// them with their objects first (the checkpoint's doubt takes in a last run that died):
/// a file left with its size and date but zeros for data was "already on destination" in
/// the dry run and copied again by the real run.
#[test]
fn a_dry_run_after_a_crash_compares_the_files_the_real_run_compares() {
    let dump = Dump::new(131, 120, 1);
    let dest = dump.path("restored");
    crash_leaving_a_zeroed_file(&dump, &dest);
    let (out, _) = restore(&dump, &dest, &["--dry-run"], &[]);
    let said = text(&out);
    let count = |label: &str| summary_count(&said, label);
    let (would, kept) = (count("would copy"), count("already on destination"));
    let (out, real) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(real["outcomes"]["copied"].as_u64(), Some(would), "{said}");
    assert_eq!(real["outcomes"]["adopted"].as_u64(), Some(kept), "{said}");
    assert_restored_exactly(&dump, &dest);
}

#[test]
fn limit_restores_exactly_that_many_files() {
    let dump = Dump::new(10, 120, 1);
    let dest = dump.path("restored");
    let (out, report) = restore(&dump, &dest, &["--limit", "7"], &[]);
    let copied = report["outcomes"]["copied"].as_u64().unwrap();
    let missing = report["outcomes"]["missing"].as_u64().unwrap();
    assert_eq!(copied + missing, 7);
    // Exit 1 exactly when one of the seven has no object (the dump has some on purpose).
    let expected = if missing > 0 { 1 } else { 0 };
    assert_eq!(out.status.code(), Some(expected), "{}", text(&out));
    assert_eq!(file_hashes(&dest).len() as u64, copied);
    assert_eq!(outcome_sum(&report), dump.manifest.files);
}

#[test]
fn unreadable_object_is_reported_and_the_rest_completes() {
    let dump = Dump::new(11, 120, 1);
    let dest = dump.path("restored");
    let cids = dump.content_ids();
    let (victim_id, (cid, _)) = cids
        .iter()
        .find(|(id, (c, size))| {
            c.is_some()
                && *size > 0
                && !dump.manifest.missing_object_ids.contains(id)
                && !dump.manifest.unlinked_ids.contains(id)
        })
        .unwrap();
    let cid = cid.clone().unwrap();
    let fault = format!("unreadable={cid}");
    let (out, report) = restore(&dump, &dest, &[], &[("MYCLOUD_RECOVER_FAULTS", &fault)]);
    assert_eq!(out.status.code(), Some(1));
    let failed: Vec<_> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["outcome"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["id"], victim_id.as_str());
    assert!(failed[0]["reason"]
        .as_str()
        .unwrap()
        .contains("cannot read object"));
    assert!(
        text(&out).contains("Permission denied")
            || failed[0]["reason"].as_str().unwrap().contains("denied")
    );
    assert_eq!(outcome_sum(&report), dump.manifest.files);
    // The failed file is retried on the next run and then succeeds.
    let (_, again) = restore(&dump, &dest, &[], &[]);
    assert_eq!(again["outcomes"]["copied"], 1);
    assert_eq!(again["outcomes"]["failed"], 0);
}

#[test]
fn failed_close_leaves_no_final_and_no_temp_file() {
    failed_close_leaves_nothing("");
}

#[test]
fn failed_close_leaves_no_final_and_no_temp_file_with_named_temporary_files() {
    failed_close_leaves_nothing("named_temps=1;");
}

fn failed_close_leaves_nothing(mode: &str) {
    let dump = Dump::new(12, 60, 1);
    let dest = dump.path("restored");
    let cids = dump.content_ids();
    let (_, (cid, _)) = cids
        .iter()
        .find(|(id, (c, _))| c.is_some() && !dump.manifest.missing_object_ids.contains(id))
        .unwrap();
    let fault = format!("{mode}fail_close={}", cid.clone().unwrap());
    let (out, report) = restore(&dump, &dest, &[], &[("MYCLOUD_RECOVER_FAULTS", &fault)]);
    assert_eq!(out.status.code(), Some(1));
    let failed = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["outcome"] == "failed")
        .unwrap();
    assert!(
        failed["reason"].as_str().unwrap().contains("cannot close"),
        "{failed}"
    );
    assert!(!dest.join(failed["path"].as_str().unwrap()).exists());
    assert!(
        tree(&dest).keys().all(|p| !p.contains(".mcr-")),
        "temp file left behind"
    );
}

/// A restore on one thread with a progress line every second (plain, as without a
/// terminal), slowed by `faults` so that there are lines to read.
fn restore_with_progress_lines(
    dump: &Dump,
    dest: &Path,
    faults: &str,
) -> (std::process::Output, serde_json::Value) {
    restore(
        dump,
        dest,
        &["--threads", "1", "--progress-interval", "1"],
        &[("MYCLOUD_RECOVER_FAULTS", faults)],
    )
}

/// The progress lines of `err` that start with `start` (after "progress: ").
fn progress_lines<'a>(err: &'a str, start: &str) -> Vec<&'a str> {
    err.lines()
        .filter(|l| l.starts_with(&format!("progress: {start}")))
        .collect()
}

/// The percentage a file progress line starts with.
fn percent_of(line: &str) -> f64 {
    line["progress: ".len()..]
        .split('%')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn plain_periodic_progress_lines_when_not_a_terminal() {
    let dump = Dump::new(13, 60, 1);
    let dest = dump.path("restored");
    let (out, _) = restore_with_progress_lines(&dump, &dest, "delay_ms=50");
    let err = String::from_utf8_lossy(&out.stderr);
    let lines = progress_lines(&err, "");
    assert!(lines.len() >= 2, "{err}");
    assert!(
        !err.contains('\r') && !err.contains('\u{1b}'),
        "no terminal control codes: {err:?}"
    );
    for l in &lines {
        assert!(
            l.contains("files/s") && l.contains("ETA") && l.contains('%'),
            "{l}"
        );
    }
    // Percentages never go backwards.
    let pct: Vec<f64> = lines.iter().map(|l| percent_of(l)).collect();
    assert!(pct.windows(2).all(|w| w[0] <= w[1]), "{pct:?}");
}

/// Round 19's review: round 18 grouped the folder counts by thousands, but the file counts
/// beside them stayed ungrouped ("copied 99993" over "24,997 folders kept today's date").
/// A restore of over a thousand files groups them in the start line, the progress lines
/// and the summary's table; the report's JSON keeps numbers.
#[test]
fn a_restore_of_over_a_thousand_files_groups_its_counts_regression_round_19() {
    let dump = Dump::new(19, 1_200, 1);
    let dest = dump.path("restored");
    let (out, report) = restore_with_progress_lines(&dump, &dest, "delay_ms=2");
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    // Under a million: "1,0xx".
    let grouped = |n: u64| format!("{},{:03}", n / 1000, n % 1000);
    let copied = report["outcomes"]["copied"].as_u64().unwrap();
    let (files, selected) = (
        report["totals"]["files"].as_u64().unwrap(),
        report["totals"]["selected_files"].as_u64().unwrap(),
    );
    assert!(copied >= 1_000 && selected >= copied, "{report}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("\n  {:<27} {:>9}  ", "copied", grouped(copied))),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "({} files planned, {} selected, ",
            grouped(files),
            grouped(selected)
        )),
        "{said}"
    );
    assert_eq!(summary_count(&said, "copied"), copied, "{said}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("restoring {} files (", grouped(selected))),
        "{err}"
    );
    let lines = progress_lines(&err, "");
    let line = lines
        .iter()
        .find(|l| l.contains("| files "))
        .unwrap_or_else(|| panic!("a progress line of the files: {err}"));
    assert!(
        line.contains(&format!("/{} | ", grouped(selected))),
        "{line}"
    );
    // The report's JSON (read above: `copied`, the totals) keeps plain numbers.
    assert!(report["not_processed"].is_u64(), "{report}");
}

/// The passes over the folders after the last file show their progress: over a network
/// destination, dating a real device's 344K folders is one round trip each, half an hour
/// at 5 ms, which the files' 100% said nothing about.
#[test]
fn the_folder_dates_pass_shows_its_progress_regression_round_17() {
    let dump = Dump::new(13, 60, 1);
    let dest = dump.path("restored");
    let (out, report) = restore_with_progress_lines(&dump, &dest, "folder_delay_ms=300");
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines = progress_lines(&err, "setting folder dates: ");
    // 11 folders at 300 ms each on one thread: two lines or more, a second apart.
    assert!(lines.len() >= 2, "{err}");
    let done: Vec<u64> = lines
        .iter()
        .map(|l| {
            l.split(": ")
                .nth(2)
                .unwrap()
                .split(' ')
                .next()
                .and_then(count_of)
                .unwrap()
        })
        .collect();
    assert!(done.windows(2).all(|w| w[0] < w[1]), "{done:?}");
    let took = report["phases"]["folder_dates"].as_f64().unwrap();
    assert!(took >= 3.0, "{took}");
    for l in &lines {
        assert!(
            l.contains(" folders (") && l.contains("folders/s, ETA "),
            "{l}"
        );
    }
}

/// On a resume the files an earlier run finished count as settled from the first progress
/// line, not as the stream happens to pass them (it read 9% with 40% done).
#[test]
fn a_resume_counts_what_earlier_runs_finished_from_the_first_progress_line() {
    let dump = Dump::new(14, 150, 1);
    let dest = dump.path("restored");
    let (out, first) = restore(&dump, &dest, &["--limit", "100"], &[]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    let before = first["outcomes"]["copied"].as_u64().unwrap();
    let (out, _) = restore(
        &dump,
        &dest,
        &["--threads", "1", "--progress-interval", "1"],
        &[("MYCLOUD_RECOVER_FAULTS", "delay_ms=40")],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.starts_with("progress: "))
        .unwrap_or_else(|| panic!("a progress line: {err}"));
    let settled: u64 = line
        .split("files ")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(count_of)
        .unwrap_or_else(|| panic!("{line}"));
    assert!(settled >= before, "{before} were done before: {line}");
    // The start line says so too (it said "restoring 147 files" as if none were done).
    assert!(
        err.contains(&format!(", {before} of them (")) && err.contains("done by earlier runs"),
        "{err}"
    );
}

/// Files an earlier run finished are named as such ("already done before") once the stream
/// passes them, not once the whole stream is handed out: between copies, the planner held
/// up to 1,023 of them while it waited for the workers, and the label came in the last
/// seconds of the run.
#[test]
fn files_done_before_are_told_as_the_stream_passes_them_regression_round_17() {
    let dump = Dump::new(5, 1500, 1);
    let dest = dump.path("restored");
    let (out, first) = restore(&dump, &dest, &["--only", "Documents"], &[]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    let documents = first["outcomes"]["copied"].as_u64().unwrap();
    assert!((50..1000).contains(&documents), "{documents}");
    let (out, report) = restore_with_progress_lines(&dump, &dest, "delay_ms=5");
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    assert_eq!(report["outcomes"]["already_done"], documents);
    let err = String::from_utf8_lossy(&out.stderr);
    let line = *progress_lines(&err, "")
        .iter()
        .find(|l| l.contains("already done before"))
        .unwrap_or_else(|| panic!("no progress line says what was done before: {err}"));
    assert!(
        line.contains(&format!("| {documents} already done before")),
        "{line}"
    );
    // Documents is among the first folders of the stream: its files are told while most
    // of the copying is ahead (held back, they came with the last few hundred files).
    assert!(percent_of(line) < 50.0, "{line}");
}

/// The count of the files runs on its own thread beside the copy. When it ends after the
/// last file (here it is held back 1.5 s on a small dump), the totals still reach the report
/// and the start line, which comes once and before any progress line.
#[test]
fn a_count_that_ends_after_the_copy_still_gives_every_total() {
    let dump = Dump::new(16, 120, 1);
    let dest = dump.path("restored");
    let (out, report) = restore(
        &dump,
        &dest,
        &["--threads", "2", "--progress-interval", "1"],
        &[("MYCLOUD_RECOVER_FAULTS", "count_delay_ms=1500")],
    );
    assert!(out.status.code().unwrap() <= 1, "{}", text(&out));
    let totals = &report["totals"];
    let outcomes = report["outcomes"].as_object().unwrap();
    let settled: u64 = outcomes.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(totals["files"].as_u64().unwrap(), settled, "{report}");
    assert_eq!(
        totals["files"].as_u64().unwrap(),
        dump.manifest.files,
        "{report}"
    );
    assert_eq!(report["not_processed"], 0);
    let err = String::from_utf8_lossy(&out.stderr);
    let starts: Vec<usize> = err
        .lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with("restoring "))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(starts.len(), 1, "one start line: {err}");
    // Before it, what the engine is doing while it reads the index (seconds at 1.7M rows).
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines[0].starts_with("planning: reading "), "{err}");
    assert!(
        lines[..starts[0]].iter().any(|l| l.starts_with("planned ")),
        "{err}"
    );
    assert!(
        err.lines()
            .take(starts[0])
            .all(|l| !l.starts_with("progress: ")),
        "no progress before the start line: {err}"
    );
    let selected = totals["selected_files"].as_u64().unwrap();
    assert!(
        err.contains(&format!("restoring {selected} files")),
        "the start line has the counted total: {err}"
    );
}

#[test]
fn one_user_goes_to_the_top_and_trash_only_when_asked() {
    let dump = Dump::new(14, 200, 1);
    let dest = dump.path("restored");
    let (out, report) = restore(&dump, &dest, &[], &[]);
    assert!(out.status.code().unwrap() <= 1);
    let top: BTreeSet<String> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !top.iter().any(|n| n.starts_with("auth0")),
        "single user root is the top: {top:?}"
    );
    assert!(!top.contains("Trash"));
    assert!(top.contains("_unlinked"));
    assert_eq!(
        report["filtered_by_reason"]["trash"],
        dump.manifest.trash_files
    );

    let dest2 = dump.path("with-trash");
    let (_, r2) = restore(
        &dump,
        &dest2,
        &[
            "--include-trash",
            "--state-dir",
            dump.path("s2").to_str().unwrap(),
        ],
        &[],
    );
    assert!(dest2.join("Trash").is_dir());
    assert_eq!(r2["outcomes"]["filtered"], 0);
}

#[test]
fn several_users_get_one_folder_each_and_user_selects_one() {
    let dump = Dump::new(15, 300, 3);
    let plan = plan_json(&dump.root, &dump.path("d"), &[]);
    let tops: BTreeSet<String> = of_type(&plan, "file")
        .iter()
        .map(|f| {
            f["path"]
                .as_str()
                .unwrap()
                .split('/')
                .next()
                .unwrap()
                .to_string()
        })
        .filter(|t| t.starts_with("auth0_"))
        .collect();
    assert_eq!(tops.len(), 3, "{tops:?}");
    let label = tops.iter().next().unwrap().clone();
    let plan = plan_json(&dump.root, &dump.path("d"), &["--user", &label]);
    for f in of_type(&plan, "file") {
        let p = f["path"].as_str().unwrap();
        if p.starts_with("auth0_") && !p.starts_with(&label) {
            assert_eq!(f["skip"], "other_user", "{p}");
        }
    }
    bin()
        .args(["plan"])
        .arg(&dump.root)
        .arg(dump.path("d"))
        .args(["--user", "nobody"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("auth0_"));
    // --only in another user's folders selected nothing and ended with a hint about case.
    let other = tops.iter().nth(1).unwrap();
    let other_folder = of_type(&plan, "file")
        .iter()
        .filter_map(|f| f["path"].as_str())
        .filter(|p| p.starts_with(other.as_str()) && p.matches('/').count() >= 2)
        .map(|p| p.rsplit_once('/').unwrap().0.to_string())
        .next()
        .unwrap();
    bin()
        .args(["plan", "--summary"])
        .arg(&dump.root)
        .arg(dump.path("d"))
        .args(["--user", &label, "--only", &other_folder])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!("add --user {other}")));
    bin()
        .args(["plan", "--summary"])
        .arg(&dump.root)
        .arg(dump.path("d"))
        .args(["--user", other, "--only", &other_folder])
        .assert()
        .success();
}

/// `--user` takes the user's label or its auth0 id: the id as the index holds it in the
/// root's name (`auth0|<hex>`), and the bare hex (refused with the list of users before,
/// though the help offers "its auth0 id"). What names no user is still refused.
#[test]
fn user_is_selected_by_its_label_or_its_auth0_id_with_or_without_the_prefix() {
    let dump = Dump::new(15, 150, 2);
    let name = dump.manifest.users[1].clone();
    let hex = name.strip_prefix("auth0|").unwrap().to_string();
    let label = name.replace('|', "_");
    let dest = dump.path("d");
    let selected = |user: &str| -> BTreeSet<String> {
        of_type(&plan_json(&dump.root, &dest, &["--user", user]), "file")
            .iter()
            .filter(|f| f["skip"].is_null())
            .map(|f| f["path"].as_str().unwrap().to_string())
            .collect()
    };
    // Files outside the users' folders (unlinked rows, loose at the top) go with any user.
    let by_label = selected(&label);
    let users_files = by_label.iter().filter(|p| p.starts_with("auth0_"));
    assert!(
        users_files.clone().count() > 0
            && users_files
                .clone()
                .all(|p| p.starts_with(&format!("{label}/"))),
        "{by_label:?}"
    );
    assert_eq!(selected(&name), by_label, "--user {name}");
    assert_eq!(selected(&hex), by_label, "--user {hex}");
    // A restore with the bare id restores that user's files, and only them.
    let (out, rep) = restore(&dump, &dest, &["--user", &hex], &[]);
    assert_eq!(rep["complete"], true, "{}", text(&out));
    assert_eq!(
        rep["outcomes"]["copied"],
        by_label.len() as u64 - rep["outcomes"]["missing"].as_u64().unwrap()
    );
    assert!(rep["filtered_by_reason"]["other_user"].as_u64().unwrap() > 0);
    let restored: BTreeSet<String> = tree(&dest)
        .into_iter()
        .filter(|(_, (dir, _, _))| !dir)
        .map(|(p, _)| p)
        .collect();
    assert!(
        !restored.is_empty() && restored.iter().all(|p| by_label.contains(p)),
        "{restored:?}"
    );
    // Round 24 (found by an exploratory test): after runs with a selection only, `status`
    // gave the outcome counts without the line saying how many files are done (the whole
    // restore's count is not known). It says how many, and why not "of M".
    let st = bin()
        .arg("status")
        .arg("--state-dir")
        .arg(dump.path("state"))
        .output()
        .unwrap();
    let done = rep["outcomes"]["copied"].as_u64().unwrap();
    assert!(
        text(&st).contains(&format!(
            "Restored or already there: {done} files (of the whole restore: known once a run without --only, --user or --limit has counted it)"
        )),
        "{}",
        text(&st)
    );
    // Part of an id, or an id with the label's `_`, names no user: refused, with the users.
    for wrong in [
        &hex[..6],
        &format!("auth0_{}", &hex[..6]),
        &format!("auth0|{hex}0"),
    ] {
        bin()
            .arg("plan")
            .arg(&dump.root)
            .arg(&dest)
            .args(["--user", wrong])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(format!(
                "no user `{wrong}` in this dump; users are: "
            )))
            .stderr(predicate::str::contains(&label));
    }
}

#[test]
fn unlinked_rows_and_cycles_are_restored_under_unlinked_and_reported() {
    let dump = Dump::new(16, 300, 1);
    let plan = plan_json(&dump.root, &dump.path("d"), &[]);
    let files = of_type(&plan, "file");
    for id in dump
        .manifest
        .unlinked_ids
        .iter()
        .chain(&dump.manifest.cycle_file_ids)
        .chain(&dump.manifest.file_under_file_ids)
    {
        if let Some(f) = files.iter().find(|f| f["id"] == id.as_str()) {
            assert!(f["path"].as_str().unwrap().starts_with("_unlinked/"), "{f}");
        }
    }
    let problems: BTreeSet<String> = of_type(&plan, "problem")
        .iter()
        .map(|p| p["problem"]["id"].as_str().unwrap().to_string())
        .collect();
    for id in &dump.manifest.cycle_folder_ids {
        assert!(problems.contains(id), "cycle folder {id} reported");
    }
    // Every row whose own parent is missing (folders and files alike) is listed as a
    // problem; rows below such a folder follow it and are covered by its entry.
    let ids = dump.content_ids();
    let reported = dump
        .manifest
        .unlinked_ids
        .iter()
        .filter(|id| problems.contains(*id))
        .count();
    let unlinked_files = dump
        .manifest
        .unlinked_ids
        .iter()
        .filter(|id| ids.contains_key(*id))
        .count();
    assert!(
        reported >= 3 && reported < dump.manifest.unlinked_ids.len(),
        "{reported} of {:?}",
        dump.manifest.unlinked_ids
    );
    assert!(unlinked_files >= 2);
    for id in &dump.manifest.file_under_file_ids {
        assert!(problems.contains(id), "file under a file {id} reported");
    }
}

#[test]
fn folders_are_detected_by_mime_type_not_by_missing_content_id() {
    let dump = Dump::new(17, 200, 1);
    let dest = dump.path("restored");
    restore(&dump, &dest, &[], &[]);
    let plan = plan_json(&dump.root, &dest, &[]);
    let folders = of_type(&plan, "folder");
    assert!(folders.len() > 20);
    for f in folders {
        assert!(dest.join(f["path"].as_str().unwrap()).is_dir());
    }
    // Folder objects are never restored as files.
    let n_files = file_hashes(&dest).len() as u64;
    assert!(n_files < dump.manifest.files, "only file rows become files");
}

#[test]
fn windows_names_are_valid_and_unique_ignoring_case() {
    let dump = Dump::new(18, 400, 1);
    let dest = dump.path("restored");
    let (_, report) = restore(&dump, &dest, &["--names", "windows"], &[]);
    let t = tree(&dest);
    let mut per_dir: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in t.keys() {
        let (dir, name) = p.rsplit_once('/').unwrap_or(("", p));
        assert!(
            !name
                .chars()
                .any(|c| "<>:\"\\|?*".contains(c) || c.is_control()),
            "{p}"
        );
        assert!(!name.ends_with('.') && !name.ends_with(' '), "{p}");
        assert!(name.len() <= 255);
        let stem = name.split('.').next().unwrap().to_ascii_uppercase();
        assert!(
            !["CON", "NUL", "PRN", "AUX", "COM1", "LPT1"].contains(&stem.as_str()),
            "{p}"
        );
        assert!(
            per_dir
                .entry(dir.to_string())
                .or_default()
                .insert(name.to_lowercase()),
            "case collision at {p}"
        );
    }
    assert!(
        report["renamed"].as_array().unwrap().len() >= 5,
        "renames are listed"
    );
    for r in report["renamed"].as_array().unwrap() {
        assert!(r["original"].is_string() && r["restored"].is_string());
    }
}

/// A renamed name's original path is the path the device showed, so it can be matched with
/// its restored path: with one user, the user's `auth0|...` folder (which the restore leaves
/// out) is not in it; with several, each user's folder is (restored as `auth0_...`). Every
/// original path began with `auth0|...` (round 16).
#[test]
fn renamed_paths_leave_out_the_only_users_folder_regression_round_16() {
    for users in [1, 2] {
        let dump = Dump::new(18, 400, users);
        let dest = dump.path("restored");
        let (out, report) = restore(&dump, &dest, &["--names", "windows"], &[]);
        assert!(out.status.code().unwrap() <= 1, "{}", text(&out));
        let renamed: BTreeMap<&str, &str> = report["renamed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["restored"].as_str().unwrap(),
                    r["original"].as_str().unwrap(),
                )
            })
            .collect();
        let plan = plan_json(&dump.root, &dest, &["--names", "windows"]);
        let from_plan = of_type(&plan, "file")
            .into_iter()
            .filter(|f| f["skip"].is_null() && !f["renamed_from"].is_null())
            .map(|f| {
                (
                    f["path"].as_str().unwrap(),
                    f["renamed_from"].as_str().unwrap(),
                )
            });
        let mut checked = 0;
        for (restored, original) in renamed.iter().map(|(r, o)| (*r, *o)).chain(from_plan) {
            assert_eq!(
                original.starts_with("auth0|"),
                users > 1,
                "{original} -> {restored}"
            );
            // Where no folder above it was renamed, the original is in the restored folder.
            let Some((dir, _)) = restored.rsplit_once('/') else {
                continue;
            };
            let above = dir.match_indices('/').map(|(i, _)| &dir[..i]);
            if above.chain([dir]).any(|d| renamed.contains_key(d)) || dir.starts_with("_unlinked") {
                continue;
            }
            let dir = dir.replacen("auth0_", "auth0|", 1);
            assert!(
                original.starts_with(&format!("{dir}/")),
                "{original} -> {restored}"
            );
            checked += 1;
        }
        assert!(checked > 5, "{users} users: {checked} renames checked");
    }
}

#[test]
fn posix_names_keep_what_linux_allows_and_handle_the_rest() {
    let dump = Dump::new(19, 400, 1);
    let plan = plan_json(&dump.root, &dump.path("d"), &["--names", "posix"]);
    let paths: Vec<String> = of_type(&plan, "file")
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    assert!(
        paths.iter().any(|p| p.contains('|')),
        "pipes are legal on POSIX"
    );
    for p in &paths {
        for c in p.split('/') {
            assert!(
                !c.is_empty() && c != "." && c != ".." && c.len() <= 255,
                "{p}"
            );
        }
    }
    let renamed: Vec<_> = of_type(&plan, "file")
        .into_iter()
        .filter(|f| !f["renamed_from"].is_null())
        .collect();
    assert!(
        renamed
            .iter()
            .any(|f| f["path"].as_str().unwrap().contains(" (2)")),
        "duplicates get suffixes"
    );
    assert!(
        renamed
            .iter()
            .any(|f| f["path"].as_str().unwrap().contains('~')),
        "long names are shortened with a hash"
    );
}

#[test]
fn collision_suffixes_are_identical_across_runs_and_rebuilt_dumps() {
    let a = Dump::new(20, 300, 1);
    let b = Dump::new(20, 300, 1);
    let pa = plan_json(&a.root, &a.path("d"), &["--names", "windows"]);
    let pa2 = plan_json(&a.root, &a.path("d"), &["--names", "windows"]);
    let pb = plan_json(&b.root, &b.path("d"), &["--names", "windows"]);
    let paths = |v: &[serde_json::Value]| -> Vec<(String, String)> {
        of_type(v, "file")
            .iter()
            .map(|f| {
                (
                    f["id"].as_str().unwrap().into(),
                    f["path"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    assert_eq!(paths(&pa), paths(&pa2));
    assert_eq!(paths(&pa), paths(&pb));
}

#[test]
fn source_is_unchanged_by_every_command() {
    let dump = Dump::new(21, 150, 2);
    let before = SourceSnapshot::take(&dump);
    let dest = dump.path("restored");
    bin().arg("inspect").arg(&dump.root).assert().success();
    bin()
        .arg("inspect")
        .arg(&dump.root)
        .arg("--json")
        .assert()
        .success();
    bin()
        .arg("plan")
        .arg(&dump.root)
        .arg(&dest)
        .assert()
        .success();
    restore(&dump, &dest, &["--dry-run"], &[]);
    restore(&dump, &dest, &[], &[]);
    restore(&dump, &dest, &[], &[]);
    bin()
        .arg("status")
        .arg("--state-dir")
        .arg(dump.path("state"))
        .assert()
        .success();
    assert_eq!(SourceSnapshot::take(&dump), before);
    let db_dir = dump.root.join("restsdk/data/db");
    let names: Vec<String> = std::fs::read_dir(db_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["index.db"],
        "no -wal, -shm or -journal beside the database"
    );
}

#[test]
fn inspect_counts_match_the_dump() {
    let dump = Dump::new(22, 250, 2);
    let out = bin()
        .arg("inspect")
        .arg(&dump.root)
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["counts"]["files"], dump.manifest.files);
    assert_eq!(v["counts"]["folders"], dump.manifest.folders);
    assert_eq!(v["counts"]["bytes"], dump.manifest.bytes);
    assert_eq!(v["users"].as_array().unwrap().len(), 2);
    assert_eq!(v["trash_files"], dump.manifest.trash_files);
    assert!(v["objects_found"].as_u64().unwrap() * 10 > v["objects_sampled"].as_u64().unwrap() * 9);
    assert!(v["integrity"].as_array().unwrap().is_empty());
    let human = bin().arg("inspect").arg(&dump.root).output().unwrap();
    assert!(String::from_utf8_lossy(&human.stdout).contains("Users: 2"));
}

#[test]
fn inspect_warns_loudly_when_objects_do_not_match() {
    let dump = Dump::with(
        23,
        100,
        1,
        mycloud_recover::demo::SizeMix::Demo,
        mycloud_recover::demo::Content::None,
    );
    bin()
        .arg("inspect")
        .arg(&dump.root)
        .assert()
        .success()
        .stdout(
            predicate::str::contains("WARNING").and(predicate::str::contains("layout may differ")),
        );
}

#[test]
fn bad_input_gets_a_clear_message_and_exit_2() {
    let t = tempfile::tempdir().unwrap();
    bin()
        .args(["inspect"])
        .arg(t.path().join("nope"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("does not exist"));
    bin()
        .args(["inspect"])
        .arg(t.path())
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("restsdk/data/db/index.db")
                .and(predicate::str::contains("--db")),
        );
    // Not a database.
    let d = t.path().join("restsdk/data");
    std::fs::create_dir_all(d.join("db")).unwrap();
    std::fs::create_dir_all(d.join("files")).unwrap();
    std::fs::write(d.join("db/index.db"), vec![b'z'; 8192]).unwrap();
    bin()
        .args(["inspect"])
        .arg(t.path())
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("not a SQLite database")
                .and(predicate::str::contains("index.db")),
        );
    // Destination inside the source, refused before anything is written.
    let dump = Dump::new(24, 30, 1);
    let inside = dump.root.join("restsdk/restored");
    bin()
        .arg("restore")
        .arg(&dump.root)
        .arg(&inside)
        .arg("--state-dir")
        .arg(dump.path("s"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("inside the source"));
    assert!(!inside.exists());
    // Named at restsdk/data, the source is still the whole disk; and a DEST holding the
    // source is refused (a restored folder named `dump` would be written into it).
    let before = SourceSnapshot::take(&dump);
    let data = dump.root.join("restsdk/data");
    for (dest, says) in [
        (dump.root.join("restsdk"), "inside the source"),
        (dump.root.join("restsdk/out"), "inside the source"),
        (dump.path(""), "contains the source"),
    ] {
        bin()
            .arg("restore")
            .arg(&data)
            .arg(&dest)
            .arg("--state-dir")
            .arg(dump.path("s"))
            .assert()
            .code(2)
            .stderr(predicate::str::contains(says));
    }
    assert!(!dump.root.join("restsdk/out").exists());
    assert_eq!(SourceSnapshot::take(&dump), before);
    // An object store that holds none of the sampled objects (here: emptied, in a copy)
    // would give empty folders only: refused, nothing written.
    let copy = dump.path("emptied");
    std::fs::create_dir_all(copy.join("restsdk/data/files")).unwrap();
    std::fs::create_dir_all(copy.join("restsdk/data/db")).unwrap();
    std::fs::copy(dump.db(), copy.join("restsdk/data/db/index.db")).unwrap();
    bin()
        .arg("restore")
        .arg(&copy)
        .arg(dump.path("from-emptied"))
        .arg("--state-dir")
        .arg(dump.path("s2"))
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("has its object under")
                .and(predicate::str::contains("inspect")),
        );
    assert!(!dump.path("from-emptied").exists());
    // A report file inside the source (here: over the index itself), refused the same way.
    bin()
        .arg("restore")
        .arg(&dump.root)
        .arg(dump.path("out"))
        .arg("--state-dir")
        .arg(dump.path("s"))
        .arg("--report")
        .arg(dump.db())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("report file").and(predicate::str::contains("--report")));
    assert_eq!(SourceSnapshot::take(&dump), before);
    assert!(!dump.path("out").exists());
    bin()
        .args(["restore", "--threads", "lots"])
        .arg(&dump.root)
        .arg(dump.path("x"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--threads"));
}

/// Round 15 review: the guard that keeps every write out of the source compared paths as
/// text, so a DEST reaching the dump through a bind mount (or the disk mounted twice)
/// passed, and the restore wrote into the dump's `restsdk/data`. Folders on the way are now
/// compared by device and inode too: DEST, the state folder and the report inside the
/// source, and a DEST holding it, are refused (exit 2) with both paths named, and nothing
/// is written. Needs root (`mount --bind`); `.ci/run` makes it required.
#[test]
fn the_source_reached_by_another_path_is_refused_regression_round_15() {
    let dump = Dump::new(15, 40, 1);
    let before = SourceSnapshot::take(&dump);
    let Some(bind) = BindMount::new(&dump.root, &dump.path("second-path")) else {
        return;
    };
    let via = bind.path.clone();
    let above = tempfile::tempdir().unwrap();
    let Some(bind_above) = BindMount::new(dump.tmp.path(), &above.path().join("disk")) else {
        return;
    };
    // Folders between the one named and the objects: a bind mount of one of them is none
    // of the source's own folders (the review of round 15's diff: both passed).
    let Some(bind_data) = BindMount::new(&dump.root.join("restsdk/data"), &dump.path("mid")) else {
        return;
    };
    let Some(bind_restsdk) = BindMount::new(&dump.root.join("restsdk"), &dump.path("mid2")) else {
        return;
    };
    let out = dump.path("out");
    let state = dump.path("s");
    let via_data = via.join("restsdk/data");
    let in_db = via_data.join("db");
    // DEST, state folder, report, what the refusal says.
    let cases = [
        (
            bind_data.path.join("out"),
            state.clone(),
            None,
            "destination",
        ),
        (
            out.clone(),
            bind_restsdk.path.join("st"),
            None,
            "state folder",
        ),
        (
            bind_data.path.join("files/a/out"),
            state.clone(),
            None,
            "destination",
        ),
        (via_data.join("out"), state.clone(), None, "destination"),
        (out.clone(), via.join("restsdk/state"), None, "state folder"),
        (
            out.clone(),
            state.clone(),
            Some(in_db.join("index.db-wal")),
            "report file",
        ),
        // The folder above the dump, through a bind mount: a restored folder named `dump`
        // would land in the source.
        (
            bind_above.path.clone(),
            state.clone(),
            None,
            "contains the source",
        ),
    ];
    for (dest, state, report, says) in cases {
        let mut c = bin();
        c.arg("restore")
            .arg(&dump.root)
            .arg(dest)
            .arg("--state-dir")
            .arg(state);
        if let Some(r) = report {
            c.arg("--report").arg(r);
        }
        let o = c.output().unwrap();
        let e = text(&o);
        assert_eq!(o.status.code(), Some(2), "{says}: {e}");
        assert!(
            e.contains(says) && e.contains("the same folder reached by two paths"),
            "{says}: {e}"
        );
    }
    // Both paths named.
    let o = bin()
        .arg("restore")
        .arg(&dump.root)
        .arg(via_data.join("out"))
        .output()
        .unwrap();
    let e = text(&o);
    assert!(
        e.contains(&*via.to_string_lossy()) && e.contains(&*dump.root.to_string_lossy()),
        "{e}"
    );
    // Pre-flight and plan check DEST the same way.
    for cmd in ["preflight", "plan"] {
        let o = bin()
            .arg(cmd)
            .arg(&dump.root)
            .arg(via_data.join("out"))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{cmd}: {}", text(&o));
    }
    assert!(!out.exists() && !state.exists());
    assert_eq!(SourceSnapshot::take(&dump), before, "source unchanged");
}

/// Round 15 review: a DEST beside the dump on the disk it was read from (allowed: only the
/// source's folders are refused, as a dump copied onto the new disk is restored there)
/// wrote every file onto the disk being recovered from without a word, though `preflight`
/// says "Same filesystem as the source". The restore says so at its start and in the
/// report; on another filesystem it does not.
#[test]
fn a_restore_onto_the_source_s_own_filesystem_warns_regression_round_15() {
    let dump = Dump::new(15, 40, 1);
    let said = "on the same filesystem as the source's objects";
    // Not for a dump `demo` wrote, which is no device's disk: the quick start's first
    // command warned.
    let demo = bin()
        .arg("demo")
        .arg(dump.path("demo"))
        .args(["--files", "40"])
        .output()
        .unwrap();
    assert_eq!(demo.status.code(), Some(1), "{}", text(&demo));
    assert!(!text(&demo).contains(said), "{}", text(&demo));
    // The same dump without the manifest that says `demo` wrote it.
    std::fs::remove_file(dump.root.join("demo-manifest.json")).unwrap();
    let (out, report) = restore(&dump, &dump.path("out"), &["--limit", "5"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    let start = err.find("restoring ").expect("a start line");
    // Before the start line since round 20's review (the start line repeated it).
    assert!(
        err[..start]
            .lines()
            .any(|l| l.starts_with("warning: ") && l.contains(said)),
        "at its start: {err}"
    );
    assert!(report["warnings"].to_string().contains(said), "{report}");
    assert!(
        text(&out).contains("prefer a destination on another disk"),
        "{}",
        text(&out)
    );
    let Some(small) = SmallDisk::mount(&dump, "64m") else {
        return;
    };
    let state = dump.path("state2");
    let (out, report) = restore(
        &dump,
        &small.path.join("out"),
        &["--limit", "5", "--state-dir", state.to_str().unwrap()],
        &[],
    );
    assert!(!text(&out).contains(said), "{}", text(&out));
    assert!(!report["warnings"].to_string().contains(said), "{report}");
}

#[test]
fn malformed_database_suggests_the_backup_copy() {
    let dump = Dump::new(25, 200, 1);
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("index.db");
    let mut bytes = std::fs::read(dump.db()).unwrap();
    let len = bytes.len();
    for b in &mut bytes[len / 2..len / 2 + 8192.min(len / 4)] {
        *b = 0x5a;
    }
    std::fs::write(&db, &bytes).unwrap();
    let out = bin()
        .arg("plan")
        .arg(&dump.root)
        .arg(dump.path("d"))
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    let msg = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(msg.contains("damaged") && msg.contains("index.db"), "{msg}");
    assert!(msg.contains("dbBackup") || msg.contains("backup"), "{msg}");

    // With the device's backup copy in its place, the damage found while reading (not at
    // opening) names that copy.
    let backup = dump.root.join("restsdk/data/dbBackup/index.db");
    std::fs::create_dir_all(backup.parent().unwrap()).unwrap();
    std::fs::copy(dump.db(), &backup).unwrap();
    std::fs::copy(&db, dump.db()).unwrap();
    let out = bin()
        .arg("plan")
        .arg(&dump.root)
        .arg(dump.path("d"))
        .output()
        .unwrap();
    let msg = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains("Try the backup copy: --db") && msg.contains("dbBackup/index.db"),
        "{msg}"
    );
}

#[test]
fn full_destination_stops_cleanly_without_partial_files() {
    let dump = Dump::new(26, 300, 1);
    let Some(small) = SmallDisk::mount(&dump, "3m") else {
        return;
    };
    let mnt = small.path.clone();
    let dest = mnt.join("restored");
    let (out, report) = restore(&dump, &dest, &["--threads", "2"], &[]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains("destination is full") && msg.contains("free at least"),
        "{msg}"
    );
    assert!(report["dest_full"].is_string());
    // Every file under a final name is complete.
    let cids = dump.content_ids();
    let plan = plan_json(&dump.root, &dest, &[]);
    let by_path = planned_files(&plan);
    for (path, hash) in file_hashes(&dest) {
        assert!(!path.contains(".mcr-"), "temp file left: {path}");
        let (id, _, _) = &by_path[&path];
        assert_eq!(hash, dump.expected_hash(&cids[id].0), "{path} is partial");
    }
}

/// A full destination stops the run; the files it refused as the run stopped (the one
/// that met "No space left on device" and those the other workers were writing then) were
/// counted as failed, in the summary, the report and by `status` (2 on a small tmpfs),
/// though room is all they lack and the next run copies them. They are not processed now,
/// as the files a lost DEST explains: the run's counts still add up to the file rows, and
/// the next run, with room made, restores them.
#[test]
fn files_a_full_destination_refused_as_it_stopped_are_not_processed_not_failed() {
    let dump = Dump::new(27, 800, 1);
    let Some(small) = SmallDisk::mount(&dump, "20m") else {
        return;
    };
    let dest = small.path.join("restored");
    let (out, report) = restore(&dump, &dest, &["--threads", "4"], &[]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains("Restore stopped: the destination is full") && report["dest_full"].is_string(),
        "{msg}"
    );
    assert_eq!(report["outcomes"]["failed"], 0, "{msg}");
    let failed_line = msg.lines().find(|l| l.trim_start().starts_with("failed "));
    assert_eq!(
        failed_line.and_then(|l| l.split_whitespace().last()),
        Some("0"),
        "{msg}"
    );
    let problems = report["problems"].as_array().unwrap();
    assert!(problems.iter().all(|p| p["outcome"] == "missing"), "{msg}");
    let not_processed = report["not_processed"].as_u64().unwrap();
    assert!(not_processed > 0, "{msg}");
    assert_eq!(
        outcome_sum(&report) + not_processed,
        report["totals"]["files"].as_u64().unwrap(),
        "{msg}"
    );
    // `status` reads the checkpoint: no file failed there either, and every copy is in it.
    let status = status_json(&dump.path("state"));
    assert!(status["counts"]["failed"].is_null(), "{status}");
    assert_eq!(
        status["counts"]["copied"], report["outcomes"]["copied"],
        "{status}"
    );
    assert_eq!(report["not_recorded"]["copied"], 0, "{report}");
    // With room made, the next run restores them.
    assert!(small.remount("size=200m"));
    let again = the_same_command_finishes(&dump, &dest, &[], &[]);
    assert_eq!(again["outcomes"]["failed"], 0, "{again}");
}

/// The one file a full destination refuses that is a failure of its own: one larger than
/// the whole filesystem it goes to, which no room made there lets in. It is failed, saying
/// so, and the run goes on with the other files (were it not processed, every later run
/// would stop at it, asking to free room that does not exist). Round 25: it is failed
/// before any of it is written (its size against its filesystem's); until then it was
/// written until that disk was full, then removed, by every run again. Shown with
/// `strace`: no write of the run is refused as "no space" (ENOSPC); where strace cannot
/// trace, the rest is checked without it (unless MCR_TEST_STRACE=require).
#[test]
fn a_file_larger_than_the_whole_destination_fails_alone_and_the_run_goes_on() {
    let dump = Dump::new(28, 300, 1);
    let plan = plan_json(&dump.root, &dump.path("x"), &[]);
    let files = planned_files(&plan);
    let cids = dump.content_ids();
    let has_object = |id: &String| {
        cids[id]
            .0
            .as_ref()
            .is_some_and(|c| dump.object(c).is_some())
    };
    let (big, (_, big_size, _)) = files
        .iter()
        .filter(|(_, (id, _, _))| has_object(id))
        .max_by_key(|(_, (_, size, _))| *size)
        .unwrap();
    assert!(*big_size > 1 << 20, "{big}: {big_size}");
    let smalls: Vec<&String> = files
        .iter()
        .filter(|(_, (id, size, _))| *size < 20 << 10 && has_object(id))
        .map(|(path, _)| path)
        .take(10)
        .collect();
    assert_eq!(smalls.len(), 10);
    // Half the big file: room for the small ones, never for it.
    let Some(small) = SmallDisk::mount(&dump, &format!("{}k", big_size / 2048)) else {
        return;
    };
    let dest = small.path.join("restored");
    let mut args = vec!["--threads", "1", "--only", big];
    for p in &smalls {
        args.extend(["--only", p.as_str()]);
    }
    let (state, log) = (dump.path("state"), dump.path("restore.strace"));
    let traced_args: Vec<&OsStr> = [
        OsStr::new("restore"),
        dump.root.as_os_str(),
        dest.as_os_str(),
        OsStr::new("--state-dir"),
        state.as_os_str(),
    ]
    .into_iter()
    .chain(args.iter().map(OsStr::new))
    .collect();
    // Every call that writes bytes or makes room for them.
    let writes =
        "trace=write,pwrite64,writev,pwritev,pwritev2,copy_file_range,sendfile,splice,fallocate";
    let (out, report, refused) = match traced(writes, &log, &traced_args) {
        Some(out) => {
            let refused: Vec<String> = std::fs::read_to_string(&log)
                .unwrap()
                .lines()
                .filter(|l| l.contains("ENOSPC"))
                .map(str::to_string)
                .collect();
            (out, report_in(&state), Some(refused))
        }
        None => {
            let (out, report) = restore(&dump, &dest, &args, &[]);
            (out, report, None)
        }
    };
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(msg.contains("Restore finished"), "{msg}");
    assert!(report["dest_full"].is_null(), "{msg}");
    assert_eq!(report["outcomes"]["failed"], 1, "{msg}");
    assert_eq!(report["outcomes"]["copied"], 10, "{msg}");
    assert_eq!(report["not_processed"], 0, "{msg}");
    let problem = &report["problems"][0];
    assert_eq!(problem["path"].as_str(), Some(big.as_str()), "{msg}");
    assert!(
        problem["reason"]
            .as_str()
            .is_some_and(|r| r.contains("No space left on device")
                && r.contains("is larger than the whole filesystem it goes to")
                && r.contains("restore it onto a bigger disk")),
        "{msg}"
    );
    assert!(!dest.join(big).exists(), "{msg}");
    // Nothing of it was written: no write filled the disk.
    if let Some(refused) = refused {
        assert!(refused.is_empty(), "{refused:?}: {msg}");
    }
}

/// An `sshfs` mount of `backing` at `at`, served by the local `sftp-server` (no sshd, no
/// network: sshfs runs the server as its "ssh" command), unmounted when dropped. The
/// server's errors go through the SFTP protocol, which has no "no space left" status:
/// sshfs turns a full disk into "Input/output error", as on a real share over SSH. None
/// (test skipped) where FUSE mounts cannot be made, unless MCR_TEST_FUSE=require (`.ci/run`
/// installs sshfs and openssh-sftp-server).
fn sftp_mount(backing: &Path, at: &Path, scratch: &Path) -> Option<FuseMount> {
    slow_sftp_mount(backing, at, scratch, 0)
}

/// [`sftp_mount`] with `delay_ms` added each way to every exchange with the server (a round
/// trip `2 x delay_ms` slower, as to a NAS across a network): `bench/delayproxy.py --exec`
/// runs the server and forwards its input and output late (needs python3, as `.ci/run`'s
/// image has).
fn slow_sftp_mount(backing: &Path, at: &Path, scratch: &Path, delay_ms: u32) -> Option<FuseMount> {
    let args = sftp_args_with_delay(backing, at, scratch, delay_ms);
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
    FuseMount::with("sshfs", &args, at)
}

/// The arguments of `sshfs` for [`sftp_mount`] (its mount point last).
fn sftp_args(backing: &Path, at: &Path, scratch: &Path) -> Vec<String> {
    sftp_args_with_delay(backing, at, scratch, 0)
}

/// [`sftp_args`], the server's exchanges `delay_ms` late each way (see [`slow_sftp_mount`]).
fn sftp_args_with_delay(backing: &Path, at: &Path, scratch: &Path, delay_ms: u32) -> Vec<String> {
    sftp_args_on_a_link(backing, at, scratch, delay_ms, None)
}

/// [`sftp_args_with_delay`], and (`rate_kb`) at most that many kilobytes a second each way:
/// a slow link (`bench/delayproxy.py --rate`).
fn sftp_args_on_a_link(
    backing: &Path,
    at: &Path,
    scratch: &Path,
    delay_ms: u32,
    rate_kb: Option<u64>,
) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let server = ["/usr/lib/openssh/sftp-server", "/usr/lib/sftp-server"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("/usr/lib/openssh/sftp-server");
    let command = scratch.join("sftp-here.sh");
    let run = match (delay_ms, rate_kb) {
        (0, None) => server.to_string(),
        _ => {
            let proxy = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/delayproxy.py");
            let rate = rate_kb.map_or(String::new(), |r| format!("--rate {r} "));
            format!(
                "python3 {} --exec {delay_ms} {rate}{server}",
                proxy.display()
            )
        }
    };
    // Its process id is kept, for a test to stop it ([`Frozen`]).
    let pid = scratch.join("sftp-server.pid");
    std::fs::write(
        &command,
        format!("#!/bin/sh\necho $$ > '{}'\nexec {run}\n", pid.display()),
    )
    .unwrap();
    std::fs::set_permissions(&command, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(at).unwrap();
    vec![
        "-o".into(),
        format!("ssh_command={}", command.display()),
        format!("localhost:{}", backing.display()),
    ]
}

/// A FUSE daemon run by a test (see [`serve_in_the_foreground`]) and its mount. When the
/// test ends, also by a failed assertion before it killed the daemon, the daemon is killed
/// and the mount taken away before the dump's temporary folder is removed: no daemon is
/// left running and that cleanup never deletes through the mount into what it serves.
struct Served {
    daemon: std::process::Child,
    _mount: FuseMount,
}

impl std::ops::Deref for Served {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.daemon
    }
}

impl std::ops::DerefMut for Served {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.daemon
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // Already dead after `kill_the_daemon`: both calls then fail harmlessly.
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// Serves a FUSE filesystem from `daemon` (bindfs, sshfs) at `at` in the foreground, so
/// that the test owns the program and can kill it, as a disk unplugged or a share's
/// connection lost would; waits up to 10 s for `mounted`. None where FUSE cannot be used
/// here (skipped, or failed under `MCR_TEST_FUSE=require`).
fn serve_in_the_foreground(
    mut daemon: std::process::Command,
    at: &Path,
    mounted: impl Fn() -> bool,
) -> Option<Served> {
    let required = std::env::var("MCR_TEST_FUSE").as_deref() == Ok("require");
    let skip = |why: String| {
        assert!(!required, "{why}");
        eprintln!("skipped: {why}");
        None
    };
    let program = daemon.get_program().to_string_lossy().into_owned();
    let spawned = daemon
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            return skip(format!(
                "cannot run {program} (needs root and {program}): {e}"
            ))
        }
    };
    let started = std::time::Instant::now();
    while !mounted() {
        if started.elapsed().as_secs() > 10 || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            return skip(format!(
                "{program} did not mount (needs root and /dev/fuse)"
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Some(Served {
        daemon: child,
        _mount: FuseMount(at.to_path_buf()),
    })
}

/// The selected folders of a plan (`plan --json` lines) that hold no selected file, at
/// any depth: the ones the empty-folder pass after the last file makes. At least 4 (the
/// tests that use them need some).
fn folders_without_files(plan: &[serde_json::Value]) -> Vec<String> {
    let files = planned_files(plan);
    let holds_files = |dir: &str| {
        let below = format!("{dir}/");
        files
            .range(below.clone()..)
            .next()
            .is_some_and(|(f, _)| f.starts_with(&below))
    };
    let empty: Vec<String> = of_type(plan, "folder")
        .into_iter()
        .filter(|f| f["skip"].is_null())
        .map(|f| f["path"].as_str().unwrap().to_string())
        .filter(|d| !holds_files(d))
        .collect();
    assert!(
        empty.len() >= 4,
        "the dump has {} folders without files",
        empty.len()
    );
    empty
}

/// A share over SSH (sshfs, in the foreground so a test can kill it) of the dump's folder
/// `served`, mounted at its folder `share`: the daemon, the served folder and the mount
/// point. None where FUSE or sshfs are missing (see [`serve_in_the_foreground`]).
fn sshfs_share_in_the_foreground(
    dump: &Dump,
) -> Option<(Served, std::path::PathBuf, std::path::PathBuf)> {
    let (backing, share) = (dump.path("served"), dump.path("share"));
    std::fs::create_dir_all(&backing).unwrap();
    let mut sshfs = std::process::Command::new("sshfs");
    sshfs
        .arg("-f")
        .args(sftp_args(&backing, &share, &dump.path("")))
        .arg(&share);
    let daemon = serve_in_the_foreground(sshfs, &share, || {
        std::fs::read_to_string("/proc/self/mounts")
            .unwrap_or_default()
            .contains(&format!(" {} fuse.sshfs ", share.display()))
    })?;
    Some((daemon, backing, share))
}

/// Kills the program serving `mount` mid-run, waits for the restore `run`, and takes the
/// dead mount away (`umount -l`).
fn kill_the_daemon(
    daemon: &mut std::process::Child,
    run: std::process::Child,
    mount: &Path,
) -> std::process::Output {
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    let out = run.wait_with_output().unwrap();
    let _ = std::process::Command::new("umount")
        .arg("-l")
        .arg(mount)
        .status();
    out
}

/// Round 17: a share over SSH (sshfs) whose program was killed mid-restore (the connection
/// dropped) stopped with two stop messages that contradicted each other ("no longer the
/// folder this restore started writing to ... files placed after the change may be on the
/// disk below the mount point", and "the destination does not answer ... A source disk
/// that is failing is best copied first (ddrescue)"), or with the second alone. Now one
/// message says the destination cannot be reached any more, that no file is partial under
/// its final name, and to mount the share again and run the same command; exit 1. Needs
/// FUSE and `sshfs` with `sftp-server` (MCR_TEST_FUSE=require in `.ci/run`).
#[test]
fn a_share_whose_connection_drops_mid_run_stops_with_one_message_regression_round_17() {
    let dump = Dump::new(117, 1500, 1);
    let Some((mut daemon, backing, share)) = sshfs_share_in_the_foreground(&dump) else {
        return;
    };
    let dest = share.join("restored");
    let state = dump.path("state");
    let child = spawn_restore(&dump, &dest, &state, &["--threads", "4"], "delay_ms=10");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while tree(&backing).values().filter(|(dir, _, _)| !dir).count() < 50 {
        assert!(std::time::Instant::now() < until, "no files were restored");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = kill_the_daemon(&mut daemon, child, &share);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    let report = report_in(&state);
    assert!(
        msg.contains("stopped: the destination became unreachable"),
        "{msg}"
    );
    let why = report["dest_lost"].as_str().unwrap_or_default();
    assert!(
        why.contains(&format!(
            "the destination {} cannot be reached",
            dest.display()
        )) && why.contains("no file is partial under its final name")
            && why.contains("run the same command"),
        "{msg}"
    );
    // Round 21: the share is mounted (and unmounted) at its mount point, not at DEST, a
    // folder inside it.
    assert!(
        why.contains(&format!("Mount the share again at {} (", share.display()))
            && why.contains(&format!("umount -l {})", share.display())),
        "{msg}"
    );
    assert_eq!(report["dest_unreachable"], true, "{msg}");
    assert!(report["stalled"].is_null(), "one stop message: {msg}");
    for wrong in [
        "no longer the folder",
        "ddrescue",
        "dmesg",
        "does not answer",
    ] {
        assert!(!msg.contains(wrong), "{wrong}: {msg}");
    }
    assert!(report["not_processed"].as_u64().unwrap() > 500, "{msg}");
    // Files under their final names on the share are complete.
    let cids = dump.content_ids();
    let by_path = planned_files(&plan_json(&dump.root, &dest, &[]));
    for (path, hash) in file_hashes(&backing.join("restored")) {
        if path.contains(".mcr-") {
            continue; // a temporary name, removed by the next run
        }
        let (id, _, _) = &by_path[&path];
        assert_eq!(hash, dump.expected_hash(&cids[id].0), "{path} is partial");
    }
    // The share mounted again: the same command restores the rest.
    let Some(_mounted) = sftp_mount(&backing, &share, &dump.path("")) else {
        return;
    };
    the_same_command_finishes(&dump, &dest, &["--state-dir", state.to_str().unwrap()], &[]);
}

/// The planned folders of `dest` with their planned dates (ms).
fn planned_folder_dates(dump: &Dump, dest: &Path) -> Vec<(String, i64)> {
    let plan = plan_json(&dump.root, dest, &[]);
    of_type(&plan, "folder")
        .into_iter()
        .filter_map(|f| Some((f["path"].as_str()?.to_string(), f["mtime_ms"].as_i64()?)))
        .collect()
}

/// How many of `folders` have their planned date, to the second, below `seen` (where DEST's
/// folders are seen: a share's backing folder; SFTP sets whole seconds).
fn folders_dated(folders: &[(String, i64)], seen: &Path) -> usize {
    folders
        .iter()
        .filter(|(p, ms)| {
            std::fs::metadata(seen.join(p))
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .is_some_and(|d| d.as_secs() as i64 == ms.div_euclid(1000))
        })
        .count()
}

/// Round 18: a share over SSH (sshfs) whose connection dropped while the folders' dates
/// were set after the last file: each date failed, the failure was not even counted (the
/// folder was no longer there to see), the run said "finished" and recorded the dates as
/// set, so no later run set them. The pass now stops as the copy does when DEST is lost:
/// "stopped: the destination became unreachable", exit 1, and the next run, with the share
/// mounted again, sets every folder's date. Its message said "the files placed since the
/// last commit were not recorded" (every file was): it now says the dates were left. Needs
/// FUSE and `sshfs` with `sftp-server` (MCR_TEST_FUSE=require in `.ci/run`).
#[test]
fn a_share_lost_while_folders_are_dated_stops_and_the_next_run_dates_them_regression_round_18() {
    let dump = Dump::new(84, 150, 1);
    let Some((mut daemon, backing, share)) = sshfs_share_in_the_foreground(&dump) else {
        return;
    };
    let dest = share.join("restored");
    let state = dump.path("state");
    let folders = planned_folder_dates(&dump, &dest);
    assert!(folders.len() >= 20, "{}", folders.len());
    let seen = backing.join("restored");
    let child = spawn_restore(
        &dump,
        &dest,
        &state,
        &["--threads", "2"],
        "folder_delay_ms=200",
    );
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while folders_dated(&folders, &seen) == 0 {
        assert!(std::time::Instant::now() < until, "no folder dated");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = kill_the_daemon(&mut daemon, child, &share);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains("stopped: the destination became unreachable") && !msg.contains("finished"),
        "{msg}"
    );
    let report = report_in(&state);
    assert_eq!(report["dest_unreachable"], true, "{msg}");
    assert!(
        report["dest_lost"]
            .as_str()
            .is_some_and(|m| m.contains("cannot be reached") && m.contains("Mount the share again")),
        "{msg}"
    );
    assert_eq!(report["folder_dates_failed"], 0, "{msg}");
    let left = folders.len() - folders_dated(&folders, &seen);
    assert!(left > 0, "the pass was cut short");
    // Said as what happened: every file recorded, the folders' dates left to the next run
    // (round 18's review: "the files placed since the last commit were not recorded").
    assert_only_folders_left(&msg, &state, "it dates them");
    // The share mounted again: the same command dates every folder.
    let Some(_mounted) = sftp_mount(&backing, &share, &dump.path("")) else {
        return;
    };
    the_same_command_finishes(&dump, &dest, &["--state-dir", state.to_str().unwrap()], &[]);
    assert_eq!(
        folders_dated(&folders, &seen),
        folders.len(),
        "the next run dated every folder"
    );
}

/// The program serving an sftp mount made in `scratch` ([`sftp_args`]), stopped with SIGSTOP:
/// a share whose server hangs, which holds calls rather than failing them. Continued when
/// dropped, also by a failed assertion, so that nothing waits on it after the test.
struct Frozen(String);

impl Frozen {
    fn stop_the_server(scratch: &Path) -> Frozen {
        // The mount can be there a moment before the server has written its pid.
        let at = scratch.join("sftp-server.pid");
        wait_until(
            "the sftp server started",
            std::time::Duration::from_secs(10),
            std::time::Duration::from_millis(20),
            || std::fs::read_to_string(&at).is_ok_and(|p| p.ends_with('\n')),
        );
        let pid = std::fs::read_to_string(&at).unwrap();
        let frozen = Frozen(pid.trim().to_string());
        let stopped = std::process::Command::new("kill")
            .args(["-STOP", &frozen.0])
            .status();
        assert!(
            stopped.is_ok_and(|s| s.success()),
            "cannot stop {}",
            frozen.0
        );
        frozen
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.0])
            .status();
    }
}

/// Round 20 (noticed in round 18): a share whose server stops answering, holding calls
/// rather than failing them, while the folders' dates were set after the last file hung the
/// run for good without a word (the folder passes had no time limit). Now a folder call not
/// back within 15 s has DEST probed, as the copy's watch does; not answering either, the
/// run stops: "stopped: the destination became unreachable", exit 1, every file recorded
/// and the folders' dates left to the next run, which sets them once the server answers
/// again. The server is the share's own `sftp-server`, stopped (SIGSTOP) once the first
/// folder is dated. Needs FUSE and `sshfs` with `sftp-server` (MCR_TEST_FUSE=require in
/// `.ci/run`).
#[test]
fn a_share_that_stops_answering_while_folders_are_dated_stops_the_run_regression_round_20() {
    let dump = Dump::new(120, 150, 1);
    let Some((_daemon, backing, share)) = sshfs_share_in_the_foreground(&dump) else {
        return;
    };
    let dest = share.join("restored");
    let state = dump.path("state");
    let folders = planned_folder_dates(&dump, &dest);
    assert!(folders.len() >= 20, "{}", folders.len());
    let seen = backing.join("restored");
    let child = spawn_restore(
        &dump,
        &dest,
        &state,
        &["--threads", "2"],
        "folder_delay_ms=200",
    );
    wait_until("a folder dated", SECS_60, MS_20, || {
        folders_dated(&folders, &seen) > 0
    });
    let server = Frozen::stop_the_server(&dump.path(""));
    // 15 s for the folder call, at most 15 s more for the probe. Its summary written, the
    // run may still wait for its calls to the share: the report says it stopped.
    stops_on_the_hung_server(&state);
    drop(server);
    let out = child.wait_with_output().unwrap();
    let (msg, report, why) = stopped_as_unanswering(&out, &state, &dest, &share);
    assert!(why.contains("were not dated"), "{msg}");
    assert_eq!(report["folder_dates_failed"], 0, "{msg}");
    assert!(
        folders_dated(&folders, &seen) < folders.len(),
        "the pass was cut short"
    );
    assert_only_folders_left(&msg, &state, "it dates them");
    // The server answering again: the same command dates every folder.
    the_same_command_finishes(&dump, &dest, &["--state-dir", state.to_str().unwrap()], &[]);
    assert_eq!(
        folders_dated(&folders, &seen),
        folders.len(),
        "the next run dated every folder"
    );
}

const SECS_60: std::time::Duration = std::time::Duration::from_secs(60);
const MS_20: std::time::Duration = std::time::Duration::from_millis(20);

/// Waits for the restore writing its report to `state` to record DEST lost, after its
/// share's server was stopped: 15 s without an answer, at most 15 s more for the probe,
/// within 90 s. Returns how long it took.
fn stops_on_the_hung_server(state: &Path) -> std::time::Duration {
    wait_until(
        "the run stopped after the share's server hung",
        std::time::Duration::from_secs(90),
        std::time::Duration::from_millis(200),
        || !report_in(state)["dest_lost"].is_null(),
    )
}

/// What a restore stopped by a share that stopped answering (its server hung) says: exit 1,
/// one stop message (DEST unreachable, not a stalled source) naming DEST and `umount -f`
/// of the share's mount point. Returns its output, its report and the DEST message.
fn stopped_as_unanswering(
    out: &std::process::Output,
    state: &Path,
    dest: &Path,
    share: &Path,
) -> (String, serde_json::Value, String) {
    let msg = text(out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains("stopped: the destination became unreachable") && !msg.contains("finished"),
        "{msg}"
    );
    let report = report_in(state);
    assert_eq!(report["dest_unreachable"], true, "{msg}");
    assert!(report["stalled"].is_null(), "one stop message: {msg}");
    let why = report["dest_lost"].as_str().unwrap().to_string();
    assert!(
        why.contains(&format!(
            "the destination {} stopped answering",
            dest.display()
        )) && why.contains(&format!("umount -f {}", share.display())),
        "{msg}"
    );
    (msg, report, why)
}

/// A restore run in the background, killed if a test ends before it did (a failed
/// assertion while a share held its calls): it then ends once the share answers again.
struct Running(Option<std::process::Child>);

impl Running {
    fn wait(mut self) -> std::process::Output {
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(run) = &mut self.0 {
            if let Ok(None) = run.try_wait() {
                let _ = run.kill();
            }
        }
    }
}

/// Round 20 (noticed by the folder-pass fix): a share whose server stops answering,
/// holding calls rather than failing them, while files were copied kept the workers in
/// their calls for good: no file failed, so no disk was probed, and the run waited without
/// a word (its progress line just stopped). Now files out and none back for 15 s have the
/// disks probed; DEST not answering either, the run stops as on a lost DEST: one message
/// (with `umount -f` for the share), the report and `status` say so, exit 1, the files
/// placed since the last commit left unrecorded (DEST not flushed: that call would hang
/// too), and the run ends without the workers still in a call. Once the server answers
/// again, the same command restores every file. The server is the share's own
/// `sftp-server`, stopped (SIGSTOP) once files are committed. Needs FUSE and
/// `sshfs` with `sftp-server` (MCR_TEST_FUSE=require in `.ci/run`).
#[test]
fn a_share_that_stops_answering_mid_copy_stops_the_run_regression_round_20() {
    let dump = Dump::new(120, 600, 1);
    let Some((_daemon, backing, share)) = sshfs_share_in_the_foreground(&dump) else {
        return;
    };
    let dest = share.join("restored");
    let state = dump.path("state");
    let seen = backing.join("restored");
    let on_share = || tree(&seen).values().filter(|(dir, _, _)| !dir).count();
    // Planned while the share answers (`plan` looks at DEST).
    let cids = dump.content_ids();
    let by_path = planned_files(&plan_json(&dump.root, &dest, &[]));
    let run = Running(Some(spawn_restore(
        &dump,
        &dest,
        &state,
        &["--threads", "2"],
        "delay_ms=40;commit_ms=300",
    )));
    // Some chunks of files back and committed first.
    wait_until("150 files restored", SECS_60, MS_20, || on_share() >= 150);
    let server = Frozen::stop_the_server(&dump.path(""));
    // 15 s without a file back, at most 15 s more for the probe. Its report written, the
    // run may still wait for its calls to the share (the message says so).
    let stopped_after = stops_on_the_hung_server(&state);
    // Before the server answers again: what the checkpoint records as copied is on the
    // share, complete.
    let recorded = recorded_copies(&state);
    for path in &recorded {
        let (id, _, _) = &by_path[path];
        assert_eq!(
            hash_file(&seen.join(path)),
            dump.expected_hash(&cids[id].0),
            "{path} is recorded but not on the share"
        );
    }
    assert!(
        !recorded.is_empty() && recorded.len() < by_path.len(),
        "{} of {} files recorded: the run was cut short",
        recorded.len(),
        by_path.len()
    );
    // The process ended but for its workers still in a call to the share (a zombie until
    // the call returns, or `umount -f`).
    let pid = run.0.as_ref().unwrap().id();
    let left = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    eprintln!(
        "stopped {:.0} s after the server; while it is stopped: {}",
        stopped_after.as_secs_f64(),
        left.lines()
            .find(|l| l.starts_with("State:"))
            .unwrap_or("gone")
    );
    drop(server);
    let out = run.wait();
    let (msg, report, why) = stopped_as_unanswering(&out, &state, &dest, &share);
    assert!(
        why.contains("the files placed since the last commit were not recorded")
            && msg.contains(&why),
        "{msg}"
    );
    assert!(report["not_processed"].as_u64().unwrap() > 0, "{msg}");
    // Asked once the share answers again (`status` looks at DEST too).
    let status = text(
        &bin()
            .arg("status")
            .arg("--state-dir")
            .arg(&state)
            .output()
            .unwrap(),
    );
    assert!(
        status.contains("stopped: the destination became unreachable"),
        "{status}"
    );
    // The server answering again: the same command restores every file.
    the_same_command_finishes(&dump, &dest, &["--state-dir", state.to_str().unwrap()], &[]);
}

/// Round 21 (noticed in round 20): `status` on a share whose server stops answering (holding
/// calls rather than failing them) hung for good without a word: a person who ran it in
/// another terminal to see what was going on got no answer and no prompt. Its looks at DEST
/// (and the source) are now made apart; one not back within 15 s has `status` print what
/// the checkpoint records (it is on the local disk), then that DEST does not answer with
/// `umount -f` of the share's mount point, exit 1. Both forms: the checkpoint alone (DEST as
/// recorded) and SOURCE DEST. The server is the share's own `sftp-server`, stopped
/// (SIGSTOP) after the restore. Needs FUSE and `sshfs` with `sftp-server`
/// (MCR_TEST_FUSE=require in `.ci/run`).
///
/// Round 22: the process then stayed a zombie (its looking thread held in the call), which
/// the shell waits for: still no prompt until the share answered or `umount -f`; and for 15 s
/// nothing was said. The looks are now made in a process of their own, left behind: the
/// process started here must have ended (reaped, not a zombie) within the limit and a
/// margin, its stdout and stderr must reach their end while the server is still stopped
/// (nothing left behind holds them, as `status | less` needs), its stderr must say after
/// about 2 s what it waits for, and the process left behind must end once the server
/// answers.
#[test]
fn status_on_a_share_that_stops_answering_says_so_within_the_limit_regression_round_21() {
    let dump = Dump::new(121, 200, 1);
    let Some((_daemon, _backing, share)) = sshfs_share_in_the_foreground(&dump) else {
        return;
    };
    let dest = share.join("restored");
    let state = dump.path("state");
    let state_arg = state.to_str().unwrap();
    let (out, _) = restore(&dump, &dest, &["--state-dir", state_arg], &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "missing objects only: {}",
        text(&out)
    );
    let st = status_json(&state);
    let counts = format!(
        "Restored or already there: {} of {} selected files",
        st["files_done"].as_u64().unwrap(),
        st["selected_files"].as_u64().unwrap()
    );
    let server = Frozen::stop_the_server(&dump.path(""));
    let stopped_at = std::time::Instant::now();
    // The first at once, while the share's client still answers from its cache what it saw
    // (sshfs, for 20 s: `status` said the share was fine); the second once the cache is
    // stale, as a person meets it minutes later (`status` hung).
    let forms: [Vec<&OsStr>; 2] = [
        vec!["--state-dir".as_ref(), state.as_os_str()],
        vec![
            dump.root.as_os_str(),
            dest.as_os_str(),
            "--state-dir".as_ref(),
            state.as_os_str(),
        ],
    ];
    let mut ended = Vec::new();
    for (i, args) in forms.iter().enumerate() {
        while i > 0 && stopped_at.elapsed() < std::time::Duration::from_secs(21) {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("mycloud-recover"))
            .arg("status")
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        // Its output read to its end apart: an end only once no process holds it.
        let (mut stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let (tx, read) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::Read;
            let (mut o, mut e) = (String::new(), String::new());
            let err = std::thread::spawn(move || stderr.read_to_string(&mut e).map(|_| e));
            let o = stdout.read_to_string(&mut o).map(|_| o);
            let _ = tx.send((o.unwrap(), err.join().unwrap().unwrap()));
        });
        // Ended and reaped (`try_wait`): a zombie, ended but for a call still out, is not.
        let limit = std::time::Duration::from_secs(15 + 10);
        let code = loop {
            if let Some(code) = child.try_wait().unwrap() {
                break code;
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let said = read.recv_timeout(std::time::Duration::from_secs(1));
                drop(server);
                panic!(
                    "`status {args:?}` did not end within {limit:?} of a look at a share that does not answer: {said:?}"
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        let took = started.elapsed();
        let said = read.recv_timeout(std::time::Duration::from_secs(5));
        let Ok((out, err)) = said else {
            drop(server);
            panic!("`status {args:?}` ended, but its stdout or stderr did not reach its end: a process left behind holds it");
        };
        ended.push((args, code, out, err, took));
    }
    // Each process left behind, as its message names it ("... in process N ...").
    let mut left = Vec::new();
    for (args, code, out, err, took) in &ended {
        let said = format!("{out}{err}");
        eprintln!("`status {args:?}` ended after {:.1} s", took.as_secs_f64());
        assert_eq!(code.code(), Some(1), "{args:?}: {said}");
        assert!(
            out.contains(&format!("Checkpoint: {}", state.display()))
                && out.contains(&counts)
                && out.contains("State: last run finished"),
            "{args:?}: the checkpoint's part: {said}"
        );
        assert!(
            out.contains(&format!(
                "The destination {} does not answer: a look there did not come back within 15 s",
                dest.display()
            )) && out.contains(&format!("umount -f {}", share.display())),
            "{args:?}: {said}"
        );
        // The checkpoint's part first, then what does not answer.
        assert!(
            out.find(&counts) < out.find("does not answer"),
            "{args:?}: {said}"
        );
        // Said once, after about 2 s, while it waits.
        let waiting = format!(
            "note: waiting for an answer from the destination {} (a disk that does not answer is given 15 s)",
            dest.display()
        );
        assert_eq!(err.matches(&waiting).count(), 1, "{args:?}: {said}");
        left.push(
            left_behind_in(out)
                .unwrap_or_else(|| panic!("{args:?}: names the process left behind: {said}")),
        );
    }
    // The server answering again: the calls left behind return and their processes end.
    drop(server);
    for pid in left {
        the_looks_left_behind_end(pid);
    }
    // Answering again: `status` looks at DEST as before.
    let out = bin()
        .args(["status", "--state-dir", state_arg])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("does not answer"), "{}", text(&out));
}

/// The dump restored (locally, to `restored`), its state folder then copied into
/// `backing`, what the share at `share` serves (its client has seen nothing of it): DEST,
/// and the state folder as the share shows it.
fn restored_with_its_state_folder_on(
    dump: &Dump,
    backing: &Path,
    share: &Path,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let (dest, state) = (dump.path("restored"), dump.path("state"));
    let (out, _) = restore(dump, &dest, &["--state-dir", state.to_str().unwrap()], &[]);
    restored_all_it_could(&out, dump, &dest);
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(&state)
        .arg(backing.join("state"))
        .status()
        .unwrap();
    assert!(copied.success());
    (dest, share.join("state"))
}

/// Round 23 (noticed in round 22): `status --state-dir DIR` with DIR on a share whose
/// server hangs (a state folder kept on the NAS) held `status` for good without a word:
/// the process that makes its looks read the checkpoint without saying it looked there,
/// so no time limit applied. The checkpoint folder is now a look of its own: not back
/// within 15 s, `status` says "the checkpoint folder ... does not answer" with `umount -f`
/// of the share, exit 1, and ends, the helper left behind. The state folder is copied into
/// what the share serves (its client has seen nothing of it), the `sftp-server` stopped.
/// Needs FUSE and `sshfs` with `sftp-server`.
#[test]
fn status_with_its_state_folder_on_a_share_that_does_not_answer_says_so_regression_round_23() {
    let dump = Dump::new(134, 100, 1);
    let Some((_daemon, backing, share)) = sshfs_share_in_the_foreground(&dump) else {
        return;
    };
    let (_, on_share) = restored_with_its_state_folder_on(&dump, &backing, &share);
    let server = Frozen::stop_the_server(&dump.path(""));
    let (log, err) = (dump.path("status.out"), dump.path("status.err"));
    let mut child = Running(Some(
        std::process::Command::new(assert_cmd::cargo::cargo_bin("mycloud-recover"))
            .arg("status")
            .arg("--state-dir")
            .arg(&on_share)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap(),
    ));
    // Ended and reaped: a zombie, ended but for a call still out, is not.
    wait_until(
        "`status` ended",
        std::time::Duration::from_secs(30),
        std::time::Duration::from_millis(100),
        || child.0.as_mut().unwrap().try_wait().unwrap().is_some(),
    );
    let out = child.wait();
    let said = format!(
        "{}{}",
        std::fs::read_to_string(&log).unwrap(),
        std::fs::read_to_string(&err).unwrap()
    );
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!(
            "The checkpoint folder {} does not answer: a look there did not come back within 15 s",
            on_share.display()
        )) && said.contains("What its checkpoint records cannot be read")
            && said.contains(&format!("umount -f {}", share.display())),
        "{said}"
    );
    let pid = left_behind_in(&said).unwrap_or_else(|| panic!("names the process: {said}"));
    drop(server);
    the_looks_left_behind_end(pid);
    // Answering again: `status` reads it there.
    let out = bin()
        .args(["status", "--state-dir"])
        .arg(&on_share)
        .output()
        .unwrap();
    assert!(
        text(&out).contains(&format!("Checkpoint: {}", on_share.display())),
        "{}",
        text(&out)
    );
}

/// Round 23 (noticed in round 22): where `status` cannot start the process for its looks
/// (this program again, `/proc/self/exe`), it makes them on a thread of its own, as before
/// round 22; that path was untested. It is taken for real here: `status` run from a copy
/// of the program in memory (`memfd_create`, as a program whose file was replaced while it
/// ran: its own path names nothing), so starting the helper fails. It says the same as the
/// usual path for a DEST that answers; for one that does not (the share's `sftp-server`
/// stopped), it says which, with no process left behind to name, exit 1, and ends once the
/// share answers again. Needs FUSE and `sshfs` with `sftp-server`, and python3.
#[test]
fn status_without_a_process_for_its_looks_says_the_same_regression_round_23() {
    let dump = Dump::new(135, 100, 1);
    let Some((_daemon, _backing, share)) = sshfs_share_in_the_foreground(&dump) else {
        return;
    };
    let dest = share.join("restored");
    let state = dump.path("state");
    let (out, _) = restore(&dump, &dest, &["--state-dir", state.to_str().unwrap()], &[]);
    restored_all_it_could(&out, &dump, &dest);
    // `mycloud-recover status --state-dir STATE`, run from a copy of the program in memory.
    let from_memory = || {
        let mut c = std::process::Command::new("python3");
        c.arg("-c")
            .arg(
                "import os, sys\n\
                 fd = os.memfd_create('mycloud-recover', 0)\n\
                 os.write(fd, open(sys.argv[1], 'rb').read())\n\
                 os.execv('/proc/self/fd/%d' % fd, ['mycloud-recover'] + sys.argv[2:])\n",
            )
            .arg(assert_cmd::cargo::cargo_bin("mycloud-recover"))
            .args(["status", "--state-dir"])
            .arg(&state);
        c
    };
    let usual = bin()
        .args(["status", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    let fallback = from_memory().output().unwrap();
    assert_eq!(usual.status.code(), Some(0), "{}", text(&usual));
    assert_eq!(fallback.status.code(), Some(0), "{}", text(&fallback));
    // But for how long ago the last run was active.
    let steady = |o: &std::process::Output| {
        text(o)
            .lines()
            .filter(|l| !l.starts_with("Last activity:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(steady(&fallback), steady(&usual));
    // DEST silent: said, with no process to name; the program ends once the share answers.
    let server = Frozen::stop_the_server(&dump.path(""));
    let log = dump.path("status.out");
    let mut child = Running(Some(
        from_memory()
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    ));
    wait_until(
        "`status` said DEST does not answer",
        std::time::Duration::from_secs(60),
        std::time::Duration::from_millis(100),
        || std::fs::read_to_string(&log).is_ok_and(|s| s.contains("does not answer")),
    );
    drop(server);
    wait_until(
        "`status` ended once the share answered",
        std::time::Duration::from_secs(30),
        std::time::Duration::from_millis(100),
        || child.0.as_mut().unwrap().try_wait().unwrap().is_some(),
    );
    let out = child.wait();
    let said = std::fs::read_to_string(&log).unwrap();
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!(
            "The destination {} does not answer: a look there did not come back within 15 s",
            dest.display()
        )) && said
            .contains("If this program does not end, the call it made there is still waiting")
            && left_behind_in(&said).is_none(),
        "{said}"
    );
}

/// The process `status` left behind in a look that did not come back, as its stdout `out`
/// names it ("... is left behind in process N ...").
fn left_behind_in(out: &str) -> Option<u32> {
    out.split_once("is left behind in process ")
        .and_then(|(_, p)| p.split_once(' '))
        .and_then(|(p, _)| p.parse::<u32>().ok())
}

/// Waits (up to 60 s) until the process `pid` that `status` left behind has ended (gone, or
/// a zombie its new parent has still to reap), as it must once the disk answers again.
fn the_looks_left_behind_end(pid: u32) {
    let gone = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_or(true, |s| s[s.rfind(')').unwrap() + 2..].starts_with('Z'))
    };
    wait_until(
        &format!("the looks left behind in process {pid} ended"),
        SECS_60,
        MS_20,
        gone,
    );
}

/// Round 23 (noticed in round 22): the process `status` starts for its looks, left behind
/// in a look at a share that does not answer, inherited every descriptor of `status` beyond
/// 0-2 that was not close-on-exec, and held it until its call returned. A caller that gave
/// `status` such a descriptor (here a pipe at fd 3, as a script's `3>&N` or a job server
/// gives it) and waits for its end waited for good although `status` had ended. Now the
/// helper gets none of them: the pipe must reach its end within 5 s of `status` ending,
/// while the share's server is still stopped. The share is the round-21 test's
/// (`status_on_a_share_that_stops_answering_says_so_within_the_limit_regression_round_21`),
/// DEST on it. Needs FUSE and `sshfs` with `sftp-server` (MCR_TEST_FUSE=require in
/// `.ci/run`).
#[test]
fn status_left_behind_on_a_share_holds_no_descriptor_of_its_caller_regression_round_23() {
    use std::io::Read;
    let dump = Dump::new(123, 60, 1);
    let Some((_daemon, _backing, share)) = sshfs_share_in_the_foreground(&dump) else {
        return;
    };
    let dest = share.join("restored");
    let state = dump.path("state");
    let (out, _) = restore(&dump, &dest, &["--state-dir", state.to_str().unwrap()], &[]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    let server = Frozen::stop_the_server(&dump.path(""));
    // Close-on-exec in this process (no other test's child gets it); `status`'s fd 3 a copy
    // of its write end that is not: the shell is given it as its stdin, puts it at fd 3 and
    // becomes `status` (`exec`). The Command, and this process's write end with it, is
    // dropped once `status` is started: the read end's end is then `status`'s and its
    // children's alone.
    let (read_end, write_end) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"exec "$0" "$@" 3>&0 0</dev/null"#)
        .arg(assert_cmd::cargo::cargo_bin("mycloud-recover"))
        .arg("status")
        .arg("--state-dir")
        .arg(&state)
        .stdin(std::process::Stdio::from(write_end))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, status_ended) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let (tx, pipe_ended) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut rest = Vec::new();
        let _ = tx.send(std::fs::File::from(read_end).read_to_end(&mut rest));
    });
    let limit = std::time::Duration::from_secs(15 + 10);
    let out = status_ended
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("`status` did not end within {limit:?}"))
        .unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!(
            "The destination {} does not answer: a look there did not come back within 15 s",
            dest.display()
        )),
        "{said}"
    );
    let pid = left_behind_in(&String::from_utf8_lossy(&out.stdout))
        .unwrap_or_else(|| panic!("names the process left behind: {said}"));
    assert!(
        pipe_ended
            .recv_timeout(std::time::Duration::from_secs(5))
            .is_ok(),
        "the pipe `status` was given at fd 3 did not reach its end within 5 s of `status` ending: \
         the process it left behind (process {pid}, still in its look) holds it; {said}"
    );
    drop(server);
    the_looks_left_behind_end(pid);
}

/// `restore SRC DEST` of the dump served over sshfs at `src` ([`the_dump_over_sshfs`]),
/// its database given where it is (`--db`, `db`), with 2 workers, the state folder `state`,
/// the faults `faults`, and what it says on stderr written to `log`.
fn restore_from_the_share(
    src: &Path,
    dest: &Path,
    state: &Path,
    db: &Path,
    faults: &str,
    log: &Path,
) -> Running {
    Running(Some(
        std::process::Command::new(assert_cmd::cargo::cargo_bin("mycloud-recover"))
            .arg("restore")
            .arg(src)
            .arg(dest)
            .arg("--state-dir")
            .arg(state)
            .args(["--threads", "2"])
            .arg("--db")
            .arg(db)
            .env("MYCLOUD_RECOVER_FAULTS", faults)
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    ))
}

/// The dump served over sshfs by the local `sftp-server` at `dump/source` (its object store
/// read there; the server can be stopped with [`Frozen`]): the daemon, and the mount. None
/// where FUSE cannot be used ([`serve_in_the_foreground`]).
fn the_dump_over_sshfs(dump: &Dump) -> Option<(Served, std::path::PathBuf)> {
    the_dump_over_a_link(dump, None)
}

/// [`the_dump_over_sshfs`], at most `rate_kb` kilobytes a second (a slow link).
fn the_dump_over_a_link(dump: &Dump, rate_kb: Option<u64>) -> Option<(Served, std::path::PathBuf)> {
    let src = dump.path("source");
    let mut sshfs = std::process::Command::new("sshfs");
    sshfs
        .arg("-f")
        .args(sftp_args_on_a_link(
            &dump.root,
            &src,
            &dump.path(""),
            0,
            rate_kb,
        ))
        .arg(&src);
    let served = serve_in_the_foreground(sshfs, &src, || src.join("restsdk").exists())?;
    Some((served, src))
}

/// Round 20 (review): a source disk that holds calls (the share it is read from has a
/// server that hangs; a USB disk that hangs) never stopped the copy, although files out and
/// none back for 15 s have the disks probed: the probe looked up the object it reads again
/// (a `stat` on the source) on the asking thread, the bookkeeper's, before its time limit,
/// and the bookkeeper waited there for good (the run said nothing more). The look-up is now
/// part of the probe's call, which has the time limit: the run stops as on a source that
/// stopped answering (`stalled`, exit 1), and once the disk answers again the same command
/// restores every file. The source here is the dump's object store over sshfs (its
/// database given with `--db` where it is; a database on the disk that hangs is
/// `a_source_share_that_stops_answering_while_the_index_is_read_stops_the_run_regression_round_21`),
/// the `sftp-server` stopped (SIGSTOP) once files are restored. Needs FUSE and `sshfs` with
/// `sftp-server`.
#[test]
fn a_source_that_stops_answering_mid_copy_stops_the_run_regression_round_20() {
    let dump = Dump::new(121, 1500, 1);
    let db = dump.db();
    let Some((_daemon, src)) = the_dump_over_sshfs(&dump) else {
        return;
    };
    let dest = dump.path("restored");
    let state = dump.path("state");
    let run = |faults: &str| {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("mycloud-recover"));
        c.arg("restore")
            .arg(&src)
            .arg(&dest)
            .arg("--state-dir")
            .arg(&state)
            .args(["--threads", "2"])
            .arg("--db")
            .arg(&db)
            .env("MYCLOUD_RECOVER_FAULTS", faults)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c
    };
    // Waited for 1 s, not 5 min, at the first probe without an answer.
    let child = Running(Some(
        run("delay_ms=40;commit_ms=300;source_patience_ms=1000")
            .spawn()
            .unwrap(),
    ));
    let began = std::time::Instant::now();
    let until = began + std::time::Duration::from_secs(60);
    while tree(&dest).values().filter(|(dir, _, _)| !dir).count() < 150 {
        assert!(std::time::Instant::now() < until, "no files were restored");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // sshfs answers a look-up from its own cache for 20 s: the object the probe looks up
    // (the first one read) is asked of the server only after that.
    std::thread::sleep(std::time::Duration::from_secs(10).saturating_sub(began.elapsed()));
    let server = Frozen::stop_the_server(&dump.path(""));
    let stopped_at = std::time::Instant::now();
    // 15 s without a file back, at most 15 s more for the probe.
    while report_in(&state)["stalled"].is_null() {
        assert!(
            stopped_at.elapsed().as_secs() < 90,
            "the run did not stop within 90 s of the source's server hanging"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    drop(server);
    let out = child.wait();
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(msg.contains("stopped: a disk stopped answering"), "{msg}");
    let report = report_in(&state);
    let why = report["stalled"].as_str().unwrap();
    assert!(
        why.contains("the source disk does not answer: reading")
            && why.contains("/restsdk/data/files/")
            && why.contains("while nothing asked of the disks (files being copied, the database being read) came back for ")
            && why.contains("waited up to 1 s for the source disk")
            && msg.contains(why),
        "{msg}"
    );
    assert!(report["dest_lost"].is_null(), "one stop message: {msg}");
    assert!(report["not_processed"].as_u64().unwrap() > 0, "{msg}");
    // The server answering again: the same command restores every file.
    restored_all_it_could(&run("").output().unwrap(), &dump, &dest);
}

/// Round 21 (review): a failing source disk retries a bad sector for minutes (SCSI command
/// timeout 30 s, up to 5 retries, then resets) and answers nothing else meanwhile, but the
/// run stopped once a probe found it not answering for 15 s, leaving the file not
/// processed: every rerun stopped at the same file, and the files after it were never
/// restored. Now a source that does not answer while a file's read of it is out is waited
/// for (`SOURCE_PATIENCE`, here 120 s), said once a probe. The source is the object store
/// over sshfs, its `sftp-server` stopped (SIGSTOP) for 40 s, longer than a probe's 15 s
/// plus the 15 s that have the disks probed, then continued: the run goes on and restores
/// every file. Without the patience it stops at about 30 s. Needs FUSE and `sshfs` with
/// `sftp-server`.
#[test]
fn a_source_silent_for_less_than_the_patience_is_waited_for_regression_round_21() {
    let dump = Dump::new(122, 1500, 1);
    let db = dump.db();
    let Some((_daemon, src)) = the_dump_over_sshfs(&dump) else {
        return;
    };
    let dest = dump.path("restored");
    let state = dump.path("state");
    let log = dump.path("run.log");
    let child = restore_from_the_share(
        &src,
        &dest,
        &state,
        &db,
        "delay_ms=40;commit_ms=300;source_patience_ms=120000",
        &log,
    );
    let began = std::time::Instant::now();
    let until = began + std::time::Duration::from_secs(60);
    while tree(&dest).values().filter(|(dir, _, _)| !dir).count() < 150 {
        assert!(std::time::Instant::now() < until, "no files were restored");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // sshfs answers a look-up from its own cache for 20 s: past that, the probe asks the
    // server.
    std::thread::sleep(std::time::Duration::from_secs(10).saturating_sub(began.elapsed()));
    let server = Frozen::stop_the_server(&dump.path(""));
    std::thread::sleep(std::time::Duration::from_secs(40));
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(
        report_in(&state)["stalled"].is_null(),
        "the run stopped before the patience: {said}"
    );
    drop(server);
    let out = child.wait();
    let msg = format!("{}{}", std::fs::read_to_string(&log).unwrap(), text(&out));
    assert_eq!(
        out.status.code(),
        Some(1),
        "the demo's missing objects only: {msg}"
    );
    assert!(
        said.contains("waiting: the source disk has not answered for ")
            && said.contains("/restsdk/data/files/")
            && said
                .contains("a failing disk can take minutes on a bad sector: waiting up to 2 min"),
        "{said}"
    );
    let report = report_in(&state);
    assert!(report["stalled"].is_null(), "{msg}");
    assert_eq!(report["not_processed"].as_u64(), Some(0), "{msg}");
    assert_restored_exactly(&dump, &dest);
}

/// Round 22 (noticed in round 21): a failing source disk fails a read with an I/O error,
/// then goes on retrying another bad sector, answering nothing for minutes. A file that
/// met such errors has the disks probed before it is listed as failed; that probe found
/// the source silent and stopped the run at once, without the patience the copy gives a
/// source that holds calls (every rerun would stop at the same file). Now a probe asked
/// because files failed waits for a silent source up to the patience too, and the file is
/// failed once the disk answers. The first file of the copy fails its reads
/// (`bad_sector`, retried 5 s apart: a fault, as a disk's EIO cannot be made here), while
/// the source's `sftp-server` is stopped (SIGSTOP) for 30 s from its first error, longer
/// than the file's retries and the probe's 15 s; then continued. Needs FUSE and `sshfs`
/// with `sftp-server`.
#[test]
fn a_file_failing_while_the_source_is_silent_waits_for_the_patience_regression_round_22() {
    let dump = Dump::new(124, 600, 1);
    let db = dump.db();
    let cids = dump.content_ids();
    let plan = plan_json(&dump.root, &dump.path("restored"), &[]);
    let (bad_path, bad_cid) = of_type(&plan, "file")
        .into_iter()
        .filter(|f| f["skip"].is_null())
        .find_map(|f| {
            let cid = cids[f["id"].as_str().unwrap()].0.clone()?;
            dump.object(&cid)?;
            Some((f["path"].as_str().unwrap().to_string(), cid))
        })
        .unwrap();
    let Some((_daemon, src)) = the_dump_over_sshfs(&dump) else {
        return;
    };
    let dest = dump.path("restored");
    let state = dump.path("state");
    let log = dump.path("run.log");
    let child = restore_from_the_share(
        &src,
        &dest,
        &state,
        &db,
        &format!(
            "delay_ms=40;commit_ms=300;backoff_ms=5000;source_patience_ms=120000;bad_sector={bad_cid}"
        ),
        &log,
    );
    // The bad file is the first handed out: begun once others are placed.
    wait_until(
        "files restored",
        std::time::Duration::from_secs(60),
        std::time::Duration::from_millis(20),
        || tree(&dest).values().filter(|(dir, _, _)| !dir).count() >= 10,
    );
    let server = Frozen::stop_the_server(&dump.path(""));
    std::thread::sleep(std::time::Duration::from_secs(30));
    let said = std::fs::read_to_string(&log).unwrap();
    drop(server);
    let out = child.wait();
    let msg = format!("{said}{}", text(&out));
    let report = report_in(&state);
    assert!(
        report["stalled"].is_null(),
        "the run stopped before the patience: {msg}"
    );
    assert_eq!(report["not_processed"].as_u64(), Some(0), "{msg}");
    let failed: Vec<_> = (report["problems"].as_array().unwrap().iter())
        .filter(|p| p["outcome"] == "failed")
        .map(|p| p["path"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(failed, [bad_path], "{msg}");
    // Everything else is there: the bad file's object read again, with the disk answering.
    let (out, _) = restore(&dump, &dest, &["--state-dir", state.to_str().unwrap()], &[]);
    restored_all_it_could(&out, &dump, &dest);
}

/// Round 22 (noticed in round 21): one call of the copy moved up to 1 GiB, so a large file
/// copied over a slow link looked to the run's watch like a call held by a disk: no file
/// back for 15 s, the disks probed, and "waiting: no file came back ..." said every 15 s
/// while the bytes moved (a 4 GB video to a NAS: a line every 15 s for minutes). Now a call
/// moves at most 8 MiB and each move counts as the file coming back: nothing is said
/// while its bytes move. The source is the dump over sshfs on a link capped so that its
/// one large file (108 MB) takes about 25 s (`bench/delayproxy.py --rate`). Needs FUSE and
/// `sshfs` with `sftp-server`, and python3.
#[test]
fn a_large_file_moving_over_a_slow_link_is_not_taken_for_a_held_call_regression_round_22() {
    let dump = Dump::with(
        2,
        1,
        1,
        mycloud_recover::demo::SizeMix::Large,
        mycloud_recover::demo::Content::Full,
    );
    let db = dump.db();
    let largest = (dump.content_ids().values())
        .filter_map(|(cid, _)| Some(std::fs::metadata(dump.object(cid.as_ref()?)?).ok()?.len()))
        .max()
        .unwrap();
    assert!(largest > 50_000_000, "a large file: {largest} bytes");
    let Some((_daemon, src)) = the_dump_over_a_link(&dump, Some(largest / 25 / 1000)) else {
        return;
    };
    let dest = dump.path("restored");
    let (out, msg) = restore_over_a_slow_link(&dump, &src, &dest, &db, &[]);
    assert_eq!(out.status.code(), Some(0), "{msg}");
    assert_restored_exactly(&dump, &dest);
}

/// `restore SRC DEST`, SRC the dump over a slow link ([`the_dump_over_a_link`]) with its
/// database given where it is (`--db`, `db`), and `extra` options; checks that it took longer
/// than the watch's 15 s (or the test shows nothing) and said no `waiting:` line: its
/// output, and what it said.
fn restore_over_a_slow_link(
    dump: &Dump,
    src: &Path,
    dest: &Path,
    db: &Path,
    extra: &[&str],
) -> (std::process::Output, String) {
    let log = dump.path("run.log");
    let began = std::time::Instant::now();
    let out = Running(Some(
        std::process::Command::new(assert_cmd::cargo::cargo_bin("mycloud-recover"))
            .arg("restore")
            .arg(src)
            .arg(dest)
            .arg("--state-dir")
            .arg(dump.path("state"))
            .arg("--db")
            .arg(db)
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    ))
    .wait();
    let took = began.elapsed();
    let msg = format!("{}{}", std::fs::read_to_string(&log).unwrap(), text(&out));
    assert!(
        took > std::time::Duration::from_secs(18),
        "took {took:?}: {msg}"
    );
    assert!(!msg.contains("waiting:"), "{msg}");
    (out, msg)
}

/// Round 23 (noticed in round 22): the 8 MiB a call moved at most still took more than
/// 15 s on a link slower than about 0.6 MB/s (a VPN, an upload link), and such a file got
/// "waiting: no file came back ..." every 15 s while its bytes moved. What a call moves is
/// now learnt from how long calls take (`Copier::learn`, about 2 s a call). One file of a
/// few MB over a link capped so that it takes about 30 s (8 MiB would take over a minute).
#[test]
fn a_file_over_a_very_slow_link_is_not_taken_for_a_held_call_regression_round_23() {
    let dump = Dump::new(3, 200, 1);
    let db = dump.db();
    let dest = dump.path("restored");
    let plan = plan_json(&dump.root, &dest, &[]);
    let ids = dump.content_ids();
    let (path, object) = of_type(&plan, "file")
        .into_iter()
        .filter_map(|f| {
            let cid = ids.get(f["id"].as_str()?)?.0.as_ref()?;
            Some((f["path"].as_str()?.to_string(), dump.object(cid)?))
        })
        .max_by_key(|(_, o)| std::fs::metadata(o).unwrap().len())
        .unwrap();
    let size = std::fs::metadata(&object).unwrap().len();
    assert!(size > 2_000_000, "a file of a few MB: {size} bytes");
    let Some((_daemon, src)) = the_dump_over_a_link(&dump, Some(size / 30 / 1000)) else {
        return;
    };
    let (out, msg) = restore_over_a_slow_link(&dump, &src, &dest, &db, &["--only", &path]);
    assert_eq!(out.status.code(), Some(0), "{msg}");
    assert_eq!(
        std::fs::read(dest.join(&path)).unwrap(),
        std::fs::read(&object).unwrap(),
        "{msg}"
    );
}

/// Round 21 (review): a file that stays out while the disks answer (here a call into a
/// share mounted inside DEST whose server hangs; also one object a disk is slow on) had
/// the disks probed every 15 s without a word. Now each probe that finds the disks
/// answering says which file the run waits for, and for how long. DEST's `Photos` is an
/// sshfs share, its `sftp-server` stopped (SIGSTOP) once files reach it, continued once
/// the line is said: the run then restores every file. Needs FUSE and `sshfs` with
/// `sftp-server`.
#[test]
fn a_file_held_while_the_disks_answer_is_named_regression_round_21() {
    let dump = Dump::new(123, 300, 1);
    let dest = dump.path("restored");
    let photos = dest.join("Photos");
    let mut sshfs = std::process::Command::new("sshfs");
    let backing = dump.path("served");
    std::fs::create_dir_all(&backing).unwrap();
    sshfs
        .arg("-f")
        .args(sftp_args(&backing, &photos, &dump.path("")))
        .arg(&photos);
    let Some(_daemon) = serve_in_the_foreground(sshfs, &photos, || {
        std::fs::read_to_string("/proc/self/mounts")
            .unwrap_or_default()
            .contains(&format!(" {} fuse.sshfs ", photos.display()))
    }) else {
        return;
    };
    let state = dump.path("state");
    let log = dump.path("run.log");
    let child = Running(Some(
        std::process::Command::new(assert_cmd::cargo::cargo_bin("mycloud-recover"))
            .arg("restore")
            .arg(&dump.root)
            .arg(&dest)
            .arg("--state-dir")
            .arg(&state)
            .args(["--threads", "2"])
            .env("MYCLOUD_RECOVER_FAULTS", "delay_ms=40;commit_ms=300")
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    ));
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while tree(&backing).values().filter(|(dir, _, _)| !dir).count() < 5 {
        assert!(
            std::time::Instant::now() < until,
            "no files reached the share"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let server = Frozen::stop_the_server(&dump.path(""));
    let until = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let said = loop {
        let said = std::fs::read_to_string(&log).unwrap();
        if said.contains("waiting: no file came back for ") {
            break said;
        }
        assert!(
            std::time::Instant::now() < until,
            "no line named the held file within 90 s: {said}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    drop(server);
    let out = child.wait();
    let msg = format!("{}{}", std::fs::read_to_string(&log).unwrap(), text(&out));
    assert!(
        said.contains("waiting for Photos/") && said.contains("while the disks answer"),
        "{said}"
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "the demo's missing objects only: {msg}"
    );
    assert!(report_in(&state)["stalled"].is_null(), "{msg}");
    assert_restored_exactly(&dump, &dest);
}

/// Round 21: a source disk that hangs (here a share whose server stops answering) while
/// the database is read held the run for good. The count and the planner read the index on
/// their own threads, which the run joined at its end: stuck in a read, they kept it from
/// ending even after the copy had stopped, and with no file out (a resume whose files are
/// all done, the count still reading) nothing noticed at all. The copy's own probe looked
/// for its object on the bookkeeper's thread, where that look hung too. Now the planner and
/// the count are watched as the workers are (a call not back within 15 s has the disks
/// probed) and left behind when the source does not answer: the run stops about 30 s
/// after the server hangs with the source's "does not answer" message, exit 1 (not
/// complete), the checkpoint recording only files on DEST, and once the server answers
/// again the same command restores every file. The source's patience is 1 s here (it is
/// tested by `a_source_silent_for_less_than_the_patience_is_waited_for_regression_round_21`).
/// Needs FUSE and `sshfs` with `sftp-server` (MCR_TEST_FUSE=require in `.ci/run`).
#[test]
fn a_source_share_that_stops_answering_while_the_index_is_read_stops_the_run_regression_round_21() {
    let dump = Dump::new(121, 600, 1);
    let Some((_daemon, backing, share)) = sshfs_share_in_the_foreground(&dump) else {
        return;
    };
    // The dump served over the share, the restore's source (only read).
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(&dump.root)
        .arg(backing.join("dump"))
        .status()
        .unwrap();
    assert!(copied.success());
    let source = share.join("dump");
    let dest = dump.path("restored");
    let state = dump.path("state");
    let cids = dump.content_ids();
    let by_path = planned_files(&plan_json(&dump.root, &dest, &[]));
    let run = |faults: &str| {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("mycloud-recover"));
        c.arg("restore")
            .arg(&source)
            .arg(&dest)
            .arg("--state-dir")
            .arg(&state)
            .args(["--threads", "2"])
            .env("MYCLOUD_RECOVER_FAULTS", faults)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        Running(Some(c.spawn().unwrap()))
    };
    // Stops the server (`ready` once the run reads what is to hang), waits for the run
    // to say it stopped, lets the server answer again and returns the run's output.
    let hang_the_source = |run: Running, ready: &dyn Fn() -> bool| {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !ready() {
            assert!(
                std::time::Instant::now() < until,
                "the run did not get going"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let server = Frozen::stop_the_server(&dump.path(""));
        let stopped_at = std::time::Instant::now();
        // 15 s with nothing back, at most 15 s more for the probe; the run may then
        // still wait for its reads of the share (a zombie until they return).
        while report_in(&state)["stalled"].is_null() {
            assert!(
                stopped_at.elapsed().as_secs() < 90,
                "the run did not stop within 90 s of the source's server hanging"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        // Before the server answers again: what the checkpoint records as copied is on
        // DEST, complete.
        let recorded = recorded_copies(&state);
        for path in &recorded {
            let (id, _, _) = &by_path[path];
            assert_eq!(
                hash_file(&dest.join(path)),
                dump.expected_hash(&cids[id].0),
                "{path} is recorded but not on DEST"
            );
        }
        drop(server);
        let out = run.wait();
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(1), "{msg}");
        assert!(msg.contains("stopped: a disk stopped answering"), "{msg}");
        let report = report_in(&state);
        assert_eq!(report["complete"], false, "{msg}");
        assert!(report["dest_lost"].is_null(), "one stop message: {msg}");
        // The count (held back, then in a read of the hung share) was left behind: the
        // summary says the files were not counted, not "0 files planned".
        assert_eq!(report["uncounted"], true, "{msg}");
        assert!(
            msg.contains("(before the files were counted)")
                && msg.contains("not processed yet")
                && !msg.contains("0 files planned"),
            "{msg}"
        );
        let why = report["stalled"].as_str().unwrap();
        assert!(
            why.contains(&format!(
                "the source disk does not answer: reading {}",
                source.display()
            )) && why.contains("the database being read")
                && why.contains("run the same command")
                && msg.contains(why),
            "{msg}"
        );
        recorded
    };
    // A first run: the copy going, the count (held back 5 s) reads once the server hangs.
    let on_dest = || tree(&dest).values().filter(|(dir, _, _)| !dir).count();
    let recorded = hang_the_source(
        run("delay_ms=40;count_delay_ms=5000;source_patience_ms=1000"),
        &|| on_dest() >= 50,
    );
    assert!(
        recorded.len() < by_path.len(),
        "{} of {} files recorded: the run was cut short",
        recorded.len(),
        by_path.len()
    );
    // The server answering again: the same command restores every file.
    restored_all_it_could(&run("").wait(), &dump, &dest);
    // A resume with every file done: no file out, only the count reads the share when it
    // hangs (once the run wrote its first report: the copy began).
    hang_the_source(run("count_delay_ms=3000;source_patience_ms=1000"), &|| {
        report_in(&state)["finished_unix_ms"].is_null()
    });
    restored_all_it_could(&run("").wait(), &dump, &dest);
}

/// Round 22: a source that hangs before the copy held the run for good without a word. The
/// database was opened (with a private copy where a write-ahead log sits beside it), its
/// rows read and a sample of objects looked for on the main thread, before any file was
/// copied and before the copy's watch began: a share whose server hangs (a disk that holds
/// calls) kept the run there, silent, with nothing to end it. Now those reads are made on a
/// thread of their own, watched as the copy's calls are (nothing back for 15 s has the
/// source probed; not answering, it is waited for up to the patience, then the run stops):
/// the run ends with the source's "does not answer" message naming the database, while
/// planning, `umount -f` of the share and "nothing was written", exit 1 (a run stopped by
/// its disks), DEST not made and no state folder left. The whole dump is served over sshfs
/// and its `sftp-server` stopped (SIGSTOP) before the restore starts; a dry run just before
/// has the looks made before planning (the source's layout, DEST not inside it) answered
/// from sshfs's cache (20 s), so that the run reaches the database, whose opening asks the
/// server. SOURCE is given as `restsdk/data`: the layout's look-ups then all find what they
/// look for (sshfs does not cache a name that is not there, which the server would be
/// asked for). The source's patience is 1 s here (the patience is tested by
/// `a_source_silent_for_less_than_the_patience_is_waited_for_regression_round_21`). Needs
/// FUSE and `sshfs` with `sftp-server`.
#[test]
fn a_source_that_stops_answering_while_the_run_plans_stops_it_regression_round_22() {
    let dump = Dump::new(124, 300, 1);
    let Some((_daemon, share)) = the_dump_over_sshfs(&dump) else {
        return;
    };
    let src = share.join("restsdk/data");
    let dest = dump.path("restored");
    let state = dump.path("state");
    let log = dump.path("run.log");
    let run = |faults: &str| {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("mycloud-recover"));
        c.arg("restore")
            .arg(&src)
            .arg(&dest)
            .arg("--state-dir")
            .arg(&state)
            .args(["--threads", "2"])
            .env("MYCLOUD_RECOVER_FAULTS", faults);
        c
    };
    let warm = run("").arg("--dry-run").output().unwrap();
    assert_eq!(warm.status.code(), Some(1), "{}", text(&warm));
    assert!(!state.exists() && !dest.exists(), "{}", text(&warm));
    let server = Frozen::stop_the_server(&dump.path(""));
    let child = Running(Some(
        run("source_patience_ms=1000")
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    ));
    // 15 s with the database's opening out, at most 15 s more for the probe. The run may
    // then still wait for its reads of the share (a zombie until they return).
    let took = wait_until(
        "the run stopped after the source's server hung",
        std::time::Duration::from_secs(90),
        std::time::Duration::from_millis(200),
        || std::fs::read_to_string(&log).is_ok_and(|s| s.contains("mycloud-recover: stopped")),
    );
    eprintln!("stopped {:.1} s after it started", took.as_secs_f64());
    // Before the server answers again: nothing made, nothing left.
    assert!(!dest.exists(), "DEST was made");
    assert!(!state.exists(), "a state folder was left");
    drop(server);
    let out = child.wait();
    let msg = format!("{}{}", std::fs::read_to_string(&log).unwrap(), text(&out));
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains(&format!(
            "mycloud-recover: stopped: the source disk does not answer: reading {} took more than 15 s, while the run was planning (opening the database)",
            src.join("db/index.db").display()
        )) && msg.contains("waited up to 1 s for the source disk")
            && msg.contains("Stopped before anything was written")
            && msg.contains(&format!("`umount -f {}`", share.display()))
            && msg.contains(&format!("Check the source {}", src.display()))
            && msg.contains("run the same command"),
        "{msg}"
    );
    assert!(!dest.exists() && !state.exists(), "{msg}");
    // The server answering again: the same command restores every file.
    let out = run("").output().unwrap();
    restored_all_it_could(&out, &dump, &dest);
}

/// Round 22: `restore` checks SOURCE and DEST before it says anything (where they lead,
/// whether DEST lies inside SOURCE): on a share whose server hangs (a NAS gone from the
/// network) those looks were held for good, and the run said nothing at all. They are now
/// watched: not back within 15 s, each disk is asked; DEST silent stops the run at once,
/// the source silent after the patience (1 s here), with a message naming the disk and its
/// mount point, exit 1, and nothing changed (no state folder, nothing on DEST). Once the
/// server answers, the same command restores. The share is sshfs with its `sftp-server`
/// stopped (SIGSTOP) before the run. Needs FUSE and `sshfs` with `sftp-server`.
#[test]
fn a_destination_share_that_does_not_answer_when_the_restore_starts_stops_it_regression_round_22() {
    let dump = Dump::new(125, 100, 1);
    let Some((_daemon, backing, share)) = sshfs_share_in_the_foreground(&dump) else {
        return;
    };
    let dest = share.join("restored");
    let msg = stopped_before_the_restore_began(&dump, &dump.root, &dest, &|| {
        assert!(!backing.join("restored").exists(), "DEST was made");
    });
    assert!(
        msg.contains(&format!(
            "mycloud-recover: stopped: the destination {} does not answer: looking at it did not come back within 15 s before the restore began",
            dest.display()
        )) && msg.contains(&format!("`umount -f {}`", share.display()))
            && msg.contains("Check the share"),
        "{msg}"
    );
}

/// The same for `verify` and `regen`, which check SOURCE and DEST as the restore does: on a
/// DEST share whose server hangs they hung silently in those checks; they now say which
/// disk does not answer, exit 2 (they could not run; nothing changed), and run once it
/// answers.
#[test]
fn verify_and_regen_on_a_destination_share_that_does_not_answer_say_so_regression_round_22() {
    let dump = Dump::new(127, 100, 1);
    let Some((_daemon, _backing, share)) = sshfs_share_in_the_foreground(&dump) else {
        return;
    };
    let dest = share.join("restored");
    let state = dump.path("state");
    let state_arg = state.to_str().unwrap();
    let (out, _) = restore(&dump, &dest, &["--state-dir", state_arg], &[]);
    restored_all_it_could(&out, &dump, &dest);
    // Once sshfs's cache of what the restore saw (20 s) is stale, as a person meets it: a
    // look answered from it lets the command past its checks, into its walk of DEST,
    // which is not watched (ROADMAP "Noticed in round 22").
    std::thread::sleep(std::time::Duration::from_secs(21));
    for command in ["verify", "regen"] {
        stopped_by_the_destination_share(
            &dump,
            command,
            &dest,
            &share,
            &["--state-dir", state_arg],
            &format!("before `{command}` began"),
        );
    }
    // Answering again: `verify` finds every file.
    verify_finds_every_file(&dump, &dest, &["--state-dir", state_arg]);
}

/// Runs `command` (`verify`, `regen`) of the dump's restore at `dest` with `args`, the
/// share's `sftp-server` stopped, until it says the share does not answer (within 90 s);
/// continues the server; checks exit 2 and that the message names DEST as not answering
/// `when` ("before `verify` began"), "Nothing was changed" and `umount -f` of the share.
fn stopped_by_the_destination_share(
    dump: &Dump,
    command: &str,
    dest: &Path,
    share: &Path,
    args: &[&str],
    when: &str,
) {
    let log = dump.path(&format!("{command}.log"));
    let server = Frozen::stop_the_server(&dump.path(""));
    let child = Running(Some(
        std::process::Command::new(assert_cmd::cargo::cargo_bin("mycloud-recover"))
            .arg(command)
            .arg(&dump.root)
            .arg(dest)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    ));
    wait_until(
        &format!("{command} said the share does not answer"),
        std::time::Duration::from_secs(90),
        std::time::Duration::from_millis(200),
        || std::fs::read_to_string(&log).is_ok_and(|s| s.contains("does not answer")),
    );
    drop(server);
    let out = child.wait();
    let msg = format!("{}{}", std::fs::read_to_string(&log).unwrap(), text(&out));
    assert_eq!(out.status.code(), Some(2), "{command}: {msg}");
    assert!(
        msg.contains(&format!(
            "the destination {} does not answer: looking at it did not come back within 15 s {when}",
            dest.display()
        )) && msg.contains("Nothing was changed")
            && msg.contains(&format!("`umount -f {}`", share.display())),
        "{command}: {msg}"
    );
}

/// `verify` of the dump's restore at `dest` with `args` runs and says nothing of a disk
/// that does not answer.
fn verify_finds_every_file(dump: &Dump, dest: &Path, args: &[&str]) {
    let out = bin()
        .arg("verify")
        .arg(&dump.root)
        .arg(dest)
        .args(args)
        .output()
        .unwrap();
    assert!(
        !text(&out).contains("does not answer") && matches!(out.status.code(), Some(0 | 1)),
        "{}",
        text(&out)
    );
}

/// The same for a source share (the whole dump served over sshfs) whose server hangs:
/// waited for up to the patience, then stopped.
#[test]
fn a_source_share_that_does_not_answer_when_the_restore_starts_stops_it_regression_round_22() {
    let dump = Dump::new(126, 100, 1);
    let Some((_daemon, share)) = the_dump_over_sshfs(&dump) else {
        return;
    };
    let dest = dump.path("restored");
    let msg = stopped_before_the_restore_began(&dump, &share, &dest, &|| {
        assert!(!dest.exists(), "DEST was made");
    });
    assert!(
        msg.contains(&format!(
            "mycloud-recover: stopped: the source {} does not answer: looking at it did not come back within 15 s before the restore began, waited up to 1 s",
            share.display()
        )) && msg.contains(&format!("`umount -f {}`", share.display()))
            && msg.contains("Check the source"),
        "{msg}"
    );
}

/// Round 23 (noticed in round 22): `plan`, `inspect` and `preflight` made their looks at
/// the source on the main thread: on a source share whose server hangs they hung for good
/// without a word. They are now watched as the restore's are (`restore::watch`): not back
/// within 15 s, the source is asked; silent, it is waited for up to the patience (1 s here;
/// `preflight` no longer than its budget), then the command stops, exit 2, naming the disk,
/// its mount point and what to do. Once the server answers, each runs. The three run at
/// once, against one stopped `sftp-server`. Needs FUSE and `sshfs` with `sftp-server`.
#[test]
fn plan_inspect_and_preflight_on_a_source_share_that_does_not_answer_say_so_regression_round_23() {
    let dump = Dump::new(131, 100, 1);
    let Some((_daemon, share)) = the_dump_over_sshfs(&dump) else {
        return;
    };
    let dest = dump.path("restored");
    let commands: [&[&str]; 3] = [
        &["plan", "--summary"],
        &["inspect"],
        &["preflight", "--budget", "10"],
    ];
    let command = |args: &[&str]| {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("mycloud-recover"));
        c.arg(args[0]).arg(&share);
        if args[0] != "inspect" {
            c.arg(&dest);
        }
        c.args(&args[1..])
            .env("MYCLOUD_RECOVER_FAULTS", "source_patience_ms=1000");
        c
    };
    for (name, code, msg) in held_by_the_share(&dump, commands.map(|args| (args[0], command(args))))
    {
        assert_eq!(code, Some(2), "{name}: {msg}");
        let when = match name.as_str() {
            "preflight" => "while `preflight` read it".to_string(),
            _ => format!("while `{name}` ran"),
        };
        assert!(
            msg.contains(&format!(
                "the source {} does not answer: looking at it did not come back within 15 s {when}, waited up to 1 s",
                share.display()
            )) && msg.contains("Nothing was changed")
                && msg.contains(&format!("`umount -f {}`", share.display()))
                && msg.contains("Check the source"),
            "{name}: {msg}"
        );
    }
    assert!(!dest.exists(), "DEST was made");
    // Answering again: each runs.
    for args in commands {
        let out = command(args).output().unwrap();
        assert!(
            matches!(out.status.code(), Some(0 | 1)) && !text(&out).contains("does not answer"),
            "{args:?}: {}",
            text(&out)
        );
    }
}

/// Round 24 (noticed in round 23): the watch's stop named SOURCE and the mount it lies on,
/// even when the silent folder was the database's, given with `--db` on a share of its own
/// (a copy of the index kept on the NAS): "the source DUMP does not answer" with `umount -f`
/// of the local disk holding DUMP, which would cut off the wrong disk. It now names the
/// folder that did not answer and that folder's mount, in its `waiting:` lines too. And
/// `verify` and `regen` said no `waiting:` line during their start-up checks (their checks
/// ran quiet), though their walks did: now they say them as `plan` does. SOURCE here is
/// local; the database is on an sshfs share whose `sftp-server` is stopped; the patience
/// (20 s) lets one probe find it silent before the stop. Needs FUSE and `sshfs`.
#[test]
fn a_silent_database_folder_given_apart_is_the_one_named_regression_round_24() {
    let dump = Dump::new(138, 100, 1);
    let Some((_daemon, backing, share)) = sshfs_share_in_the_foreground(&dump) else {
        return;
    };
    std::fs::copy(dump.db(), backing.join("index.db")).unwrap();
    let db = share.join("index.db");
    let dest = dump.path("restored");
    std::fs::create_dir(&dest).unwrap();
    let command = |name: &'static str| {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("mycloud-recover"));
        c.arg(name).arg(&dump.root);
        if name != "inspect" {
            c.arg(&dest);
        }
        c.arg("--db")
            .arg(&db)
            .env("MYCLOUD_RECOVER_FAULTS", "source_patience_ms=20000");
        (name, c)
    };
    let commands = ["plan", "inspect", "verify", "regen"].map(command);
    for (name, code, msg) in held_by_the_share(&dump, commands) {
        assert_eq!(code, Some(2), "{name}: {msg}");
        let when = match name.as_str() {
            "plan" | "inspect" => format!("while `{name}` ran"),
            _ => format!("before `{name}` began"),
        };
        assert!(
            msg.contains(&format!(
                "waiting: the source disk has not answered for 15 s (looking at {} {when})",
                share.display()
            )) && msg.contains(&format!(
                "the source {} does not answer: looking at it did not come back within 15 s {when}",
                share.display()
            )) && msg.contains(&format!("`umount -f {}`", share.display()))
                && !msg.contains(&dump.root.display().to_string()),
            "{name}: {msg}"
        );
    }
    assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 0, "DEST written");
}

/// Round 23 (the round's review): the watch counted a source's silence from the start of
/// the work, not from the probe that found it silent: work that had run longer than the
/// patience (a long `verify` walk, `plan` read by a pager) stopped at the first probe that
/// found the source silent, without the patience a failing disk retrying a bad sector is
/// given. Here `plan`'s listing waits on a pipe nobody reads (as behind a pager) for 22 s,
/// longer than the patience (20 s), before the source's `sftp-server` is stopped: the run
/// now says it waits ("has not answered for 15 s") before it stops. Needs FUSE and `sshfs`
/// with `sftp-server`.
#[test]
fn a_source_that_stops_answering_after_long_work_is_given_the_patience_regression_round_23() {
    let dump = Dump::with(
        137,
        2000,
        1,
        mycloud_recover::demo::SizeMix::Small,
        mycloud_recover::demo::Content::Tiny,
    );
    let Some((_daemon, share)) = the_dump_over_sshfs(&dump) else {
        return;
    };
    let log = dump.path("plan.log");
    let mut child = Running(Some(
        std::process::Command::new(assert_cmd::cargo::cargo_bin("mycloud-recover"))
            .arg("plan")
            .arg(&share)
            .arg(dump.path("restored"))
            .env("MYCLOUD_RECOVER_FAULTS", "source_patience_ms=20000")
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    ));
    std::thread::sleep(std::time::Duration::from_secs(22));
    let server = Frozen::stop_the_server(&dump.path(""));
    wait_until(
        "plan said the source does not answer",
        std::time::Duration::from_secs(90),
        std::time::Duration::from_millis(200),
        || std::fs::read_to_string(&log).is_ok_and(|s| s.contains("does not answer")),
    );
    drop(server);
    // What it listed, read now that it has stopped.
    let mut listed = child.0.as_mut().unwrap().stdout.take().unwrap();
    std::io::copy(&mut listed, &mut std::io::sink()).unwrap();
    let out = child.wait();
    let said = std::fs::read_to_string(&log).unwrap();
    assert_eq!(out.status.code(), Some(2), "{said}");
    let waited = said.find("waiting: the source disk has not answered for 15 s");
    let stopped = said.find(&format!(
        "the source {} does not answer: looking at it did not come back within 15 s while `plan` ran, waited up to 20 s",
        share.display()
    ));
    assert!(
        waited.is_some() && stopped.is_some() && waited < stopped,
        "{said}"
    );
}

/// Runs `commands` (named) at once with the dump's share's `sftp-server` stopped, until
/// each says a disk does not answer (within 90 s: 15 s with the looks out, at most 15 s
/// for each probe); continues the server. Each command's name, exit code, and what it said
/// (stderr, then stdout).
fn held_by_the_share(
    dump: &Dump,
    commands: impl IntoIterator<Item = (&'static str, std::process::Command)>,
) -> Vec<(String, Option<i32>, String)> {
    let server = Frozen::stop_the_server(&dump.path(""));
    let runs: Vec<(String, std::path::PathBuf, Running)> = commands
        .into_iter()
        .map(|(name, mut command)| {
            let log = dump.path(&format!("{name}.log"));
            let child = command
                .stdout(std::process::Stdio::piped())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            (name.to_string(), log, Running(Some(child)))
        })
        .collect();
    for (name, log, _) in &runs {
        wait_until(
            &format!("{name} said a disk does not answer"),
            std::time::Duration::from_secs(90),
            std::time::Duration::from_millis(200),
            || std::fs::read_to_string(log).is_ok_and(|s| s.contains("does not answer")),
        );
    }
    // A command may still wait for its call to the share (a zombie until it returns).
    drop(server);
    runs.into_iter()
        .map(|(name, log, child)| {
            let out = child.wait();
            let msg = format!("{}{}", std::fs::read_to_string(&log).unwrap(), text(&out));
            (name, out.status.code(), msg)
        })
        .collect()
}

/// Round 23: a `--state-dir` on a share of its own (a state folder kept on the NAS) whose
/// server hangs held `restore`, `plan` and `verify` for good (their watch probed SOURCE and
/// DEST, which answered: "both answer, so the run waits"). The checkpoint folder given is
/// now watched as DEST is: silent, each stops at once, "the checkpoint folder ... does not
/// answer ... Nothing was changed" with `umount -f` of its share (`restore` exit 1, the
/// others 2). SOURCE and DEST are local; the state folder of a finished restore is copied
/// into what the share serves. Needs FUSE and `sshfs` with `sftp-server`.
#[test]
fn a_state_folder_on_a_share_that_does_not_answer_stops_the_commands_regression_round_23() {
    let dump = Dump::new(136, 100, 1);
    let Some((_daemon, backing, share)) = sshfs_share_in_the_foreground(&dump) else {
        return;
    };
    let (dest, on_share) = restored_with_its_state_folder_on(&dump, &backing, &share);
    let command = |name: &'static str| {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("mycloud-recover"));
        c.arg(name)
            .arg(&dump.root)
            .arg(&dest)
            .arg("--state-dir")
            .arg(&on_share);
        (name, c)
    };
    let ran = held_by_the_share(&dump, ["restore", "plan", "verify"].map(command));
    for (name, code, msg) in ran {
        let (exit, when) = match name.as_str() {
            "restore" => (1, "before the restore began".to_string()),
            "verify" => (2, "before `verify` began".to_string()),
            _ => (2, format!("while `{name}` ran")),
        };
        assert_eq!(code, Some(exit), "{name}: {msg}");
        assert!(
            msg.contains(&format!(
                "the checkpoint folder {} does not answer: looking at it did not come back within 15 s {when}",
                on_share.display()
            )) && msg.contains("Nothing was changed")
                && msg.contains(&format!("`umount -f {}`", share.display())),
            "{name}: {msg}"
        );
    }
}

/// Round 24 (noticed in round 23): a `--state-dir` on a share of its own whose server hung
/// while the restore copied held the run for good without a word: the committer's write of
/// the checkpoint (and the bookkeeper's of the report beside it) was made on an unwatched
/// call, the bookkeeper then waited on the committer, the workers on the bookkeeper. The
/// checkpoint's writes and the report's are now watched as the commit's flush of DEST is:
/// not back within 15 s and the folder silent to a probe, the run stops, "the checkpoint
/// folder ... does not answer" with `umount -f` of its share, the report said not written
/// there, exit 1. What the checkpoint records is on DEST, complete; the files copied since
/// are not recorded, and the same command, once the server answers, restores the rest.
/// SOURCE and DEST are local, the state folder is on the share, its `sftp-server` stopped
/// (SIGSTOP) once files are copied. Needs FUSE and `sshfs` with `sftp-server`.
#[test]
fn a_state_folder_on_a_share_that_stops_answering_mid_copy_stops_the_run_regression_round_24() {
    let dump = Dump::new(138, 1000, 1);
    let Some((_daemon, backing, share)) = sshfs_share_in_the_foreground(&dump) else {
        return;
    };
    let (dest, state) = (dump.path("restored"), share.join("state"));
    let cids = dump.content_ids();
    let by_path = planned_files(&plan_json(&dump.root, &dest, &[]));
    let (log, err) = (dump.path("restore.out"), dump.path("restore.err"));
    // About 20 files a second: the copy goes on for long after the server stops.
    let run = Running(Some(
        std::process::Command::new(assert_cmd::cargo::cargo_bin("mycloud-recover"))
            .arg("restore")
            .arg(&dump.root)
            .arg(&dest)
            .args(["--threads", "2", "--state-dir"])
            .arg(&state)
            .env("MYCLOUD_RECOVER_FAULTS", "delay_ms=100;commit_ms=300")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap(),
    ));
    let on_dest = || tree(&dest).values().filter(|(dir, _, _)| !dir).count();
    wait_until("100 files restored", SECS_60, MS_20, || on_dest() >= 100);
    let server = Frozen::stop_the_server(&dump.path(""));
    let said = || {
        format!(
            "{}{}",
            std::fs::read_to_string(&err).unwrap_or_default(),
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    };
    // 15 s for the write, at most 15 s more for the probe; its summary said, the run may
    // still wait for its call to the share (a zombie until it returns).
    let stopped_after = wait_until(
        "the run stopped after the state folder's server hung",
        std::time::Duration::from_secs(90),
        std::time::Duration::from_millis(200),
        || said().contains("Restore stopped"),
    );
    let msg = said();
    assert!(stopped_after.as_secs() < 60, "{stopped_after:?}: {msg}");
    assert!(
        msg.contains("Restore stopped: a disk stopped answering")
            && msg.contains(&format!(
                "the checkpoint folder {} does not answer",
                state.display()
            ))
            && msg.contains(&format!("umount -f {}", share.display()))
            && msg.contains(&format!(
                "the report {} was not written",
                state.join("report.json").display()
            )),
        "{msg}"
    );
    for wrong in [
        "finished",
        "ddrescue",
        "the destination became unreachable",
        "Report: ",
    ] {
        assert!(!msg.contains(wrong), "{wrong}: {msg}");
    }
    // Stopped while files were still to copy.
    let copied = on_dest();
    assert!(copied < by_path.len(), "{copied}: {msg}");
    drop(server);
    let out = run.wait();
    assert_eq!(out.status.code(), Some(1), "{msg}");
    // What the checkpoint records as copied is on DEST, complete (a write left behind in
    // its call may have recorded its batch once the server answered: flushed before).
    let recorded = recorded_copies(&backing.join("state"));
    assert!(recorded.len() < by_path.len(), "{}", recorded.len());
    for path in &recorded {
        let (id, _, _) = &by_path[path];
        assert_eq!(
            hash_file(&dest.join(path)),
            dump.expected_hash(&cids[id].0),
            "{path} is recorded but not on DEST"
        );
    }
    // The server answering again: the same command restores every file, and keeps those
    // placed but not recorded (complete under their final names).
    let placed = file_hashes(&dest)
        .keys()
        .filter(|p| !p.contains(".mcr-"))
        .count();
    assert!(placed > recorded.len(), "{placed} placed, all recorded");
    let report =
        the_same_command_finishes(&dump, &dest, &["--state-dir", state.to_str().unwrap()], &[]);
    assert_eq!(
        report["outcomes"]["already_done"].as_u64(),
        Some(recorded.len() as u64),
        "{report}"
    );
    assert_eq!(
        report["outcomes"]["adopted"].as_u64(),
        Some((placed - recorded.len()) as u64),
        "{report}"
    );
}

/// Round 25 (noticed in round 24): the state folder's writes in the copy were watched
/// (round 24), but not those between the checkpoint's opening and the copy (the
/// checkpoint's binding, the run's start and selection, its metadata, the notes of earlier
/// runs, the first report): a `--state-dir` on a share whose server hung there held the run
/// for good without a word. They are now watched alike: "the checkpoint folder ... does not
/// answer", "Stopped before the copy began", with `umount -f` of its share, exit 1, no file
/// restored or recorded; once the server answers, the same command restores every file.
/// The run is held just before it opens its checkpoint (`open_delay_ms`, DEST made and
/// tested), and the share's `sftp-server` stopped (SIGSTOP) then. Needs FUSE and `sshfs`
/// with `sftp-server`.
#[test]
fn a_state_folder_on_a_share_that_stops_answering_before_the_copy_stops_the_run_regression_round_24(
) {
    let dump = Dump::new(139, 100, 1);
    let Some((_daemon, backing, share)) = sshfs_share_in_the_foreground(&dump) else {
        return;
    };
    let (dest, state) = (dump.path("restored"), share.join("state"));
    let (log, err) = (dump.path("restore.out"), dump.path("restore.err"));
    let run = Running(Some(
        std::process::Command::new(assert_cmd::cargo::cargo_bin("mycloud-recover"))
            .arg("restore")
            .arg(&dump.root)
            .arg(&dest)
            .arg("--state-dir")
            .arg(&state)
            .env("MYCLOUD_RECOVER_FAULTS", "open_delay_ms=5000")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap(),
    ));
    // DEST is made and tested just before the checkpoint is opened (a first run).
    wait_until("DEST made", SECS_60, MS_20, || dest.is_dir());
    let server = Frozen::stop_the_server(&dump.path(""));
    let said = || {
        format!(
            "{}{}",
            std::fs::read_to_string(&err).unwrap_or_default(),
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    };
    // 5 s held, 15 s for the call, at most 15 s more for the probe.
    let stopped_after = wait_until(
        "the run stopped after the state folder's server hung",
        std::time::Duration::from_secs(90),
        std::time::Duration::from_millis(200),
        || said().contains("does not answer"),
    );
    let msg = said();
    assert!(stopped_after.as_secs() < 60, "{stopped_after:?}: {msg}");
    assert!(
        msg.contains(&format!(
            "the checkpoint folder {} does not answer",
            state.display()
        )) && msg.contains("Stopped before the copy began")
            && msg.contains(&format!("umount -f {}", share.display())),
        "{msg}"
    );
    for wrong in ["finished", "Restore stopped", "Report: "] {
        assert!(!msg.contains(wrong), "{wrong}: {msg}");
    }
    drop(server);
    let out = run.wait();
    assert_eq!(out.status.code(), Some(1), "{msg}");
    // No file restored, none recorded as done.
    let files = tree(&dest).values().filter(|(dir, _, _)| !dir).count();
    assert_eq!(files, 0, "{msg}");
    // (The checkpoint's open was held: made, or not yet, its log may not be there.)
    let db = backing.join("state/checkpoint.db");
    if db.exists() {
        let c =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap();
        let has_log: bool = c
            .query_row(
                "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'log'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        drop(c);
        if has_log {
            assert!(recorded_copies(&backing.join("state")).is_empty());
        }
    }
    // The server answering again: the same command restores every file.
    the_same_command_finishes(&dump, &dest, &["--state-dir", state.to_str().unwrap()], &[]);
}

/// Round 23 (noticed in round 22): `verify` and `regen` checked SOURCE and DEST watched
/// (round 22), but their walk of DEST was not: on a DEST share whose server hung after
/// those checks (answered here from sshfs's cache of what the restore just saw, 20 s), they
/// hung for good in the walk without a word. The walk is now watched alike: exit 2, the
/// share named with `umount -f`, and nothing changed (regen's records are written in one
/// transaction, not committed; a checkpoint a regen created goes with its state folder).
/// `--content` makes both read every file's bytes, which no cache answers.
#[test]
fn verify_and_regen_on_a_destination_share_that_stops_answering_mid_walk_say_so_regression_round_23(
) {
    let dump = Dump::new(132, 100, 1);
    let Some((_daemon, _backing, share)) = sshfs_share_in_the_foreground(&dump) else {
        return;
    };
    let dest = share.join("restored");
    let state = dump.path("state");
    let state_arg = state.to_str().unwrap();
    let checkpoint = state.join("checkpoint.db");
    // Every record of the checkpoint, once no run holds it.
    let records = |db: &Path| -> Vec<String> {
        let c =
            rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap();
        let mut q = c
            .prepare("SELECT seq, id, path, size, mtime, outcome, run FROM log ORDER BY seq")
            .unwrap();
        q.query_map([], |r| {
            Ok(format!(
                "{:?}",
                (
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, i64>(6)?,
                )
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    };
    for command in ["verify", "regen"] {
        // Each right after a restore, while the share's cache holds what the restore saw.
        let (out, _) = restore(&dump, &dest, &["--state-dir", state_arg], &[]);
        restored_all_it_could(&out, &dump, &dest);
        let before = records(&checkpoint);
        let doing = match command {
            "verify" => "compared DEST with the source",
            _ => "compared DEST with the plan",
        };
        stopped_by_the_destination_share(
            &dump,
            command,
            &dest,
            &share,
            &["--state-dir", state_arg, "--content"],
            &format!("while `{command}` {doing}"),
        );
        // The checkpoint's records as the restore left them (a regen's run is logged).
        assert_eq!(
            records(&checkpoint),
            before,
            "{command}: the checkpoint's records changed"
        );
    }
    // A regen into a state folder of its own (the restore's lost) leaves none behind: the
    // checkpoint it created goes as the process ends, its thread still in the walk.
    let (out, _) = restore(&dump, &dest, &["--state-dir", state_arg], &[]);
    restored_all_it_could(&out, &dump, &dest);
    let fresh = dump.path("fresh-state");
    stopped_by_the_destination_share(
        &dump,
        "regen",
        &dest,
        &share,
        &["--state-dir", fresh.to_str().unwrap(), "--content"],
        "while `regen` compared DEST with the plan",
    );
    assert!(!fresh.exists(), "the state folder regen made was left");
    // Answering again: `verify --content` finds every file.
    verify_finds_every_file(&dump, &dest, &["--state-dir", state_arg, "--content"]);
}

/// Round 23 (noticed in round 22): a database with a write-ahead log is read from a
/// private copy in TMPDIR, removed when the run ends. A source that stopped answering while
/// the copy was made stopped the run (round 22), but the copy, held by the thread left
/// behind in its read, stayed in TMPDIR (as large as the database, maybe on a RAM-backed
/// /tmp) until a later run with a log swept it. It is now removed as the process ends. The
/// source is the dump served over sshfs at 200 KB/s, with a 2 MB log, its `sftp-server`
/// stopped (SIGSTOP) once the copy is begun. Needs FUSE and `sshfs` with `sftp-server`.
#[test]
fn a_private_copy_of_the_database_goes_when_the_source_stops_answering_regression_round_23() {
    let dump = Dump::new(133, 100, 1);
    // As a device that died before folding its log in leaves it.
    let conn = rusqlite::Connection::open(dump.db()).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
         CREATE TABLE pad(x); INSERT INTO pad VALUES (randomblob(2000000));",
    )
    .unwrap();
    std::mem::forget(conn);
    let Some((_daemon, share)) = the_dump_over_a_link(&dump, Some(200)) else {
        return;
    };
    let (tmp, dest, log) = (
        dump.path("tmp"),
        dump.path("restored"),
        dump.path("run.log"),
    );
    std::fs::create_dir(&tmp).unwrap();
    let child = Running(Some(
        std::process::Command::new(assert_cmd::cargo::cargo_bin("mycloud-recover"))
            .arg("restore")
            .arg(&share)
            .arg(&dest)
            .arg("--state-dir")
            .arg(dump.path("state"))
            .env("TMPDIR", &tmp)
            .env("MYCLOUD_RECOVER_FAULTS", "source_patience_ms=1000")
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    ));
    let copies = || std::fs::read_dir(&tmp).unwrap().count();
    wait_until(
        "the private copy was begun",
        std::time::Duration::from_secs(60),
        std::time::Duration::from_millis(10),
        || copies() > 0,
    );
    let server = Frozen::stop_the_server(&dump.path(""));
    wait_until(
        "the run stopped after the source's server hung",
        std::time::Duration::from_secs(90),
        std::time::Duration::from_millis(200),
        || std::fs::read_to_string(&log).is_ok_and(|s| s.contains("mycloud-recover: stopped")),
    );
    // While the server is still stopped: the read is still out, the copy gone.
    wait_until(
        "the private copy was removed",
        std::time::Duration::from_secs(10),
        std::time::Duration::from_millis(50),
        || copies() == 0,
    );
    drop(server);
    let out = child.wait();
    let msg = format!("{}{}", std::fs::read_to_string(&log).unwrap(), text(&out));
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains("while the run was planning (opening the database)"),
        "{msg}"
    );
    assert_eq!(copies(), 0, "{msg}");
}

/// Runs `restore SOURCE DEST` with the share's `sftp-server` stopped (the dump's scratch
/// folder has its pid), until it says it stopped (within 90 s); checks `nothing_made` and
/// that no state folder was left while the server is still stopped; continues the server,
/// checks the exit (1) and "Nothing was changed", and that the same command then restores
/// every file. What the run said.
fn stopped_before_the_restore_began(
    dump: &Dump,
    source: &Path,
    dest: &Path,
    nothing_made: &dyn Fn(),
) -> String {
    let (state, log) = (dump.path("state"), dump.path("run.log"));
    let run = |faults: &str| {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("mycloud-recover"));
        c.arg("restore")
            .arg(source)
            .arg(dest)
            .arg("--state-dir")
            .arg(&state)
            .env("MYCLOUD_RECOVER_FAULTS", faults);
        c
    };
    let server = Frozen::stop_the_server(&dump.path(""));
    let child = Running(Some(
        run("source_patience_ms=1000")
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    ));
    // 15 s with the looks out, at most 15 s more for each probe. The run may then still
    // wait for its call to the share (a zombie until it returns).
    wait_until(
        "the run stopped after the share's server hung",
        std::time::Duration::from_secs(90),
        std::time::Duration::from_millis(200),
        || std::fs::read_to_string(&log).is_ok_and(|s| s.contains("mycloud-recover: stopped")),
    );
    nothing_made();
    assert!(!state.exists(), "a state folder was left");
    drop(server);
    let out = child.wait();
    let msg = format!("{}{}", std::fs::read_to_string(&log).unwrap(), text(&out));
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains("Nothing was changed") && msg.contains("run the same command"),
        "{msg}"
    );
    assert!(!state.exists(), "{msg}");
    restored_all_it_could(&run("").output().unwrap(), dump, dest);
    msg
}

/// Round 19 (review): with `--durability file` each file was flushed before it was linked
/// into its folder, but its name was not, and the checkpoint recorded it without flushing
/// the destination: when DEST's filesystem failed after the last file (ext4 with
/// `errors=remount-ro`, its journal aborted: what a crash of the disk leaves), the last
/// recorded files were not on the disk once it was mounted again. Now the destination is
/// flushed before each commit under `file` too: every file the run recorded as copied is
/// there. The failure is made with ext4's `trigger_fs_error` while the folders are dated.
#[test]
fn durability_file_records_a_file_only_once_its_name_is_on_the_disk_regression_round_19() {
    let dump = Dump::new(119, 300, 1);
    let Some(disk) = Ext4Disk::mount_made_with(&dump, "64M", &["-e", "remount-ro"]) else {
        return;
    };
    let trigger = Path::new("/sys/fs/ext4")
        .join(disk.device())
        .join("trigger_fs_error");
    if !trigger.exists() {
        eprintln!("skipped: {} is not there", trigger.display());
        return;
    }
    let dest = disk.path.join("restored");
    let state = dump.path("state");
    let folders = planned_folder_dates(&dump, &dest);
    let child = spawn_restore(
        &dump,
        &dest,
        &state,
        &["--threads", "2", "--durability", "file"],
        "folder_delay_ms=200",
    );
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while folders_dated(&folders, &dest) == 0 {
        assert!(std::time::Instant::now() < until, "no folder dated");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::fs::write(&trigger, "test").unwrap();
    let out = child.wait_with_output().unwrap();
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    let copied = report_in(&state)["outcomes"]["copied"].as_u64().unwrap();
    assert!(copied > 200, "{msg}");
    disk.mount_again();
    let on_disk = tree(&dest).values().filter(|(dir, _, _)| !dir).count() as u64;
    assert_eq!(
        on_disk, copied,
        "files recorded as copied but not on the disk after it failed\n{msg}"
    );
}

/// A run stopped by DEST lost in the folder passes after the last file says that the files
/// were all recorded and that the next run `next` ("it dates them"), in its summary and its
/// report, never that files since the last commit were not recorded; `status` does not
/// say so either.
fn assert_only_folders_left(msg: &str, state: &Path, next: &str) {
    let report = report_in(state);
    let why = report["dest_lost"].as_str().unwrap_or_default();
    assert!(
        why.contains("stopped after the last file")
            && why.contains("the files were all handled and recorded before")
            && why.contains(next)
            && msg.contains(why),
        "{msg}"
    );
    let status = bin()
        .arg("status")
        .arg("--state-dir")
        .arg(state)
        .output()
        .unwrap();
    let status = text(&status);
    for said in [msg, &status] {
        assert!(!said.contains("since the last commit"), "{said}");
        assert!(!said.contains("since its last commit"), "{said}");
    }
}

/// Round 18: a destination turned read-only while the folders that hold no file were made
/// (a pass of its own after the files) listed every folder left as failed ("cannot create
/// the folder: Read-only file system") and the run "finished". The pass now stops once as
/// the copy does on a read-only DEST: "stopped: the destination became read-only", no
/// folder listed, and the next run, with DEST writable again, makes and dates them all. The
/// message says that the files were all recorded and how many folders were left.
#[test]
fn a_destination_turning_read_only_while_empty_folders_are_made_stops_once_regression_round_18() {
    let dump = Dump::new(118, 300, 1);
    let Some(small) = SmallDisk::mount(&dump, "64m") else {
        return;
    };
    let dest = small.path.join("restored");
    let state = dump.path("state");
    // The folders that hold no file, made by that pass.
    let plan = plan_json(&dump.root, &dest, &[]);
    let empty = folders_without_files(&plan);
    let child = spawn_restore(
        &dump,
        &dest,
        &state,
        &["--threads", "1"],
        "folder_delay_ms=500",
    );
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !empty.iter().any(|d| dest.join(d).is_dir()) {
        assert!(std::time::Instant::now() < until, "no empty folder made");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    while !small.remount("ro") {
        assert!(
            std::time::Instant::now() < until,
            "could not remount read-only"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    assert!(small.remount("rw"));
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains("stopped: the destination became read-only") && !msg.contains("finished"),
        "{msg}"
    );
    let report = report_in(&state);
    assert_eq!(report["dest_read_only"], true, "{msg}");
    assert!(
        report["dest_lost"]
            .as_str()
            .is_some_and(|m| m.contains("cannot create the folder")
                && m.contains("became read-only")
                && m.contains("read-write again")),
        "{msg}"
    );
    assert_eq!(
        report["folders_failed"].as_array().unwrap().len(),
        0,
        "stopped once, no folder listed: {msg}"
    );
    assert!(
        empty.iter().any(|d| !dest.join(d).exists()),
        "the pass was cut short"
    );
    assert_only_folders_left(&msg, &state, "it makes and dates them");
    let why = report["dest_lost"].as_str().unwrap_or_default();
    assert!(
        why.contains("folders were not made") || why.contains("folder was not made"),
        "{why}"
    );
    // Writable again: the same command makes the rest and dates every folder.
    the_same_command_finishes(&dump, &dest, &[], &[]);
    assert_folder_dates(&dump, &dest);
}

/// Round 16: a restore onto a share over SSH (sshfs) that filled up went on to the end and
/// "finished": SFTP has no "disk full" status, so every file failed with "Input/output
/// error (after 4 tries)" (5,552 in the review's trial, 4 tries and 5 s each), space was
/// never mentioned and `dest_full` was null. A write error on DEST is now weighed against
/// DEST's free space: with no room for the file, the run stops as for a full disk, with
/// the same message and report, the files not processed left to the next run, which
/// finishes once room is made.
#[test]
fn a_full_share_that_says_io_error_stops_as_full_regression_round_16() {
    let dump = Dump::new(26, 300, 1);
    let Some(small) = SmallDisk::mount(&dump, "3m") else {
        return;
    };
    let share = dump.path("share");
    let Some(_mounted) = sftp_mount(&small.path, &share, &dump.path("")) else {
        return;
    };
    let dest = share.join("restored");
    let threads = 2;
    // Short waits between retries, so that the old behaviour (every file retried) ends.
    let faults = [("MYCLOUD_RECOVER_FAULTS", "backoff_ms=20")];
    let (out, report) = restore(&dump, &dest, &["--threads", "2"], &faults);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains("destination is full") && msg.contains("free at least"),
        "{msg}"
    );
    let full = report["dest_full"].as_str().unwrap_or_default();
    assert!(
        full.contains("Input/output error") && !full.contains("tries"),
        "stopped at the first such file, without retries: {msg}"
    );
    assert!(report["not_processed"].as_u64().unwrap() > 0, "{msg}");
    let failed = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["outcome"] == "failed")
        .count();
    assert!(failed <= threads, "only the files in flight: {msg}");
    for (path, _) in file_hashes(&dest) {
        assert!(!path.contains(".mcr-"), "temp file left: {path}");
    }

    // Room made on the server: the same command finishes.
    assert!(small.remount("size=64m"));
    let report = the_same_command_finishes(&dump, &dest, &["--threads", "2"], &faults);
    assert!(report["dest_full"].is_null(), "{report}");
}

/// The same restore run again (room made, the disk attached again) finishes: exit 1 for
/// the demo's missing objects only, and DEST holds exactly what the plan says. Returns the
/// report.
fn the_same_command_finishes(
    dump: &Dump,
    dest: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> serde_json::Value {
    let (out, report) = restore(dump, dest, extra, env);
    restored_all_it_could(&out, dump, dest);
    report
}

/// A restore run `out` ended with exit 1 for the demo's missing objects only, and DEST
/// holds exactly what the plan says.
fn restored_all_it_could(out: &std::process::Output, dump: &Dump, dest: &Path) {
    assert_eq!(
        out.status.code(),
        Some(1),
        "the demo's missing objects only: {}",
        text(out)
    );
    assert_restored_exactly(dump, dest);
}

/// Round 17: the folders that hold no file are made in a pass of their own after the
/// files; a destination that filled up there (here: a tmpfs with room for the files and
/// their folders, and for few more) listed every folder left as "cannot create the
/// folder: No space left on device" and the run "finished". The pass now stops as the copy
/// does on a full disk: "stopped: the destination is full", `dest_full` in the report,
/// exit 1, and the next run, with room made, makes the rest.
#[test]
fn a_destination_that_fills_while_the_empty_folders_are_made_stops_as_full_regression_round_17() {
    let dump = Dump::new(118, 300, 1);
    // What the files take (with their folders) and what the folders without files add,
    // from a restore into an ordinary folder.
    let scratch = dump.path("scratch");
    let scratch_state = dump.path("scratch-state");
    let (out, _) = restore(
        &dump,
        &scratch,
        &["--state-dir", scratch_state.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = tree(&scratch);
    let files: Vec<&String> = (all.iter())
        .filter(|(_, (dir, _, _))| !dir)
        .map(|(p, _)| p)
        .collect();
    let holds_files = |dir: &str| files.iter().any(|f| f.starts_with(&format!("{dir}/")));
    let empty = (all.iter())
        .filter(|(p, (dir, _, _))| *dir && !holds_files(p))
        .count();
    assert!(empty >= 4, "the dump has {empty} folders without files");
    // Its root, DEST, the files and their folders, and half the empty folders.
    let inodes = 2 + all.len() - empty + empty / 2;
    let Some(small) = SmallDisk::mount_with(&dump, &format!("size=64m,nr_inodes={inodes}")) else {
        return;
    };
    let dest = small.path.join("restored");
    let (out, report) = restore(&dump, &dest, &["--threads", "2"], &[]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(msg.contains("stopped: the destination is full"), "{msg}");
    let full = report["dest_full"].as_str().unwrap_or_default();
    assert!(
        full.contains("cannot create the folder") && full.contains("No space left on device"),
        "{msg}"
    );
    assert!(
        full.contains("room for only") && full.contains("files and folders are still to restore"),
        "{msg}"
    );
    assert_eq!(
        report["folders_failed"].as_array().unwrap().len(),
        0,
        "{msg}"
    );
    assert_eq!(report["outcomes"]["failed"], 0, "the files all fit: {msg}");

    // Room made: the same command makes the rest.
    assert!(small.remount("nr_inodes=5000"));
    let (out, report) = restore(&dump, &dest, &["--threads", "2"], &[]);
    let msg = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the demo's missing objects: {msg}"
    );
    assert!(report["dest_full"].is_null(), "{msg}");
    assert_restored_exactly(&dump, &dest);
    let made = tree(&dest);
    for (p, (dir, _, _)) in &all {
        assert!(*dir || made.contains_key(p), "{p} not restored");
        assert!(
            !*dir || made.get(p).is_some_and(|e| e.0),
            "folder {p} not made"
        );
    }
}

/// Round 18: a destination that filled up while only folders were left to make (every
/// file placed; the empty-folder pass after the last file) said "about 0 B is still to
/// restore: free at least 0 B more", which tells nothing (here, with the demo's missing
/// objects, it asked for their bytes, which no run restores). The message now counts the
/// folders still to make and the space they take (a block each), and asks for that.
/// Here on a real ext4 (on a tmpfs folders take no space): the files restored first
/// (`--only` each file), the disk then filled to all but 1 block, the whole restore run.
#[test]
fn a_destination_full_with_only_folders_left_asks_for_their_space_regression_round_18() {
    let dump = Dump::new(118, 300, 1);
    let Some(disk) = Ext4Disk::mount(&dump, "32M") else {
        return;
    };
    let dest = disk.path.join("restored");
    let plan = plan_json(&dump.root, &dest, &[]);
    let files: Vec<String> = planned_files(&plan).into_keys().collect();
    let folders: Vec<String> = (of_type(&plan, "folder").into_iter())
        .filter(|f| f["skip"].is_null())
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    folders_without_files(&plan);
    let only: Vec<&str> = files.iter().flat_map(|f| ["--only", f.as_str()]).collect();
    let (out, report) = restore(&dump, &dest, &only, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(report["dest_full"].is_null(), "{}", text(&out));

    // Full but for 1 block: room for the run's probe files (one at a time), and for one
    // folder at most.
    let filler = disk.path.join("filler");
    disk.fill_but(&filler, 1);
    let (out, report) = restore(&dump, &dest, &[], &[]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(msg.contains("stopped: the destination is full"), "{msg}");
    assert_eq!(
        report["outcomes"]["copied"], 0,
        "the files were all there: {msg}"
    );
    let full = report["dest_full"].as_str().unwrap_or_default();
    assert!(
        full.contains("cannot create the folder") && full.contains("No space left on device"),
        "{msg}"
    );
    let left = (folders.iter()).filter(|d| !dest.join(d).is_dir()).count();
    assert!(left >= 3, "{left} folders not made: {msg}");
    assert!(
        full.contains(&format!("0 B of files and {left} folders (about "))
            && full.contains("free at least")
            && !full.contains(" 0 B more"),
        "{msg}"
    );
    assert!(msg.contains(&format!("{left} folders")), "{msg}");

    // Room made: the same command makes the rest.
    std::fs::remove_file(&filler).unwrap();
    let report = the_same_command_finishes(&dump, &dest, &[], &[]);
    assert!(report["dest_full"].is_null(), "{report}");
    for d in &folders {
        assert!(dest.join(d).is_dir(), "folder {d} not made");
    }
}

/// Runs `preflight` of `dump` onto `dest` (5 s of budget); its output.
fn preflight(dump: &Dump, dest: &Path) -> std::process::Output {
    bin()
        .arg("preflight")
        .arg(&dump.root)
        .arg(dest)
        .args(["--budget", "5"])
        .output()
        .unwrap()
}

/// Round 19: a restore onto a destination full to its last block stopped at start-up with
/// "cannot write to destination ...: No space left on device", and left the empty probe
/// file it had made (`.mcr-probe-*.part`) in DEST; pre-flight called such a DEST "cannot be
/// written". Both now say the destination is full, what is free and about what the
/// restore needs (its files and folders), and that nothing was written; the restore exits
/// 2 (could not run, as for a DEST that cannot be written) and pre-flight 1 (blocking).
/// Same for a DEST that does not exist yet, whose folder cannot be made. Once room is
/// made, the same command restores everything: the refused run left nothing in the way.
#[test]
fn a_destination_full_to_its_last_block_says_full_at_start_up_regression_round_19() {
    let dump = Dump::new(190, 120, 1);
    let Some(disk) = Ext4Disk::mount(&dump, "32M") else {
        return;
    };
    let dest = disk.path.join("restored");
    let plan = plan_json(&dump.root, &dest, &[]);
    // The files the restore writes: not those whose object is missing (round 20).
    let cids = dump.content_ids();
    let bytes: u64 = (planned_files(&plan).values())
        .filter(|(id, _, _)| {
            cids[id]
                .0
                .as_ref()
                .is_some_and(|c| dump.object(c).is_some())
        })
        .map(|(_, size, _)| size)
        .sum();
    let folders = (of_type(&plan, "folder").into_iter())
        .filter(|f| f["skip"].is_null())
        .count();
    // What the user had there already stays as it was.
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::write(dest.join("kept-from-before.txt"), b"mine").unwrap();
    disk.fill_but(&disk.path.join("filler"), 0);
    let source = SourceSnapshot::take(&dump);
    // Everything on the disk, but DEST's own time: a probe's name comes and goes.
    let listing = || {
        let mut t = tree(&disk.path);
        t.remove("restored");
        t
    };
    let before = listing();
    let free = rustix::fs::statvfs(&disk.path).unwrap().f_bavail;
    assert_eq!(free, 0, "the disk is full");

    let (out, report) = restore(&dump, &dest, &[], &[]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    let said = format!(
        "the destination {} is full: cannot write the probe file",
        dest.display()
    );
    assert!(msg.contains(&said), "{msg}");
    assert!(
        msg.contains("No space left on device") && msg.contains("Nothing was written there"),
        "{msg}"
    );
    let needs = format!(
        "The destination has 0 B free and about {} of files and {folders} folders (about ",
        mycloud_recover::report::human_bytes(bytes)
    );
    assert!(msg.contains(&needs), "{msg}");
    assert!(
        msg.contains("free at least") && msg.contains("or choose another disk"),
        "{msg}"
    );
    assert!(!msg.contains("cannot write to destination"), "{msg}");
    assert!(report.is_null(), "no report before any file: {report}");

    // A DEST not there yet: its folder cannot be made.
    let new = disk.path.join("new");
    let (out, _) = restore(
        &dump,
        &new,
        &["--state-dir", dump.path("new-state").to_str().unwrap()],
        &[],
    );
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    let said = format!(
        "the destination {} is full: cannot create the folder",
        new.display()
    );
    assert!(
        msg.contains(&said) && msg.contains("Nothing was written"),
        "{msg}"
    );

    // Pre-flight: full, blocking, with the figures; not "cannot be written".
    let out = preflight(&dump, &dest);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains(&format!("the destination {} is full (", dest.display()))
            && msg.contains("0 B free, about"),
        "{msg}"
    );
    assert!(!msg.contains("cannot be written"), "{msg}");

    // Nothing written: no probe file, no new folder, what was there as it was.
    assert_eq!(listing(), before, "the destination changed");
    assert_eq!(SourceSnapshot::take(&dump), source, "source changed");

    // Room made: the same command restores everything.
    std::fs::remove_file(disk.path.join("filler")).unwrap();
    the_same_command_finishes(&dump, &dest, &[], &[]);
    assert_eq!(
        std::fs::read(dest.join("kept-from-before.txt")).unwrap(),
        b"mine"
    );
}

/// Round 19: a destination out of inodes (ENOSPC when a file is made, with blocks free: an
/// ext4 made with few) at start-up is said to be out of inodes, with the wording of a run
/// stopped so while copying, by the restore (exit 2) and by pre-flight (blocking), and
/// nothing is left in it.
#[test]
fn a_destination_out_of_inodes_says_so_at_start_up_regression_round_19() {
    let dump = Dump::new(191, 120, 1);
    let Some(disk) = Ext4Disk::mount_made_with(&dump, "32M", &["-N", "32"]) else {
        return;
    };
    let dest = disk.path.join("restored");
    std::fs::create_dir_all(&dest).unwrap();
    assert!(disk.fill_inodes(&disk.path.join("filler")) > 0);
    let fs = rustix::fs::statvfs(&disk.path).unwrap();
    assert!(fs.f_favail == 0 && fs.f_bavail > 1000, "out of inodes only");
    let before = tree(&dest);

    let (out, _) = restore(&dump, &dest, &[], &[]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains(&format!(
            "the destination {} is out of inodes: cannot write the probe file",
            dest.display()
        )),
        "{msg}"
    );
    assert!(
        msg.contains("has room for only 0 more files or folders (its filesystem has ")
            && msg.contains("mkfs.ext4 -N")
            && msg.contains("Nothing was written there"),
        "{msg}"
    );
    assert!(!msg.contains("cannot write to destination"), "{msg}");

    let out = preflight(&dump, &dest);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains(&format!(
            "the destination {} is out of inodes",
            dest.display()
        )) && msg.contains("room for only 0 more files or folders"),
        "{msg}"
    );
    assert!(!msg.contains("cannot be written"), "{msg}");
    assert_eq!(tree(&dest), before, "nothing left in the destination");
}

/// Round 19's review: a DEST not there yet on a destination with room for its folders but
/// not for a file's bytes (here an ext4 with 2 blocks left; a tmpfs, where a folder takes
/// no block, or a btrfs, which keeps room for folders apart, the same when full to its last
/// byte): the run made DEST and the folder above it, its probe file was refused, and it
/// stopped saying "Nothing was written there" (exit 2) with both left on the full disk. The
/// folders the run made are removed again; the one that was there before stays.
#[test]
fn a_destination_made_on_a_full_disk_is_not_left_there_regression_round_19() {
    let dump = Dump::new(192, 60, 1);
    let Some(disk) = Ext4Disk::mount(&dump, "32M") else {
        return;
    };
    std::fs::create_dir(disk.path.join("mine")).unwrap();
    disk.fill_but(&disk.path.join("filler"), 2);
    // Paths only: a folder's time changes as a name comes and goes in it.
    let listing = || tree(&disk.path).into_keys().collect::<Vec<_>>();
    let before = listing();

    let dest = disk.path.join("mine/backup/restored");
    let (out, _) = restore(&dump, &dest, &[], &[]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains(&format!("the destination {} is full", dest.display()))
            && msg.contains("Nothing was written there"),
        "{msg}"
    );
    assert_eq!(listing(), before, "left on the full disk: {msg}");
}

/// Round 19's list: as root, ext4's reserved blocks (`mkfs.ext4 -m`, 5%) are room: on a
/// disk filled up to them (`df` shows none available) the start-up probe passes and the
/// restore writes into them, as it may. But an error there that does not say "full" was
/// weighed against `f_bavail`, which leaves them out, so one file's failed close (the
/// `fail_close` fault: an error CI cannot make a real disk give) was "taken for a full
/// destination" and stopped the whole run, asking to free room, with megabytes left for
/// root. Now, as root on a local filesystem, the room counts the reserve
/// (`copy::full_by_room`): that file fails, the others are restored, the run is not
/// stopped as full. Needs root and a loop device.
#[test]
fn as_root_one_failed_file_in_ext4s_reserved_blocks_is_not_a_full_disk_regression_round_21() {
    let dump = Dump::new(194, 60, 1);
    let Some(disk) = Ext4Disk::mount_made_with(&dump, "64M", &["-m", "5"]) else {
        return;
    };
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED: the reserved blocks are root's only");
        return;
    }
    let roots = disk.fill_to_roots_reserve(&disk.path.join("filler"));
    assert_eq!(rustix::fs::statvfs(&disk.path).unwrap().f_bavail, 0);
    let files = dump.manifest.bytes;
    assert!(
        roots > files + (1 << 20),
        "room for root: {roots} for {files}"
    );
    let cids = dump.content_ids();
    let (_, (cid, _)) = (cids.iter())
        .find(|(id, (c, _))| c.is_some() && !dump.manifest.missing_object_ids.contains(id))
        .unwrap();
    let fault = format!("fail_close={}", cid.clone().unwrap());
    let dest = disk.path.join("restored");
    let (out, report) = restore(&dump, &dest, &[], &[("MYCLOUD_RECOVER_FAULTS", &fault)]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(
        report["dest_full"].is_null() && !msg.contains("full"),
        "{msg}"
    );
    assert_eq!(report["outcomes"]["failed"], 1, "{msg}");
    let failed = (report["problems"].as_array().unwrap().iter())
        .find(|p| p["outcome"] == "failed")
        .unwrap();
    assert_eq!(
        failed["reason"],
        format!(
            "cannot close {}: Bad file descriptor (os error 9)",
            dest.join(failed["path"].as_str().unwrap()).display()
        )
    );
    let missing = dump.manifest.missing_object_ids.len();
    assert_eq!(
        outcome_sum(&report),
        dump.manifest.files,
        "every file handled: {msg}"
    );
    assert_eq!(
        report["outcomes"]["copied"].as_u64().unwrap()
            + report["outcomes"]["filtered"].as_u64().unwrap()
            + 1
            + missing as u64,
        dump.manifest.files,
        "all but that one copied: {msg}"
    );
}

/// Round 19's review: `--fresh` onto a destination filled by an earlier restore said every
/// file's bytes were "still to restore" (free at least the whole restore's size), though
/// `--fresh` keeps the files already there unchanged, which need no room: the figure now
/// says it counts them.
#[test]
fn fresh_onto_a_full_destination_says_its_figure_counts_the_files_there_regression_round_19() {
    let dump = Dump::new(193, 60, 1);
    let Some(disk) = Ext4Disk::mount(&dump, "32M") else {
        return;
    };
    let dest = disk.path.join("restored");
    the_same_command_finishes(&dump, &dest, &[], &[]);
    disk.fill_but(&disk.path.join("filler"), 0);

    let (out, _) = restore(&dump, &dest, &["--fresh"], &[]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains("is full: cannot write the probe file")
            && msg.contains("with --fresh, every file the plan selects is counted: those already there unchanged are kept and need no room"),
        "{msg}"
    );
}

/// Round 19's review: a full disk behind a share over SSH (sshfs) was not called full at
/// start-up: sshfs writes late, so the probe file's write succeeded and its close answered
/// "Input/output error" (SFTP has no "disk full" status), which the probe did not look at;
/// the run started and failed its first files. The probe's close is checked now, and an
/// error that does not say "full" is weighed against DEST's free space as while copying:
/// with no room left it is "full" at start-up too, said with what the restore needs, and
/// nothing is left there. So is a DEST not made yet, whose folder the share refused with
/// "File exists" (nothing being there), which was said to be a read-only share. Once room
/// is made, the same command restores everything. Needs root, a loop device, FUSE and
/// `sshfs` with `sftp-server` (MCR_TEST_FUSE=require in `.ci/run`).
#[test]
fn a_full_share_over_ssh_is_full_at_start_up_regression_round_20() {
    let dump = Dump::new(196, 120, 1);
    let Some(disk) = Ext4Disk::mount(&dump, "32M") else {
        return;
    };
    std::fs::create_dir(disk.path.join("restored")).unwrap();
    disk.fill_but(&disk.path.join("filler"), 0);
    let share = dump.path("share");
    let Some(_mounted) = sftp_mount(&disk.path, &share, &dump.path("")) else {
        return;
    };
    let dest = share.join("restored");
    assert_eq!(rustix::fs::statvfs(&dest).unwrap().f_bavail, 0, "full");
    let listing = || tree(&disk.path).into_keys().collect::<Vec<_>>();
    let before = listing();

    let (out, report) = restore(&dump, &dest, &[], &[]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains(&format!(
            "the destination {} is full: cannot write the probe file",
            dest.display()
        )) && msg.contains("Input/output error")
            && msg.contains("taken for a full destination"),
        "{msg}"
    );
    assert!(
        msg.contains("Nothing was written there")
            && msg.contains("The destination has 0 B free and about ")
            && msg.contains("free at least"),
        "{msg}"
    );
    assert!(!msg.contains("cannot write to destination"), "{msg}");
    assert!(report.is_null(), "no report before any file: {report}");
    assert_eq!(listing(), before, "nothing left on the full disk");

    // A DEST not there yet: the share answers the making of its folder with "File exists",
    // nothing being there (it was "a read-only share, or permissions on the server").
    let new = share.join("new/restored");
    let state = dump.path("new-state");
    let (out, _) = restore(&dump, &new, &["--state-dir", state.to_str().unwrap()], &[]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains(&format!(
            "the destination {} is full: cannot create the folder",
            new.display()
        )) && msg.contains("taken for a full destination")
            && msg.contains("Nothing was written there"),
        "{msg}"
    );
    assert!(!msg.contains("read-only share"), "{msg}");
    assert_eq!(listing(), before, "nothing left on the full disk");

    // Room made on the server: the same command restores everything.
    std::fs::remove_file(disk.path.join("filler")).unwrap();
    the_same_command_finishes(&dump, &dest, &[], &[]);
}

/// Round 19's review: a resume onto a destination full to its last block, with only files
/// whose object is missing left (no run writes them), was refused as full and told to free
/// room for them ("free at least 106.7 kB more"). They need neither room nor an inode: the
/// start-up figure counts only the files the restore will write, and with nothing needing
/// room the run is not refused at all: it goes on (with a warning that DEST is full), lists
/// those files as missing, and ends as the first run did (exit 1 for them).
#[test]
fn a_full_destination_with_only_missing_objects_left_is_not_refused_regression_round_20() {
    let dump = Dump::new(194, 60, 1);
    let Some(disk) = Ext4Disk::mount(&dump, "32M") else {
        return;
    };
    let dest = disk.path.join("restored");
    let first = the_same_command_finishes(&dump, &dest, &[], &[]);
    let missing = first["outcomes"]["missing"].as_u64().unwrap();
    assert!(missing > 0, "the demo has files without an object: {first}");
    disk.fill_but(&disk.path.join("filler"), 0);
    assert_eq!(rustix::fs::statvfs(&disk.path).unwrap().f_bavail, 0);
    // Paths only: the probe's name comes and goes in DEST.
    let listing = || tree(&dest).into_keys().collect::<Vec<_>>();
    let before = listing();

    let (out, report) = restore(&dump, &dest, &[], &[]);
    let msg = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the missing objects only: {msg}"
    );
    assert!(
        !msg.contains("free at least") && !msg.contains("Nothing was written"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!(
            "warning: the destination {} is full (cannot write the probe file",
            dest.display()
        )) && msg.contains("but nothing this run restores needs room there"),
        "{msg}"
    );
    assert!(report["dest_full"].is_null(), "{report}");
    assert_eq!(report["outcomes"]["missing"], missing, "{msg}");
    assert_eq!(report["outcomes"]["copied"], 0, "{msg}");
    assert_eq!(listing(), before, "nothing written");
    assert_restored_exactly(&dump, &dest);
}

/// Round 18's note, checked in round 20: the inode message of a destination out of inodes
/// at start-up counts, among "files and folders still to restore", only what needs an
/// inode: the files the run writes and the folders not there yet (those already on DEST
/// were not counted already; the files whose object is missing were, "about 57 files"
/// here). Every folder is there (an earlier restore's, its files deleted since) and the
/// run is a first one (its own state folder): the message counts the files with an object,
/// and says "files", not "files and folders".
#[test]
fn a_destination_out_of_inodes_counts_only_what_needs_an_inode_regression_round_20() {
    let dump = Dump::new(195, 60, 1);
    let Some(disk) = Ext4Disk::mount_made_with(&dump, "32M", &["-N", "256"]) else {
        return;
    };
    let dest = disk.path.join("restored");
    let first = the_same_command_finishes(&dump, &dest, &[], &[]);
    let copied = first["outcomes"]["copied"].as_u64().unwrap();
    let missing = first["outcomes"]["missing"].as_u64().unwrap();
    assert!(missing > 0, "the demo has files without an object: {first}");
    let mut removed = 0;
    for (path, (is_dir, _, _)) in tree(&dest) {
        if !is_dir {
            std::fs::remove_file(dest.join(path)).unwrap();
            removed += 1;
        }
    }
    assert_eq!(
        removed, copied,
        "every restored file removed, every folder kept"
    );
    assert!(disk.fill_inodes(&disk.path.join("filler")) > 0);
    let fs = rustix::fs::statvfs(&disk.path).unwrap();
    assert!(fs.f_favail == 0 && fs.f_bavail > 1000, "out of inodes only");

    let state = dump.path("another-state");
    let (out, _) = restore(&dump, &dest, &["--state-dir", state.to_str().unwrap()], &[]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains(&format!(
            "the destination {} is out of inodes: cannot write the probe file",
            dest.display()
        )) && msg.contains(&format!(
            "has room for only 0 more files or folders (its filesystem has 256 inodes in all) and about {copied} files are still to restore"
        )),
        "{copied} files to write again, no folder: {msg}"
    );
}

/// Round 17: a read error of the source met while copying (a bad sector inside an object)
/// on a destination with little room left was taken for a full destination ("stopped: the
/// destination is full", free some space): the check that weighs a failed write against
/// DEST's free space did not tell the copy's reads from its writes. The copy now tells
/// them apart (the object is read again where the copy stopped), and the file fails as
/// the source's ("cannot read object ..."), listed, without the run stopping as full. The
/// bad sector is the fault `read_error` (CI cannot make a disk fail a read); DEST is a
/// tmpfs of 512 KB, below the 1 MB under which any write error counts as full.
#[test]
fn a_source_read_error_on_a_nearly_full_destination_is_the_sources_regression_round_17() {
    let dump = Dump::new(119, 60, 1);
    let cids = dump.content_ids();
    let plan = plan_json(&dump.root, &dump.path("planned"), &[]);
    let (path, cid) = planned_files(&plan)
        .into_iter()
        .filter(|(_, (_, size, _))| (1..100_000).contains(size))
        .find_map(|(path, (id, _, _))| {
            let cid = cids[&id].0.clone()?;
            dump.object(&cid).map(|_| (path, cid))
        })
        .expect("a small file with its object");
    let Some(small) = SmallDisk::mount(&dump, "512k") else {
        return;
    };
    let dest = small.path.join("restored");
    let faults = format!("read_error={cid};backoff_ms=20");
    let (out, report) = restore(
        &dump,
        &dest,
        &["--only", &path],
        &[("MYCLOUD_RECOVER_FAULTS", faults.as_str())],
    );
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(report["dest_full"].is_null(), "{msg}");
    assert!(!msg.contains("destination is full"), "{msg}");
    assert_eq!(report["outcomes"]["failed"], 1, "{msg}");
    let problem = &report["problems"][0];
    assert_eq!(problem["path"], path.as_str(), "{msg}");
    let reason = problem["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("cannot read object")
            && reason.contains(&cid)
            && reason.contains("Input/output error"),
        "{msg}"
    );
    // The object readable again: the same command restores it.
    let (out, _) = restore(&dump, &dest, &["--only", &path], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(dest.join(&path).is_file());
}

#[test]
fn demo_command_runs_and_a_second_run_resumes() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("demo");
    let out = bin()
        .arg("demo")
        .arg(&dir)
        .args(["--files", "150"])
        .output()
        .unwrap();
    let s = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the demo has missing objects on purpose: {s}"
    );
    assert!(
        s.contains("Demo dump written") && s.contains("copied"),
        "{s}"
    );
    let out = bin()
        .arg("demo")
        .arg(&dir)
        .args(["--files", "150"])
        .output()
        .unwrap();
    let s = text(&out);
    assert!(s.contains("Reusing") && s.contains("already done"), "{s}");
    bin()
        .arg("demo")
        .arg(&dir)
        .args(["--files", "99"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--force"));
}

/// Round 12: a demo stopped by Ctrl-C while its restore planned ended "Try: run the same
/// command again (it resumes: nothing left to copy)"; it says the restore continues.
#[test]
fn an_interrupted_demo_says_the_restore_continues() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("demo");
    let demo = || {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("mycloud-recover"));
        c.arg("demo").arg(&dir).args(["--files", "150"]);
        c
    };
    assert!(demo().arg("--no-restore").status().unwrap().success());
    let child = demo()
        .env("MYCLOUD_RECOVER_FAULTS", "plan_delay_ms=1500")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_lock(&dir.join("state/lock"));
    send_signal(&child, "INT");
    let out = child.wait_with_output().unwrap();
    let s = text(&out);
    assert_eq!(out.status.code(), Some(130), "{s}");
    assert!(
        s.contains("continues where it stopped") && !s.contains("nothing left to copy"),
        "{s}"
    );
}

/// Review A1 (data loss): `demo DIR --force` deleted any folder, a copy of a device's
/// `restsdk` and the user's photo included. Only a folder `demo` made is replaced; any other
/// non-empty folder is refused with exit 2, with or without --force, and the refusal does
/// not suggest --force.
#[test]
fn demo_force_replaces_only_a_folder_demo_made() {
    let t = tempfile::tempdir().unwrap();
    let disk = t.path().join("disk");
    std::fs::create_dir_all(disk.join("restsdk/data/db")).unwrap();
    std::fs::write(disk.join("restsdk/data/db/index.db"), b"the only copy").unwrap();
    std::fs::write(disk.join("IMPORTANT.jpg"), b"photo").unwrap();
    let demo = |dir: &std::path::Path, extra: &[&str]| {
        bin()
            .arg("demo")
            .arg(dir)
            .args(["--files", "20", "--no-restore"])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = demo(&disk, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        !text(&out).contains("--force"),
        "does not invite --force for a folder that is not ours: {}",
        text(&out)
    );
    let out = demo(&disk, &["--force"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let s = text(&out);
    assert!(
        s.contains("not a folder `demo` made") && s.contains("another folder"),
        "{s}"
    );
    assert_eq!(std::fs::read(disk.join("IMPORTANT.jpg")).unwrap(), b"photo");
    assert_eq!(
        std::fs::read(disk.join("restsdk/data/db/index.db")).unwrap(),
        b"the only copy"
    );

    // A folder demo made is replaced with --force, and only with it.
    let ours = t.path().join("ours");
    assert_eq!(demo(&ours, &[]).status.code(), Some(0));
    std::fs::create_dir_all(ours.join("restored/Photos")).unwrap();
    std::fs::create_dir_all(ours.join("state")).unwrap();
    let out = demo(&ours, &["--seed", "2"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--force"), "{}", text(&out));
    let out = demo(&ours, &["--seed", "2", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("Demo dump written"), "{}", text(&out));
    assert!(!ours.join("restored").exists(), "replaced whole");

    // Something a person put there makes it theirs: a file beside the demo, or a device's
    // disk outside dump/.
    for extra in ["notes.txt", "restored/restsdk"] {
        let p = ours.join(extra);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"mine").unwrap();
        let out = demo(&ours, &["--seed", "3", "--force"]);
        assert_eq!(out.status.code(), Some(2), "{extra}: {}", text(&out));
        assert_eq!(std::fs::read(&p).unwrap(), b"mine", "{extra} kept");
        std::fs::remove_file(&p).unwrap();
    }

    // Round 24 (found by an exploratory test): a file given as the folder, even an empty
    // one, was said to be "not empty and ... not a folder `demo` made (it is not a folder)".
    let file = t.path().join("afile");
    std::fs::write(&file, b"").unwrap();
    let out = demo(&file, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "{} is not a folder, so the demo will not write there: nothing was changed",
            file.display()
        )) && !text(&out).contains("not empty"),
        "{}",
        text(&out)
    );
    // And a dump too small for the messy cases does not claim them.
    let out = bin()
        .arg("demo")
        .arg(t.path().join("tiny"))
        .args(["--files", "3", "--no-restore"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(": 3 files, ") && !text(&out).contains("(with "),
        "{}",
        text(&out)
    );

    // A demo killed while it writes its dump is still ours: --force replaces it (it was
    // refused for good, to be deleted by hand).
    let killed = t.path().join("killed");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mycloud-recover"))
        .arg("demo")
        .arg(&killed)
        .args(["--files", "400000", "--no-restore"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let db = killed.join("dump/restsdk/data/db/index.db");
    let t0 = std::time::Instant::now();
    while !db.exists() && t0.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    assert!(
        child.wait().unwrap().code().is_none(),
        "killed while writing its dump"
    );
    assert!(db.exists());
    let out = demo(&killed, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--force"), "{}", text(&out));
    let out = demo(&killed, &["--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn a_checkpoint_is_refused_for_another_destination() {
    let dump = Dump::new(28, 40, 1);
    restore(&dump, &dump.path("a"), &[], &[]);
    let (out, _) = restore(&dump, &dump.path("b"), &[], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("belongs to another restore"),
        "{}",
        text(&out)
    );
    assert!(!dump.path("b").exists(), "nothing created");
    let (out, r) = restore(&dump, &dump.path("b"), &["--fresh"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(r["outcomes"]["already_done"], 0);
}

#[test]
fn status_works_from_another_terminal_while_a_restore_runs() {
    let dump = Dump::new(29, 120, 1);
    let state = dump.path("state");
    let mut child = spawn_restore(
        &dump,
        &dump.path("restored"),
        &state,
        &["--threads", "1", "--quiet"],
        "delay_ms=40",
    );
    std::thread::sleep(std::time::Duration::from_millis(2800));
    let out = bin()
        .arg("status")
        .arg("--state-dir")
        .arg(&state)
        .arg("--json")
        .output()
        .unwrap();
    // The report has the totals as soon as they are known (it held zeros for 15 s).
    let early = report_in(&state);
    let still_running = child.try_wait().unwrap().is_none();
    child.wait().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(still_running, "the restore outlived the status call");
    assert_eq!(v["running"], true);
    assert!(v["counts"]["copied"].as_u64().unwrap_or(0) > 0, "{v}");
    // "N of M" while it runs: the count is kept from the first commit after it is known
    // (it was written only when the run ended).
    let rep = report_in(&state);
    assert_eq!(v["selected_files"], rep["totals"]["selected_files"], "{v}");
    assert_eq!(
        early["totals"]["selected_files"], rep["totals"]["selected_files"],
        "{early}"
    );
}

#[test]
fn status_reads_the_checkpoint() {
    let dump = Dump::new(27, 80, 1);
    let dest = dump.path("restored");
    let (_, whole) = restore(&dump, &dest, &[], &[]);
    // A later run over a part does not make the total its part's.
    let (_, _) = restore(&dump, &dest, &["--limit", "3"], &[]);
    let said = text(
        &bin()
            .arg("status")
            .arg("--state-dir")
            .arg(dump.path("state"))
            .output()
            .unwrap(),
    );
    let selected = whole["totals"]["selected_files"].as_u64().unwrap();
    assert!(
        said.contains(&format!("of {selected} selected files")),
        "{said}"
    );
    let out = bin()
        .arg("status")
        .arg("--state-dir")
        .arg(dump.path("state"))
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["counts"]["copied"].as_u64().unwrap() > 50);
    assert_eq!(v["running"], false);
    bin()
        .arg("status")
        .arg("--state-dir")
        .arg(dump.path("nothing"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no checkpoint"));
}

/// Round 12: a restore given `--db` (the database copied elsewhere, SOURCE holding only the
/// objects): `status SOURCE DEST` said "Pass --db PATH if it is elsewhere", and refused
/// `--db` ("unexpected argument"). It takes the restore's `--db` and `--files` now.
#[test]
fn status_takes_the_database_the_restore_was_given() {
    let dump = Dump::new(28, 60, 1);
    let source = dump.path("objects-only");
    let objects = source.join("restsdk/data/files");
    std::fs::create_dir_all(objects.parent().unwrap()).unwrap();
    let cp = std::process::Command::new("cp")
        .arg("-a")
        .arg(dump.root.join("restsdk/data/files"))
        .arg(&objects)
        .status()
        .unwrap();
    assert!(cp.success());
    let db = dump.path("index-copy.db");
    std::fs::copy(dump.db(), &db).unwrap();
    let dest = dump.path("restored");
    let xdg = dump.path("xdg");
    let run = |cmd: &str, extra: &[&std::ffi::OsStr]| {
        bin()
            .arg(cmd)
            .arg(&source)
            .arg(&dest)
            .args(extra)
            .env("XDG_STATE_HOME", &xdg)
            .output()
            .unwrap()
    };
    let out = run("restore", &["--db".as_ref(), db.as_os_str()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "missing objects only: {}",
        text(&out)
    );
    let out = run("status", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--db"), "{}", text(&out));
    let out = run(
        "status",
        &["--db".as_ref(), db.as_os_str(), "--json".as_ref()],
    );
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["counts"]["copied"].as_u64().unwrap() > 40, "{v}");
}

/// Round 11: after a run with --include-trash, a run without it made `status` say
/// "Restored or already there: 1996 of 1997 selected files (99.9%)" while that run had
/// found 1993 of the 1997 done and 4 missing: the Trash's records were counted among a
/// selection that leaves the Trash out. They are now said apart.
#[test]
fn status_counts_the_selection_s_files_not_the_trash_an_earlier_run_restored() {
    let dump = Dump::new(53, 300, 1);
    assert!(
        dump.manifest.trash_files > 0,
        "the demo has files in its Trash"
    );
    let dest = dump.path("restored");
    let (_, with_trash) = restore(&dump, &dest, &["--include-trash"], &[]);
    let (out, without) = restore(&dump, &dest, &[], &[]);
    let done = ["copied", "already_done", "adopted"]
        .iter()
        .map(|o| without["outcomes"][o].as_u64().unwrap())
        .sum::<u64>();
    let selected = without["totals"]["selected_files"].as_u64().unwrap();
    assert!(
        done < selected,
        "the demo has missing objects: {}",
        text(&out)
    );
    let trash_done = with_trash["outcomes"]["copied"].as_u64().unwrap() - done;
    assert!(trash_done > 0);
    let status = |json: bool| {
        let mut c = bin();
        c.arg("status").arg("--state-dir").arg(dump.path("state"));
        if json {
            c.arg("--json");
        }
        c.output().unwrap()
    };
    let said = text(&status(false));
    assert!(
        said.contains(&format!(
            "Restored or already there: {done} of {selected} selected files"
        )),
        "{said}"
    );
    assert!(
        said.contains(&format!("and {trash_done} files of the Trash")),
        "{said}"
    );
    let v: serde_json::Value = serde_json::from_slice(&status(true).stdout).unwrap();
    assert_eq!(v["files_done"], done, "{v}");
    assert_eq!(v["files_done_left_out"], trash_done, "{v}");
    // A run with the Trash again counts it among its selection.
    let (_, again) = restore(&dump, &dest, &["--include-trash"], &[]);
    let all = again["totals"]["selected_files"].as_u64().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&status(true).stdout).unwrap();
    assert_eq!(v["files_done"], done + trash_done, "{v}");
    assert_eq!(v["selected_files"], all, "{v}");
}

/// Round 13: `totals.renamed_files` (the report, `plan --summary`) counted every renamed
/// row, the ones a selection leaves out too: with `--limit 50`, "23 renamed files" of which
/// the run restored one. It counts the selected files, as pre-flight's figure did.
#[test]
fn renamed_files_counts_only_the_files_the_run_restores() {
    let dump = Dump::new(53, 300, 1);
    let dest = dump.path("restored");
    let args = ["--names", "windows", "--limit", "50"];
    let files = of_type(&plan_json(&dump.root, &dest, &args), "file")
        .into_iter()
        .filter(|f| !f["renamed_from"].is_null())
        .map(|f| f["skip"].is_null())
        .collect::<Vec<bool>>();
    let renamed = files.iter().filter(|selected| **selected).count();
    assert!(
        renamed > 0 && renamed < files.len(),
        "renamed files both in and out of the selection: {files:?}"
    );
    let summary = bin()
        .arg("plan")
        .arg(&dump.root)
        .arg(&dest)
        .args(args)
        .arg("--summary")
        .output()
        .unwrap();
    assert!(
        // "1 renamed file", "2 renamed files".
        text(&summary).contains(&format!(" {renamed} renamed file")),
        "{}",
        text(&summary)
    );
    let (out, report) = restore(&dump, &dest, &args, &[]);
    assert_eq!(report["totals"]["renamed_files"], renamed, "{}", text(&out));
    let listed = report["renamed"].as_array().unwrap();
    assert_eq!(listed.len(), renamed, "{}", report["renamed"]);
}

/// Every planned file that has an object is on `dest`, byte-identical; nothing else is.
fn assert_restored_exactly(dump: &Dump, dest: &Path) {
    let plan = plan_json(&dump.root, dest, &[]);
    let cids = dump.content_ids();
    let on_dest = file_hashes(dest);
    for p in on_dest.keys() {
        assert!(!p.contains(".mcr-"), "temporary file left: {p}");
    }
    for (path, (id, _, _)) in planned_files(&plan) {
        let Some(obj) = cids[&id].0.as_ref().and_then(|c| dump.object(c)) else {
            continue;
        };
        let have = on_dest
            .get(&path)
            .unwrap_or_else(|| panic!("{path} missing on the destination"));
        assert_eq!(*have, hash_file(&obj), "{path} differs from its object");
    }
}

/// Ids renamed into place more than once according to the copy log.
fn copied_twice(log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut seen = BTreeMap::<&str, u32>::new();
    for l in text.lines() {
        *seen.entry(l).or_default() += 1;
    }
    seen.into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(k, _)| k.to_string())
        .collect()
}

/// Round 11: `regen` counted the files whose object is missing from the source among
/// "absent (will be copied)" (5 where the restore then copied 1 and listed 4 as missing).
/// They are said apart: nothing can copy them.
#[test]
fn regen_does_not_promise_to_copy_files_without_an_object() {
    let dump = Dump::new(54, 200, 1);
    let dest = dump.path("restored");
    let (_, first) = restore(&dump, &dest, &[], &[]);
    let missing: BTreeSet<String> = first["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["outcome"] == "missing")
        .map(|p| p["path"].as_str().unwrap().to_string())
        .collect();
    assert!(!missing.is_empty(), "the demo has missing objects");
    let deleted = planned_files(&plan_json(&dump.root, &dest, &[]))
        .into_keys()
        .find(|p| dest.join(p).is_file())
        .unwrap();
    std::fs::remove_file(dest.join(&deleted)).unwrap();
    let state = dump.path("state2");
    let out = bin()
        .arg("regen")
        .arg(&dump.root)
        .arg(&dest)
        .arg("--state-dir")
        .arg(&state)
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let paths = |v: &serde_json::Value| -> BTreeSet<String> {
        v.as_array()
            .unwrap()
            .iter()
            // A path, or (path, why).
            .map(|x| x.as_str().or(x[0].as_str()).unwrap().to_string())
            .collect()
    };
    assert_eq!(
        paths(&r["absent"]),
        BTreeSet::from([deleted.clone()]),
        "{r}"
    );
    assert_eq!(paths(&r["absent_no_object"]), missing, "{r}");
    let (_, next) = restore(&dump, &dest, &["--state-dir", state.to_str().unwrap()], &[]);
    assert_eq!(next["outcomes"]["copied"], 1, "{next}");
    assert_eq!(next["outcomes"]["missing"], missing.len() as u64);
}

#[test]
fn regen_reports_each_kind_of_difference_and_resume_restores_exactly_what_is_missing() {
    let dump = Dump::new(30, 200, 1);
    let dest = dump.path("restored");
    restore(&dump, &dest, &["--names", "posix"], &[]);
    let plan = planned_files(&plan_json(&dump.root, &dest, &["--names", "posix"]));
    let present: Vec<String> = plan
        .keys()
        .filter(|p| dest.join(p).is_file() && plan[*p].1 > 0)
        .cloned()
        .collect();
    let (deleted, truncated, moved) = (&present[3], &present[10], &present[20]);
    std::fs::remove_file(dest.join(deleted)).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(dest.join(truncated))
        .unwrap();
    f.set_len(plan[truncated].1 / 2).unwrap();
    drop(f);
    let moved_to = format!("elsewhere/{}", moved.rsplit('/').next().unwrap());
    std::fs::create_dir_all(dest.join("elsewhere")).unwrap();
    std::fs::rename(dest.join(moved), dest.join(&moved_to)).unwrap();
    std::fs::write(dest.join("my own notes.txt"), b"user data").unwrap();
    let leftover = "elsewhere/.mcr-00000000000000aa.part";
    std::fs::write(dest.join(leftover), b"half a copy").unwrap();

    let before = tree(&dest);
    let state = dump.path("state2");
    let out = bin()
        .arg("regen")
        .arg(&dump.root)
        .arg(&dest)
        .args(["--names", "posix", "--json", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(tree(&dest), before, "regen never changes the destination");
    assert!(
        !state.join("regen-paths.tmp").exists(),
        "regen removes its scratch file of paths"
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let strs = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect()
    };
    let absent = strs(&r["absent"]);
    assert!(
        absent.contains(deleted) && absent.contains(moved),
        "{absent:?}"
    );
    let differs: Vec<String> = r["differs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d[0].as_str().unwrap().to_string())
        .collect();
    assert_eq!(differs, std::slice::from_ref(truncated));
    // Dates said as people read them (round 20: they were milliseconds since 1970).
    let why = r["differs"][0][1].as_str().unwrap();
    assert!(
        why.contains(" UTC; the plan expects") && !why.contains(" ms"),
        "{why}"
    );
    let unknown = strs(&r["unknown"]);
    assert!(
        unknown.contains(&"my own notes.txt".to_string()) && unknown.contains(&moved_to),
        "{unknown:?}"
    );
    assert_eq!(strs(&r["temp_leftovers"]), [leftover]);
    assert!(!unknown.iter().any(|u| u == leftover), "{unknown:?}");
    let files_there = before.values().filter(|(dir, _, _)| !dir).count();
    assert_eq!(r["found_on_dest"], files_there as u64);
    // Reported, never deleted by regen; the user removes it.
    std::fs::remove_file(dest.join(leftover)).unwrap();
    let moves: Vec<(String, String)> = r["likely_moved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m[0].as_str().unwrap().into(), m[1].as_str().unwrap().into()))
        .collect();
    assert!(
        moves.contains(&(moved.clone(), moved_to.clone())),
        "{moves:?}"
    );

    let log = dump.path("copies.log");
    let fault = format!("copy_log={}", log.display());
    let (out, rep) = restore(
        &dump,
        &dest,
        &["--names", "posix", "--state-dir", state.to_str().unwrap()],
        &[("MYCLOUD_RECOVER_FAULTS", &fault)],
    );
    assert_eq!(rep["outcomes"]["copied"], 3, "{}", text(&out));
    assert_eq!(rep["outcomes"]["failed"], 0);
    let copied: BTreeSet<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let want: BTreeSet<String> = [deleted, truncated, moved]
        .iter()
        .map(|p| plan[*p].0.clone())
        .collect();
    assert_eq!(
        copied, want,
        "exactly the absent and differing files were copied"
    );
    assert_restored_exactly(&dump, &dest);
    assert!(
        dest.join("my own notes.txt").is_file() && dest.join(&moved_to).is_file(),
        "user files kept"
    );
    // Exit 1 only for the demo's missing objects, which verify lists.
    bin()
        .arg("verify")
        .arg(&dump.root)
        .arg(&dest)
        .args(["--names", "posix", "--content"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(" 0 differ,"));
}

#[test]
fn plan_and_verify_follow_a_given_state_dir_and_status_checks_it() {
    // `plan` and `verify` had no --state-dir: after a restore with its own checkpoint folder
    // they judged DEST by the default date fields and name rules, not the ones it recorded.
    let dump = Dump::new(45, 80, 1);
    let dest = dump.path("restored");
    let state = dump.path("own-state");
    let s = state.to_str().unwrap();
    restore(
        &dump,
        &dest,
        &["--mtime-from", "cTime,birthTime", "--state-dir", s],
        &[],
    );
    let verify = |extra: &[&str]| {
        let out = bin()
            .arg("verify")
            .arg(&dump.root)
            .arg(&dest)
            .arg("--json")
            .args(extra)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        (out, v["mismatches"].as_array().map(Vec::len))
    };
    let (out, without) = verify(&[]);
    assert!(
        without.unwrap_or(0) > 0,
        "default dates differ: {}",
        text(&out)
    );
    let (out, with) = verify(&["--state-dir", s]);
    assert_eq!(with, Some(0), "{}", text(&out));
    assert_eq!(
        plan_json(&dump.root, &dest, &["--state-dir", s]),
        plan_json(&dump.root, &dest, &["--mtime-from", "cTime,birthTime"])
    );
    // A folder without a checkpoint is a mistake, said so, not a silent default.
    let typo = dump.path("own-stat");
    let typo = typo.to_str().unwrap();
    let (out, _) = verify(&["--state-dir", typo]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no checkpoint in"), "{}", text(&out));
    bin()
        .arg("plan")
        .arg(&dump.root)
        .arg(&dest)
        .args(["--summary", "--state-dir", typo])
        .assert()
        .code(2);
    // status with SOURCE, DEST and another DEST's checkpoint folder says so.
    let other = dump.path("other");
    std::fs::create_dir(&other).unwrap();
    let out = bin()
        .arg("status")
        .arg(&dump.root)
        .arg(&other)
        .args(["--state-dir", s])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("not into"), "{}", text(&out));
    bin()
        .arg("status")
        .arg(&dump.root)
        .arg(&dest)
        .args(["--state-dir", s])
        .assert()
        .success()
        .stdout(predicate::str::contains("of "));
}

#[test]
fn verify_detects_content_date_and_absence() {
    let dump = Dump::new(31, 120, 1);
    let dest = dump.path("restored");
    restore(&dump, &dest, &[], &[]);
    // The demo's missing objects make it exit 1 (listed); nothing differs.
    bin()
        .arg("verify")
        .arg(&dump.root)
        .arg(&dest)
        .arg("--content")
        .assert()
        .code(1)
        .stdout(predicate::str::contains(" 0 differ,"));
    let plan = planned_files(&plan_json(&dump.root, &dest, &[]));
    let victims: Vec<&String> = plan
        .keys()
        .filter(|p| dest.join(p).is_file() && plan[*p].1 > 10)
        .take(2)
        .collect();
    // Same size, same date, one byte changed: only --content sees it.
    let p = dest.join(victims[0]);
    let meta = std::fs::metadata(&p).unwrap();
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[5] ^= 0xff;
    std::fs::write(&p, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_modified(meta.modified().unwrap())
        .unwrap();
    bin()
        .arg("verify")
        .arg(&dump.root)
        .arg(&dest)
        .assert()
        .stdout(predicate::str::contains(" 0 differ,"));
    bin()
        .arg("verify")
        .arg(&dump.root)
        .arg(&dest)
        .arg("--content")
        .assert()
        .code(1)
        .stdout(
            predicate::str::contains(victims[0].as_str())
                .and(predicate::str::contains("content differs")),
        );
    std::fs::File::options()
        .write(true)
        .open(dest.join(victims[1]))
        .unwrap()
        .set_modified(std::time::SystemTime::now())
        .unwrap();
    bin()
        .arg("verify")
        .arg(&dump.root)
        .arg(&dest)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("date differs"));
}

/// `verify` and `regen` look at what stands on DEST without following symbolic links, as the restore
/// places nothing through one: a folder moved to another disk and linked back, a file
/// replaced by a link to an identical copy elsewhere, and a folder where a file goes all
/// differ (round 15's review: the first two passed, `--content` too, and the folder was
/// "size 4096 but the object has N bytes").
#[test]
fn verify_and_regen_do_not_follow_symbolic_links_regression_round_15() {
    let dump = Dump::new(32, 150, 1);
    let dest = dump.path("restored");
    restore(&dump, &dest, &[], &[]);
    let plan = planned_files(&plan_json(&dump.root, &dest, &[]));
    let restored: Vec<&String> = plan.keys().filter(|p| dest.join(p).is_file()).collect();
    // A folder holding restored files directly, and two files outside it.
    let folder = restored
        .iter()
        .filter_map(|p| p.rsplit_once('/').map(|(d, _)| d))
        .find(|d| d.contains('/'))
        .unwrap()
        .to_string();
    let below: BTreeSet<String> = restored
        .iter()
        .filter(|p| p.starts_with(&format!("{folder}/")))
        .map(|p| p.to_string())
        .collect();
    let mut others = restored
        .iter()
        .filter(|p| !p.starts_with(&format!("{folder}/")));
    let (linked_file, folder_file) = (others.next().unwrap(), others.next().unwrap());

    let away = dump.path("other-disk");
    std::fs::create_dir(&away).unwrap();
    std::fs::rename(dest.join(&folder), away.join("folder")).unwrap();
    std::os::unix::fs::symlink(away.join("folder"), dest.join(&folder)).unwrap();
    // A byte-for-byte copy with the file's date, linked back in its place.
    let copy = away.join("file");
    std::fs::copy(dest.join(linked_file), &copy).unwrap();
    let when = std::fs::metadata(dest.join(linked_file))
        .unwrap()
        .modified()
        .unwrap();
    std::fs::File::options()
        .write(true)
        .open(&copy)
        .unwrap()
        .set_modified(when)
        .unwrap();
    std::fs::remove_file(dest.join(linked_file)).unwrap();
    std::os::unix::fs::symlink(&copy, dest.join(linked_file)).unwrap();
    std::fs::remove_file(dest.join(folder_file)).unwrap();
    std::fs::create_dir(dest.join(folder_file)).unwrap();

    for content in [false, true] {
        let mut c = bin();
        c.arg("verify").arg(&dump.root).arg(&dest).arg("--json");
        if content {
            c.arg("--content");
        }
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let differ: BTreeMap<String, String> = v["mismatches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let path = m["path"].as_str().unwrap().to_string();
                (path, m["problem"].as_str().unwrap().to_string())
            })
            .collect();
        let mut expected = below.clone();
        expected.insert(linked_file.to_string());
        expected.insert(folder_file.to_string());
        assert_eq!(
            differ.keys().cloned().collect::<BTreeSet<_>>(),
            expected,
            "--content {content}: {v}"
        );
        for p in &below {
            assert!(
                differ[p].contains(&format!(
                    "{} is a symbolic link, not a folder",
                    dest.join(&folder).display()
                )),
                "{}",
                differ[p]
            );
        }
        assert!(differ[linked_file.as_str()]
            .contains("a symbolic link (not followed) stands where this file goes"));
        assert!(differ[folder_file.as_str()].contains("a folder stands where this file goes"));
    }
    // regen neither: the files below the linked folder were adopted (found by their path
    // through the link, as a case-folding DEST's are), and so recorded as restored.
    let out = bin()
        .arg("regen")
        .arg(&dump.root)
        .arg(&dest)
        .arg("--state-dir")
        .arg(dump.path("state"))
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rep: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let in_the_way: BTreeMap<String, String> = rep["in_the_way"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let (path, why) = (p[0].as_str().unwrap(), p[1].as_str().unwrap());
            (path.to_string(), why.to_string())
        })
        .collect();
    for p in &below {
        assert!(
            in_the_way
                .get(p)
                .is_some_and(|why| why.contains(&format!("a symbolic link stands at {folder}"))),
            "{p}: {rep}"
        );
    }
    assert_eq!(
        rep["adopted"].as_u64().unwrap() as usize,
        restored.len() - below.len() - 2,
        "{rep}"
    );
}

/// Round 12 (docs review): after finding files that differ, `verify` printed the regen and
/// restore commands on one line ("... --content, then mycloud-recover restore ...") without
/// the options it was given itself, so pasted as printed they rebuilt and resumed another
/// checkpoint (the default one, not the restore's `--state-dir`). Now each is on a line of
/// its own with this verify's options, and running them as printed restores the file.
/// Round 20 (docs review): `verify --content` suggested `regen ... --content`, which reads
/// every byte on DEST again (1.76 TB on the real disk), when the files that differ were
/// only absent; `--content` is suggested only for files whose bytes alone differ.
#[test]
fn verify_prints_regen_and_restore_commands_that_work_as_printed() {
    let dump = Dump::new(37, 120, 1);
    let dest = dump.path("restored");
    let state = dump.path("own-state");
    let state_arg = state.to_str().unwrap();
    let own = ["--state-dir", state_arg, "--names", "windows"];
    let (out, _) = restore(&dump, &dest, &own, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let plan = planned_files(&plan_json(&dump.root, &dest, &own));
    let mut restored = plan
        .keys()
        .filter(|p| dest.join(p).is_file() && plan[*p].1 > 10);
    let (victim, deleted) = (restored.next().unwrap(), restored.next().unwrap());
    let verify = || {
        bin()
            .arg("verify")
            .arg(&dump.root)
            .arg(&dest)
            .arg("--content")
            .args(own)
            .output()
            .unwrap()
    };
    // The commands printed, each run as a shell runs it pasted.
    let run_the_commands_verify_suggests = |said: &str| -> Vec<String> {
        let commands: Vec<String> = said
            .lines()
            .filter_map(|l| l.strip_prefix("  mycloud-recover "))
            .map(str::to_string)
            .collect();
        assert_eq!(commands.len(), 2, "{said}");
        assert!(commands[0].starts_with("regen "), "{said}");
        assert!(commands[1].starts_with("restore "), "{said}");
        for c in &commands {
            assert!(c.contains(&format!("--state-dir {state_arg}")), "{c}");
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("exec \"$0\" {c}"))
                .arg(assert_cmd::cargo::cargo_bin("mycloud-recover"))
                .output()
                .unwrap();
            assert!(
                matches!(out.status.code(), Some(0 | 1)),
                "{c}: {}",
                text(&out)
            );
        }
        commands
    };
    let cids = dump.content_ids();

    // Only a file absent: a regen without --content brings it back.
    std::fs::remove_file(dest.join(deleted)).unwrap();
    let out = verify();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains(" 1 differ,"), "{said}");
    let commands = run_the_commands_verify_suggests(&said);
    assert!(!commands[0].contains("--content"), "{said}");
    let d = dest.join(deleted);
    assert_eq!(hash_file(&d), dump.expected_hash(&cids[&plan[deleted].0].0));
    assert!(text(&verify()).contains(" 0 differ,"));

    // Other bytes under the planned size and date: only regen --content finds them.
    let p = dest.join(victim);
    let meta = std::fs::metadata(&p).unwrap();
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[5] ^= 0xff;
    std::fs::write(&p, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_modified(meta.modified().unwrap())
        .unwrap();
    let out = verify();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    let commands = run_the_commands_verify_suggests(&said);
    assert!(commands[0].ends_with(" --content"), "{said}");
    assert_eq!(hash_file(&p), dump.expected_hash(&cids[&plan[victim].0].0));
    let out = verify();
    assert!(text(&out).contains(" 0 differ,"), "{}", text(&out));
}

/// Review A10: `verify` printed "date differs from the planned Some(1547030258606) ms";
/// for a DEST that does not exist it said "0 match, 293 differ" (exit 1) instead of naming
/// it (exit 2); and with files whose object is missing it exited 0 while the restore of the
/// same state exited 1. Now dates are numbers, a missing or non-folder DEST is refused with
/// exit 2, and files without an object are listed and make verify exit 1, like the restore.
#[test]
fn verify_lists_missing_objects_refuses_a_missing_dest_and_prints_dates() {
    let dump = Dump::new(33, 120, 1);
    let dest = dump.path("restored");
    let (restored, _) = restore(&dump, &dest, &[], &[]);
    let planned = planned_files(&plan_json(&dump.root, &dest, &[]));
    let missing: Vec<&String> = planned
        .iter()
        .filter(|(_, (id, _, _))| dump.manifest.missing_object_ids.contains(id))
        .map(|(p, _)| p)
        .collect();
    assert!(!missing.is_empty(), "the demo has missing objects");
    let verify = |dest: &Path, extra: &[&str]| {
        bin()
            .arg("verify")
            .arg(&dump.root)
            .arg(dest)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = verify(&dest, &[]);
    let s = text(&out);
    assert_eq!(out.status.code(), restored.status.code(), "{s}");
    assert_eq!(out.status.code(), Some(1), "{s}");
    assert!(
        s.contains(" 0 differ,") && s.contains("No object in the source"),
        "{s}"
    );
    for p in &missing {
        assert!(s.contains(&format!("{p}: ")), "{p} listed: {s}");
    }
    let out = verify(&dest, &["--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["missing_objects"].as_array().unwrap().len(),
        missing.len()
    );
    assert_eq!(v["object_missing"], missing.len() as u64);

    // A date is printed as a date (as `regen` says it), not as `Some(..)` nor as a number;
    // JSON keeps the number.
    let (path, (_, _, ms)) = planned
        .iter()
        .find(|(p, (_, _, ms))| ms.is_some() && dest.join(p).is_file())
        .unwrap();
    std::fs::File::options()
        .write(true)
        .open(dest.join(path))
        .unwrap()
        .set_modified(std::time::SystemTime::now())
        .unwrap();
    let s = text(&verify(&dest, &[]));
    assert!(
        s.contains(&format!(
            "{path}: date differs from the planned {} (the file has ",
            mycloud_recover::report::human_ms(ms.unwrap())
        )),
        "{s}"
    );
    assert!(!s.contains("Some(") && !s.contains(" ms"), "{s}");
    let json = String::from_utf8(verify(&dest, &["--json"]).stdout).unwrap();
    assert!(
        json.contains(&format!("date differs from the planned {} ms", ms.unwrap())),
        "{json}"
    );

    // No DEST, or a file as DEST: refused, naming it.
    let nodest = dump.path("nodest");
    let out = verify(&nodest, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("{} does not exist", nodest.display())),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("differ"), "{}", text(&out));
    let file = dump.path("a-file");
    std::fs::write(&file, b"x").unwrap();
    let out = verify(&file, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("is not a folder"), "{}", text(&out));
    // An empty folder (a disk not mounted on its mount point): asked, not only listed.
    let empty = dump.path("mount-point");
    std::fs::create_dir(&empty).unwrap();
    let out = verify(&empty, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("check that it is mounted"),
        "{}",
        text(&out)
    );
    // One file there is not that case.
    assert!(
        !text(&verify(&dest, &[])).contains("check that it is mounted"),
        "{s}"
    );
}

/// `verify` looks at each object once: the `stat` that finds it gives its length. It asked
/// for the length again with a second `stat` per file, a third of its system calls
/// (docs/PERFORMANCE.md, round 14). Counted with `strace`; skipped where it cannot run
/// unless MCR_TEST_STRACE=require (set by .ci/run where it can).
#[test]
fn verify_stats_each_object_once_regression_round_14() {
    let dump = Dump::new(34, 600, 1);
    let dest = dump.path("restored");
    restore(&dump, &dest, &[], &[]);
    let log = dump.path("verify.strace");
    let state = dump.path("state");
    let args = [
        OsStr::new("verify"),
        dump.root.as_os_str(),
        dest.as_os_str(),
    ];
    let more = [
        OsStr::new("--state-dir"),
        state.as_os_str(),
        OsStr::new("--json"),
    ];
    let Some(out) = traced("trace=%%stat", &log, &[&args[..], &more[..]].concat()) else {
        return;
    };
    let rep: serde_json::Value = serde_json::from_slice(&out.stdout).expect("verify --json");
    let checked = rep["checked"].as_u64().unwrap();
    assert!(checked >= 500, "{rep}");
    // One line per call (every stat variant); a call another thread interrupted takes a
    // second, `resumed`, line.
    let stats = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("resumed>") && !l.contains("+++") && !l.contains("---"))
        .count() as u64;
    // Per file: its object, and the file on DEST; per folder of DEST, one `lstat` (no
    // file is found through a symbolic link, round 15). The rest (the index, the
    // checkpoint, the binary's start) was 50 calls; with a second `stat` of each object,
    // 3 per file. Once per run, an `lstat` of each shard folder's name: one linked out of
    // the object store is not followed, as the restore does not follow it.
    let folders = of_type(&plan_json(&dump.root, &dest, &[]), "folder").len() as u64;
    let shards = mycloud_recover::restore::copy::ObjectFolders::MAX_SHARDS as u64;
    assert!(
        stats <= 2 * checked + folders + shards + 200,
        "{stats} stat calls for {checked} files in {folders} folders"
    );
}

/// Round 24 (noticed in round 24): `plan` whose reader left (`plan | head`) went on listing
/// every file to its end, each buffer's write failing again (EPIPE). It stops at the first
/// failed write now, exit 0 as before (its verdict is "ok"). Counted with `strace`.
#[test]
fn plan_stops_listing_once_its_reader_is_gone_regression_round_24() {
    let dump = Dump::with(
        140,
        3000,
        1,
        mycloud_recover::demo::SizeMix::Small,
        mycloud_recover::demo::Content::Tiny,
    );
    let log = dump.path("plan.strace");
    let mut c = std::process::Command::new("strace");
    c.args(["-f", "-qq", "-e", "trace=write", "-o"])
        .arg(&log)
        .arg(assert_cmd::cargo::cargo_bin("mycloud-recover"))
        .arg("plan")
        .arg(&dump.root)
        .arg(dump.path("restored"));
    let out = output_with_stdout_gone(&c);
    if !std::fs::metadata(&log).is_ok_and(|m| m.len() > 0) {
        assert!(
            std::env::var("MCR_TEST_STRACE").as_deref() != Ok("require"),
            "MCR_TEST_STRACE=require but strace cannot trace here: {}",
            text(&out)
        );
        eprintln!("skipped: strace cannot trace here");
        return;
    }
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let failed = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter(|l| l.contains("EPIPE"))
        .count();
    // The listing's write, and its buffer's at the end.
    assert!(
        failed <= 2,
        "{failed} writes failed with EPIPE (3,000 files listed)"
    );
}

/// Runs the binary with `args` under `strace -f -e TRACE`, writing the calls to `log`;
/// `None` (the test skips) where strace cannot trace, unless MCR_TEST_STRACE=require (set
/// by .ci/run where it can).
fn traced(trace: &str, log: &Path, args: &[&OsStr]) -> Option<std::process::Output> {
    let out = std::process::Command::new("strace")
        .args(["-f", "-qq", "-e", trace, "-o"])
        .arg(log)
        .arg(assert_cmd::cargo::cargo_bin("mycloud-recover"))
        .args(args)
        .output();
    match out {
        Ok(out) if std::fs::metadata(log).is_ok_and(|m| m.len() > 0) => Some(out),
        other => {
            assert!(
                std::env::var("MCR_TEST_STRACE").as_deref() != Ok("require"),
                "MCR_TEST_STRACE=require but strace cannot trace here: {other:?}"
            );
            eprintln!("skipped: strace cannot trace here: {other:?}");
            None
        }
    }
}

/// `--durability none` promises that nothing is flushed. SQLite's log was folded into the
/// checkpoint's main file at every 1,000 pages and at the end, with two `fsync`s each: when
/// DEST shared the state folder's disk, one of them held a 100,000-file restore's end for
/// 2 s, waiting for DEST's write-back (docs/PERFORMANCE.md, round 16). Only the run's
/// start is flushed now (so a crash is known to the next run), before the first file is
/// placed; the log left unfolded is read by the next run.
#[test]
fn durability_none_flushes_nothing_once_files_are_placed_regression_round_16() {
    let dump = Dump::new(35, 400, 1);
    let dest = dump.path("restored");
    let log = dump.path("restore.strace");
    let state = dump.path("state");
    let args = [
        OsStr::new("restore"),
        dump.root.as_os_str(),
        dest.as_os_str(),
    ];
    let more = ["--state-dir", "--durability", "none", "--quiet"].map(OsStr::new);
    let args = [&args[..], &more[..1], &[state.as_os_str()], &more[1..]].concat();
    let calls =
        "trace=fsync,fdatasync,syncfs,sync,sync_file_range,msync,linkat,rename,renameat,renameat2";
    let Some(out) = traced(calls, &log, &args) else {
        return;
    };
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let trace = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = trace.lines().collect();
    // The first restored file: not the probe of DEST, not the report.
    let placed = lines
        .iter()
        .position(|l| {
            (l.contains("link") || l.contains("rename"))
                && !l.contains(".mcr-probe")
                && !l.contains("report.json")
        })
        .expect("files were placed");
    let flushes: Vec<&&str> = lines[placed..]
        .iter()
        .filter(|l| l.contains("sync") && !l.contains("resumed>"))
        .collect();
    assert!(
        flushes.is_empty(),
        "flushed after the first file was placed: {flushes:?}"
    );
    assert!(
        lines[..placed].iter().any(|l| l.contains("fsync")),
        "the run's start is flushed"
    );
    // The log left as it is is read: the next run finds every file done.
    let (out, rep) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(rep["outcomes"]["copied"], 0, "{}", rep["outcomes"]);
    assert_restored_exactly(&dump, &dest);
}

#[test]
fn crash_between_rename_and_record_is_adopted_not_copied_again() {
    let dump = Dump::new(32, 120, 1);
    let dest = dump.path("restored");
    let log = dump.path("copies.log");
    let fault = format!("abort_after_renames=5;copy_log={}", log.display());
    let (out, _) = restore(
        &dump,
        &dest,
        &["--threads", "2"],
        &[("MYCLOUD_RECOVER_FAULTS", &fault)],
    );
    assert!(
        out.status.code().is_none(),
        "the process was killed by SIGABRT: {:?}",
        out.status
    );
    let fault = format!("copy_log={}", log.display());
    let (out, rep) = restore(&dump, &dest, &[], &[("MYCLOUD_RECOVER_FAULTS", &fault)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        rep["outcomes"]["adopted"].as_u64().unwrap() >= 5,
        "{}",
        rep["outcomes"]
    );
    assert_eq!(copied_twice(&log), Vec::<String>::new());
    assert_restored_exactly(&dump, &dest);
}

#[test]
fn crash_right_after_a_checkpoint_commit_loses_nothing_recorded() {
    let dump = Dump::new(33, 150, 1);
    let dest = dump.path("restored");
    let (out, _) = restore(
        &dump,
        &dest,
        &["--threads", "2"],
        &[(
            "MYCLOUD_RECOVER_FAULTS",
            "abort_after_commits=1;delay_ms=40",
        )],
    );
    assert!(
        out.status.code().is_none(),
        "aborted: {:?} {}",
        out.status,
        text(&out)
    );
    // Everything the checkpoint calls done is complete on the destination.
    let db = rusqlite::Connection::open(dump.path("state").join("checkpoint.db")).unwrap();
    let mut stmt = db
        .prepare("SELECT id, path FROM log WHERE outcome = 'copied'")
        .unwrap();
    let done: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(!done.is_empty(), "a commit happened before the crash");
    let cids = dump.content_ids();
    for (id, path) in &done {
        assert_eq!(
            hash_file(&dest.join(path)),
            dump.expected_hash(&cids[id].0),
            "{path} recorded but incomplete"
        );
    }
    drop(stmt);
    drop(db);
    let (_, rep) = restore(&dump, &dest, &[], &[]);
    assert_eq!(rep["outcomes"]["already_done"], done.len() as u64);
    assert_restored_exactly(&dump, &dest);
}

/// A real process killed with SIGKILL at seeded random moments, resumed each time. CI runs a
/// reduced form; `MCR_CRASH_KILLS=30 cargo test --release --test tests crash_test` is the
/// full form.
#[test]
fn crash_test_kill_9_at_random_moments_then_resume() {
    let kills: u64 = std::env::var("MCR_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    crash_test(kills, "");
}

/// The crash test with named temporary files (the NFS/SMB path), fewer kills in CI.
#[test]
fn crash_test_kill_9_at_random_moments_then_resume_with_named_temporary_files() {
    let kills: u64 = std::env::var("MCR_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    crash_test(kills, "named_temps=1;");
}

fn crash_test(kills: u64, mode: &str) {
    let dump = Dump::new(34, 400, 1);
    let dest = dump.path("restored");
    let state = dump.path("state");
    let log = dump.path("copies.log");
    let fault = format!("{mode}delay_ms=15;copy_log={}", log.display());
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut killed = 0;
    for _ in 0..kills {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let wait_ms = 150 + rng % 900;
        let mut child = spawn_restore(&dump, &dest, &state, &["--threads", "4", "--quiet"], &fault);
        std::thread::sleep(std::time::Duration::from_millis(wait_ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
        }
        child.wait().unwrap();
    }
    assert!(
        killed >= kills / 2,
        "most runs were killed mid-way ({killed} of {kills})"
    );
    let fault = format!("{mode}copy_log={}", log.display());
    let (out, rep) = restore(
        &dump,
        &dest,
        &["--threads", "4"],
        &[("MYCLOUD_RECOVER_FAULTS", &fault)],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "only the missing objects remain: {}",
        text(&out)
    );
    assert_eq!(rep["outcomes"]["failed"], 0);
    assert_eq!(
        copied_twice(&log),
        Vec::<String>::new(),
        "no file was renamed into place twice"
    );
    assert_restored_exactly(&dump, &dest);
    assert_folder_dates(&dump, &dest);
    assert_eq!(outcome_sum(&rep), dump.manifest.files);
}

/// Power cuts on a real ext4: copies of the whole disk (destination and checkpoint) taken at
/// seeded random instants while a default (`--durability batch`) restore runs, each then
/// mounted and resumed. Whatever ext4 kept or lost at that instant (files still in the page
/// cache, names without their data, checkpoint records), the resumed restore must be exact:
/// a record ahead of its file's data would leave that file wrong for good, as a resume does
/// not look at files recorded as done. `MCR_POWER_CUTS` sets how many (default 6).
#[test]
fn power_cut_at_random_moments_then_resume_restores_exactly() {
    power_cut_test("", false, "batch");
}

/// A run killed first (its last files written but not flushed, not recorded), then power
/// cuts during the resume, which finds those files and adopts them: it must flush them
/// before recording them as done.
#[test]
fn power_cut_while_a_resume_adopts_what_a_killed_run_left() {
    power_cut_test("", true, "batch");
}

/// The same with `--durability file`, where nothing is flushed per batch: an adopted file
/// is flushed on its own before it is recorded.
#[test]
fn power_cut_while_a_resume_adopts_what_a_killed_run_left_with_durability_file() {
    power_cut_test("", true, "file");
}

/// The power-cut test with named temporary files (the NFS/SMB path): a cut may leave
/// `.mcr-*.part` files, which the resume removes.
#[test]
fn power_cut_at_random_moments_then_resume_restores_exactly_with_named_temporary_files() {
    power_cut_test("named_temps=1;", false, "batch");
}

fn power_cut_test(mode: &str, kill_first: bool, durability: &str) {
    let cuts: usize = std::env::var("MCR_POWER_CUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let dump = Dump::new(43, 400, 1);
    let Some(mut disk) = PowerCutDisk::mount(&dump) else {
        return;
    };
    let dest = disk.mnt.join("restored");
    let state = disk.mnt.join("state");
    let state_arg = state.to_str().unwrap();
    // Slow files and frequent commits: the run lasts about 0.3 s per cut, with a commit
    // every 0.1 s, and the cuts come every 0.25 s on average.
    let fault = format!("{mode}delay_ms={};commit_ms=100", 3 * cuts);
    if kill_first {
        // Few commits: most of what this run places is not recorded when it is killed.
        let slow = format!("{mode}delay_ms={};commit_ms=10000", 3 * cuts);
        let mut killed = spawn_restore(
            &dump,
            &dest,
            &state,
            &["--threads", "4", "--durability", durability],
            &slow,
        );
        std::thread::sleep(std::time::Duration::from_millis(700));
        killed.kill().unwrap();
        killed.wait().unwrap();
    }
    let mut child = spawn_restore(
        &dump,
        &dest,
        &state,
        &["--threads", "4", "--durability", durability],
        &fault,
    );
    let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
    let mut images = Vec::new();
    while images.len() < cuts && child.try_wait().unwrap().is_none() {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(std::time::Duration::from_millis(125 + rng % 250));
        images.push(disk.cut());
    }
    let first = child.wait_with_output().unwrap();
    assert_eq!(first.status.code(), Some(1), "{}", text(&first));
    assert!(
        images.len() >= cuts / 2,
        "most cuts fell inside the run ({} of {cuts})",
        images.len()
    );
    disk.detach();
    let mut recorded = 0;
    for image in &images {
        disk.attach(image);
        let (out, rep) = restore(
            &dump,
            &dest,
            &[
                "--threads",
                "4",
                "--durability",
                durability,
                "--state-dir",
                state_arg,
            ],
            &[("MYCLOUD_RECOVER_FAULTS", mode)],
        );
        let msg = format!("after the cut {}: {}", image.display(), text(&out));
        eprintln!("{}: {}", image.display(), rep["outcomes"]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "only missing objects remain {msg}"
        );
        assert_eq!(rep["outcomes"]["failed"], 0, "{msg}");
        assert_eq!(outcome_sum(&rep), dump.manifest.files, "{msg}");
        assert_restored_exactly(&dump, &dest);
        recorded += rep["outcomes"]["already_done"].as_u64().unwrap_or(0);
        disk.detach();
    }
    assert!(
        recorded > 0,
        "some cut came after a checkpoint commit (else this test checks nothing about records)"
    );
}

/// DEST unmounted in the middle of a restore (a USB disk pulled): its path is then a bare
/// mount point on the system disk. The restore must stop instead of writing there and
/// recording those files as restored; mounted again, the next run restores everything.
#[test]
fn a_destination_unmounted_mid_run_stops_the_restore_and_nothing_after_is_recorded() {
    let dump = Dump::new(44, 400, 1);
    let Some(disk) = PowerCutDisk::mount(&dump) else {
        return;
    };
    let dest = disk.mnt.clone();
    let state = dump.path("state");
    let child = spawn_restore(
        &dump,
        &dest,
        &state,
        &["--threads", "4"],
        "delay_ms=15;commit_ms=100",
    );
    // After a commit (a fixed 600 ms came before any commit on a loaded machine, and the
    // resume then had nothing done before to count).
    wait_for_commit(&state);
    disk.pull();
    let out = child.wait_with_output().unwrap();
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains("is no longer the folder this restore started writing to"),
        "{msg}"
    );
    let report = report_in(&state);
    assert!(report["dest_lost"].is_string(), "{report}");
    assert!(report["not_processed"].as_u64().unwrap() > 0);
    // Whatever went to the bare mount point is not the restore: remove it, mount the disk.
    for e in std::fs::read_dir(&dest).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            std::fs::remove_dir_all(&p).unwrap();
        } else {
            std::fs::remove_file(&p).unwrap();
        }
    }
    disk.attach(&disk.image());
    let (out, rep) = restore(&dump, &dest, &["--state-dir", state.to_str().unwrap()], &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "only missing objects: {}",
        text(&out)
    );
    assert!(rep["outcomes"]["already_done"].as_u64().unwrap() > 0);
    assert_restored_exactly(&dump, &dest);
}

/// Round 13: DEST renamed or deleted mid-run. Every file after the change fails at once
/// (its folder cannot be made), and the run saw the change only at its next commit: the
/// files of that window were listed as failed (2,433 in a round-11 trial; every file left,
/// 15,745 of 20,000, when nothing slowed the copy), flooding the report. A failed file now
/// makes the run look at DEST first: changed, the run stops and the file is not processed.
/// Given its name back, DEST gets the rest from the next run.
#[test]
fn a_destination_renamed_mid_run_stops_with_no_file_failed() {
    destination_changed_mid_run(false);
}

/// The same with DEST deleted (moved aside and removed: a plain `rm -rf` of it races with
/// the folders the run makes in it). Nothing was committed before: the next run restores
/// everything into a new DEST.
#[test]
fn a_destination_deleted_mid_run_stops_with_no_file_failed() {
    destination_changed_mid_run(true);
}

fn destination_changed_mid_run(delete: bool) {
    let dump = Dump::new(117, 1500, 1);
    let (dest, state, moved) = (
        dump.path("restored"),
        dump.path("state"),
        dump.path("moved"),
    );
    let commit_ms = if delete { "600000" } else { "100" };
    let child = spawn_restore(
        &dump,
        &dest,
        &state,
        &["--threads", "4"],
        &format!("delay_ms=5;commit_ms={commit_ms}"),
    );
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while tree(&dest).values().filter(|(dir, _, _)| !dir).count() < 50 {
        assert!(std::time::Instant::now() < until, "no files were restored");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::fs::rename(&dest, &moved).unwrap();
    // Removed while the run goes on: files its workers place meanwhile through their open
    // folders make a pass fail ("not empty"), so until a pass gets it all.
    while delete && std::fs::remove_dir_all(&moved).is_err() {
        assert!(std::time::Instant::now() < until, "cannot remove {moved:?}");
    }
    let out = child.wait_with_output().unwrap();
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    let report = report_in(&state);
    assert!(
        report["dest_lost"]
            .as_str()
            .is_some_and(|m| m.contains("is no longer the folder this restore started writing to")),
        "{msg}"
    );
    assert_eq!(report["outcomes"]["failed"], 0, "{msg}");
    assert!(report["not_processed"].as_u64().unwrap() > 500, "{msg}");
    if !delete {
        std::fs::rename(&moved, &dest).unwrap();
    }
    the_same_command_finishes(&dump, &dest, &["--state-dir", state.to_str().unwrap()], &[]);
}

/// Round 11: a destination that changed after the last file was placed (a share dropped
/// and its mount point an empty folder again, in the last seconds of a run, or during a
/// small one) stopped the run at its only commit: nothing was recorded and the files are
/// not at DEST, yet every file counted, so the report said `complete` and the exit code
/// was 0 under a summary saying "stopped: the destination changed". Here DEST is swapped
/// for an empty folder after the first file of one folder: the worker's open folder takes
/// the others, so no file fails and nothing is left unprocessed.
#[test]
fn a_destination_lost_after_the_last_file_is_not_reported_complete() {
    let dump = Dump::new(46, 300, 1);
    let (dest, state) = (dump.path("restored"), dump.path("state"));
    let out = lose_the_destination_after_its_first_file(&dump, &dest, &state);
    let msg = text(&out);
    let report: serde_json::Value = std::fs::read(state.join("report.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| panic!("no report: {msg}"));
    assert!(report["dest_lost"].is_string(), "{msg}");
    assert_eq!(report["outcomes"]["failed"], 0, "{msg}");
    assert_eq!(report["not_processed"], 0, "{msg}");
    assert!(tree(&dest).is_empty(), "the files are not at DEST");
    assert_eq!(report["complete"], false, "{msg}");
    assert_eq!(out.status.code(), Some(1), "{msg}");
}

/// Restores one folder of at least three files (all with objects, no subfolders) into
/// `dest`, one file at a time, and swaps `dest` for an empty folder once the first file
/// is there: the worker's open folder takes the others, so no file fails and nothing is
/// left unprocessed, and the run's only commit finds the destination changed.
fn lose_the_destination_after_its_first_file(
    dump: &Dump,
    dest: &Path,
    state: &Path,
) -> std::process::Output {
    std::fs::create_dir_all(dest).unwrap();
    let plan = plan_json(&dump.root, dest, &[]);
    let files = planned_files(&plan);
    let ids = dump.content_ids();
    let restorable = |id: &str| {
        ids[id]
            .0
            .as_deref()
            .is_some_and(|c| dump.object(c).is_some())
    };
    let mut by_folder: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (path, (id, _, _)) in &files {
        if let Some((dir, _)) = path.rsplit_once('/') {
            by_folder.entry(dir).or_default().push(id);
        }
    }
    let leaf = by_folder
        .iter()
        .find(|(dir, ids)| {
            ids.len() >= 3
                && ids.iter().all(|id| restorable(id))
                && !files
                    .keys()
                    .any(|p| p.starts_with(&format!("{dir}/")) && p[dir.len() + 1..].contains('/'))
        })
        .map(|(dir, _)| dir.to_string())
        .expect("a leaf folder with three restorable files");
    let child = spawn_restore(
        dump,
        dest,
        state,
        &["--threads", "1", "--only", &leaf],
        "delay_ms=400;commit_ms=600000",
    );
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    // A file in the folder (DEST itself gets the restore's probe files first).
    let placed = || {
        std::fs::read_dir(dest.join(&leaf)).is_ok_and(|mut d| {
            d.any(|e| e.is_ok_and(|e| !e.file_name().to_string_lossy().starts_with(".mcr-")))
        })
    };
    while !placed() {
        assert!(std::time::Instant::now() < until, "no file was placed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::fs::rename(dest, dump.path("moved")).unwrap();
    std::fs::create_dir(dest).unwrap();
    child.wait_with_output().unwrap()
}

/// Round 11: after a run stopped by a changed destination, `status` said "last run did
/// not end cleanly (killed, or a power cut)"; it now says how that run ended. And a run
/// killed after it is not taken for it: the end of an earlier run is forgotten once a
/// run starts placing files (a run refused after the kill then said "stopped: the
/// destination changed").
#[test]
fn status_tells_a_changed_destination_from_a_kill() {
    let dump = Dump::new(47, 300, 1);
    let (dest, state) = (dump.path("restored"), dump.path("state"));
    let status = || {
        let out = bin()
            .arg("status")
            .arg("--state-dir")
            .arg(&state)
            .output()
            .unwrap();
        text(&out)
    };
    let lost = lose_the_destination_after_its_first_file(&dump, &dest, &state);
    let said = status();
    assert!(
        said.contains("last run stopped: the destination changed") && !said.contains("killed"),
        "{said}\n{}",
        text(&lost)
    );
    // A run killed once it places files, then one refused before it does.
    let mut child = spawn_restore(&dump, &dest, &state, &[], "delay_ms=5000");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    // Placing files: the run's end is unknown (`last_run_clean` null) while it runs.
    let placing = || {
        let out = bin()
            .arg("status")
            .arg("--state-dir")
            .arg(&state)
            .arg("--json")
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["running"] == true && v["last_run_clean"].is_null()
    };
    while !placing() {
        assert!(std::time::Instant::now() < until, "{}", status());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    // Forgotten once the killed run began placing files: a run that records its own end
    // after it (one refused once it opened the checkpoint) does not say it.
    let v = status_json(&state);
    assert!(v["last_end"].is_null(), "{v}");
    // Round 21: the words for a kill are those said after a run refused since (it said "did
    // not finish (killed or still starting)": a run starting holds the lock, said as
    // running).
    let killed = "State: last run did not end cleanly (killed, or a power cut); run the same restore command again";
    let said = status();
    assert!(
        said.contains(killed) && !said.contains("still starting"),
        "{said}"
    );
    // Refused before it opens the checkpoint (since round 20): the kill is what `status` says.
    refused_while_another_restore_holds(&dump, &dest, &["--state-dir", state.to_str().unwrap()]);
    let said = status();
    assert!(
        said.contains(killed) && !said.contains("destination changed"),
        "{said}"
    );
}

/// Runs a restore into `dest` while this process holds DEST's lock as another restore
/// would: refused (exit 2) before it opens its checkpoint or writes anything (until round
/// 20, once it had opened its checkpoint), and says so. Its state folder (`--state-dir` in
/// `extra`, or [`restore`]'s) is there only if it was, with no run added (a killed run's
/// log is folded into the checkpoint as it is read: what it records is the same), and DEST
/// is as it was, its own date included: until round 20's review the lock was taken once
/// DEST had been probed (probe files made and removed in it), and the refusal did not say
/// that nothing was changed.
fn refused_while_another_restore_holds(dump: &Dump, dest: &Path, extra: &[&str]) {
    std::fs::create_dir_all(dest).unwrap();
    let held = std::fs::File::open(dest).unwrap();
    rustix::fs::flock(&held, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    let state = match extra.iter().position(|a| *a == "--state-dir") {
        Some(i) => std::path::PathBuf::from(extra[i + 1]),
        None => dump.path("state"),
    };
    let dest_date = || std::fs::metadata(dest).unwrap().modified().unwrap();
    let runs = || state.exists().then(|| recorded_runs(&state));
    let before = (tree(dest), dest_date(), runs());
    let (out, _) = restore(dump, dest, extra, &[]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains(&format!(
            "another restore is writing into {} now (with another state folder); nothing was changed by this run. Wait for it to finish or stop it, then run the same command again",
            dest.display()
        )),
        "{msg}"
    );
    assert_eq!(
        (tree(dest), dest_date(), runs()),
        before,
        "nothing changed: {msg}"
    );
}

/// Review of round 20: a restore refused because another restore (with another state
/// folder) holds DEST's lock took that lock only once it had opened its checkpoint: a first
/// run left a new state folder holding `lock` and a checkpoint (`status` then said "no file
/// restored yet", exit 0, not that there is no checkpoint), and a resume added a run that
/// did nothing. DEST is made and tested before the checkpoint is opened, and its lock is
/// taken there: a first run so refused leaves no state folder, a resume leaves its state
/// folder exactly as it was. (That the lock is then held while the run copies:
/// a_second_restore_into_the_same_destination_is_refused.)
#[test]
fn a_restore_refused_by_another_in_its_destination_opens_no_checkpoint_regression_round_20() {
    let dump = Dump::new(60, 80, 1);
    let dest = dump.path("restored");
    let state = dump.path("states/new");
    let extra = ["--state-dir", state.to_str().unwrap()];
    refused_while_another_restore_holds(&dump, &dest, &extra);
    assert!(
        !dump.path("states").exists(),
        "{:?}",
        tree(&dump.path("states")).into_keys()
    );
    let out = bin()
        .arg("status")
        .arg(&dump.root)
        .arg(&dest)
        .args(extra)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no checkpoint in"), "{}", text(&out));
    // A resume.
    let (out, _) = restore(&dump, &dest, &["--limit", "20", extra[0], extra[1]], &[]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    let runs = recorded_runs(&state);
    let before = (tree(&state), file_hashes(&state));
    refused_while_another_restore_holds(&dump, &dest, &extra);
    assert_eq!(recorded_runs(&state), runs, "no run was added");
    assert_eq!((tree(&state), file_hashes(&state)), before);
    // The other one gone, the same command restores.
    let (out, _) = restore(&dump, &dest, &extra, &[]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    assert_restored_exactly(&dump, &dest);
}

/// A symbolic link where a restored folder goes (left by the user, or planted) is not
/// followed: its files would land outside DEST and count as restored. They fail, each
/// listed with the reason, and nothing is written through the link.
#[test]
fn a_symbolic_link_where_a_folder_goes_is_not_followed() {
    let dump = Dump::new(45, 200, 1);
    let dest = dump.path("restored");
    let outside = dump.path("outside");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let plan = plan_json(&dump.root, &dest, &[]);
    let planned = planned_files(&plan);
    let top = planned
        .keys()
        .filter_map(|p| p.split_once('/').map(|(t, _)| t.to_string()))
        .find(|t| !t.starts_with('_'))
        .expect("a top folder");
    std::os::unix::fs::symlink(&outside, dest.join(&top)).unwrap();
    let (out, rep) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written through the link"
    );
    let under_link = planned
        .keys()
        .filter(|p| p.starts_with(&format!("{top}/")))
        .count();
    let failed: Vec<&serde_json::Value> = rep["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["path"].as_str().unwrap().starts_with(&format!("{top}/")))
        .collect();
    assert!(under_link > 0);
    assert_eq!(
        failed.len(),
        under_link,
        "each file under the link is listed"
    );
    assert!(
        failed
            .iter()
            .any(|p| p["reason"].as_str().unwrap().contains("symbolic link")),
        "{failed:?}"
    );
}

/// A destination that folds case although its filesystem type does not say so: NTFS through
/// FUSE (`lowntfs-3g -o ignore_case`, which reports `fuse`). Under Posix rules the case
/// twins of the demo dump would be one file there; `--names auto` notices and uses Windows
/// rules, with a warning; `--names posix` is refused before anything is written.
#[test]
fn a_destination_that_folds_case_gets_windows_names_or_a_refusal() {
    let dump = Dump::new(46, 300, 1);
    let image = dump.path("ntfs.img");
    let mnt = dump.path("ntfs");
    std::fs::create_dir_all(&mnt).unwrap();
    std::fs::File::create(&image)
        .unwrap()
        .set_len(256 << 20)
        .unwrap();
    let made = std::process::Command::new("mkntfs")
        .args(["-q", "-F", "-f"])
        .arg(&image)
        .output();
    if !made.as_ref().is_ok_and(|o| o.status.success()) {
        let required = std::env::var("MCR_TEST_FUSE").as_deref() == Ok("require");
        assert!(!required, "mkntfs: {made:?}");
        eprintln!("skipped: no mkntfs (ntfs-3g): {made:?}");
        return;
    }
    let Some(_mount) = FuseMount::with(
        "lowntfs-3g",
        &["-o".as_ref(), "ignore_case".as_ref(), image.as_os_str()],
        &mnt,
    ) else {
        return;
    };
    let windows_plan = plan_json(&dump.root, &mnt.join("x"), &["--names", "windows"]);
    let posix_plan = plan_json(&dump.root, &mnt.join("x"), &["--names", "posix"]);
    let lower = |plan: &[serde_json::Value]| {
        planned_files(plan)
            .keys()
            .map(|p| p.to_lowercase())
            .collect::<BTreeSet<_>>()
            .len()
    };
    assert!(
        lower(&posix_plan) < planned_files(&posix_plan).len(),
        "the demo dump has names that differ only in case"
    );
    assert_eq!(lower(&windows_plan), planned_files(&windows_plan).len());

    let dest = mnt.join("auto");
    let (out, rep) = restore(&dump, &dest, &["--threads", "4"], &[]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "only missing objects: {msg}");
    assert_eq!(rep["outcomes"]["failed"], 0, "{msg}");
    assert_eq!(rep["outcomes"]["adopted"], 0, "{msg}");
    assert!(msg.contains("does not tell names apart by case"), "{msg}");
    // Every file with its own bytes. This mount lists names in lower case (its
    // `ignore_case`), so they are compared so; the plan's names are unique that way.
    let on_dest: BTreeMap<String, u128> = file_hashes(&dest)
        .into_iter()
        .map(|(p, h)| (p.to_lowercase(), h))
        .collect();
    let cids = dump.content_ids();
    let planned = planned_files(&windows_plan);
    for (path, (id, _, _)) in &planned {
        if let Some(obj) = cids[id].0.as_ref().and_then(|c| dump.object(c)) {
            assert_eq!(
                on_dest.get(&path.to_lowercase()),
                Some(&hash_file(&obj)),
                "{path}"
            );
        }
    }
    let planned: BTreeSet<String> = planned.keys().map(|p| p.to_lowercase()).collect();
    assert!(on_dest.keys().all(|p| planned.contains(p)), "nothing else");

    // `regen` finds the files there by the plan's names, though the walk lists them in
    // lower case: a file cut short is to be copied again, the rest adopted, nothing "in
    // the way" or unknown.
    let (short, _) = planned_files(&windows_plan)
        .into_iter()
        .find(|(p, (_, size, _))| *size > 10 && p != &p.to_lowercase() && dest.join(p).is_file())
        .expect("a restored file whose name has capitals");
    std::fs::OpenOptions::new()
        .write(true)
        .open(dest.join(&short))
        .unwrap()
        .set_len(3)
        .unwrap();
    let out = regen(&dump, &dest, &["--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let said: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(said["in_the_way"].as_array().unwrap().len(), 0, "{said}");
    assert_eq!(said["unknown"].as_array().unwrap().len(), 0, "{said}");
    assert_eq!(said["differs"][0][0], short.as_str(), "{said}");
    assert_eq!(said["differs"].as_array().unwrap().len(), 1, "{said}");
    assert_eq!(
        said["adopted"].as_u64().unwrap() + 1,
        rep["outcomes"]["copied"].as_u64().unwrap(),
        "{said}"
    );

    // `verify` names files as the restore did (the rules are kept in the checkpoint, found
    // by the default state folder).
    let dest2 = mnt.join("verified");
    let xdg = dump.path("xdg");
    let run = |cmd: &str| {
        bin()
            .arg(cmd)
            .arg(&dump.root)
            .arg(&dest2)
            .env("XDG_STATE_HOME", &xdg)
            .output()
            .unwrap()
    };
    let out = run("restore");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = run("verify");
    // Exit 1 like the restore's, for the demo's missing objects only.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains(" 0 differ,"), "{}", text(&out));
    // `plan` shows the names the restore used.
    let out = bin()
        .arg("plan")
        .arg(&dump.root)
        .arg(&dest2)
        .arg("--json")
        .env("XDG_STATE_HOME", &xdg)
        .output()
        .unwrap();
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        planned_files(&lines).keys().collect::<Vec<_>>(),
        planned_files(&windows_plan).keys().collect::<Vec<_>>()
    );
    // A checkpoint from before the rules were kept (this one with its record removed): the
    // earlier runs used Posix rules on a destination that folds case; a resume says so.
    let ckpt = walk_files(&xdg)
        .into_iter()
        .find(|p| p.ends_with("checkpoint.db"))
        .unwrap();
    rusqlite::Connection::open(&ckpt)
        .unwrap()
        .execute("DELETE FROM meta WHERE key = 'names'", [])
        .unwrap();
    let out = run("restore");
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(msg.contains("--fresh --names windows"), "{msg}");

    let dest = mnt.join("posix");
    let state = dump.path("state-posix");
    let (out, _) = restore(
        &dump,
        &dest,
        &["--names", "posix", "--state-dir", state.to_str().unwrap()],
        &[],
    );
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(msg.contains("use --names windows"), "{msg}");
    assert_eq!(
        std::fs::read_dir(&dest).unwrap().count(),
        0,
        "nothing written"
    );
    // Round 20's review: refused after it opened its checkpoint, the first run left a
    // state folder holding one (`status` then read "no file restored yet").
    assert!(
        !state.exists(),
        "state folder left: {:?}",
        walk_files(&state)
    );
}

/// A resume with other name rules than the restore so far would restore some files again
/// under other names, or take another file's copy for theirs: refused, with what to do.
#[test]
fn a_resume_with_other_name_rules_is_refused() {
    let dump = Dump::new(47, 150, 1);
    let dest = dump.path("restored");
    let (out, _) = restore(&dump, &dest, &["--names", "posix", "--limit", "50"], &[]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    let before = tree(&dest);
    let (out, _) = restore(&dump, &dest, &["--names", "windows"], &[]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains("was restored with --names posix") && msg.contains("--fresh"),
        "{msg}"
    );
    assert_eq!(tree(&dest), before, "nothing changed");
    // Round 20's review: nor in the checkpoint (the refused run was added to its runs).
    assert_eq!(recorded_runs(&dump.path("state")), 1);
    let (out, _) = restore(&dump, &dest, &["--names", "posix"], &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the same rules go on: {}",
        text(&out)
    );
}

/// A FIFO where an object should be (a damaged or tampered store) must not hang the
/// restore. Since round 24 it is no object: the file is listed as failed, saying so (it was
/// restored as an empty file with a note on its length, and `verify` said "not found").
#[test]
fn a_fifo_in_the_object_store_does_not_hang_the_restore() {
    let dump = Dump::new(48, 60, 1);
    let dest = dump.path("restored");
    let (id, obj) = dump.objects_with_bytes().remove(0);
    fifo_for_object(&obj);
    let mut child = spawn_restore(&dump, &dest, &dump.path("state"), &[], "");
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("the restore hung on a FIFO");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = report_in(&dump.path("state"));
    let p = problem_of(&report, &id);
    assert_eq!(p["outcome"], "failed", "{p}");
    assert!(p["reason"].as_str().unwrap().contains("FIFO"), "{p}");
}

/// A damaged checkpoint (a disk error, a truncated copy) is named with what to do, and
/// `--fresh` replaces it: it is forgotten anyway.
#[test]
fn a_damaged_checkpoint_says_what_to_do_and_fresh_replaces_it() {
    let dump = Dump::new(49, 120, 1);
    let dest = dump.path("restored");
    let (out, _) = restore(&dump, &dest, &["--limit", "30"], &[]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    let db = dump.path("state").join("checkpoint.db");
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(dump.path("state").join(format!("checkpoint.db{suffix}")));
    }
    std::fs::write(&db, vec![0x5a; 8192]).unwrap();
    let (out, _) = restore(&dump, &dest, &[], &[]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains("checkpoint.db") && msg.contains("damaged") && msg.contains("--fresh"),
        "{msg}"
    );
    let (out, rep) = restore(&dump, &dest, &["--fresh"], &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "only missing objects: {}",
        text(&out)
    );
    assert!(
        rep["outcomes"]["adopted"].as_u64().unwrap() > 0,
        "found again"
    );
    assert_restored_exactly(&dump, &dest);
}

/// `--fresh` onto a destination that cannot be written stops before it forgets anything.
#[test]
fn fresh_onto_an_unwritable_destination_keeps_the_progress() {
    let dump = Dump::new(50, 120, 1);
    let Some(small) = SmallDisk::mount(&dump, "64m") else {
        return;
    };
    let dest = small.path.join("restored");
    let (out, first) = restore(&dump, &dest, &["--limit", "30"], &[]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    let remount = |how: &str| {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{how}")])
            .arg(&small.path)
            .status()
            .unwrap();
        assert!(ok.success());
    };
    remount("ro");
    let (out, _) = restore(&dump, &dest, &["--fresh"], &[]);
    let other_state = dump.path("other-state");
    let (new_dest, _) = restore(
        &dump,
        &small.path.join("new"),
        &["--state-dir", other_state.to_str().unwrap()],
        &[],
    );
    remount("rw");
    // Each refusal says what to do (round 15: the system's words alone).
    for out in [&out, &new_dest] {
        let msg = text(out);
        assert_eq!(out.status.code(), Some(2), "{msg}");
        assert!(
            msg.contains("mounted read-only: mount it read-write"),
            "{msg}"
        );
    }
    let (out, rep) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        rep["outcomes"]["already_done"], first["outcomes"]["copied"],
        "the checkpoint kept what the first run restored"
    );
}

/// A restore onto `dest` (on the disk mounted at `mount`, with the state folder beside the
/// dump) stopped after its first five files, then the disk unmounted, as a share whose
/// remount failed leaves it.
fn restore_then_lose_the_mount(dump: &Dump, dest: &Path, mount: &Path) {
    let (out, _) = restore(
        dump,
        dest,
        &[],
        &[("MYCLOUD_RECOVER_FAULTS", "abort_after_renames=5")],
    );
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        std::fs::read_dir(dest).unwrap().count() > 0,
        "files were placed"
    );
    let ok = std::process::Command::new("umount")
        .arg(mount)
        .status()
        .unwrap();
    assert!(ok.success());
}

/// The runs the checkpoint in `state` records (`status --json`), to show a refused command
/// added none.
fn recorded_runs(state: &Path) -> serde_json::Value {
    let out = bin()
        .arg("status")
        .arg("--state-dir")
        .arg(state)
        .arg("--json")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["runs"].clone()
}

/// A NAS share dropped mid-run and not mounted again leaves its mount point an ordinary
/// folder of the system disk. With nothing recorded yet (the run was stopped before its
/// first commit), the look for restored files had nothing to look for, and the next run
/// wrote the whole restore onto the system disk (round 16's review: 7.5 GB under `/`).
/// The checkpoint keeps what DEST lay on when a run began placing files: DEST on another
/// mount refuses the restore and `status` (exit 2), nothing made in the bare folder, the
/// checkpoint unchanged; the same kind of filesystem mounted at the same place again
/// (another device number) is the same destination.
#[test]
fn a_destination_whose_mount_is_gone_is_refused_even_with_nothing_recorded_regression_round_16() {
    let dump = Dump::new(52, 120, 1);
    let Some(small) = SmallDisk::mount(&dump, "64m") else {
        return;
    };
    let dest = small.path.join("restored");
    let state = dump.path("state");
    restore_then_lose_the_mount(&dump, &dest, &small.path);
    let runs = || recorded_runs(&state);
    let runs_before = runs();
    let (out, _) = restore(&dump, &dest, &[], &[]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains("was on tmpfs mounted at")
            && msg.contains("is now on")
            && msg.contains("Mount it again at")
            && msg.contains("--fresh"),
        "{msg}"
    );
    let (dry, _) = restore(&dump, &dest, &["--dry-run"], &[]);
    assert_eq!(dry.status.code(), Some(2), "{}", text(&dry));
    let status = bin()
        .arg("status")
        .arg(&dump.root)
        .arg(&dest)
        .arg("--state-dir")
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(status.status.code(), Some(2), "{}", text(&status));
    assert!(
        text(&status).contains("Mount it again at"),
        "{}",
        text(&status)
    );
    assert!(!dest.exists(), "nothing was made in the bare mount point");
    assert_eq!(runs(), runs_before, "no run was added to the checkpoint");
    // The share mounted again: the same kind of filesystem at the same place.
    let Some(_again) = SmallDisk::mount(&dump, "64m") else {
        panic!("mounted once, so it mounts again");
    };
    let (out, rep) = restore(&dump, &dest, &[], &[]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    assert!(rep["outcomes"]["copied"].as_u64().unwrap() > 0);
    assert_restored_exactly(&dump, &dest);
}

/// `regen` and `verify` check the recorded mount as a restore does (one check,
/// `state::check_dest_on_same_mount`). DEST is the mount point itself, as a NAS share is:
/// unmounted, a bare empty folder stays under its path. Before, regen rebuilt the checkpoint
/// from it (exit 0, every file absent: nothing was recorded yet for its look to miss) and
/// verify reported every file missing (exit 1); now both refuse (exit 2) naming DEST and the
/// mount, the checkpoint unchanged, and work again once the share is mounted again.
#[test]
fn regen_and_verify_refuse_a_destination_whose_mount_is_gone_regression_round_17() {
    let dump = Dump::new(54, 120, 1);
    let Some(small) = SmallDisk::mount(&dump, "64m") else {
        return;
    };
    let dest = small.path.clone();
    let state = dump.path("state");
    restore_then_lose_the_mount(&dump, &dest, &small.path);
    assert!(dest.is_dir(), "the bare mount point stays");
    let runs = || recorded_runs(&state);
    let runs_before = runs();
    let run = |command: &str| {
        bin()
            .arg(command)
            .arg(&dump.root)
            .arg(&dest)
            .arg("--state-dir")
            .arg(&state)
            .output()
            .unwrap()
    };
    for command in ["regen", "verify"] {
        let out = run(command);
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(2), "{command}: {msg}");
        assert!(
            msg.contains(&format!("{} was on tmpfs mounted at", dest.display()))
                && msg.contains("is now on")
                && msg.contains(&format!("Mount it again at {}", dest.display())),
            "{command}: {msg}"
        );
        assert!(msg.contains("--fresh"), "{command}: {msg}");
    }
    assert_eq!(runs(), runs_before, "regen left the checkpoint as it was");
    assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 0, "nothing made");
    // Mounted again (a new, empty tmpfs at the same place): both run.
    let Some(_again) = SmallDisk::mount(&dump, "64m") else {
        panic!("mounted once, so it mounts again");
    };
    let out = run("verify");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = run("regen");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// An sshfs share, mounted at `path`, of a folder the server cannot write (`sftp-server`
/// run locally over a read-only bind mount, no ssh needed). It holds one folder,
/// `restore-here`. Unmounted when dropped (the share first, then the bind mount).
struct ReadOnlyShare {
    path: std::path::PathBuf,
    _share: FuseMount,
    _export: util::BindMount,
}

/// A [`ReadOnlyShare`] beside the dump; None (test skipped) where bind mounts, FUSE or
/// `sftp-server` are missing, unless MCR_TEST_FUSE=require.
fn read_only_sshfs_share(dump: &Dump) -> Option<ReadOnlyShare> {
    let export = dump.path("export");
    std::fs::create_dir_all(export.join("restore-here")).unwrap();
    let ro = util::BindMount::new(&export, &dump.path("export-ro"))?;
    let made_ro = std::process::Command::new("mount")
        .args(["-o", "remount,bind,ro"])
        .arg(&ro.path)
        .status()
        .unwrap();
    assert!(made_ro.success());
    let Some(server) = [
        "/usr/lib/openssh/sftp-server",
        "/usr/lib/sftp-server",
        "/usr/libexec/sftp-server",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists()) else {
        assert_ne!(
            std::env::var("MCR_TEST_FUSE").as_deref(),
            Ok("require"),
            "no sftp-server (package openssh-sftp-server)"
        );
        eprintln!("skipped: no sftp-server");
        return None;
    };
    let ssh = dump.path("sftp.sh");
    std::fs::write(&ssh, format!("#!/bin/sh\nexec {server}\n")).unwrap();
    std::fs::set_permissions(&ssh, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let nas = dump.path("nas");
    std::fs::create_dir_all(&nas).unwrap();
    let option = format!("ssh_command={}", ssh.display());
    let remote = format!("localhost:{}", ro.path.display());
    let share = FuseMount::with(
        "sshfs",
        &["-o".as_ref(), option.as_ref(), remote.as_ref()],
        &nas,
    )?;
    // What the share answers (what the tests using it are about).
    let e = std::fs::create_dir(nas.join("probe")).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists, "{e}");
    assert!(!nas.join("probe").exists());
    Some(ReadOnlyShare {
        path: nas,
        _share: share,
        _export: ro,
    })
}

/// An sshfs share of a folder the server cannot write (a [`ReadOnlyShare`]) answers every
/// `mkdir` with "File exists", though nothing is there, and file creation with "Operation
/// not permitted". Pre-flight tried
/// 1,000 probe folder names (one round trip each) and then said "ready to restore" (exit
/// 0), and that whatever the destination refused; the restore refused (exit 2) but told
/// root to run it with sudo (round 16's review). Now pre-flight calls DEST unwritable
/// (blocking, exit 1) and the restore says the share refuses writes. Needs root, bindfs's
/// FUSE and `sshfs` with `sftp-server` (`.ci/run` installs them: MCR_TEST_FUSE=require).
#[test]
fn a_read_only_share_answering_file_exists_is_not_ready_and_sudo_is_not_advised_regression_round_16(
) {
    let dump = Dump::new(53, 60, 1);
    let Some(share) = read_only_sshfs_share(&dump) else {
        return;
    };
    let nas = &share.path;
    for dest in [nas.join("restore-here"), nas.join("not-there-yet")] {
        let out = bin()
            .arg("preflight")
            .arg(&dump.root)
            .arg(&dest)
            .args(["--budget", "5"])
            .output()
            .unwrap();
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(1), "{msg}");
        assert!(
            msg.contains("the destination cannot be written") && msg.contains("NOT ready"),
            "{msg}"
        );
        assert!(msg.contains("refuses writes: a read-only share"), "{msg}");
    }
    let (out, _) = restore(&dump, &nas.join("restore-here"), &[], &[]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains("refuses writes although this runs as root") && !msg.contains("sudo"),
        "{msg}"
    );
}

/// Round 19: a restore into a folder not made yet below a read-only mount (a small ext4
/// mounted `ro`) stopped at its first `mkdir` with the system's "Read-only file system" and
/// advice that named no mount, and left a state folder (lock and checkpoint) behind for a
/// run that did nothing. Now `restore` (exit 2) and `preflight` (blocking, exit 1) say DEST
/// cannot be created because the ext4 at its mount point is mounted read-only, and to mount
/// it read-write; the restore says nothing was changed, and nothing was: no DEST, no state
/// folder. Mounted read-write again, the same command restores.
#[test]
fn a_destination_not_yet_made_on_a_read_only_mount_says_read_only_regression_round_19() {
    let dump = Dump::new(55, 60, 1);
    let Some(disk) = Ext4Disk::mount(&dump, "32M") else {
        return;
    };
    assert!(disk.remount("ro"), "could not remount read-only");
    let state = dump.path("state");
    let said_read_only = format!(
        " at {}) is mounted read-only: mount it read-write",
        disk.path.display()
    );
    for dest in [disk.path.join("new folder"), disk.path.join("new/deeper")] {
        let (out, _) = restore(&dump, &dest, &[], &[]);
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(2), "{msg}");
        assert!(
            msg.contains(&format!(
                "cannot create destination {} (nothing was changed): Read-only file system",
                dest.display()
            )) && msg.contains("(ext4 from /dev/loop")
                && msg.contains(&said_read_only),
            "{msg}"
        );
        assert!(!dest.exists() && !disk.path.join("new").exists());
        assert!(
            !state.exists(),
            "the refused run left its state folder: {msg}"
        );
        let out = bin()
            .arg("preflight")
            .arg(&dump.root)
            .arg(&dest)
            .args(["--budget", "5"])
            .output()
            .unwrap();
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(1), "{msg}");
        assert!(
            msg.contains(&format!(
                "the destination cannot be written: cannot create {}: Read-only file system",
                dest.display()
            )) && msg.contains(&said_read_only)
                && msg.contains("NOT ready"),
            "{msg}"
        );
    }
    assert!(disk.remount("rw"), "could not remount read-write");
    let dest = disk.path.join("new folder");
    let (out, rep) = restore(&dump, &dest, &[], &[]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    assert!(rep["outcomes"]["copied"].as_u64().unwrap() > 0);
    assert_restored_exactly(&dump, &dest);
}

/// Round 19, through a share: a restore into a folder not made yet on an sshfs share of a
/// folder the server cannot write (a [`ReadOnlyShare`], which answers `mkdir` with "File
/// exists" though nothing is there) said only "File exists" and to check that the share
/// is mounted and writable, and left a state folder behind. Now it says, as pre-flight
/// does, that the share refuses writes and what to do (exit 2, nothing changed, no state
/// folder). Needs root, FUSE and `sshfs` with `sftp-server` (MCR_TEST_FUSE=require in
/// `.ci/run`).
#[test]
fn a_destination_not_yet_made_on_a_read_only_share_says_it_refuses_writes_regression_round_19() {
    let dump = Dump::new(56, 60, 1);
    let Some(share) = read_only_sshfs_share(&dump) else {
        return;
    };
    let dest = share.path.join("not-there-yet");
    let state = dump.path("state");
    let (out, _) = restore(&dump, &dest, &[], &[]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains(&format!(
            "cannot create destination {} (nothing was changed): fuse.sshfs from localhost:",
            dest.display()
        )) && msg.contains(&format!(" at {}", share.path.display()))
            && msg.contains("so the destination refuses writes: a read-only share")
            && msg.contains("Make the share writable for this machine")
            && !msg.contains("sudo"),
        "{msg}"
    );
    assert!(!dest.exists());
    assert!(
        !state.exists(),
        "the refused run left its state folder: {msg}"
    );
}

/// Round 20: a dry run into a DEST that a real run could not make or write (here below, or
/// on, a disk mounted read-only) passed, writing nothing so trying nothing, and so told the
/// user a real run would go ahead. Now it says what the real run would (its start-up check,
/// `config::why_not_made`), after "dry run (nothing was written)", and exits 2 as that run
/// does; it still writes nothing (no DEST, no state folder). On the disk mounted read-write
/// again, the same dry run goes ahead, writing nothing.
#[test]
fn a_dry_run_says_a_real_run_could_not_make_or_write_its_destination_regression_round_20() {
    let dump = Dump::new(58, 60, 1);
    let Some(disk) = Ext4Disk::mount(&dump, "32M") else {
        return;
    };
    let there = disk.path.join("there");
    std::fs::create_dir(&there).unwrap();
    assert!(disk.remount("ro"), "could not remount read-only");
    let state = dump.path("state");
    let said_read_only = format!(
        " at {}) is mounted read-only: mount it read-write",
        disk.path.display()
    );
    let dry_run =
        "dry run (nothing was written): a real run would stop before it copies anything: ";
    let cases = [
        (
            disk.path.join("new folder"),
            "cannot create destination",
            " (nothing was changed)",
        ),
        (
            disk.path.join("new/deeper"),
            "cannot create destination",
            " (nothing was changed)",
        ),
        (there.clone(), "cannot write to destination", ""),
    ];
    for (dest, refusal, nothing) in &cases {
        let (out, _) = restore(&dump, dest, &["--dry-run"], &[]);
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(2), "{msg}");
        assert!(
            msg.contains(&format!(
                "{dry_run}{refusal} {}{nothing}: Read-only file system",
                dest.display()
            )) && msg.contains("(ext4 from /dev/loop")
                && msg.contains(&said_read_only),
            "{msg}"
        );
        assert!(!state.exists(), "a dry run made a state folder: {msg}");
        // Round 24 (found by an exploratory test): `plan` listed the files without a
        // word about it; it warns now, and still lists them (exit 0).
        let plan = bin()
            .arg("plan")
            .arg(&dump.root)
            .arg(dest)
            .arg("--summary")
            .output()
            .unwrap();
        let said = text(&plan);
        assert_eq!(plan.status.code(), Some(0), "{said}");
        assert!(
            said.contains(&format!(
                "warning: {refusal} {}{nothing}: Read-only file system",
                dest.display()
            )) && said
                .contains("A restore into it would be refused before it writes anything (exit 2)"),
            "{said}"
        );
    }
    // The real run says the same, without the dry run's words.
    let (out, _) = restore(&dump, &cases[0].0, &[], &[]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains(&format!(
            "cannot create destination {}",
            cases[0].0.display()
        )) && !msg.contains("dry run"),
        "{msg}"
    );
    assert!(disk.remount("rw"), "could not remount read-write");
    for (dest, _, _) in &cases {
        let (out, _) = restore(&dump, dest, &["--dry-run"], &[]);
        assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    }
    assert!(!cases[0].0.exists() && !disk.path.join("new").exists() && !state.exists());
    assert_eq!(
        std::fs::read_dir(&there).unwrap().count(),
        0,
        "nothing written"
    );
}

/// Round 19's list: a DEST below a symbolic link to nothing (`link` -> a folder that does
/// not exist, as a link to a share's mount point reads while the share is not mounted) was
/// refused with the "File exists" of making the link, read as that of a share refusing
/// writes: "a read-only share, or permissions on the server", and a dry run went ahead.
/// Now `restore` and its dry run (exit 2) and `preflight` (blocking, exit 1) name the link
/// and where it points, and say to create that folder or give another DEST; also where DEST
/// is the link itself. Nothing is written (no folder, no state folder); once the folder is
/// created, the same command restores.
#[test]
fn a_destination_below_a_symbolic_link_to_nothing_names_the_link_regression_round_21() {
    let dump = Dump::new(60, 40, 1);
    let (links, nowhere) = (dump.path("links"), dump.path("nowhere"));
    std::fs::create_dir(&links).unwrap();
    let link = links.join("nas");
    std::os::unix::fs::symlink(&nowhere, &link).unwrap();
    let said = format!(
        "File exists (os error 17): {} is a symbolic link to {}, which does not exist, so no folder can be made there. Create the folder {} (or mount the disk or share it is on), or give another DEST, then run the same command again",
        link.display(),
        nowhere.display(),
        nowhere.display()
    );
    refused_naming_what_is_in_the_way(
        &dump,
        &[link.join("restored"), link.join("a/b"), link.clone()],
        &said,
        &links,
        1,
    );
    assert!(!nowhere.exists(), "the link's target was made");
    std::fs::create_dir(&nowhere).unwrap();
    let (out, rep) = restore(&dump, &link.join("restored"), &[], &[]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    assert!(rep["outcomes"]["copied"].as_u64().unwrap() > 0);
    assert_restored_exactly(&dump, &nowhere.join("restored"));
}

/// `restore`, its dry run (exit 2) and `preflight` (blocking, exit 1) into each of `dests`
/// say "cannot create" DEST with `said`, and write nothing: no state folder, and `folder`
/// (where the obstacle is) still holds its `entries` alone.
fn refused_naming_what_is_in_the_way(
    dump: &Dump,
    dests: &[std::path::PathBuf],
    said: &str,
    folder: &Path,
    entries: usize,
) {
    let state = dump.path("state");
    for dest in dests {
        for (extra, before) in [
            (&[][..], ""),
            (
                &["--dry-run"][..],
                "dry run (nothing was written): a real run would stop before it copies anything: ",
            ),
        ] {
            let (out, _) = restore(dump, dest, extra, &[]);
            let msg = text(&out);
            assert_eq!(out.status.code(), Some(2), "{msg}");
            // The system's words may differ between the run and its dry run (which makes
            // nothing): what follows them may not.
            assert!(
                msg.contains(&format!(
                    "{before}cannot create destination {} (nothing was changed): ",
                    dest.display()
                )) && msg.contains(said)
                    && !msg.contains("refuses writes")
                    && !msg.contains("Check that the disk or share is mounted"),
                "{msg}"
            );
        }
        let out = bin()
            .arg("preflight")
            .arg(&dump.root)
            .arg(dest)
            .args(["--budget", "5"])
            .output()
            .unwrap();
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(1), "{msg}");
        assert!(
            msg.contains(&format!(
                "the destination cannot be written: cannot create {}: ",
                dest.display()
            )) && msg.contains(said)
                && msg.contains("NOT ready")
                && !msg.contains("refuses writes"),
            "{msg}"
        );
        assert!(!state.exists(), "{msg}");
        let left: Vec<_> = std::fs::read_dir(folder).unwrap().flatten().collect();
        assert_eq!(left.len(), entries, "nothing made beside: {left:?}");
    }
}

/// Round 22 (noticed in round 21): a DEST below a symbolic-link loop (`nas` -> `nas2` ->
/// `nas`), or below a file (`notes.txt/restored`), was refused with the system's words and
/// "Check that the disk or share is mounted and writable", which is not what is wrong. Now
/// `restore`, its dry run and `preflight` name the link and where it points, or the file,
/// and say what to do; also where DEST is the loop itself. Nothing is written.
#[test]
fn a_destination_below_a_link_loop_or_a_file_names_it_regression_round_22() {
    let dump = Dump::new(61, 40, 1);
    let links = dump.path("links");
    std::fs::create_dir(&links).unwrap();
    let (nas, nas2) = (links.join("nas"), links.join("nas2"));
    std::os::unix::fs::symlink(&nas2, &nas).unwrap();
    std::os::unix::fs::symlink(&nas, &nas2).unwrap();
    let loop_said = format!(
        "{} is a symbolic link to {}, which leads back to it (a loop), so no folder can be made there. Point the link at the folder it stands for (or remove it), or give another DEST, then run the same command again",
        nas.display(),
        nas2.display()
    );
    refused_naming_what_is_in_the_way(
        &dump,
        &[nas.join("restored"), nas.join("a/b"), nas.clone()],
        &loop_said,
        &links,
        2,
    );
    let notes = dump.path("notes.txt");
    std::fs::write(&notes, "a file").unwrap();
    refused_naming_what_is_in_the_way(
        &dump,
        &[notes.join("restored"), notes.join("a/b")],
        &format!(
            "{} is a file, not a folder, so no folder can be made in it. Give a DEST whose folders are folders (or move that file away), then run the same command again",
            notes.display()
        ),
        &links,
        2,
    );
}

/// Round 20: a resume (the state folder holds a checkpoint) made and tested DEST only after
/// it had opened the checkpoint for writing, so a resume refused there added a run that did
/// nothing to it: DEST gone (nothing recorded yet, so no recorded file was missed) and not
/// made again below a disk now mounted read-only, or DEST on that disk with files recorded.
/// Now a resume tests DEST before it opens the checkpoint, as a first run does: refused
/// (exit 2), with no run added; on the disk read-write again, the restore goes on.
#[test]
fn a_resume_refused_by_its_destination_adds_no_run_to_the_checkpoint_regression_round_20() {
    let dump = Dump::new(59, 80, 1);
    let Some(disk) = Ext4Disk::mount(&dump, "32M") else {
        return;
    };
    let dest = disk.path.join("restored");
    let state = dump.path("state");
    // Stopped before its first commit: nothing recorded, so the resume's look for recorded
    // files has nothing to miss.
    let (out, _) = restore(
        &dump,
        &dest,
        &[],
        &[("MYCLOUD_RECOVER_FAULTS", "abort_after_renames=5")],
    );
    assert!(out.status.code().is_none(), "aborted: {}", text(&out));
    let runs_before = recorded_runs(&state);
    assert_eq!(runs_before, 1);
    std::fs::remove_dir_all(&dest).unwrap();
    assert!(disk.remount("ro"), "could not remount read-only");
    let (out, _) = restore(&dump, &dest, &[], &[]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains(&format!(
            "cannot create destination {} (nothing was changed): Read-only file system",
            dest.display()
        )),
        "{msg}"
    );
    assert_eq!(recorded_runs(&state), runs_before, "no run was added");
    // DEST there, with files recorded, on the disk turned read-only.
    assert!(disk.remount("rw"), "could not remount read-write");
    let (out, rep) = restore(&dump, &dest, &[], &[]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    assert!(rep["outcomes"]["copied"].as_u64().unwrap() > 0);
    let runs_before = recorded_runs(&state);
    assert!(disk.remount("ro"), "could not remount read-only");
    let (out, _) = restore(&dump, &dest, &[], &[]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains(&format!(
            "cannot write to destination {}: Read-only file system",
            dest.display()
        )),
        "{msg}"
    );
    assert_eq!(recorded_runs(&state), runs_before, "no run was added");
    assert!(disk.remount("rw"), "could not remount read-write");
    let (out, _) = restore(&dump, &dest, &[], &[]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    assert_eq!(recorded_runs(&state), runs_before.as_u64().unwrap() + 1);
    assert_restored_exactly(&dump, &dest);
}

/// Round 20: a `--report` path in a folder that does not exist, or a folder itself, was
/// refused only when the report was first written, after the checkpoint was opened: a first
/// run left a state folder with a checkpoint, a resume added a run that did nothing. Now it
/// is checked with the other options (exit 2) naming the path and what to do, before the
/// state folder or DEST is touched, and no report file is made.
#[test]
fn a_report_path_that_cannot_be_written_is_refused_before_the_checkpoint_regression_round_20() {
    let dump = Dump::new(60, 60, 1);
    let dest = dump.path("restored");
    let state = dump.path("state");
    let a_file = dump.path("a file");
    std::fs::write(&a_file, b"not a folder").unwrap();
    let missing = dump.path("no such folder/report.json");
    let below_a_file = a_file.join("report.json");
    let a_folder = dump.path("a folder");
    std::fs::create_dir(&a_folder).unwrap();
    let cases = [
        (
            missing.clone(),
            format!("{} does not exist", dump.path("no such folder").display()),
        ),
        (
            below_a_file.clone(),
            format!("{} is not a folder", a_file.display()),
        ),
        (
            a_folder.clone(),
            format!("--report {} is a folder", a_folder.display()),
        ),
    ];
    let refused = |report: &Path, says: &str| {
        for dry in [false, true] {
            let mut extra = vec!["--report", report.to_str().unwrap()];
            extra.extend(dry.then_some("--dry-run"));
            let (out, _) = restore(&dump, &dest, &extra, &[]);
            let msg = text(&out);
            assert_eq!(out.status.code(), Some(2), "{msg}");
            assert!(
                msg.contains(&format!("--report {}", report.display()))
                    && msg.contains(says)
                    && msg.contains("Pass --report with a file")
                    && msg.contains("Nothing was changed"),
                "{msg}"
            );
        }
    };
    // A first run: no state folder, no DEST, nothing made for the report.
    for (report, says) in &cases {
        refused(report, says);
        assert!(!state.exists(), "a state folder was left");
        assert!(!dest.exists(), "DEST was made");
    }
    assert!(!dump.path("no such folder").exists());
    assert_eq!(std::fs::read_dir(&a_folder).unwrap().count(), 0);
    // A resume: no run added.
    let (out, _) = restore(&dump, &dest, &[], &[]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    let runs = recorded_runs(&state);
    for (report, says) in &cases {
        refused(report, says);
    }
    assert_eq!(recorded_runs(&state), runs, "no run was added");
    // A report in the state folder a first run makes is fine.
    let other = dump.path("other state");
    let report = other.join("mine.json");
    let (out, _) = restore(
        &dump,
        &dump.path("other dest"),
        &[
            "--state-dir",
            other.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
        &[],
    );
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    assert!(report.is_file());
}

/// Round 19 (review): a first restore (no checkpoint yet) refused before it opened its
/// checkpoint left a state folder holding only `lock` (`~/.local/state/mycloud-recover/...`,
/// which `status` then finds) for every refusal but a DEST that cannot be made: `--only`
/// matching nothing, an unknown `--user`, a source whose objects are not there, Ctrl-C
/// while planning. Each now leaves no state folder, neither one given with `--state-dir`
/// (nor the folders above it that the run made) nor the default one under
/// `$XDG_STATE_HOME` (where another restore's state folder beside it stays), and no DEST.
#[test]
fn a_refused_first_restore_leaves_no_state_folder_regression_round_19() {
    let dump = Dump::new(57, 60, 1);
    let dest = dump.path("restored");
    let no_objects = dump.path("no objects");
    std::fs::create_dir(&no_objects).unwrap();
    let files = no_objects.to_str().unwrap();
    let refusals: [(&[&str], &str); 3] = [
        (
            &["--only", "No such/folder"],
            "matches nothing in this dump",
        ),
        (&["--user", "nobody"], "no user `nobody` in this dump"),
        (&["--files", files], "has its object under"),
    ];
    let states = dump.path("states");
    let xdg = dump.path("xdg");
    let restore_into = |extra: &[&str], state_dir: Option<&Path>| {
        let mut c = bin();
        c.arg("restore").arg(&dump.root).arg(&dest).args(extra);
        if let Some(s) = state_dir {
            c.arg("--state-dir").arg(s);
        }
        c.env("XDG_STATE_HOME", &xdg).output().unwrap()
    };
    // Every case is run before the verdict, so that one failing shows which others do.
    let mut left = Vec::new();
    let mut look = |case: String, msg: &str| {
        for root in [&states, &xdg] {
            if root.exists() {
                left.push(format!("{case} left {:?}: {msg}", tree(root).into_keys()));
                std::fs::remove_dir_all(root).unwrap();
            }
        }
        assert!(!dest.exists(), "{case}: {msg}");
    };
    for (extra, said) in refusals {
        for state_dir in [Some(states.join("first/state")), None] {
            let out = restore_into(extra, state_dir.as_deref());
            let msg = text(&out);
            assert_eq!(out.status.code(), Some(2), "{extra:?}: {msg}");
            assert!(msg.contains(said), "{extra:?}: {msg}");
            look(format!("{extra:?} (--state-dir {state_dir:?})"), &msg);
        }
    }
    // Ctrl-C while planning: stopped (exit 130) before the checkpoint, nothing left.
    let state = states.join("first/state");
    let mut child = spawn_restore(&dump, &dest, &state, &[], "plan_delay_ms=1500");
    wait_for_lock(&state.join("lock"));
    std::thread::sleep(std::time::Duration::from_millis(300));
    send_signal(&child, "INT");
    assert_eq!(wait_at_most(&mut child, 10.0), Some(130));
    let said = text(&child.wait_with_output().unwrap());
    assert!(said.contains("interrupted while planning"), "{said}");
    look("Ctrl-C while planning".into(), &said);
    assert!(left.is_empty(), "{left:#?}");
    // Another restore's state folder in the default place stays, and only it.
    let other = xdg.join("mycloud-recover/other-restore");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("lock"), b"").unwrap();
    let out = restore_into(&["--only", "No such/folder"], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(
        tree(&xdg).into_keys().collect::<Vec<_>>(),
        [
            "mycloud-recover",
            "mycloud-recover/other-restore",
            "mycloud-recover/other-restore/lock"
        ]
    );
    // The same command without the refusal restores, its state folder where it was asked.
    let (out, rep) = restore(&dump, &dest, &["--state-dir", state.to_str().unwrap()], &[]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    assert!(rep["outcomes"]["copied"].as_u64().unwrap() > 0);
    assert!(state.join("checkpoint.db").is_file());
}

/// Round 19 (review), the other side: a refused run that finds a checkpoint (a resume with
/// `--only` matching nothing, an unknown `--user`) or a state folder it did not make (one
/// an older version left holding only `lock`) leaves that folder exactly as it was.
#[test]
fn a_refused_resume_keeps_its_state_folder_regression_round_19() {
    let dump = Dump::new(58, 60, 1);
    let dest = dump.path("restored");
    let state = dump.path("state");
    let (out, _) = restore(&dump, &dest, &["--limit", "10"], &[]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    let before = (tree(&state), file_hashes(&state));
    assert!(before.0.contains_key("checkpoint.db"), "{:?}", before.0);
    for (extra, said) in [
        (["--only", "No such/folder"], "matches nothing in this dump"),
        (["--user", "nobody"], "no user `nobody` in this dump"),
    ] {
        let (out, _) = restore(&dump, &dest, &extra, &[]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(text(&out).contains(said), "{}", text(&out));
        assert_eq!((tree(&state), file_hashes(&state)), before, "{extra:?}");
    }
    let stray = dump.path("stray");
    std::fs::create_dir(&stray).unwrap();
    std::fs::write(stray.join("lock"), b"").unwrap();
    let before = tree(&stray);
    let extra = [
        "--state-dir",
        stray.to_str().unwrap(),
        "--only",
        "No such/folder",
    ];
    let (out, _) = restore(&dump, &dump.path("elsewhere"), &extra, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(tree(&stray), before);
}

/// `regen` on a DEST without the files the checkpoint records (a disk not mounted, its bare
/// mount point maybe holding strays) would forget every record: refused, nothing changed.
/// Round 16: by the look a resume and `status` make (`state::look_for_restored`, 16 files),
/// not a second one of its own (32).
#[test]
fn regen_onto_an_empty_destination_is_refused() {
    let dump = Dump::new(51, 120, 1);
    let dest = dump.path("restored");
    let (out, first) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let moved = dump.path("moved");
    std::fs::rename(&dest, &moved).unwrap();
    std::fs::create_dir(&dest).unwrap();
    // A bare mount point may hold strays (what a run wrote while the disk was away).
    std::fs::write(dest.join("stray.txt"), b"not restored").unwrap();
    let out = regen(&dump, &dest, &[]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains("holds none of the") && msg.contains("mounted"),
        "{msg}"
    );
    // The look a resume and `status` make (round 16: regen looked for 32 with its own).
    assert!(msg.contains("none of the 16 files"), "{msg}");
    std::fs::remove_dir_all(&dest).unwrap();
    std::fs::rename(&moved, &dest).unwrap();
    let (out, rep) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(rep["outcomes"]["already_done"], first["outcomes"]["copied"]);
}

/// A `--report` path that cannot be written stops the restore before the first file, not
/// after hours of copying (since round 20 with the other options, before anything is made:
/// `a_report_path_that_cannot_be_written_is_refused_before_the_checkpoint_regression_round_20`).
#[test]
fn a_report_path_that_cannot_be_written_stops_before_copying() {
    let dump = Dump::new(52, 60, 1);
    let dest = dump.path("restored");
    let (out, _) = restore(&dump, &dest, &["--report", "/proc/nope/report.json"], &[]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains("/proc/nope") && msg.contains("Nothing was changed"),
        "{msg}"
    );
    assert!(
        tree(&dest).values().all(|(dir, _, _)| *dir),
        "no file restored: {:?}",
        tree(&dest)
    );
}

/// Two restores into one DEST with different state folders would fail each other's files
/// (the same temporary names on a network destination): the second is refused.
#[test]
fn a_second_restore_into_the_same_destination_is_refused() {
    let dump = Dump::new(53, 150, 1);
    let dest = dump.path("restored");
    let first = spawn_restore(&dump, &dest, &dump.path("state-a"), &[], "delay_ms=20");
    // Until the first holds DEST (its probe files are gone once it does).
    let started = std::time::Instant::now();
    while tree(&dest).keys().all(|p| p.contains(".mcr-"))
        && started.elapsed() < std::time::Duration::from_secs(30)
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let state_b = dump.path("state-b");
    let (out, _) = restore(
        &dump,
        &dest,
        &["--state-dir", state_b.to_str().unwrap()],
        &[],
    );
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains("another restore is writing into")
            && msg.contains("nothing was changed by this run"),
        "{msg}"
    );
    assert!(!state_b.exists(), "no state folder left");
    let out = first.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_restored_exactly(&dump, &dest);
}

/// Symbolic links in the object store: one to a file of this computer (an absolute link on
/// the device's disk), or a shard folder linked to one of its folders, is not followed and
/// the file is listed as failed; one that stays inside the store is followed.
#[test]
fn object_links_are_followed_only_inside_the_object_store() {
    let dump = Dump::new(54, 60, 1);
    let dest = dump.path("restored");
    let mut objects = dump.objects_with_bytes().into_iter();
    let (out_id, out_obj) = objects.next().expect("an object");
    let (in_id, in_obj) = objects.next().expect("another object");
    let outside = dump.path("outside.txt");
    std::fs::write(&outside, b"this computer's own file").unwrap();
    link_object_to(&out_obj, &outside);
    let moved = in_obj.with_file_name("moved-object");
    std::fs::rename(&in_obj, &moved).unwrap();
    std::os::unix::fs::symlink("moved-object", &in_obj).unwrap();
    // A whole shard folder linked to a folder of this computer (with other bytes).
    let (shard_id, shard_obj) = objects
        .find(|(_, o)| o.parent() != out_obj.parent() && o.parent() != in_obj.parent())
        .expect("an object in a third shard folder");
    link_shard_to(shard_obj.parent().unwrap(), &dump.path("host-folder"));
    let (out, rep) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let problems = rep["problems"].as_array().unwrap();
    let failed = problems
        .iter()
        .find(|p| p["id"] == out_id.as_str())
        .unwrap_or_else(|| panic!("listed: {problems:?}"));
    assert_eq!(failed["outcome"], "failed");
    assert!(failed["reason"]
        .as_str()
        .unwrap()
        .contains("outside the object store"));
    let via_shard = problems
        .iter()
        .find(|p| p["id"] == shard_id.as_str())
        .unwrap_or_else(|| panic!("listed: {problems:?}"));
    assert!(
        via_shard["reason"]
            .as_str()
            .unwrap()
            .contains("object folder"),
        "{via_shard}"
    );
    let on_dest = file_hashes(&dest);
    assert!(
        !on_dest.values().any(|h| *h == hash_file(&outside)),
        "the outside file's bytes were not restored"
    );
    let plan = plan_json(&dump.root, &dest, &[]);
    let (path, _) = planned_files(&plan)
        .into_iter()
        .find(|(_, (id, _, _))| *id == in_id)
        .unwrap();
    assert_eq!(
        on_dest.get(&path),
        Some(&hash_file(&moved)),
        "followed inside"
    );
}

/// Found by an exploratory tester: `verify` said dates as raw milliseconds ("the file has
/// 1795840241486 ms") where `regen` says dates; and it listed a file whose object is a
/// symbolic link out of the object store as differing ("not on the destination"), with
/// `regen` and `restore` to copy it again, which the restore never does (it follows no
/// such link: the file fails again), and an object that is a folder as "not found" (the
/// restore fails the file: "Is a directory"). Both are now listed with the files that have
/// no object a restore can copy, saying why and that the restore lists them as failed; the
/// text says dates as dates, the JSON keeps its milliseconds.
#[test]
fn verify_says_dates_as_dates_and_promises_no_copy_of_a_file_without_a_usable_object() {
    let dump = Dump::new(58, 60, 1);
    let dest = dump.path("restored");
    let mut objects = dump.objects_with_bytes().into_iter();
    let (link_id, link_obj) = objects.next().expect("an object");
    let (folder_id, folder_obj) = objects.next().expect("another object");
    let (dated_id, _) = objects.next().expect("a third object");
    let outside = dump.path("outside.txt");
    std::fs::write(&outside, b"this computer's own file").unwrap();
    link_object_to(&link_obj, &outside);
    std::fs::remove_file(&folder_obj).unwrap();
    std::fs::create_dir(&folder_obj).unwrap();
    let (out, rep) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // What the restore does with them, as verify now says it.
    for id in [&link_id, &folder_id] {
        let p = problem_of(&rep, id);
        assert_eq!(p["outcome"], "failed", "{p}");
    }
    let verify = |extra: &[&str]| verify(&dump, &dest, extra);
    let plan = plan_json(&dump.root, &dest, &[]);
    let path_of = |id: &str| planned_path_of(&plan, id);
    let (link_path, folder_path) = (path_of(&link_id), path_of(&folder_id));
    let out = verify(&[]);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{said}");
    // Nothing differs that a restore can copy again: no `regen`/`restore` promised.
    assert!(said.contains(" 0 differ,"), "{said}");
    assert!(
        !said.contains("mycloud-recover regen") && !said.contains("differ again"),
        "{said}"
    );
    let section = said
        .split_once("No object in the source that a restore can copy")
        .unwrap_or_else(|| panic!("{said}"))
        .1;
    let line_of = |path: &str| {
        section
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{path}: ")))
            .unwrap_or_else(|| panic!("{path} listed: {said}"))
            .to_string()
    };
    let link_line = line_of(&link_path);
    assert!(
        link_line.contains(&link_obj.display().to_string())
            && link_line.contains("outside the object store")
            && link_line.contains("lists this file as failed"),
        "{link_line}"
    );
    let folder_line = line_of(&folder_path);
    assert!(
        folder_line.contains(&folder_obj.display().to_string())
            && folder_line.contains("is a folder, not a file")
            && folder_line.contains("lists this file as failed"),
        "{folder_line}"
    );
    // A restored file given another date (2001-01-01 00:00:00 UTC).
    let dated_path = path_of(&dated_id);
    let planned = planned_files(&plan)[&dated_path].2.unwrap();
    std::fs::File::options()
        .write(true)
        .open(dest.join(&dated_path))
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(978_307_200))
        .unwrap();
    let out = verify(&[]);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{said}");
    let dated_line = said
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{dated_path}: ")))
        .unwrap_or_else(|| panic!("{said}"));
    let planned_date = mycloud_recover::report::human_ms(planned);
    assert_eq!(
        dated_line.trim_start(),
        format!(
            "{dated_path}: date differs from the planned {planned_date} (the file has 2001-01-01 00:00:00 UTC)"
        ),
        "{said}"
    );
    // Only the file a restore can copy again is among the files that differ.
    assert!(said.contains(" 1 differ,"), "{said}");
    assert!(said.contains("mycloud-recover regen"), "{said}");
    // JSON as it was: milliseconds.
    let out = verify(&["--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mismatches = json["mismatches"].as_array().unwrap();
    assert_eq!(mismatches.len(), 1, "{json}");
    assert_eq!(
        mismatches[0]["problem"],
        format!("date differs from the planned {planned} ms (the file has 978307200000 ms)"),
        "{json}"
    );
    let missing = json["missing_objects"].as_array().unwrap();
    for id in [&link_id, &folder_id] {
        assert!(missing.iter().any(|m| m["id"] == id.as_str()), "{json}");
    }
}

/// Round 25 (left over from round 24): `regen` followed an object that is a symbolic link
/// out of the object store, or sits in a shard folder linked out of it, and counted its file
/// "absent (will be copied)", a copy the restore never makes (it lists the file as failed,
/// "not followed"); `regen --content` read this computer's file as the object. An object
/// that is a FIFO was "not found" for `verify`, while the restore made an empty file of it.
/// All three now find objects as the restore does (one lookup) and say the same: no object
/// a restore can copy, listed as failed, with why.
#[test]
fn regen_and_verify_find_objects_as_the_restore_does_links_out_of_the_store_and_fifos() {
    let dump = Dump::new(59, 80, 1);
    let dest = dump.path("restored");
    let with_object = dump.objects_with_bytes();
    let (shard_id, shard_obj) = with_object[0].clone();
    let shard = shard_obj.parent().unwrap().to_path_buf();
    let mut elsewhere = with_object
        .iter()
        .filter(|(_, o)| o.parent() != Some(shard.as_path()));
    let (link_id, link_obj) = elsewhere
        .next()
        .expect("an object in another shard")
        .clone();
    let (fifo_id, fifo_obj) = elsewhere.next().expect("a third object").clone();
    let (content_id, content_obj) = elsewhere.next().expect("a fourth object").clone();
    // An object linked to a file of this computer.
    let outside = dump.path("outside.txt");
    std::fs::write(&outside, b"this computer's own file").unwrap();
    link_object_to(&link_obj, &outside);
    fifo_for_object(&fifo_obj);
    // A shard folder linked to a folder of this computer (with other bytes).
    link_shard_to(&shard, &dump.path("host-folder"));

    let (out, rep) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let plan = plan_json(&dump.root, &dest, &[]);
    let path_of = |id: &str| planned_path_of(&plan, id);
    let cases = [
        (&link_id, "outside the object store"),
        (&fifo_id, "is a FIFO (named pipe), not a file"),
        (&shard_id, "outside the object store"),
    ];
    // The restore: each failed, with why; nothing made of the FIFO.
    for (id, why) in cases {
        let p = problem_of(&rep, id);
        assert_eq!(p["outcome"], "failed", "{p}");
        assert!(p["reason"].as_str().unwrap().contains(why), "{p}");
    }
    assert!(
        std::fs::symlink_metadata(dest.join(path_of(&fifo_id))).is_err(),
        "no empty file restored from the FIFO"
    );

    // A restored file whose object is now a link out of the store to a file of this
    // computer of the same length: `regen --content` has nothing to compare it with.
    let content_path = path_of(&content_id);
    let len = std::fs::metadata(&content_obj).unwrap().len() as usize;
    let same_length = dump.path("same-length.bin");
    std::fs::write(&same_length, vec![b'x'; len]).unwrap();
    link_object_to(&content_obj, &same_length);

    let out = regen(&dump, &dest, &["--content", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["absent"], serde_json::json!([]), "nothing to copy: {r}");
    let no_object = r["absent_no_object"].as_array().unwrap();
    for (id, why) in cases {
        let path = path_of(id);
        let said = no_object
            .iter()
            .find(|x| x[0] == path.as_str())
            .unwrap_or_else(|| panic!("{path} listed with no object: {r}"))[1]
            .as_str()
            .unwrap();
        assert!(
            said.contains(why) && said.contains("lists this file as failed"),
            "{said}"
        );
    }
    assert!(
        !r["differs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d[0] == content_path.as_str()),
        "this computer's file was not read as the object: {r}"
    );
    // The same in text.
    let out = regen(&dump, &dest, &[]);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{said}");
    let absent_line = said
        .lines()
        .find(|l| l.contains("absent (will be copied)"))
        .unwrap_or_else(|| panic!("{said}"));
    assert!(absent_line.ends_with(" 0"), "{said}");
    let section = said
        .split_once("Absent, with no object in the source that a restore can copy them from")
        .unwrap_or_else(|| panic!("{said}"))
        .1;
    let fifo_line = section
        .lines()
        .find(|l| {
            l.trim_start()
                .starts_with(&format!("{}: ", path_of(&fifo_id)))
        })
        .unwrap_or_else(|| panic!("{said}"));
    assert!(
        fifo_line.contains(&fifo_obj.display().to_string())
            && fifo_line.contains("FIFO")
            && fifo_line.contains("lists this file as failed"),
        "{fifo_line}"
    );

    // `verify` says the same of them.
    let out = verify(&dump, &dest, &["--content", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let missing = v["missing_objects"].as_array().unwrap();
    let linked_since = [(&content_id, "outside the object store")];
    for (id, why) in cases.iter().chain(linked_since.iter()) {
        let m = missing
            .iter()
            .find(|m| m["id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} listed: {v}"));
        let problem = m["problem"].as_str().unwrap();
        assert!(
            problem.contains(why) && problem.contains("lists this file as failed"),
            "{problem}"
        );
    }
}

/// `regen` after a run that did not end cleanly compares the files the checkpoint does not
/// record with their objects: a power cut can leave a file's name, size and date with zeros
/// for data (ext4), which matching by size and date alone would adopt for good.
#[test]
fn regen_after_a_crash_does_not_adopt_a_file_without_its_data() {
    let dump = Dump::new(55, 120, 1);
    let dest = dump.path("restored");
    let zeroed = crash_leaving_a_zeroed_file(&dump, &dest);
    let out = regen(&dump, &dest, &["--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    let differs: serde_json::Value = serde_json::from_str(&said).unwrap();
    assert_eq!(
        differs["differs"][0][0],
        zeroed.as_str(),
        "the zeroed file is to be copied again: {said}"
    );
    let (out, _) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_restored_exactly(&dump, &dest);
}

/// A run refused before it writes anything (here: another restore holding DEST; until round
/// 20, a report path that cannot be written, now refused before the checkpoint is opened)
/// neither passes for a crash (the next run would walk DEST for leftovers and compare every
/// file it finds) nor hides the crash of the run before it. Since round 20 this refusal too
/// comes before the checkpoint is opened: it leaves no state folder and adds no run
/// (a_restore_refused_by_another_in_its_destination_opens_no_checkpoint_regression_round_20).
#[test]
fn a_refused_run_neither_passes_for_a_crash_nor_hides_one() {
    let dump = Dump::new(56, 80, 1);
    let dest = dump.path("restored");
    let refused = || refused_while_another_restore_holds(&dump, &dest, &[]);
    let status = || {
        let out = bin()
            .arg("status")
            .arg("--state-dir")
            .arg(dump.path("state"))
            .output()
            .unwrap();
        text(&out)
    };
    // Refused before any run: `status` does not say a run "ended normally" (there is none).
    refused();
    assert!(status().contains("no checkpoint in"), "{}", status());
    let (out, _) = restore(
        &dump,
        &dest,
        &[],
        &[("MYCLOUD_RECOVER_FAULTS", "abort_after_renames=20")],
    );
    assert!(out.status.code().is_none(), "aborted: {}", text(&out));
    let runs = recorded_runs(&dump.path("state"));
    refused();
    assert_eq!(recorded_runs(&dump.path("state")), runs, "no run was added");
    assert!(status().contains("killed"), "{}", status());
    let (_, rep) = restore(&dump, &dest, &[], &[]);
    assert!(
        rep["phases"]["temp_cleanup"].is_number(),
        "the crash is still seen"
    );
    refused();
    let (_, rep) = restore(&dump, &dest, &[], &[]);
    assert!(
        rep["phases"]["temp_cleanup"].is_null(),
        "no crash after the refusal"
    );
}

/// `regen` names what stands where a file goes (a folder, a link): the restore leaves it
/// alone and fails the file, so "absent (will be copied)" would be a promise it breaks.
#[test]
fn regen_names_a_folder_or_link_in_the_way_of_a_file() {
    let dump = Dump::new(57, 60, 1);
    let dest = dump.path("restored");
    let (out, _) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let plan = plan_json(&dump.root, &dest, &[]);
    let mut files = planned_files(&plan)
        .into_keys()
        .filter(|p| dest.join(p).is_file());
    let (folder, link) = (files.next().unwrap(), files.next().unwrap());
    std::fs::remove_file(dest.join(&folder)).unwrap();
    std::fs::create_dir(dest.join(&folder)).unwrap();
    std::fs::remove_file(dest.join(&link)).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", dest.join(&link)).unwrap();
    let out = regen(&dump, &dest, &["--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let rep: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let in_the_way: Vec<&str> = rep["in_the_way"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_str().unwrap())
        .collect();
    assert!(
        in_the_way.contains(&folder.as_str()) && in_the_way.contains(&link.as_str()),
        "{rep}"
    );
    let absent = rep["absent"].as_array().unwrap();
    assert!(!absent
        .iter()
        .any(|p| p == folder.as_str() || p == link.as_str()));
}

/// A file already at a final name (a folder that existed before the run) is adopted when
/// it matches, kept and reported when it differs, and replaced only with `--overwrite`.
#[test]
fn existing_file_at_a_final_name_is_kept_and_reported_then_replaced_with_overwrite() {
    for mode in ["", "named_temps=1"] {
        let dump = Dump::new(37, 80, 1);
        let dest = dump.path(&format!("restored{}", mode.len()));
        let state = dump.path(&format!("state{}", mode.len()));
        let plan = plan_json(&dump.root, &dest, &[]);
        let files = planned_files(&plan);
        let cids = dump.content_ids();
        let (path, (id, _, _)) = files
            .iter()
            .find(|(_, (id, size, _))| *size > 0 && !dump.manifest.missing_object_ids.contains(id))
            .unwrap();
        let target = dest.join(path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(&target, b"the user's own file").unwrap();
        let env = [("MYCLOUD_RECOVER_FAULTS", mode)];
        let st = state.to_str().unwrap();
        let (out, rep) = restore(&dump, &dest, &["--state-dir", st], &env);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let kept = rep["problems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["path"] == path.as_str())
            .unwrap_or_else(|| panic!("{path} reported: {}", rep["problems"]));
        assert_eq!(kept["outcome"], "failed");
        assert!(kept["reason"]
            .as_str()
            .unwrap()
            .contains("already exists and differs"));
        assert_eq!(std::fs::read(&target).unwrap(), b"the user's own file");
        // Each file --overwrite replaces is said, in the summary and as a note on the file
        // (it was counted as copied only, with nothing in the report: round 24's tester).
        let (out, _) = restore(
            &dump,
            &dest,
            &["--state-dir", st, "--overwrite", "--dry-run"],
            &env,
        );
        let said = text(&out);
        assert!(
            said.contains("would replace 1 different file that is there (--overwrite)")
                && said.contains(&format!(
                    "note: {path}: would replace the different file that is at this path (19 bytes, dated "
                )),
            "{mode}: {said}"
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"the user's own file");
        let (out, rep) = restore(&dump, &dest, &["--state-dir", st, "--overwrite"], &env);
        assert_eq!(rep["outcomes"]["copied"], 1, "{mode}: {}", rep["outcomes"]);
        assert_eq!(hash_file(&target), dump.expected_hash(&cids[id].0));
        assert_eq!(rep["replaced_overwrite"], 1, "{mode}: {}", text(&out));
        let notes = rep["notes"].as_array().unwrap();
        let note = notes
            .iter()
            .find(|n| n["path"] == path.as_str())
            .unwrap_or_else(|| panic!("{mode}: {path} noted: {notes:?}"));
        let reason = note["reason"].as_str().unwrap();
        assert!(
            reason
                .starts_with("replaced the different file that was at this path (19 bytes, dated ")
                && reason.ends_with("UTC), as --overwrite asks"),
            "{mode}: {reason}"
        );
        assert_eq!(note["id"], id.as_str());
        assert!(
            text(&out).contains("  replaced 1 different file that was there (--overwrite); each is listed in the report"),
            "{mode}: {}",
            text(&out)
        );
        assert!(
            tree(&dest).keys().all(|p| !p.contains(".mcr-")),
            "no temporary file left"
        );
    }
}

/// What a power cut can leave on ext4 (delayed allocation): the file's name and dates reached
/// the disk, not all its data. After such an unclean end, a shorter file with exactly the
/// planned date is the crashed run's own copy and is redone (and reported); one with another
/// date is somebody else's and is kept. A power cut cannot be produced in a test, so the
/// leftover is written by hand after a real crash (abort) of the first run.
#[test]
fn after_a_crash_a_cut_short_or_zeroed_copy_with_the_planned_date_is_redone_others_kept() {
    for mode in ["", "named_temps=1;"] {
        let dump = Dump::new(38, 150, 1);
        let dest = dump.path(&format!("restored{}", mode.len()));
        let state = dump.path(&format!("state{}", mode.len()));
        let st = state.to_str().unwrap();
        let fault = format!("{mode}abort_after_commits=1;delay_ms=40");
        let (out, _) = restore(
            &dump,
            &dest,
            &["--threads", "2", "--state-dir", st],
            &[("MYCLOUD_RECOVER_FAULTS", &fault)],
        );
        assert!(out.status.code().is_none(), "aborted: {}", text(&out));
        let plan = plan_json(&dump.root, &dest, &[]);
        let cids = dump.content_ids();
        let mut left = planned_files(&plan)
            .into_iter()
            .filter(|(p, (id, size, ms))| {
                !dest.join(p).exists()
                    && *size > 10
                    && ms.is_some()
                    && !dump.manifest.missing_object_ids.contains(id)
            });
        // What a power cut leaves on ext4: the name and date, and part of the length or all
        // of it without the data (zeros).
        let write_cut_short = |path: &str, len: u64, ms: i64| {
            let p = dest.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            let f = std::fs::File::create(&p).unwrap();
            f.set_len(len).unwrap();
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64);
            f.set_times(std::fs::FileTimes::new().set_modified(t))
                .unwrap();
        };
        let (ours, (ours_id, size, ms)) = left.next().expect("files left to restore");
        write_cut_short(&ours, size / 2, ms.unwrap());
        let (zeroed, (zeroed_id, size, ms)) = left.next().expect("files left to restore");
        write_cut_short(&zeroed, size, ms.unwrap());
        let (theirs, (_, size, ms)) = left.next().expect("files left to restore");
        write_cut_short(&theirs, size / 2, ms.unwrap() - 86_400_000);

        let (out, rep) = restore(
            &dump,
            &dest,
            &["--state-dir", st],
            &[("MYCLOUD_RECOVER_FAULTS", mode)],
        );
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert_eq!(
            hash_file(&dest.join(&ours)),
            dump.expected_hash(&cids[&ours_id].0),
            "{mode}: the cut-short copy was redone"
        );
        assert_eq!(
            hash_file(&dest.join(&zeroed)),
            dump.expected_hash(&cids[&zeroed_id].0),
            "{mode}: the copy of the right size and date without its data was redone"
        );
        let noted = rep["notes"].as_array().unwrap();
        assert!(
            noted.iter().any(|n| n["path"] == ours.as_str()
                && n["reason"].as_str().unwrap().contains("cut-short copy")),
            "reported: {noted:?}"
        );
        assert!(
            noted.iter().any(|n| n["path"] == zeroed.as_str()
                && n["reason"].as_str().unwrap().contains("other bytes")),
            "reported: {noted:?}"
        );
        let kept = rep["problems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["path"] == theirs.as_str())
            .unwrap_or_else(|| panic!("{theirs} reported: {}", rep["problems"]));
        assert!(kept["reason"]
            .as_str()
            .unwrap()
            .contains("already exists and differs"));
        assert_eq!(
            std::fs::metadata(dest.join(&theirs)).unwrap().len(),
            size / 2
        );
    }
}

/// What a power cut leaves on ext4 at a final name: the name, the length and the date, and
/// `fill` (zeros) for data.
fn write_without_data(path: &Path, len: u64, ms: i64, fill: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, vec![fill; len as usize]).unwrap();
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64);
    let f = std::fs::File::options().write(true).open(path).unwrap();
    // Both times: exfat-fuse ignores a new modification time given alone.
    f.set_times(std::fs::FileTimes::new().set_accessed(t).set_modified(t))
        .unwrap();
}

/// Top folders of the plan with files to restore (size > 10, a date, an object), and those
/// files.
fn files_by_top_folder(
    dump: &Dump,
    dest: &Path,
) -> BTreeMap<String, Vec<(String, String, u64, i64)>> {
    let mut by_top: BTreeMap<String, Vec<(String, String, u64, i64)>> = BTreeMap::new();
    for (path, (id, size, ms)) in planned_files(&plan_json(&dump.root, dest, &[])) {
        let Some((top, _)) = path.split_once('/') else {
            continue;
        };
        if let Some(ms) = ms.filter(|_| size > 10) {
            if !dump.manifest.missing_object_ids.contains(&id) {
                by_top
                    .entry(top.to_string())
                    .or_default()
                    .push((path.clone(), id, size, ms));
            }
        }
    }
    by_top.retain(|_, files| files.len() >= 2);
    by_top
}

/// After a crash, files the checkpoint does not record are compared with their objects
/// before they are adopted, until a run has looked at every file: a run over a selection in
/// between does not end the doubt (it did: the run after it adopted a copy without its data).
/// And only files changed since the crashed run began are compared: a DEST filled before it
/// (by the tool the restore replaces, say) is adopted by size and date as on a first run,
/// not read twice.
#[test]
fn a_crash_s_doubt_outlives_partial_runs_and_spares_files_older_than_the_crash() {
    let dump = Dump::new(39, 200, 1);
    let dest = dump.path("restored");
    let by_top = files_by_top_folder(&dump, &dest);
    let tops: Vec<&String> = by_top.keys().collect();
    assert!(tops.len() >= 3, "three top folders with files: {tops:?}");
    let (x, y, z) = (tops[0], tops[1], tops[2]);
    let cids = dump.content_ids();
    // Filled before the restore began, by some earlier copy: the planned size and date,
    // other bytes than the object's (matched by size and date, which is all a first run
    // asks of a file it finds).
    let (old, _, old_size, ms) = &by_top[x][0];
    write_without_data(&dest.join(old), *old_size, *ms, 0xab);
    std::thread::sleep(std::time::Duration::from_millis(50));
    // Run 1, over folder Z, dies right after placing its first file.
    let slack = "clock_slack_ms=0";
    let (out, _) = restore(
        &dump,
        &dest,
        &["--only", z],
        &[(
            "MYCLOUD_RECOVER_FAULTS",
            &format!("{slack};abort_after_renames=1"),
        )],
    );
    assert!(out.status.code().is_none(), "aborted: {}", text(&out));
    // A copy in folder X that the power cut left without its data.
    let (zeroed, zeroed_id, size, ms) = &by_top[x][1];
    write_without_data(&dest.join(zeroed), *size, *ms, 0);
    // Run 2 restores folder Y only, and finishes cleanly.
    let (out, _) = restore(
        &dump,
        &dest,
        &["--only", y],
        &[("MYCLOUD_RECOVER_FAULTS", slack)],
    );
    assert!(out.status.code().is_some(), "{}", text(&out));
    assert!(dest.join(&by_top[y][0].0).is_file(), "{}", text(&out));
    assert!(
        unsure_since(&dump).is_some(),
        "a selection leaves the doubt"
    );
    // Run 3, everything.
    let (out, rep) = restore(&dump, &dest, &[], &[("MYCLOUD_RECOVER_FAULTS", slack)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        hash_file(&dest.join(zeroed)),
        dump.expected_hash(&cids[zeroed_id].0),
        "the copy without its data was redone, two runs after the crash"
    );
    assert!(
        rep["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["path"] == zeroed.as_str()
                && n["reason"].as_str().unwrap().contains("other bytes")),
        "reported: {}",
        rep["notes"]
    );
    let kept = std::fs::read(dest.join(old)).unwrap();
    assert!(
        kept.len() as u64 == *old_size && kept.iter().all(|b| *b == 0xab),
        "the file older than the crash was adopted by size and date, not compared: {} bytes, {}",
        kept.len(),
        rep["notes"]
    );
    assert!(
        rep["outcomes"]["adopted"].as_u64().unwrap() >= 1,
        "{}",
        rep["outcomes"]
    );
    // That run looked at every file: the doubt is over.
    assert_eq!(unsure_since(&dump), None);
}

/// Waits (at most 60 s) until the running restore has recorded a copied file in its
/// checkpoint under `state`, read without writing to it.
fn wait_for_commit(state: &Path) {
    let db = state.join("checkpoint.db");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let copied: i64 =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .and_then(|c| {
                    c.query_row(
                        "SELECT count(*) FROM log WHERE outcome = 'copied'",
                        [],
                        |r| r.get(0),
                    )
                })
                .unwrap_or(0);
        if copied > 0 {
            return;
        }
        assert!(std::time::Instant::now() < until, "nothing was committed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The checkpoint's doubt after a crash (`unsure_since`), if any.
fn unsure_since(dump: &Dump) -> Option<String> {
    rusqlite::Connection::open(dump.path("state/checkpoint.db"))
        .unwrap()
        .query_row(
            "SELECT value FROM meta WHERE key = 'unsure_since'",
            [],
            |r| r.get(0),
        )
        .ok()
}

/// `regen` after a crash compares the files changed since the crashed run began, and
/// adopts older ones (a DEST filled before the restore) by size and date.
#[test]
fn regen_after_a_crash_compares_only_files_changed_since_it_began() {
    let dump = Dump::new(41, 150, 1);
    let dest = dump.path("restored");
    let by_top = files_by_top_folder(&dump, &dest);
    let tops: Vec<&String> = by_top.keys().collect();
    assert!(tops.len() >= 2, "two top folders with files: {tops:?}");
    let (old, _, size, ms) = &by_top[tops[0]][0];
    write_without_data(&dest.join(old), *size, *ms, 0xab);
    std::thread::sleep(std::time::Duration::from_millis(50));
    let slack = (
        "MYCLOUD_RECOVER_FAULTS",
        "clock_slack_ms=0;abort_after_renames=1",
    );
    let (out, _) = restore(&dump, &dest, &["--only", tops[1]], &[slack]);
    assert!(out.status.code().is_none(), "aborted: {}", text(&out));
    let (zeroed, _, size, ms) = &by_top[tops[0]][1];
    write_without_data(&dest.join(zeroed), *size, *ms, 0);
    let out = bin()
        .args(["regen", "--json", "--state-dir"])
        .arg(dump.path("state"))
        .arg(&dump.root)
        .arg(&dest)
        .env("MYCLOUD_RECOVER_FAULTS", "clock_slack_ms=0")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let said: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let differs: Vec<&str> = said["differs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d[0].as_str().unwrap())
        .collect();
    assert!(differs.contains(&zeroed.as_str()), "{said}");
    assert!(
        !differs.contains(&old.as_str()),
        "older than the crash: {said}"
    );
}

/// More workers asked for than open files allow would each fail files with "too many open
/// files": as many as fit are used, with a warning naming the limit.
#[test]
fn explicit_threads_beyond_the_open_file_limit_are_lowered_with_a_warning() {
    let dump = Dump::new(42, 3000, 1);
    let dest = dump.path("restored");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 200 && exec \"$0\" restore \"$1\" \"$2\" --threads 300 --state-dir \"$3\"")
        .arg(assert_cmd::cargo::cargo_bin("mycloud-recover"))
        .arg(&dump.root)
        .arg(&dest)
        .arg(dump.path("state"))
        .output()
        .unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "only missing objects: {said}");
    assert!(said.contains("--threads 300 lowered to"), "{said}");
    assert!(said.contains("open-file limit (200)"), "{said}");
    assert!(!said.contains("Too many open files"), "{said}");
    assert_restored_exactly(&dump, &dest);

    // A hard limit too low for even one worker (the object store's 32 folders stay open):
    // it said to pass --report elsewhere. Now it names the limit to raise, copies nothing,
    // and the run after it, with the limit raised, is a plain resume.
    let dest = dump.path("restored-2");
    let state = dump.path("state-2");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 40 && exec \"$0\" restore \"$1\" \"$2\" --state-dir \"$3\"")
        .arg(assert_cmd::cargo::cargo_bin("mycloud-recover"))
        .arg(&dump.root)
        .arg(&dest)
        .arg(&state)
        .output()
        .unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("the open-file limit (40) is too low") && !said.contains("--report"),
        "{said}"
    );
    let (out, _) = restore(&dump, &dest, &["--state-dir", state.to_str().unwrap()], &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "only missing objects: {}",
        text(&out)
    );
    assert!(
        !text(&out).contains("did not end cleanly"),
        "{}",
        text(&out)
    );
    assert_restored_exactly(&dump, &dest);
}

#[test]
fn regen_of_a_file_with_only_another_date_redates_it_instead_of_copying_it_again() {
    // regen marked every file with the planned size under another date to be replaced: after
    // a restore with other `--mtime-from` (or a DEST filled by a tool that did not keep
    // dates), `regen` made the next restore copy the whole NAS again, where a restore alone
    // only re-dates such files. A file with other bytes is still replaced.
    let dump = Dump::new(44, 120, 1);
    let dest = dump.path("restored");
    restore(&dump, &dest, &[], &[]);
    let plan = planned_files(&plan_json(&dump.root, &dest, &[]));
    let present: Vec<(&String, i64)> = plan
        .iter()
        .filter(|(p, (_, size, ms))| *size > 0 && ms.is_some() && dest.join(p).is_file())
        .map(|(p, (_, _, ms))| (p, ms.unwrap()))
        .collect();
    let ((redate, redate_ms), (other, _)) = (present[2], present[7]);
    let long_ago = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    let set_date = |p: &str| {
        std::fs::File::options()
            .write(true)
            .open(dest.join(p))
            .unwrap()
            .set_modified(long_ago)
            .unwrap()
    };
    set_date(redate);
    let size = plan[other].1 as usize;
    std::fs::write(dest.join(other), vec![b'x'; size]).unwrap();
    set_date(other);
    let before = file_hashes(&dest);

    std::fs::remove_dir_all(dump.path("state")).unwrap();
    let out = regen(&dump, &dest, &["--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let differs: BTreeSet<&str> = r["differs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d[0].as_str().unwrap())
        .collect();
    assert_eq!(differs, BTreeSet::from([redate.as_str(), other.as_str()]));

    let log = dump.path("copies.log");
    let fault = format!("copy_log={}", log.display());
    let (out, rep) = restore(&dump, &dest, &[], &[("MYCLOUD_RECOVER_FAULTS", &fault)]);
    let copied: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(copied, [plan[other].0.clone()], "{}", text(&out));
    assert_eq!(rep["outcomes"]["failed"], 0, "{}", text(&out));
    assert_eq!(
        mtime_ms(&dest.join(redate)),
        redate_ms,
        "given its planned date"
    );
    let mut after = file_hashes(&dest);
    assert_ne!(
        after.remove(other.as_str()),
        before.get(other.as_str()).copied()
    );
    let mut before = before;
    before.remove(other.as_str());
    assert_eq!(after, before, "no other file rewritten");
    assert!(
        rep["notes"].as_array().unwrap().iter().any(|n| n["path"]
            .as_str()
            .is_some_and(|p| p.ends_with(redate.as_str()))
            && n["reason"]
                .as_str()
                .unwrap()
                .contains("given the planned date, not copied")),
        "{}",
        rep["notes"]
    );
    assert_restored_exactly(&dump, &dest);
}

/// Other date fields on a resume re-date the files whose date changes, after comparing
/// their bytes, without copying them (each failed as "already exists and differs"), and
/// say so; runs and `verify` without `--mtime-from` then follow the fields recorded.
#[test]
fn other_date_fields_on_a_resume_redate_without_copying_and_are_followed_after() {
    let dump = Dump::new(43, 200, 1);
    let dest = dump.path("restored");
    let (out, first) = restore(&dump, &dest, &[], &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "only missing objects: {}",
        text(&out)
    );
    let before = file_hashes(&dest);
    let other = ["--mtime-from", "cTime,birthTime"];
    // A dry run says what it would do, and changes no date.
    let dates = tree(&dest);
    let out = bin()
        .arg("restore")
        .arg(&dump.root)
        .arg(&dest)
        .args(["--dry-run", other[0], other[1], "--state-dir"])
        .arg(dump.path("state"))
        .output()
        .unwrap();
    assert!(
        text(&out).contains("would be given the planned date"),
        "{}",
        text(&out)
    );
    assert_eq!(tree(&dest), dates, "a dry run changes nothing");
    let (out, rep) = restore(&dump, &dest, &other, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("dates are now taken from cTime,birthTime"),
        "{}",
        text(&out)
    );
    assert_eq!(rep["outcomes"]["copied"], 0, "{}", text(&out));
    assert_eq!(rep["outcomes"]["failed"], 0, "{}", text(&out));
    assert_eq!(file_hashes(&dest), before, "no file rewritten");
    let plan = plan_json(&dump.root, &dest, &other);
    for (path, (_, _, ms)) in planned_files(&plan) {
        let p = dest.join(&path);
        if let (Some(ms), true) = (ms, p.is_file()) {
            assert_eq!(mtime_ms(&p), ms, "{path}");
        }
    }
    let redated = rep["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| {
            n["reason"]
                .as_str()
                .unwrap()
                .contains("given the planned date, not copied")
        })
        .count();
    assert!(redated > 0, "{}", rep["notes"]);
    assert_eq!(
        rep["outcomes"]["adopted"].as_u64().unwrap()
            + rep["outcomes"]["already_done"].as_u64().unwrap(),
        first["outcomes"]["copied"].as_u64().unwrap()
    );
    // Without the option: the recorded fields, nothing to do; regen agrees.
    let (out, third) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        third["outcomes"]["already_done"],
        first["outcomes"]["copied"]
    );
    let out = regen(&dump, &dest, &["--json"]);
    let said: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(said["differs"].as_array().unwrap().len(), 0, "{said}");
    let out = bin()
        .arg("verify")
        .arg(&dump.root)
        .arg(&dest)
        .env("XDG_STATE_HOME", dump.path("no-state-here"))
        .args(["--mtime-from", "cTime,birthTime"])
        .output()
        .unwrap();
    assert!(text(&out).contains(" 0 differ,"), "{}", text(&out));
}

#[test]
fn regen_rebuilds_a_damaged_checkpoint_comparing_every_file() {
    let dump = Dump::new(44, 150, 1);
    let dest = dump.path("restored");
    let (out, first) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let (zeroed, _) = planned_files(&plan_json(&dump.root, &dest, &[]))
        .into_iter()
        .find(|(p, (_, size, ms))| *size > 10 && ms.is_some() && dest.join(p).is_file())
        .unwrap();
    let p = dest.join(&zeroed);
    let m = std::fs::metadata(&p).unwrap();
    write_without_data(&p, m.len(), mtime_ms(&p), 0);
    let state = dump.path("state");
    std::fs::write(state.join("checkpoint.db"), vec![b'x'; 8192]).unwrap();
    for side in ["checkpoint.db-wal", "checkpoint.db-shm"] {
        let _ = std::fs::remove_file(state.join(side));
    }
    let out = regen(&dump, &dest, &["--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let said: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(said["notes"].to_string().contains("damaged"), "{said}");
    assert_eq!(said["differs"][0][0], zeroed.as_str(), "{said}");
    assert_eq!(
        said["adopted"].as_u64().unwrap() + 1,
        first["outcomes"]["copied"].as_u64().unwrap(),
        "{said}"
    );
    let (out, _) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_restored_exactly(&dump, &dest);

    let other = Dump::new(45, 20, 1);
    std::fs::create_dir_all(other.path("out")).unwrap();
    let out = bin()
        .arg("regen")
        .arg(&other.root)
        .arg(other.path("out"))
        .arg("--state-dir")
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("belongs to another restore"), "{said}");
    assert!(!said.contains("--fresh"), "regen has no --fresh: {said}");
}

/// Changes byte 100 of the file at `p` and puts its modification time back: only a
/// comparison of bytes can tell.
fn flip_a_byte_keeping_the_date(p: &Path) {
    let mut bytes = std::fs::read(p).unwrap();
    bytes[100] ^= 0xff;
    let ms = mtime_ms(p);
    std::fs::write(p, &bytes).unwrap();
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64);
    std::fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_times(std::fs::FileTimes::new().set_modified(t))
        .unwrap();
}

/// A file `verify --content` finds with other bytes (the planned size and date) has a way
/// back: `regen --content` marks it, and the restore copies it again; verify says so.
#[test]
fn a_file_verify_finds_with_other_bytes_is_restored_again_after_regen_content() {
    let dump = Dump::new(47, 150, 1);
    let dest = dump.path("restored");
    let (out, _) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let (bad, _) = planned_files(&plan_json(&dump.root, &dest, &[]))
        .into_iter()
        .find(|(p, (_, size, ms))| *size > 200 && ms.is_some() && dest.join(p).is_file())
        .unwrap();
    flip_a_byte_keeping_the_date(&dest.join(&bad));
    let verify = || {
        bin()
            .args(["verify", "--content"])
            .arg(&dump.root)
            .arg(&dest)
            .output()
            .unwrap()
    };
    let out = verify();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains(&bad) && said.contains(" 1 differ,"), "{said}");
    assert!(
        said.contains("regen") && said.contains("--content"),
        "{said}"
    );
    // A restore alone does not look at it again (it is recorded as done).
    let (out, _) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(verify().stdout.windows(9).any(|w| w == b" 1 differ"));
    let out = regen(&dump, &dest, &["--content", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let said: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(said["differs"][0][0], bad.as_str(), "{said}");
    assert_eq!(said["differs"].as_array().unwrap().len(), 1, "{said}");
    let (out, rep) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_restored_exactly(&dump, &dest);
    let said = text(&verify());
    assert!(said.contains(" 0 differ,"), "{said}");
    // The file replaced is said, as one --overwrite replaces is (it was counted as copied
    // only, with no note).
    assert_eq!(rep["replaced_marked"], 1, "{}", text(&out));
    assert_eq!(rep["replaced_overwrite"], 0);
    let notes = rep["notes"].as_array().unwrap();
    let note = notes
        .iter()
        .find(|n| n["path"] == bad.as_str())
        .unwrap_or_else(|| panic!("{bad} noted: {notes:?}"));
    let reason = note["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("replaced the different file that was at this path (")
            && reason.contains(
                "which `regen` found differing from the plan and marked to be copied again"
            ),
        "{reason}"
    );
    assert!(
        text(&out).contains("  replaced 1 file that `regen` found differing from the plan and marked to be copied again; each is listed in the report"),
        "{}",
        text(&out)
    );
}

/// The device's disk mounted at another path the next day is the same restore: the
/// checkpoint (found by DEST) follows its database there, with the name rules it used, so
/// nothing is copied twice under other names; another device into the same folder is
/// refused rather than mixed in.
#[test]
fn the_same_dump_at_another_path_resumes_and_another_dump_is_refused() {
    let dump = Dump::new(48, 300, 1);
    let dest = dump.path("restored");
    let xdg = dump.path("xdg");
    let run = |root: &Path, extra: &[&str]| {
        let out = bin()
            .arg("restore")
            .arg(root)
            .arg(&dest)
            .args(extra)
            .env("XDG_STATE_HOME", &xdg)
            .output()
            .unwrap();
        let report = walk_files(&xdg)
            .into_iter()
            .find(|p| p.ends_with("report.json"))
            .map(|p| {
                serde_json::from_slice::<serde_json::Value>(&std::fs::read(p).unwrap()).unwrap()
            });
        (out, report.unwrap_or_default())
    };
    let (out, first) = run(&dump.root, &["--names", "windows"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let before = tree(&dest);
    let moved = dump.path("mounted-elsewhere");
    let ok = std::process::Command::new("cp")
        .arg("-a")
        .arg(&dump.root)
        .arg(&moved)
        .status()
        .unwrap();
    assert!(ok.success());
    let (out, second) = run(&moved, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(second["outcomes"]["copied"], 0, "{}", text(&out));
    assert_eq!(
        second["outcomes"]["already_done"],
        first["outcomes"]["copied"],
        "{}",
        text(&out)
    );
    assert_eq!(tree(&dest).len(), before.len(), "nothing restored twice");

    let other = Dump::new(49, 50, 1);
    let (out, _) = run(&other.root, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("another database"), "{}", text(&out));
    assert_eq!(tree(&dest), before, "nothing of the other device written");
}

/// Round 11: the summary printed the first 20 notes (files restored from objects of
/// another length, re-dated, replacing a cut-short copy) and nothing else: 364 files
/// restored from short objects looked like 20. Notes are now counted, and the summary
/// says how many more are in the report, as it does for problem files.
#[test]
fn more_than_twenty_notes_are_counted_in_the_summary_not_cut_silently() {
    let dump = Dump::new(51, 200, 1);
    let short: Vec<std::path::PathBuf> = dump
        .content_ids()
        .into_values()
        .filter(|(_, size)| *size > 2000)
        .filter_map(|(cid, _)| cid.as_deref().and_then(|c| dump.object(c)))
        .take(25)
        .collect();
    assert_eq!(short.len(), 25, "25 objects to cut short");
    for object in &short {
        let bytes = std::fs::read(object).unwrap();
        std::fs::write(object, &bytes[..1000]).unwrap();
    }
    let (out, report) = restore(&dump, &dump.path("out"), &[], &[]);
    let summary = String::from_utf8_lossy(&out.stdout).into_owned();
    let notes = report["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 25, "{summary}");
    let (_, noted) = summary
        .split_once("Files with a note (25):\n")
        .unwrap_or_else(|| panic!("the summary counts the notes: {summary}"));
    assert_eq!(noted.matches("  note: ").count(), 20, "{summary}");
    assert!(
        noted.contains("  ... and 5 more in the report\n"),
        "{summary}"
    );
}

/// Round 11: after a restore that noted files restored from objects shorter than the
/// database says (damaged on the device's disk), `verify` and `verify --content` said
/// "N match" and nothing else: the check a worried user runs afterwards hid them. They
/// are counted among the matches and listed apart.
#[test]
fn verify_lists_files_that_match_an_object_of_another_length() {
    let dump = Dump::new(55, 120, 1);
    let short: Vec<String> = dump
        .content_ids()
        .into_iter()
        .filter(|(_, (_, size))| *size > 2000)
        .filter_map(|(id, (cid, _))| {
            let object = dump.object(cid.as_deref()?)?;
            let bytes = std::fs::read(&object).unwrap();
            std::fs::write(&object, &bytes[..1000]).unwrap();
            Some(id)
        })
        .take(3)
        .collect();
    assert_eq!(short.len(), 3);
    let dest = dump.path("out");
    let (_, report) = restore(&dump, &dest, &[], &[]);
    let noted: BTreeSet<String> = report["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(noted.len(), 3, "{report}");
    for content in [false, true] {
        let mut c = bin();
        c.arg("verify").arg(&dump.root).arg(&dest);
        if content {
            c.arg("--content");
        }
        let out = c.arg("--json").output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let listed: BTreeSet<String> = v["other_length"]
            .as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .iter()
            .map(|m| m["path"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(listed, noted, "--content {content}: {v}");
        assert!(v["mismatches"].as_array().unwrap().is_empty(), "{v}");
    }
    let said = text(
        &bin()
            .arg("verify")
            .arg(&dump.root)
            .arg(&dest)
            .output()
            .unwrap(),
    );
    assert!(
        said.contains("(3 of them an object of another length than the database says"),
        "{said}"
    );
}

/// A file restored from an object shorter than the database says (a failing disk's
/// partial read) is copied again once the object is whole (a later `ddrescue` pass), not
/// left as done with a note that is no longer true.
#[test]
fn a_file_restored_from_a_short_object_is_copied_again_once_the_object_is_whole() {
    let dump = Dump::new(50, 60, 1);
    let (id, (cid, size)) = dump
        .content_ids()
        .into_iter()
        .find(|(_, (cid, size))| {
            *size > 2000 && cid.as_deref().and_then(|c| dump.object(c)).is_some()
        })
        .unwrap();
    let object = dump.object(cid.as_deref().unwrap()).unwrap();
    let whole = std::fs::read(&object).unwrap();
    std::fs::write(&object, &whole[..1000]).unwrap();
    let dest = dump.path("out");
    let (out, first) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let path = first["notes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == id.as_str())
        .map(|n| n["path"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("noted: {}", first["notes"]));
    assert_eq!(std::fs::metadata(dest.join(&path)).unwrap().len(), 1000);

    // Still short: done, the note repeated.
    let (_, again) = restore(&dump, &dest, &[], &[]);
    assert_eq!(again["outcomes"]["copied"], 0);

    std::fs::write(&object, &whole).unwrap();
    // Round 12 review: a dry run says so too (it said the file was already done).
    let (out, _) = restore(&dump, &dest, &["--dry-run"], &[]);
    let said = text(&out);
    assert_eq!(summary_count(&said, "would copy"), 1, "{said}");
    let (out, third) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(third["outcomes"]["copied"], 1, "{}", text(&out));
    assert_eq!(
        std::fs::metadata(dest.join(&path)).unwrap().len(),
        size as u64
    );
    let note = third["notes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{}", third["notes"]));
    assert!(
        note["reason"].as_str().unwrap().contains("copied again"),
        "{note}"
    );
    assert_restored_exactly(&dump, &dest);
    // Once, not again; what is said of it afterwards is true.
    let (_, fourth) = restore(&dump, &dest, &[], &[]);
    assert_eq!(fourth["outcomes"]["copied"], 0);
    for n in fourth["notes"].as_array().unwrap() {
        if n["id"] == id.as_str() {
            assert!(
                n["reason"].as_str().unwrap().contains("copied again"),
                "{n}"
            );
        }
    }
}

/// A 128 MiB exFAT image on a loop device, detached when dropped; [`ExfatImage::mount`]
/// mounts it through `exfat-fuse` (the kernel here has no exfat). `None` (the test
/// skipped) without `mkfs.exfat` or `losetup`, unless `MCR_TEST_FUSE=require`.
struct ExfatImage(String);

impl ExfatImage {
    fn make(dump: &Dump) -> Option<ExfatImage> {
        let required = std::env::var("MCR_TEST_FUSE").as_deref() == Ok("require");
        let image = dump.path("exfat.img");
        std::fs::File::create(&image)
            .unwrap()
            .set_len(128 << 20)
            .unwrap();
        let made = std::process::Command::new("mkfs.exfat")
            .arg(&image)
            .output();
        let loopdev = std::process::Command::new("losetup")
            .args(["-f", "--show"])
            .arg(&image)
            .output();
        let (Ok(made), Ok(loopdev)) = (made, loopdev) else {
            assert!(!required, "mkfs.exfat or losetup missing");
            eprintln!("skipped: no mkfs.exfat or losetup");
            return None;
        };
        if !made.status.success() || !loopdev.status.success() {
            assert!(!required, "{made:?} {loopdev:?}");
            eprintln!("skipped: {made:?} {loopdev:?}");
            return None;
        }
        Some(ExfatImage(
            String::from_utf8_lossy(&loopdev.stdout).trim().to_string(),
        ))
    }

    fn mount(&self, at: &Path) -> Option<FuseMount> {
        std::fs::create_dir_all(at).unwrap();
        FuseMount::with("mount.exfat-fuse", &[self.0.as_ref()], at)
    }
}

impl Drop for ExfatImage {
    fn drop(&mut self) {
        let _ = std::process::Command::new("losetup")
            .args(["-d", &self.0])
            .status();
    }
}

/// Round 20: pre-flight's name tests now make every name first and list the folder once
/// (one listing after each name took 10 s of a 10 s `--budget` at 100 ms a round trip). On
/// exFAT, which refuses Windows' reserved characters and folds case, each refusal and the
/// folding are still seen, Windows rules advised, and nothing is left there.
#[test]
fn preflight_sees_what_names_an_exfat_destination_refuses_and_that_it_folds_case() {
    let dump = Dump::new(53, 100, 1);
    let Some(dev) = ExfatImage::make(&dump) else {
        return;
    };
    let mnt = dump.path("exfat");
    let Some(_mount) = dev.mount(&mnt) else {
        return;
    };
    let out = bin()
        .arg("preflight")
        .arg(&dump.root)
        .arg(mnt.join("restored"))
        .args(["--budget", "5", "--json"])
        .output()
        .unwrap();
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(0), "{msg}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names = &report["measurements"]["names"];
    assert_eq!(names["case_insensitive"], true, "{names}");
    let outcome = |what: &str| {
        names["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["what"] == what)
            .unwrap_or_else(|| panic!("no test of {what}: {names}"))["outcome"]["result"]
            .clone()
    };
    for reserved in ["|", ":", "?", "*", "<", ">", "\"", "\\"] {
        assert_eq!(outcome(reserved), "rejected", "{reserved}: {names}");
    }
    for fine in ["255-byte names", "non-ASCII names"] {
        assert_eq!(outcome(fine), "accepted", "{fine}: {names}");
    }
    assert_eq!(report["advice"]["names"], "windows", "{msg}");
    let left: Vec<_> = std::fs::read_dir(&mnt).unwrap().flatten().collect();
    assert!(left.is_empty(), "left on the destination: {left:?}");
}

/// Round 24 (found by an exploratory test): a full exFAT was said to be "out of inodes",
/// with advice to make "a filesystem with more inodes (mkfs.ext4 -N or -i)": exFAT has no
/// inodes, and `exfat-fuse` counts its free clusters as its free files, so both ran out at
/// once. The filesystem's file count is now taken for a limit of its own only where it is
/// not its free blocks under another name: the run stops as full, saying what to free.
#[test]
fn a_full_exfat_is_said_to_be_full_not_out_of_inodes_regression_round_24() {
    // More files left when it fills than it has free clusters.
    let dump = Dump::with(
        139,
        2000,
        1,
        mycloud_recover::demo::SizeMix::Small,
        mycloud_recover::demo::Content::Full,
    );
    let Some(dev) = ExfatImage::make(&dump) else {
        return;
    };
    let mnt = dump.path("exfat");
    let Some(_mount) = dev.mount(&mnt) else {
        return;
    };
    // All but about 2 MB taken: some of the dump's files fit, not all.
    let fs = rustix::fs::statvfs(&mnt).unwrap();
    let filler = (fs.f_bavail * fs.f_frsize).saturating_sub(2 << 20);
    let mut f = std::fs::File::create(mnt.join("filler")).unwrap();
    std::io::copy(&mut std::io::Read::take(std::io::repeat(0), filler), &mut f).unwrap();
    f.sync_all().unwrap();
    drop(f);
    let dest = mnt.join("restored");
    let (out, rep) = restore(&dump, &dest, &[], &[]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(rep["dest_full"].is_string(), "stopped as full: {msg}");
    assert!(
        msg.contains("Restore stopped: the destination is full")
            && msg.contains("free at least")
            && !msg.contains("inodes"),
        "{msg}"
    );
}

/// exFAT has no change time (Linux and exfat-fuse report the modification time, which the
/// restore sets years back), so after a crash a copy without its data there would pass for
/// a file older than the crash and be adopted: on such a destination every file the
/// checkpoint does not record is compared with its object.
#[test]
fn after_a_crash_on_exfat_every_unrecorded_file_is_compared() {
    let dump = Dump::new(51, 200, 1);
    let Some(dev) = ExfatImage::make(&dump) else {
        return;
    };
    let mnt = dump.path("exfat");
    let Some(mount) = dev.mount(&mnt) else {
        return;
    };
    let dest = mnt.join("restored");
    let (zeroed, zeroed_id) = crash_and_leave_a_copy_without_data(&dump, &dest);
    let ms = planned_files(&plan_json(&dump.root, &dest, &[]))[&zeroed]
        .2
        .unwrap();
    // A power cut means mounting again: then exFAT reports the date set as the change time.
    drop(mount);
    let Some(mount) = dev.mount(&mnt) else {
        return;
    };
    let ctime =
        std::os::unix::fs::MetadataExt::ctime(&std::fs::metadata(dest.join(&zeroed)).unwrap());
    assert!(
        ctime * 1000 < ms + 1000,
        "exFAT reports the date set as the change time (the case this guards against): {ctime} s, {ms} ms"
    );
    let (out, _) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        hash_file(&dest.join(&zeroed)),
        dump.expected_hash(&dump.content_ids()[&zeroed_id].0),
        "the copy without its data was compared and redone: {}",
        text(&out)
    );
    drop(mount);
    drop(dev);
}

/// A restore of the second top folder killed right after placing its first file, then a
/// copy without its data (what a power cut leaves: name, size, date, zeros) at a file of
/// the first: its path and id.
fn crash_and_leave_a_copy_without_data(dump: &Dump, dest: &Path) -> (String, String) {
    let by_top = files_by_top_folder(dump, dest);
    let tops: Vec<&String> = by_top.keys().collect();
    assert!(tops.len() >= 2, "two top folders with files: {tops:?}");
    let (out, _) = restore(
        dump,
        dest,
        &["--only", tops[1]],
        &[("MYCLOUD_RECOVER_FAULTS", "abort_after_renames=1")],
    );
    assert!(out.status.code().is_none(), "aborted: {}", text(&out));
    let (zeroed, zeroed_id, size, ms) = &by_top[tops[0]][0];
    write_without_data(&dest.join(zeroed), *size, *ms, 0);
    (zeroed.clone(), zeroed_id.clone())
}

/// `verify` by size and date cannot see a copy a power cut left without its data: while a
/// crash's doubt is open it says so and points to `--content`; once a run has looked at
/// every file, it does not.
#[test]
fn verify_says_when_only_bytes_can_tell_after_a_crash() {
    let dump = Dump::new(52, 120, 1);
    let dest = dump.path("restored");
    let xdg = dump.path("xdg");
    let run = |cmd: &str, faults: &str| {
        bin()
            .arg(cmd)
            .arg(&dump.root)
            .arg(&dest)
            .env("XDG_STATE_HOME", &xdg)
            .env("MYCLOUD_RECOVER_FAULTS", faults)
            .output()
            .unwrap()
    };
    let out = run("restore", "abort_after_renames=5");
    assert!(out.status.code().is_none(), "aborted: {}", text(&out));
    let said = text(&run("verify", ""));
    assert!(
        said.contains("did not end cleanly") && said.contains("--content"),
        "{said}"
    );
    let out = run("restore", "");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&run("verify", ""));
    assert!(!said.contains("did not end cleanly"), "{said}");
}

/// `--fresh` forgets what the checkpoint recorded, not that a crash may have left copies
/// without their data: they are compared, not adopted.
#[test]
fn fresh_after_a_crash_still_compares_what_the_crash_may_have_left() {
    let dump = Dump::new(40, 150, 1);
    let dest = dump.path("restored");
    let (zeroed, zeroed_id) = crash_and_leave_a_copy_without_data(&dump, &dest);
    let (out, _) = restore(&dump, &dest, &["--fresh"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        hash_file(&dest.join(&zeroed)),
        dump.expected_hash(&dump.content_ids()[&zeroed_id].0),
        "the copy without its data was redone"
    );
    assert_restored_exactly(&dump, &dest);
}

#[test]
fn sigterm_stops_cleanly_with_exit_130_and_the_next_run_finishes_with_every_folder_dated() {
    let dump = Dump::new(35, 150, 1);
    let dest = dump.path("restored");
    let state = dump.path("state");
    let child = spawn_restore(&dump, &dest, &state, &["--threads", "2"], "delay_ms=30");
    std::thread::sleep(std::time::Duration::from_millis(800));
    send_signal(&child, "TERM");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    let s = text(&out);
    assert!(
        s.contains("was interrupted") && s.contains("not processed yet"),
        "{s}"
    );
    // Counts made as files pass say they cover only the files handled.
    for line in s
        .lines()
        .filter(|l| l.contains("changed to suit the destination") || l.contains("a missing parent"))
    {
        assert!(
            line.contains("among the files handled before the stop"),
            "{s}"
        );
    }
    assert!(
        tree(&dest).keys().all(|p| !p.contains(".mcr-")),
        "in-flight files finished, no temp left"
    );
    let report = report_in(&state);
    assert_eq!(report["interrupted"], true);
    assert!(report["not_processed"].as_u64().unwrap() > 0);
    // `status` says the run was interrupted and how far it got.
    let st = bin()
        .arg("status")
        .arg("--state-dir")
        .arg(&state)
        .output()
        .unwrap();
    let said = text(&st);
    let selected = report["totals"]["selected_files"].as_u64().unwrap();
    assert!(
        said.contains("last run interrupted; run the same restore command again")
            && said.contains(&format!("of {selected} selected files")),
        "{said}"
    );
    // A run over part of the selection dates only its part: the rest stays owed.
    let plan = plan_json(&dump.root, &dest, &[]);
    let top = planned_files(&plan)
        .keys()
        .find_map(|p| p.split_once('/').map(|(t, _)| t.to_string()))
        .unwrap();
    let (out, _) = restore(&dump, &dest, &["--only", &top], &[]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    let (out, rep) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(rep["outcomes"]["already_done"].as_u64().unwrap() > 0);
    assert_restored_exactly(&dump, &dest);
    // Also the folders the interrupted run wrote in and this one did not.
    assert_folder_dates(&dump, &dest);
}

/// SIGHUP (the terminal closed) stops a restore like Ctrl-C, unless the restore was started
/// with SIGHUP ignored, as `nohup` does (the README's advice for long restores): then the
/// run carries on to the end.
#[test]
fn sighup_stops_a_restore_but_not_one_started_under_nohup() {
    let dump = Dump::new(38, 150, 1);
    for nohup in [false, true] {
        let dest = dump.path(&format!("restored-{nohup}"));
        let state = dump.path(&format!("state-{nohup}"));
        let bin = assert_cmd::cargo::cargo_bin("mycloud-recover");
        // Without nohup, SIGHUP as a terminal leaves it (the default), even when the tests
        // themselves run with it ignored (under nohup: the child would inherit that).
        let mut cmd = std::process::Command::new(if nohup { "nohup" } else { "env" });
        if !nohup {
            cmd.arg("--default-signal=HUP");
        }
        cmd.arg(bin);
        let child = cmd
            .arg("restore")
            .arg(&dump.root)
            .arg(&dest)
            .arg("--state-dir")
            .arg(&state)
            .args(["--threads", "2"])
            .env("MYCLOUD_RECOVER_FAULTS", "delay_ms=20")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(800));
        send_signal(&child, "HUP");
        let out = child.wait_with_output().unwrap();
        let want = if nohup { 1 } else { 130 }; // 1: the dump's missing objects
        assert_eq!(
            out.status.code(),
            Some(want),
            "nohup {nohup}: {}",
            text(&out)
        );
        if nohup {
            assert_restored_exactly(&dump, &dest);
        }
    }
}

/// Waits (at most 30 s) until `lock`, a state folder's lock file, exists: the restore
/// started has begun planning.
fn wait_for_lock(lock: &Path) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !lock.exists() {
        assert!(
            std::time::Instant::now() < until,
            "the restore did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `restore` of `dump` into `dest` with `threads` workers, run under an address-space limit
/// of `kb` KiB (`ulimit -v`, as some NAS shells set).
fn restore_under_address_limit(
    kb: u64,
    dump: &Dump,
    dest: &Path,
    state: &Path,
    threads: usize,
) -> std::process::Output {
    std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(r#"ulimit -v {kb} && exec "$@""#))
        .arg("bash")
        .arg(assert_cmd::cargo::cargo_bin("mycloud-recover"))
        .arg("restore")
        .arg(&dump.root)
        .arg(dest)
        .arg("--state-dir")
        .arg(state)
        .args(["--threads", &threads.to_string()])
        .output()
        .unwrap()
}

/// Sends `signal` (`TERM`, `INT`, `HUP`) to `child`, as a user's `kill` or Ctrl-C would.
fn send_signal(child: &std::process::Child, signal: &str) {
    let sent = std::process::Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{signal}");
}

/// Waits for `child` at most `secs` seconds (killing it after that); its exit code.
fn wait_at_most(child: &mut std::process::Child, secs: f64) -> Option<i32> {
    let until = std::time::Instant::now() + std::time::Duration::from_secs_f64(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if std::time::Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {secs} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Round 12: an output that is gone (`restore ... 2>&1 | tee log`, whose `tee` the same
/// Ctrl-C ends; `| head`) panicked the signal thread at its first message, so a second
/// Ctrl-C did nothing, and `print!` of the summary panicked: exit 101 for a run interrupted
/// (130) or finished (1 here). The run's end no longer depends on its output.
/// Round 20: `demo` too (`demo --seed 2 --force | head -1` panicked after its dump, exit
/// 101, the restore not run): it writes its lines as `restore` writes its summary.
#[test]
fn a_closed_output_changes_neither_the_exit_code_nor_the_second_ctrl_c() {
    let dump = Dump::new(81, 150, 1);
    let dest = dump.path("restored");
    let state = dump.path("state");
    let mut child = spawn_restore(&dump, &dest, &state, &["--threads", "2"], "delay_ms=8000");
    drop(child.stdout.take());
    drop(child.stderr.take());
    // Planning takes well under a second here: the workers are in their first files.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    send_signal(&child, "TERM");
    std::thread::sleep(std::time::Duration::from_millis(300));
    send_signal(&child, "TERM");
    // The files in flight take 8 s: only the second signal ends the run before that.
    assert_eq!(wait_at_most(&mut child, 2.5), Some(130));
    // Run to the end with its output gone: its own exit code (the dump's missing objects).
    let mut child = spawn_restore(&dump, &dest, &state, &["--threads", "2"], "");
    drop(child.stdout.take());
    drop(child.stderr.take());
    assert_eq!(wait_at_most(&mut child, 60.0), Some(1));
    assert_restored_exactly(&dump, &dest);

    // A demo replacing another (`--force`) with its output gone: the same dump, restored
    // whole, the restore's exit code, no panic.
    let dir = dump.path("demo");
    let demo = |args: &[&str]| {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("mycloud-recover"));
        c.arg("demo").arg(&dir).args(args);
        c
    };
    let out = demo(&["--files", "20"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let mut child = demo(&["--seed", "81", "--files", "150", "--force"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(file_hashes(&dir.join("restored")), file_hashes(&dest));
}

/// Found by an exploratory tester: a broken pipe on stdout was mapped to exit 0 for every
/// command, so `verify ... | head` of a restore with files missing or differing exited 0,
/// as did `preflight ... | head` of a restore that does not fit (alone: exit 1, "DOES NOT
/// FIT"), hiding the failure from a script. Each keeps its verdict whether or not the
/// reader went away; `plan`, whose verdict is "ok", still exits 0.
#[test]
fn verify_and_preflight_keep_their_exit_code_when_their_output_pipe_closes_early() {
    let dump = Dump::new(83, 150, 1);
    let dest = dump.path("restored");
    let state = dump.path("state");
    let (out, _) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // A restored file removed: it differs (absent), besides the demo's missing objects.
    let gone = tree(&dest)
        .into_iter()
        .find(|(_, (dir, size, _))| !dir && *size > 0)
        .map(|(p, _)| dest.join(p))
        .unwrap();
    std::fs::remove_file(&gone).unwrap();
    let command = |args: &[&str]| {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("mycloud-recover"));
        c.args(args)
            .arg(&dump.root)
            .arg(&dest)
            .arg("--state-dir")
            .arg(&state)
            .env_remove("MYCLOUD_RECOVER_FAULTS");
        c
    };
    for (args, code) in [
        (&["verify"][..], 1),
        (&["verify", "--json"][..], 1),
        (&["plan"][..], 0),
        (&["plan", "--json"][..], 0),
    ] {
        let read = command(args).output().unwrap();
        assert_eq!(read.status.code(), Some(code), "{args:?}: {}", text(&read));
        let gone = output_with_stdout_gone(&command(args));
        let err = String::from_utf8_lossy(&gone.stderr);
        assert_eq!(
            gone.status.code(),
            Some(code),
            "{args:?} with its output pipe closed early: {err}"
        );
        assert!(
            !err.contains("error") && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
    // A destination too small for the files: blocking (exit 1), read or not.
    let Some(small) = SmallDisk::mount(&dump, "2m") else {
        return;
    };
    let mut preflight = std::process::Command::new(assert_cmd::cargo::cargo_bin("mycloud-recover"));
    preflight
        .arg("preflight")
        .arg(&dump.root)
        .arg(small.path.join("restored"))
        .args(["--budget", "5"])
        .env_remove("MYCLOUD_RECOVER_FAULTS");
    let read = preflight.output().unwrap();
    assert_eq!(read.status.code(), Some(1), "{}", text(&read));
    assert!(text(&read).contains("DOES NOT FIT"), "{}", text(&read));
    let gone = output_with_stdout_gone(&preflight);
    assert_eq!(
        gone.status.code(),
        Some(1),
        "preflight with its output pipe closed early: {}",
        String::from_utf8_lossy(&gone.stderr)
    );
}

/// Round 12: a panic (a bug) met on one file killed its worker's thread; the files of its
/// chunk went unreported and the run ended with exit 101 after copying the rest, leaving
/// the file's temporary name on a network destination. The file now fails, listed with
/// the panic's message, the run goes on, and the next run restores it.
#[test]
fn a_panic_on_one_file_fails_that_file_and_the_run_goes_on() {
    let dump = Dump::new(82, 150, 1);
    let dest = dump.path("restored");
    let cids = dump.content_ids();
    let cid = cids
        .iter()
        .filter(|(id, _)| !dump.manifest.missing_object_ids.contains(id))
        .find_map(|(_, (c, size))| c.clone().filter(|_| *size > 0))
        .unwrap();
    let fault = format!("panic={cid};named_temps=1");
    let (out, report) = restore(
        &dump,
        &dest,
        &[],
        &[("MYCLOUD_RECOVER_FAULTS", &fault), ("RUST_BACKTRACE", "0")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(report["outcomes"]["failed"], 1, "{}", text(&out));
    assert_eq!(
        outcome_sum(&report),
        report["totals"]["files"].as_u64().unwrap()
    );
    let failed = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["outcome"] == "failed")
        .unwrap();
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .contains("internal error"),
        "{failed}"
    );
    assert!(
        tree(&dest).keys().all(|p| !p.contains(".mcr-")),
        "the temporary file of the file that panicked is removed"
    );
    let (out, report) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(report["outcomes"]["copied"], 1, "{}", text(&out));
    assert_restored_exactly(&dump, &dest);
}

/// Round 12: a panic on one of the pipeline's own threads ended the run with exit 2 ("the
/// checkpoint writer panicked": exit 2 says nothing was changed) or 101 with only "a
/// scoped thread panicked", depending on the thread. Each now ends it with exit 101, a
/// message that says what it is and what to do, and a checkpoint the next run finishes
/// from (folder dates included).
#[test]
fn a_panic_in_a_pipeline_thread_exits_101_and_the_next_run_finishes() {
    let dump = Dump::new(83, 150, 1);
    // A copy worker's own loop too (a panic copying one file fails that file only): the
    // scope's "a scoped thread panicked" was recorded, not its message (round 14).
    for thread in [
        "committer",
        "planner",
        "count",
        "bookkeeper",
        "folders",
        "worker",
    ] {
        let dest = dump.path(&format!("restored-{thread}"));
        let state = dump.path(&format!("state-{thread}"));
        let state_arg = state.to_str().unwrap();
        let fault = format!("panic_in={thread}");
        let (out, report) = restore(
            &dump,
            &dest,
            &["--state-dir", state_arg],
            &[("MYCLOUD_RECOVER_FAULTS", &fault), ("RUST_BACKTRACE", "0")],
        );
        let said = text(&out);
        assert_eq!(out.status.code(), Some(101), "{thread}: {said}");
        assert!(
            said.contains("internal error") && said.contains("run the same command again"),
            "{thread}: {said}"
        );
        // Round 13: the report and `status` say so (they kept the last periodic report and
        // "did not finish (killed or still starting)").
        assert_eq!(report["complete"], false, "{thread}");
        let error = report["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("a bug") && error.contains(thread),
            "{thread}: {report}"
        );
        let status = bin()
            .args(["status", "--state-dir", state_arg])
            .output()
            .unwrap();
        let state_said = text(&status);
        assert!(
            state_said.contains("stopped by an internal error")
                && state_said.contains("report that bug"),
            "{thread}: {state_said}"
        );
        let (out, report) = restore(&dump, &dest, &["--state-dir", state_arg], &[]);
        assert_eq!(out.status.code(), Some(1), "{thread}: {}", text(&out));
        assert_eq!(report["outcomes"]["failed"], 0, "{thread}: {}", text(&out));
        assert_restored_exactly(&dump, &dest);
        let plan = plan_json(&dump.root, &dest, &["--state-dir", state_arg]);
        for f in of_type(&plan, "folder") {
            if let (Some(path), Some(ms)) = (f["path"].as_str(), f["mtime_ms"].as_i64()) {
                assert_eq!(mtime_ms(&dest.join(path)), ms, "{thread}: {path}");
            }
        }
    }
}

/// Round 12: under an address-space limit (`ulimit -v`, as some NAS shells set) a restore
/// needing about 15 MB of memory aborted ("memory allocation of 1 bytes failed", exit 134)
/// when its threads took arenas of their own: glibc's reserve 64 MB of address space each.
/// With 16 workers under 80 MB round 12's code before the fix aborted in 4 runs of 4 here;
/// arenas are made under contention, so the test restores twice. The limit is 84 MB since
/// round 23: the debug build grew (12.2 to 12.7 MB mapped), and the restore's own count
/// (`check_address_space`, which keeps 8 MB for the heap) left room for 15 workers under
/// 80 MB. Without the fix it still fails under 84 MB (a second arena: 44.7 MB in use).
#[test]
fn a_restore_under_an_address_space_limit_runs() {
    // Enough files for the workers to allocate beside each other.
    let dump = Dump::with(
        86,
        4000,
        1,
        mycloud_recover::demo::SizeMix::Small,
        mycloud_recover::demo::Content::Full,
    );
    for run in ["a", "b"] {
        let dest = dump.path(&format!("restored-{run}"));
        let state = dump.path(&format!("state-{run}"));
        let out = restore_under_address_limit(84_000, &dump, &dest, &state, 16);
        assert_eq!(
            out.status.code(),
            Some(1),
            "missing objects only: {}",
            text(&out)
        );
        assert_restored_exactly(&dump, &dest);
    }
}

/// Round 12: a limit leaving no room for the threads asked for (`--threads 64` under
/// `ulimit -v` of 100 MB: 2 MB of stack each) panicked at the thread's start and was
/// reported as a bug in mycloud-recover (exit 101). It names the limit now (exit 2).
/// Round 15: it still aborted (SIGABRT, no message) in about 1 run of 4, when a thread
/// that had started could not get its signal stack; the stacks are counted against the
/// limit before any worker starts now.
#[test]
fn a_thread_the_system_will_not_start_is_reported_as_its_limit() {
    // Enough files to keep every worker busy (on a few the first ones end before the last
    // start).
    let dump = Dump::with(
        87,
        4000,
        1,
        mycloud_recover::demo::SizeMix::Small,
        mycloud_recover::demo::Content::Full,
    );
    let (dest, state) = (dump.path("restored"), dump.path("state"));
    let out = restore_under_address_limit(100_000, &dump, &dest, &state, 64);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("ulimit -v") && !said.contains("bug in mycloud-recover"),
        "{said}"
    );
}

/// Round 12: a run ended by an error after copying began (here the state folder's disk
/// fills up) left the report as its last periodic one, with no reason for the stop, and
/// `status` said "did not finish (killed or still starting)". The report (kept elsewhere
/// with `--report`) and `status` now say why; with room made, the same command finishes.
#[test]
fn a_run_ended_by_an_error_says_why_in_its_report() {
    let dump = Dump::with(
        88,
        3000,
        1,
        mycloud_recover::demo::SizeMix::Small,
        mycloud_recover::demo::Content::Tiny,
    );
    let Some(small) = SmallDisk::mount_with(&dump, "size=300k") else {
        return;
    };
    let dest = dump.path("restored");
    let report_path = dump.path("report.json");
    let state = small.path.join("state");
    let args = [
        "--state-dir".as_ref(),
        state.as_os_str(),
        "--report".as_ref(),
        report_path.as_os_str(),
    ];
    let run = || {
        bin()
            .arg("restore")
            .arg(&dump.root)
            .arg(&dest)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(report["complete"], false, "{report}");
    assert!(
        report["error"].as_str().is_some_and(|e| e.contains("full")),
        "{report}"
    );
    let st = bin()
        .arg("status")
        .arg("--state-dir")
        .arg(&state)
        .output()
        .unwrap();
    // The failed commit rolled back, so the state disk takes the note of how the run ended.
    assert!(
        text(&st).contains("last run stopped by an error")
            && text(&st).contains("Deal with that error"),
        "{}",
        text(&st)
    );
    assert!(small.remount("size=64m"));
    let out = run();
    assert_eq!(
        out.status.code(),
        Some(1),
        "missing objects only: {}",
        text(&out)
    );
    assert_restored_exactly(&dump, &dest);
}

/// Round 12: Ctrl-C while a restore planned (seconds on a real device's 1.7M rows) was
/// acted on only after the plan: the run went on to open its checkpoint, make DEST, count
/// and stream every row before it stopped. It now stops right after the plan, with exit
/// 130, having made neither, and the same command then restores.
#[test]
fn a_signal_while_planning_stops_before_anything_is_made() {
    let dump = Dump::new(85, 120, 1);
    let dest = dump.path("restored");
    let state = dump.path("state");
    let mut child = spawn_restore(&dump, &dest, &state, &[], "plan_delay_ms=1500");
    wait_for_lock(&state.join("lock"));
    std::thread::sleep(std::time::Duration::from_millis(300));
    send_signal(&child, "INT");
    assert_eq!(wait_at_most(&mut child, 10.0), Some(130));
    let said = text(&child.wait_with_output().unwrap());
    assert!(said.contains("interrupted while planning"), "{said}");
    assert!(!dest.exists(), "DEST was made: {said}");
    assert!(!state.join("checkpoint.db").exists(), "{said}");
    the_same_command_finishes(&dump, &dest, &[], &[]);
}

/// Review of round 19: a second Ctrl-C exits at once, and a first restore stopped so while
/// it planned left its state folder (and the folders above it that it made) holding only
/// `lock`, which `status` then finds: the lock's drop, which removes them, did not run. The
/// second signal now removes them before the exit. Once the checkpoint is open, a second
/// Ctrl-C leaves the state folder as it is, and the same command finishes.
#[test]
fn a_second_ctrl_c_while_planning_leaves_no_state_folder_regression_round_19() {
    let dump = Dump::new(86, 120, 1);
    let dest = dump.path("restored");
    let states = dump.path("states");
    let state = states.join("first/state");
    // The plan takes 5 s: only the second signal ends the run before that.
    let mut child = spawn_restore(&dump, &dest, &state, &[], "plan_delay_ms=5000");
    wait_for_lock(&state.join("lock"));
    std::thread::sleep(std::time::Duration::from_millis(300));
    send_signal(&child, "INT");
    std::thread::sleep(std::time::Duration::from_millis(300));
    send_signal(&child, "INT");
    assert_eq!(wait_at_most(&mut child, 2.5), Some(130));
    let said = text(&child.wait_with_output().unwrap());
    assert!(
        !states.exists(),
        "left {:?}: {said}",
        tree(&states).into_keys()
    );
    assert!(!dest.exists(), "{said}");
    // After the checkpoint was opened: the state folder stays.
    let mut child = spawn_restore(&dump, &dest, &state, &["--threads", "2"], "delay_ms=8000");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !state.join("checkpoint.db").exists() {
        assert!(std::time::Instant::now() < until, "no checkpoint opened");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    send_signal(&child, "INT");
    std::thread::sleep(std::time::Duration::from_millis(300));
    send_signal(&child, "INT");
    assert_eq!(wait_at_most(&mut child, 2.5), Some(130));
    let said = text(&child.wait_with_output().unwrap());
    assert!(
        state.join("checkpoint.db").is_file() && state.join("lock").is_file(),
        "{said}"
    );
    the_same_command_finishes(&dump, &dest, &["--state-dir", state.to_str().unwrap()], &[]);
}

/// Round 12: the folder phase after the last file (on a network destination one round
/// trip per folder: minutes for a real device's folders) went on to the end after Ctrl-C,
/// which then reported "finished" (exit 0 or 1). It now stops, says so, exits 130, and the
/// next run sets the dates still owed.
#[test]
fn a_signal_while_folders_are_dated_stops_them_and_the_next_run_sets_them() {
    let dump = Dump::new(84, 150, 1);
    let dest = dump.path("restored");
    let state = dump.path("state");
    let plan = plan_json(&dump.root, &dest, &[]);
    let folders: Vec<(String, i64)> = of_type(&plan, "folder")
        .into_iter()
        .filter_map(|f| Some((f["path"].as_str()?.to_string(), f["mtime_ms"].as_i64()?)))
        .collect();
    assert!(folders.len() >= 20, "{}", folders.len());
    let dated = || {
        folders
            .iter()
            .filter(|(p, ms)| {
                std::fs::metadata(dest.join(p))
                    .ok()
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .is_some_and(|d| d.as_millis() as i64 == *ms)
            })
            .count()
    };
    let mut child = spawn_restore(
        &dump,
        &dest,
        &state,
        &["--threads", "2"],
        "folder_delay_ms=200",
    );
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while dated() == 0 {
        assert!(std::time::Instant::now() < until, "no folder dated");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    send_signal(&child, "TERM");
    // The whole phase takes folders x 200 ms / 2 threads: a stop takes one folder's time.
    assert_eq!(wait_at_most(&mut child, 2.0), Some(130));
    let out = child.wait_with_output().unwrap();
    let said = text(&out);
    assert!(said.contains("setting the folders' dates"), "{said}");
    assert!(dated() < folders.len(), "the phase was cut short");
    let report = report_in(&state);
    assert_eq!(report["interrupted"], true);
    let st = bin()
        .arg("status")
        .arg("--state-dir")
        .arg(&state)
        .output()
        .unwrap();
    assert!(text(&st).contains("last run interrupted"), "{}", text(&st));
    let (out, report) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(report["outcomes"]["copied"], 0, "{}", text(&out));
    assert_eq!(dated(), folders.len(), "the next run dated every folder");
}

#[test]
fn resume_with_nothing_to_do_never_opens_the_object_store() {
    let dump = Dump::new(36, 150, 1);
    let dest = dump.path("restored");
    let (_, first) = restore(&dump, &dest, &[], &[]);
    // Point the second run at an empty object folder: if it read any object for a file
    // already done, that file would turn into "missing".
    let empty = dump.path("no-objects");
    std::fs::create_dir_all(&empty).unwrap();
    let (out, second) = restore(&dump, &dest, &["--files", empty.to_str().unwrap()], &[]);
    assert_eq!(
        second["outcomes"]["already_done"],
        first["outcomes"]["copied"],
        "{}",
        text(&out)
    );
    assert_eq!(second["outcomes"]["missing"], first["outcomes"]["missing"]);
    assert_eq!(second["outcomes"]["copied"], 0);
}

#[test]
fn a_stalled_object_read_is_retried_and_succeeds() {
    let dump = Dump::new(37, 40, 1);
    let dest = dump.path("restored");
    let cids = dump.content_ids();
    let (_, (cid, _)) = cids
        .iter()
        .find(|(id, (c, _))| c.is_some() && !dump.manifest.missing_object_ids.contains(id))
        .unwrap();
    let fault = format!("flaky={}", cid.clone().unwrap());
    let (out, report) = restore(&dump, &dest, &[], &[("MYCLOUD_RECOVER_FAULTS", &fault)]);
    assert_eq!(report["outcomes"]["failed"], 0, "{}", text(&out));
    assert_restored_exactly(&dump, &dest);
}

/// Pre-flight through the real binary: the report's sections in order (numbers redacted,
/// since they are measurements), a JSON twin with a sane estimate, nothing left on DEST and
/// nothing written to the source.
#[test]
fn preflight_reports_advises_and_leaves_no_trace() {
    let dump = Dump::new(38, 300, 1);
    let before = SourceSnapshot::take(&dump);
    let dest = dump.path("restored");
    let out = bin()
        .arg("preflight")
        .arg(&dump.root)
        .arg(&dest)
        .args(["--budget", "5"])
        .output()
        .unwrap();
    let s = text(&out);
    assert_eq!(out.status.code(), Some(0), "{s}");
    let headings: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.is_empty())
        .map(mycloud_recover::preflight::redact_numbers)
        .map(|l| l.split([' ', ':']).next().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        headings,
        [
            "Pre-flight",
            "Machine",
            "Source",
            "Destination",
            "The",
            "Benchmarks",
            "Recommendation",
            "Estimated",
            "Pre-flight"
        ],
        "{s}"
    );
    assert!(
        s.contains("mycloud-recover restore"),
        "a ready command: {s}"
    );
    assert!(
        !dest.exists(),
        "pre-flight created DEST and must remove it again"
    );
    assert_eq!(SourceSnapshot::take(&dump), before, "source changed");

    let out = bin()
        .arg("preflight")
        .arg(&dump.root)
        .arg(&dest)
        .args(["--budget", "5", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let planned = plan_json(&dump.root, &dest, &[]);
    assert_eq!(
        v["work"]["files"].as_u64().unwrap(),
        of_type(&planned, "file")
            .iter()
            .filter(|f| f["skip"].is_null())
            .count() as u64,
        "pre-flight counts the same files the plan restores"
    );
    let threads = v["advice"]["threads"].as_u64().unwrap();
    assert!((1..=64).contains(&threads), "{threads}");
    let e = &v["estimate"];
    assert!(
        e["best_s"].as_f64().unwrap() <= e["worst_s"].as_f64().unwrap(),
        "{e}"
    );
    assert!(!v["measurements"]["scaling"].as_array().unwrap().is_empty());
    assert!(!dest.exists());
    assert_eq!(SourceSnapshot::take(&dump), before, "source changed");
}

/// Round 16: pre-flight promises to finish within about `--budget` seconds, but over a
/// share with slow round trips (sshfs, +10 ms) it took 53 s of a 40 s budget: each step of
/// the per-file benchmark got its share of the budget for its timed part alone, while
/// making its 64 worker folders (one after the other, each queued on their folder's lock)
/// and removing its files afterwards took seconds more, at every step. Now each step
/// counts its setup and cleanup, the worker folders are made in parallel groups, and a
/// step that cannot fit in what is left is not started: `--budget 10` over sshfs with
/// 10 ms each way (20 ms a round trip) ends within 60% of it (it took 27 s before; the
/// margin is for CI's tests running beside it on two cores), having measured the per-file
/// cost, and leaves nothing on the share.
#[test]
fn preflight_keeps_its_budget_over_a_slow_share_regression_round_19() {
    let dump = Dump::new(16, 300, 1);
    let (backing, share) = (dump.path("served"), dump.path("share"));
    std::fs::create_dir_all(&backing).unwrap();
    let Some(_mounted) = slow_sftp_mount(&backing, &share, &dump.path(""), 10) else {
        return;
    };
    let budget = 10.0;
    let started = std::time::Instant::now();
    let out = bin()
        .arg("preflight")
        .arg(&dump.root)
        .arg(share.join("restored"))
        .args(["--budget", "10", "--json"])
        .output()
        .unwrap();
    let took = started.elapsed().as_secs_f64();
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(0), "{msg}");
    assert!(
        took <= budget * 1.6,
        "pre-flight took {took:.1} s with --budget 10 over a share with 20 ms round trips\n{msg}"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let scaling = report["measurements"]["scaling"].as_array().unwrap();
    assert!(!scaling.is_empty(), "no per-file measurement: {msg}");
    assert_eq!(report["measurements"]["dest"]["network"], true, "{msg}");
    let left: Vec<_> = std::fs::read_dir(&backing).unwrap().flatten().collect();
    assert!(left.is_empty(), "left on the share: {left:?}");
}

/// Round 21: `preflight --budget 10` took 11.4 s over a share with 100 ms round trips
/// (sshfs behind `bench/delayproxy.py --exec 50`), and `--budget 5` 11.8 s: the name tests
/// (14 names made, listed and removed: 6.8 s) and the write benchmark (each round's create,
/// flushes and removal) had no deadline of their own. Now each ends by its share of the
/// budget, and what did not fit is reported as such: names not tried are "not tested: out
/// of time" (never accepted or refused), a write stopped early is "cut short". Here
/// `--budget 5` must end within 5 s + 3 s (the margin is for CI's tests beside it on two
/// cores), say what it left out, and leave nothing on the share.
#[test]
fn preflight_holds_a_small_budget_over_a_share_with_100_ms_round_trips_regression_round_21() {
    let Some((report, msg)) = preflight_over_a_slow_share(21, 5) else {
        return;
    };
    let m = &report["measurements"];
    assert_eq!(m["dest"]["network"], true, "{msg}");
    let out_of_time: Vec<&str> = m["out_of_time"]
        .as_array()
        .unwrap_or_else(|| panic!("no out_of_time list: {msg}"))
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    // 14 names at about 0.4 s each do not fit in 5 s with everything else at this latency.
    let checks = m["names"]["checks"].as_array().unwrap();
    let untested: Vec<&serde_json::Value> = checks
        .iter()
        .filter(|c| c["outcome"]["result"] == "not_tested")
        .collect();
    assert!(!untested.is_empty(), "every name tested in 5 s? {msg}");
    assert!(
        untested
            .iter()
            .all(|c| c["outcome"]["reason"] == "out of time"),
        "{msg}"
    );
    assert!(
        out_of_time
            .iter()
            .any(|x| x.starts_with("name tests: not tested (out of time)")),
        "{out_of_time:?}"
    );
    if m["write"]["cut_short"] == true || m["write"].is_null() {
        assert!(
            out_of_time
                .iter()
                .any(|x| x.starts_with("destination write benchmark")),
            "{out_of_time:?}"
        );
    }
    assert!(
        report["advice"]["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("not tested")),
        "the advice says the names were not all tested: {msg}"
    );
}

/// Round 21's list: at `--budget 10` over a share with 100 ms round trips pre-flight ended
/// in 8.5 s without measuring the destination's write: its share (a fifth of what the
/// name tests left, 0.9 s) was less than one round needs there (its file made, a chunk
/// written and flushed, the file closed and removed: about 1.1 s), so it measured nothing,
/// and 1.5 s of the budget went unused. The write, what the estimate needs most (its
/// bandwidth), now gets what one round needs where that is more than its share and there
/// is time for it, before the per-file steps take what is left. Here it is measured, and
/// the whole ends within 10 s + 3 s (the margin is for CI's tests beside it on two cores),
/// leaving nothing on the share.
#[test]
fn preflight_measures_the_write_at_budget_10_over_a_share_with_100_ms_round_trips() {
    let Some((report, msg)) = preflight_over_a_slow_share(22, 10) else {
        return;
    };
    let m = &report["measurements"];
    assert_eq!(m["dest"]["network"], true, "{msg}");
    let rounds = m["write"]["rounds"].as_array();
    assert!(
        rounds.is_some_and(|r| !r.is_empty() && r.iter().all(|r| r["bytes"].as_u64() > Some(0))),
        "the write benchmark measured nothing: {}\n{msg}",
        m["out_of_time"]
    );
}

/// `preflight --json` of a 300-file dump (`seed`) into a share with 100 ms round trips
/// (sshfs behind `bench/delayproxy.py --exec 50`) with `--budget budget`: it must pass
/// (exit 0), end within the budget + 3 s (the margin is for CI's tests beside it on two
/// cores) and leave nothing on the share. Its report and what it said; None where FUSE
/// cannot be used.
fn preflight_over_a_slow_share(seed: u64, budget: u64) -> Option<(serde_json::Value, String)> {
    let dump = Dump::new(seed, 300, 1);
    let (backing, share) = (dump.path("served"), dump.path("share"));
    std::fs::create_dir_all(&backing).unwrap();
    let _mounted = slow_sftp_mount(&backing, &share, &dump.path(""), 50)?;
    let started = std::time::Instant::now();
    let out = bin()
        .arg("preflight")
        .arg(&dump.root)
        .arg(share.join("restored"))
        .args(["--budget", &budget.to_string(), "--json"])
        .output()
        .unwrap();
    let took = started.elapsed().as_secs_f64();
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(0), "{msg}");
    assert!(
        took <= budget as f64 + 3.0,
        "pre-flight took {took:.1} s with --budget {budget} over a share with 100 ms round trips\n{msg}"
    );
    let left: Vec<_> = std::fs::read_dir(&backing).unwrap().flatten().collect();
    assert!(left.is_empty(), "left on the share: {left:?}");
    Some((serde_json::from_slice(&out.stdout).unwrap(), msg))
}

/// Round 21's list: the checks before the name tests (where DEST is, its filesystem and
/// free space) had no deadline of their own but 30 s and 20 s: over a share whose server
/// hung, `--budget 5` gave up only after 30 s, with an error and no report. They now end
/// by the budget too: the share not answering by then is a problem that stops the
/// restore, "did not answer" (exit 1), in the report printed within 5 s + 3 s. The share's
/// `sftp-server` is stopped (SIGSTOP) before pre-flight starts. The process itself may
/// stay until the server answers again (a call left in the kernel), so its report is read
/// from a file. Needs FUSE and `sshfs` with `sftp-server`.
#[test]
fn preflight_ends_within_its_budget_when_the_destination_does_not_answer_its_first_checks() {
    let dump = Dump::new(23, 100, 1);
    let (backing, share) = (dump.path("served"), dump.path("share"));
    std::fs::create_dir_all(&backing).unwrap();
    let Some(_mounted) = sftp_mount(&backing, &share, &dump.path("")) else {
        return;
    };
    let dest = share.join("restored");
    let report = dump.path("preflight.txt");
    let server = Frozen::stop_the_server(&dump.path(""));
    let started = std::time::Instant::now();
    let child = Running(Some(
        std::process::Command::new(assert_cmd::cargo::cargo_bin("mycloud-recover"))
            .arg("preflight")
            .arg(&dump.root)
            .arg(&dest)
            .args(["--budget", "5"])
            .stdout(std::fs::File::create(&report).unwrap())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let said = || std::fs::read_to_string(&report).unwrap_or_default();
    wait_until("pre-flight's report", SECS_60, MS_20, || {
        said().contains("\nPre-flight took")
    });
    let took = started.elapsed().as_secs_f64();
    let msg = said();
    assert!(
        took <= 5.0 + 3.0,
        "pre-flight took {took:.1} s with --budget 5 and a share that does not answer\n{msg}"
    );
    let problems = msg
        .split("Problems that stop the restore:")
        .nth(1)
        .unwrap_or("");
    assert!(
        problems.contains(&format!(
            "the destination {} did not answer within",
            dest.display()
        )) && problems.contains("is it still mounted, and is the NAS on and reachable?"),
        "{msg}"
    );
    assert!(msg.contains("NOT ready"), "{msg}");
    drop(server);
    let out = child.wait();
    assert_eq!(out.status.code(), Some(1), "{msg}{}", text(&out));
}

/// Round 21's list: as root, pre-flight counted DEST's room with `f_bavail`, leaving out
/// the blocks ext4 keeps for root, which the restore (as root on a local filesystem) may
/// write since round 21: on an ext4 filled up to that reserve it said "DOES NOT FIT"
/// (exit 1) where the restore fits. Both now count room with one function
/// (`fsinfo::writable_blocks`), and pre-flight warns that the files fit only in root's
/// reserve (there so the system keeps working on a full disk), naming DEST and what to
/// free. Needs root and a loop device.
#[test]
fn as_root_preflight_counts_room_as_the_restore_does_and_warns_of_roots_reserve() {
    let dump = Dump::new(195, 60, 1);
    let Some(disk) = Ext4Disk::mount_made_with(&dump, "64M", &["-m", "5"]) else {
        return;
    };
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED: the reserved blocks are root's only");
        return;
    }
    let roots = disk.fill_to_roots_reserve(&disk.path.join("filler"));
    assert_eq!(rustix::fs::statvfs(&disk.path).unwrap().f_bavail, 0);
    assert!(
        roots > dump.manifest.bytes + (1 << 20),
        "room for root: {roots} for {}",
        dump.manifest.bytes
    );
    let dest = disk.path.join("restored");
    let out = bin()
        .arg("preflight")
        .arg(&dump.root)
        .arg(&dest)
        .args(["--budget", "5", "--json"])
        .output()
        .unwrap();
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(0), "the files fit: {msg}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let space = &report["advice"]["space"];
    assert_eq!(space["fits"], true, "{msg}");
    assert_eq!(space["in_roots_reserve"], true, "{msg}");
    let free = space["free"].as_u64().unwrap();
    assert!(
        free >= roots && free - roots < 1 << 20,
        "free {free}, root may write {roots}"
    );
    let warnings = report["advice"]["warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|w| {
            let w = w.as_str().unwrap();
            w.starts_with(&format!(
                "the files fit on the destination {} only counting the",
                dest.display()
            )) && w.contains("its filesystem keeps for root")
                && w.contains("free at least")
        }),
        "{msg}"
    );
    assert!(!dest.exists(), "pre-flight removed what it made");
    // The restore indeed fits there.
    let (out, restored) = restore(&dump, &dest, &[], &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the demo's missing objects only: {}",
        text(&out)
    );
    assert!(restored["dest_full"].is_null(), "{}", text(&out));
    assert_eq!(restored["outcomes"]["failed"], 0, "{}", text(&out));
}

#[test]
fn preflight_says_when_the_restore_cannot_fit() {
    let dump = Dump::new(39, 300, 1);
    let Some(small) = SmallDisk::mount(&dump, "2m") else {
        return;
    };
    let mnt = small.path.clone();
    let out = bin()
        .arg("preflight")
        .arg(&dump.root)
        .arg(mnt.join("restored"))
        .args(["--budget", "5"])
        .output()
        .unwrap();
    let s = text(&out);
    assert_eq!(out.status.code(), Some(1), "blocking problems exit 1: {s}");
    assert!(s.contains("not enough space on the destination"), "{s}");
    assert_eq!(
        std::fs::read_dir(&mnt).unwrap().count(),
        0,
        "nothing left on the small disk"
    );
}

/// Review A7: a flat 1 GB reserve was counted as needed, so a small disk with room for the
/// files was "DOES NOT FIT" (exit 1) while the restore succeeded there. Now pre-flight
/// passes with a warning that it will be tight, and the restore indeed fits.
#[test]
fn preflight_lets_a_tight_but_sufficient_disk_pass_with_a_warning() {
    let dump = Dump::new(39, 300, 1);
    let Some(small) = SmallDisk::mount(&dump, "64m") else {
        return;
    };
    let dest = small.path.join("restored");
    let out = bin()
        .arg("preflight")
        .arg(&dump.root)
        .arg(&dest)
        .args(["--budget", "5"])
        .output()
        .unwrap();
    let s = text(&out);
    assert_eq!(out.status.code(), Some(0), "the files fit: {s}");
    assert!(
        s.contains("fits, but tight") && s.contains("nearly full"),
        "{s}"
    );
    assert!(!s.contains("DOES NOT FIT"), "{s}");
    let (out, report) = restore(&dump, &dest, &[], &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the demo's missing objects only: {}",
        text(&out)
    );
    assert!(report["dest_full"].is_null(), "{}", text(&out));
    assert_eq!(report["outcomes"]["failed"], 0, "{}", text(&out));
}

#[test]
fn preflight_rejects_a_bad_source_with_exit_2() {
    let t = tempfile::tempdir().unwrap();
    let out = bin()
        .arg("preflight")
        .arg(t.path().join("nope"))
        .arg(t.path().join("out"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("nope"),
        "names the path: {}",
        text(&out)
    );
}

/// A file given as SOURCE (the demo's `demo-manifest.json`, any file) got the list of places
/// looked for below it (`.../demo-manifest.json/db/index.db, ...`); only `index.db` itself
/// was said to be a file. Every command taking SOURCE now says so, exit 2, with the dump's
/// folder when the file sits in one, and writes nothing (no DEST, no state folder).
#[test]
fn a_file_given_as_source_is_said_to_be_a_file_by_every_command() {
    let dump = Dump::new(59, 30, 1);
    let data = dump.root.join("restsdk/data");
    let loose = dump.path("notes.txt");
    std::fs::write(&loose, b"not a dump").unwrap();
    let dest = dump.path("restored");
    let xdg = dump.path("xdg");
    let before = SourceSnapshot::take(&dump);
    for (file, suggested) in [
        (dump.root.join("demo-manifest.json"), Some(&dump.root)),
        (dump.db(), Some(&data)),
        (loose.clone(), None),
    ] {
        assert!(file.is_file(), "{}", file.display());
        for cmd in [
            "inspect",
            "plan",
            "restore",
            "verify",
            "regen",
            "status",
            "preflight",
        ] {
            let mut c = bin();
            c.arg(cmd).arg(&file).env("XDG_STATE_HOME", &xdg);
            if cmd != "inspect" {
                c.arg(&dest);
            }
            // With the database and the objects given, SOURCE is still a mistake.
            if cmd == "restore" {
                c.arg("--db")
                    .arg(dump.db())
                    .arg("--files")
                    .arg(data.join("files"));
            }
            let out = c.output().unwrap();
            let msg = text(&out);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{cmd} {}: {msg}",
                file.display()
            );
            assert!(
                msg.contains(&format!(
                    "SOURCE {} is a file, not a folder: give the folder of the My Cloud disk that holds the dump",
                    file.display()
                )) && !msg.contains("looked for"),
                "{cmd}: {msg}"
            );
            match suggested {
                Some(d) => assert!(
                    msg.contains(&format!("Did you mean {} as SOURCE?", d.display())),
                    "{cmd}: {msg}"
                ),
                None => assert!(!msg.contains("Did you mean"), "{cmd}: {msg}"),
            }
            assert!(!dest.exists() && !xdg.exists(), "{cmd}: nothing written");
        }
    }
    assert_eq!(SourceSnapshot::take(&dump), before);
    // Round 24: the disk itself (a block device, as `lsblk` names it) given as SOURCE got
    // the places looked for under it; it is said to be a device to mount first. Only
    // looked at (a loop device's node, attached or not).
    let device = std::fs::read_dir("/dev").ok().and_then(|d| {
        d.flatten().map(|e| e.path()).find(|p| {
            std::fs::metadata(p)
                .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_block_device(&m.file_type()))
        })
    });
    if let Some(device) = device {
        for cmd in ["inspect", "restore"] {
            let mut c = bin();
            c.arg(cmd).arg(&device).env("XDG_STATE_HOME", &xdg);
            if cmd != "inspect" {
                c.arg(&dest);
            }
            let out = c.output().unwrap();
            let msg = text(&out);
            assert_eq!(out.status.code(), Some(2), "{cmd}: {msg}");
            assert!(
                msg.contains(&format!(
                    "SOURCE {} is a disk device, not a folder: mount the My Cloud disk's data partition first, read-only",
                    device.display()
                )) && !msg.contains("looked for"),
                "{cmd}: {msg}"
            );
            assert!(!dest.exists() && !xdg.exists(), "{cmd}: nothing written");
        }
    }
}

/// Round 15 review: with an object store holding none of the database's objects,
/// `preflight` said "ready to restore" (exit 0, a note among the benchmarks) and `plan`
/// said nothing, while `restore` refuses to start. Both now make the restore's own look
/// (one function), so they cannot drift: pre-flight lists it among the problems that stop
/// the restore (exit 1), plan warns.
#[test]
fn preflight_and_plan_say_when_the_restore_would_find_no_objects_regression_round_15() {
    let dump = Dump::new(15, 100, 1);
    let copy = dump.path("emptied");
    std::fs::create_dir_all(copy.join("restsdk/data/files")).unwrap();
    std::fs::create_dir_all(copy.join("restsdk/data/db")).unwrap();
    std::fs::copy(dump.db(), copy.join("restsdk/data/db/index.db")).unwrap();
    let dest = dump.path("restored");
    let restore = bin()
        .arg("restore")
        .arg(&copy)
        .arg(&dest)
        .arg("--state-dir")
        .arg(dump.path("s"))
        .output()
        .unwrap();
    assert_eq!(restore.status.code(), Some(2), "{}", text(&restore));
    let refusal = text(&restore);
    let why = refusal
        .lines()
        .find_map(|l| {
            l.split_once("error: ")?
                .1
                .strip_suffix(". Nothing was written")
        })
        .unwrap_or_else(|| panic!("{refusal}"));
    let out = bin()
        .arg("preflight")
        .arg(&copy)
        .arg(&dest)
        .args(["--budget", "5"])
        .output()
        .unwrap();
    let s = text(&out);
    assert_eq!(out.status.code(), Some(1), "{s}");
    let problems = s
        .split("Problems that stop the restore:")
        .nth(1)
        .unwrap_or_else(|| panic!("{s}"));
    assert!(
        problems.lines().nth(1).is_some_and(|l| l.contains(why)),
        "{s}"
    );
    assert!(!s.contains("ready to restore"), "{s}");
    let out = bin()
        .args(["plan", "--summary"])
        .arg(&copy)
        .arg(&dest)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("warning: {why}")),
        "{}",
        text(&out)
    );
    assert!(!dest.exists());
}

/// A damaged unique index can let two rows share an `id`. Their names were assigned by id,
/// so both took the second one's suffix: one failed as "already exists and differs", and its
/// advice (`--overwrite`) would have replaced the other file. Each row now gets its own name.
#[test]
fn two_rows_sharing_an_id_get_one_name_each() {
    let dump = Dump::new(47, 40, 1);
    let conn = rusqlite::Connection::open(dump.db()).unwrap();
    let (id, cid): (String, String) = conn
        .query_row(
            "SELECT id, contentID FROM Files WHERE mimeType <> 'application/x.wd.dir'
             AND contentID IS NOT NULL AND size > 0 ORDER BY autoID LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(dump.object(&cid).is_some());
    let twin = format!("{}z", &cid[..cid.len() - 1]);
    conn.execute_batch(&format!(
        "DROP INDEX Files_id;
         CREATE TEMP TABLE t AS SELECT * FROM Files WHERE id = '{id}';
         UPDATE t SET autoID = NULL, contentID = '{twin}', size = 5;
         INSERT INTO Files SELECT * FROM t;"
    ))
    .unwrap();
    drop(conn);
    let twin_object = dump
        .root
        .join("restsdk/data/files")
        .join(&twin[..1])
        .join(&twin);
    std::fs::create_dir_all(twin_object.parent().unwrap()).unwrap();
    std::fs::write(&twin_object, b"hello").unwrap();

    let dest = dump.path("out");
    let (out, rep) = restore(&dump, &dest, &[], &[]);
    assert_eq!(rep["outcomes"]["failed"], 0, "{}", text(&out));
    let plan = of_type(&plan_json(&dump.root, &dest, &[]), "file")
        .into_iter()
        .filter(|f| f["id"] == id.as_str())
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect::<BTreeSet<_>>();
    assert_eq!(plan.len(), 2, "two names: {plan:?}");
    let sizes: BTreeSet<u64> = plan
        .iter()
        .map(|p| std::fs::metadata(dest.join(p)).unwrap().len())
        .collect();
    assert!(
        sizes.contains(&5) && sizes.len() == 2,
        "both restored: {sizes:?}"
    );
    let renamed = rep["renamed"].to_string();
    assert!(
        plan.iter().any(|p| renamed.contains(p.as_str())),
        "{renamed}"
    );
    // A second run finds both done.
    let (_, again) = restore(&dump, &dest, &[], &[]);
    assert_eq!(again["outcomes"]["copied"], 0);
    assert_eq!(again["outcomes"]["failed"], 0);
}

/// A database without a date column the restore takes dates from (older firmware, a
/// partial export) was read silently: each file's date came from the next field, capture
/// dates lost without a word. Every command says so now.
#[test]
fn a_database_without_a_date_column_is_said_so_by_every_command() {
    let dump = Dump::new(46, 40, 1);
    rusqlite::Connection::open(dump.db())
        .unwrap()
        .execute_batch("ALTER TABLE Files DROP COLUMN imageDate")
        .unwrap();
    let dest = dump.path("out");
    let said = "has no imageDate column";
    let (out, report) = restore(&dump, &dest, &[], &[]);
    assert!(text(&out).contains(said), "{}", text(&out));
    assert!(report["warnings"].to_string().contains(said), "{report}");
    for cmd in ["plan", "verify", "inspect"] {
        let mut c = bin();
        c.arg(cmd).arg(&dump.root);
        if cmd != "inspect" {
            c.arg(&dest);
        }
        let out = c.output().unwrap();
        assert!(text(&out).contains(said), "{cmd}: {}", text(&out));
    }
    // Pre-flight too (round 20: it said none of how the index was read).
    let out = preflight(&dump, &dump.path("elsewhere"));
    assert!(text(&out).contains(said), "preflight: {}", text(&out));
    // Not when the fields taken leave it out.
    let out = bin()
        .args(["plan", "--summary", "--mtime-from", "cTime"])
        .arg(&dump.root)
        .arg(&dest)
        .output()
        .unwrap();
    assert!(!text(&out).contains(said), "{}", text(&out));
}

/// A device that died before folding its write-ahead log into `index.db` keeps its last
/// changes in `index.db-wal`. They are read (from a private copy), the user is told, and
/// neither file in the source is touched.
#[test]
fn changes_in_the_write_ahead_log_are_restored_and_the_source_is_untouched() {
    let dump = Dump::new(44, 60, 1);
    let object = dump
        .root
        .join("restsdk/data/files/w/wnewestobjectnotinthedbfile1");
    std::fs::create_dir_all(object.parent().unwrap()).unwrap();
    std::fs::write(&object, b"fresh").unwrap();
    let conn = rusqlite::Connection::open(dump.db()).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
         CREATE TEMP TABLE t AS SELECT * FROM Files
             WHERE mimeType <> 'application/x.wd.dir' AND contentID IS NOT NULL
             ORDER BY autoID LIMIT 1;
         UPDATE t SET id = 'newestrowinthewalonly0001', contentID = 'wnewestobjectnotinthedbfile1',
             name = 'NEWEST_PHOTO.JPG', size = 5, autoID = NULL;
         INSERT INTO Files SELECT * FROM t;
         UPDATE Files SET name = 'renamed in the log.txt' WHERE autoID =
             (SELECT max(autoID) FROM Files WHERE mimeType <> 'application/x.wd.dir'
              AND name <> 'NEWEST_PHOTO.JPG');",
    )
    .unwrap();
    // As the device left it: the connection never closed, the log never folded in.
    std::mem::forget(conn);
    let wal = dump.root.join("restsdk/data/db/index.db-wal");
    assert!(std::fs::metadata(&wal).unwrap().len() > 0);
    let before = SourceSnapshot::take(&dump);
    let wal_bytes = std::fs::read(&wal).unwrap();

    let tmp = dump.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    // A copy left by a run that was killed (its process is gone) is swept.
    let leftover = tmp.join("mycloud-recover-index-4294967-1");
    std::fs::create_dir(&leftover).unwrap();
    std::fs::write(leftover.join("index.db"), b"old copy").unwrap();
    let dest = dump.path("out");
    let tmp_env = tmp.to_str().unwrap();
    let (out, report) = restore(&dump, &dest, &[], &[("TMPDIR", tmp_env)]);
    let msg = text(&out);
    assert!(msg.contains("write-ahead log"), "{msg}");
    assert_eq!(report["totals"]["files"], dump.manifest.files + 1, "{msg}");
    assert_eq!(outcome_sum(&report), dump.manifest.files + 1);
    let t = tree(&dest);
    let newest: Vec<_> = t
        .keys()
        .filter(|p| p.ends_with("/NEWEST_PHOTO.JPG"))
        .collect();
    assert_eq!(newest.len(), 1, "{msg}");
    assert_eq!(std::fs::read(dest.join(newest[0])).unwrap(), b"fresh");
    assert!(
        t.keys().any(|p| p.ends_with("/renamed in the log.txt")),
        "{msg}"
    );

    // Every other command reads the same index and says so (`preflight` did not, round 20:
    // its report now has the note, `work.notes` in JSON).
    let preflight = ["preflight", "--budget", "5"];
    for cmd in [
        &["inspect"][..],
        &["plan", "--summary"],
        &["verify"],
        &preflight,
        &[&preflight[..], &["--json"]].concat(),
    ] {
        let mut c = bin();
        c.args(&cmd[..1]).arg(&dump.root);
        if cmd[0] != "inspect" {
            c.arg(&dest);
        }
        let o = c.args(&cmd[1..]).env("TMPDIR", tmp_env).output().unwrap();
        assert!(
            text(&o).contains("write-ahead log"),
            "{cmd:?}: {}",
            text(&o)
        );
        if cmd.contains(&"--json") {
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            assert!(
                v["work"]["notes"][0]
                    .as_str()
                    .is_some_and(|n| n.contains("index.db-wal") && n.contains("write-ahead log")),
                "{v}"
            );
        }
    }
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "the private copies are removed, and the leftover"
    );
    // Never a copy onto the source disk.
    let on_source = dump.root.join("restsdk/tmp");
    let o = bin()
        .arg("inspect")
        .arg(&dump.root)
        .env("TMPDIR", &on_source)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("is on the source") && text(&o).contains("TMPDIR"));
    assert!(!on_source.exists());
    assert_eq!(SourceSnapshot::take(&dump), before);
    assert_eq!(std::fs::read(&wal).unwrap(), wal_bytes);
}

/// A checkpoint that says files are restored, on a destination without them (a NAS share
/// not mounted after a reboot leaves an empty mount point): the resume must not report
/// everything restored. It stops before writing anything; `--fresh` starts over. Some of
/// them gone is only a warning.
#[test]
fn a_resume_onto_an_empty_or_missing_destination_stops_instead_of_reporting_success() {
    let dump = Dump::new(45, 80, 1);
    let dest = dump.path("nas/restore");
    let (out, first) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out)); // the demo's missing objects
    let copied = first["outcomes"]["copied"].as_u64().unwrap();
    assert!(copied > 20);
    let state = std::fs::read(dump.path("state/checkpoint.db")).unwrap();

    for empty_mount_point in [false, true] {
        if dest.exists() {
            std::fs::remove_dir_all(&dest).unwrap();
        }
        if empty_mount_point {
            std::fs::create_dir(&dest).unwrap();
        }
        let (out, _) = restore(&dump, &dest, &[], &[]);
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(2), "{msg}");
        assert!(
            msg.contains("mounted")
                && msg.contains("--fresh")
                && msg.contains("Nothing was changed"),
            "{msg}"
        );
        assert_eq!(dest.exists(), empty_mount_point, "nothing created");
        if empty_mount_point {
            assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 0);
        }
        assert_eq!(
            std::fs::read(dump.path("state/checkpoint.db")).unwrap(),
            state,
            "the checkpoint is not changed"
        );
    }

    // --fresh starts over and restores everything again.
    let (out, again) = restore(&dump, &dest, &["--fresh"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(again["outcomes"]["copied"].as_u64().unwrap(), copied);

    // The last file recorded, removed by hand: the resume goes on, with a warning naming it.
    let last: String = rusqlite::Connection::open(dump.path("state/checkpoint.db"))
        .unwrap()
        .query_row(
            "SELECT path FROM log WHERE outcome = 'copied' ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    std::fs::remove_file(dest.join(&last)).unwrap();
    let (out, after) = restore(&dump, &dest, &[], &[]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains("no longer on the destination") && msg.contains(&last),
        "{msg}"
    );
    // Restored again (round 15: counted as already done, and left missing).
    assert_eq!(
        after["outcomes"]["already_done"].as_u64().unwrap(),
        copied - 1
    );
    assert_eq!(after["outcomes"]["copied"].as_u64().unwrap(), 1);
    assert!(dest.join(&last).is_file());
}

/// Paths of the files the checkpoint in `state` records as copied, in the order recorded.
fn recorded_copies(state: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(state.join("checkpoint.db")).unwrap();
    let mut stmt = conn
        .prepare("SELECT path FROM log WHERE outcome = 'copied' ORDER BY seq")
        .unwrap();
    let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
    rows.map(Result::unwrap).collect()
}

/// The look for recorded files leaves out what the run leaves out: the Trash an earlier
/// run restored with --include-trash, removed from DEST since, made every plain resume warn
/// that it "restores those it finds missing", look at every file, restore none, and the
/// next one again; `status` warned the same way each time (round 15's review of the diff).
#[test]
fn the_look_for_recorded_files_leaves_out_the_trash_a_run_leaves_out() {
    let dump = Dump::new(62, 200, 1);
    let dest = dump.path("restored");
    // The Trash first: its files are among the first records, which the look samples.
    let (out, _) = restore(&dump, &dest, &["--include-trash", "--only", "Trash"], &[]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    let (out, _) = restore(&dump, &dest, &["--include-trash"], &[]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    std::fs::remove_dir_all(dest.join("Trash")).unwrap();
    for _ in 0..2 {
        let (out, rep) = restore(&dump, &dest, &[], &[]);
        let said = text(&out);
        assert!(!said.contains("no longer on the destination"), "{said}");
        assert_eq!(rep["outcomes"]["copied"], 0, "{said}");
        let st = text(
            &bin()
                .arg("status")
                .arg(&dump.root)
                .arg(&dest)
                .arg("--state-dir")
                .arg(dump.path("state"))
                .output()
                .unwrap(),
        );
        assert!(!st.contains("WARNING"), "{st}");
    }
}

/// Found reviewing round 14: a resume whose look at 16 recorded files found 3 of them gone
/// warned ("files recorded as done are not copied again ... or --fresh to restore them"),
/// then counted every recorded file as already done, the 3 included, and `status` went on
/// saying they were restored. A resume that finds some of its sample gone now looks for
/// every file recorded as done (on the workers) and restores those that are gone, each
/// listed, the counts adding up; a resume after it, with nothing gone, looks at none.
#[test]
fn a_resume_restores_recorded_files_it_finds_gone_regression_round_15() {
    let dump = Dump::new(61, 300, 1);
    let dest = dump.path("restored");
    let (out, first) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out)); // the demo's missing objects
    let copied = first["outcomes"]["copied"].as_u64().unwrap();
    let recorded = recorded_copies(&dump.path("state"));
    assert_eq!(recorded.len() as u64, copied);
    // Three the sample looks for (the first recorded), and five it does not (the middle).
    let mid = recorded.len() / 2;
    let gone: Vec<&String> = recorded[..3]
        .iter()
        .chain(&recorded[mid..mid + 5])
        .collect();
    for p in &gone {
        std::fs::remove_file(dest.join(p)).unwrap();
    }

    let (out, again) = restore(&dump, &dest, &[], &[]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains(
            "3 of 16 files the checkpoint records as restored are no longer on the destination"
        ) && msg.contains("restores those it finds missing")
            && !msg.contains("--fresh"),
        "{msg}"
    );
    assert!(
        msg.contains("recorded as done by earlier runs (each looked for"),
        "{msg}"
    );
    assert_eq!(again["outcomes"]["copied"].as_u64().unwrap(), 8, "{msg}");
    assert_eq!(
        again["outcomes"]["already_done"].as_u64().unwrap(),
        copied - 8
    );
    assert_eq!(again["restored_again"], 8);
    assert_eq!(again["not_processed"], 0);
    assert_eq!(
        outcome_sum(&again),
        again["totals"]["files"].as_u64().unwrap()
    );
    for p in &gone {
        assert!(dest.join(p).is_file(), "{p} restored again");
        assert!(
            again["notes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["path"] == p.as_str()
                    && n["reason"].as_str().unwrap().contains("restored again")),
            "{p} listed"
        );
    }

    // Nothing gone now: no look at every file, and all of them done.
    let (out, last) = restore(&dump, &dest, &[], &[]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(!msg.contains("no longer on the destination"), "{msg}");
    assert!(!msg.contains("looked for"), "{msg}");
    assert_eq!(last["outcomes"]["already_done"].as_u64().unwrap(), copied);
    assert_eq!(last["outcomes"]["copied"], 0);
    assert_eq!(last["looks_for_done"], false);
}

/// Found reviewing round 14: `status SOURCE DEST` showed the checkpoint found by DEST
/// whatever SOURCE was (exit 0, "1993 of 1997 selected files (99.8%)" for a dump of 500
/// files of another database) and whatever DEST held (99.8% of an empty mount point), where
/// a restore refuses both. It now refuses a checkpoint of another database and a DEST that
/// holds none of the sampled files (exit 2, with what to do), warns when some are gone,
/// and writes nothing.
#[test]
fn status_checks_source_and_looks_at_dest_regression_round_15() {
    let dump = Dump::new(62, 200, 1);
    let other = Dump::new(63, 50, 1);
    let dest = dump.path("restored");
    let xdg = dump.path("xdg");
    let out = bin()
        .arg("restore")
        .arg(&dump.root)
        .arg(&dest)
        .arg("--quiet")
        .env("XDG_STATE_HOME", &xdg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let state = std::fs::read_dir(xdg.join("mycloud-recover"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let status = |source: &Path, extra: &[&std::ffi::OsStr]| {
        bin()
            .arg("status")
            .arg(source)
            .arg(&dest)
            .args(extra)
            .env("XDG_STATE_HOME", &xdg)
            .output()
            .unwrap()
    };
    // Read before the snapshot: a read-write connection may leave side files.
    let first = recorded_copies(&state);
    let (state_before, dest_before) = (tree(&state), file_hashes(&dest));

    let out = status(&dump.root, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("WARNING"), "{}", text(&out));

    // Another database: refused, with or without --state-dir.
    for extra in [vec![], vec!["--state-dir".as_ref(), state.as_os_str()]] {
        let out = status(&other.root, &extra);
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(2), "{msg}");
        assert!(
            msg.contains("another database") && !msg.contains("99."),
            "{msg}"
        );
    }

    // DEST an empty mount point: refused, and what to do.
    let moved = dump.path("restored.moved");
    std::fs::rename(&dest, &moved).unwrap();
    std::fs::create_dir(&dest).unwrap();
    let out = status(&dump.root, &[]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains("none of the 16 looked for is there") && msg.contains("mounted"),
        "{msg}"
    );
    assert!(!msg.contains("99."), "{msg}");
    // The checkpoint alone still shows what it records.
    let out = bin()
        .arg("status")
        .arg("--state-dir")
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    std::fs::remove_dir(&dest).unwrap();
    std::fs::rename(&moved, &dest).unwrap();

    // Some of them gone: said, with the verify command to find the others.
    std::fs::remove_file(dest.join(&first[0])).unwrap();
    let out = status(&dump.root, &[]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(0), "{msg}");
    assert!(
        msg.contains("WARNING: 1 of 16 files the checkpoint records as restored are not on")
            && msg.contains(&first[0])
            && msg.contains("mycloud-recover verify"),
        "{msg}"
    );
    let out = status(&dump.root, &["--json".as_ref()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["dest_check"]["looked_for"], 16, "{v}");
    assert_eq!(v["dest_check"]["gone"][0], first[0].as_str(), "{v}");

    // Nothing written: not in the state folder, not on DEST (but the file removed here).
    let mut dest_expected = dest_before;
    dest_expected.remove(&first[0]);
    assert_eq!(tree(&state), state_before);
    assert_eq!(file_hashes(&dest), dest_expected);
}

/// Round 16: `status --state-dir DIR` alone did not look at DEST at all, where `status
/// SOURCE DEST` looks for a sample of the recorded files: with some removed, or DEST an
/// empty mount point, or DEST gone, it showed the checkpoint's counts without a word. It
/// now looks at the DEST the checkpoint records, with the same wording, and says plainly
/// when that DEST cannot be found; the checkpoint's counts are still shown (exit 0).
#[test]
fn status_with_the_state_dir_alone_looks_at_the_recorded_dest_regression_round_16() {
    let dump = Dump::new(64, 200, 1);
    let dest = dump.path("restored");
    let state = dump.path("state");
    let (out, _) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out)); // the demo's missing objects
    let status = |json: bool| {
        let mut c = bin();
        c.arg("status").arg("--state-dir").arg(&state);
        if json {
            c.arg("--json");
        }
        c.output().unwrap()
    };
    let first = recorded_copies(&state);
    let state_before = tree(&state);
    let out = status(false);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("WARNING"), "{}", text(&out));

    // Some of them gone: the warning of `status SOURCE DEST`, with a verify command that
    // works as printed.
    std::fs::remove_file(dest.join(&first[0])).unwrap();
    let out = status(false);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(0), "{msg}");
    assert!(
        msg.contains("WARNING: 1 of 16 files the checkpoint records as restored are not on")
            && msg.contains(&first[0]),
        "{msg}"
    );
    let (verify, out) = run_the_verify_status_suggests(&msg);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{verify}: {said}");
    assert!(
        said.contains(" 1 differ,") && said.contains(&first[0]),
        "{verify}: {said}"
    );
    let v: serde_json::Value = serde_json::from_slice(&status(true).stdout).unwrap();
    assert_eq!(v["dest_check"]["gone"][0], first[0].as_str(), "{v}");

    // DEST an empty mount point: said, and the counts still shown.
    let moved = dump.path("restored.moved");
    std::fs::rename(&dest, &moved).unwrap();
    std::fs::create_dir(&dest).unwrap();
    let out = status(false);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(0), "{msg}");
    assert!(
        msg.contains("WARNING: the checkpoint in")
            && msg.contains("none of the 16 looked for is there")
            && msg.contains("mounted")
            && msg.contains("Restored or already there"),
        "{msg}"
    );

    // DEST not there at all: said plainly.
    std::fs::remove_dir(&dest).unwrap();
    let out = status(false);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(0), "{msg}");
    assert!(
        msg.contains("which cannot be found") && msg.contains("mounted"),
        "{msg}"
    );
    let v: serde_json::Value = serde_json::from_slice(&status(true).stdout).unwrap();
    assert!(
        v["warnings"][0]
            .as_str()
            .unwrap()
            .contains("cannot be found"),
        "{v}"
    );
    std::fs::rename(&moved, &dest).unwrap();
    assert_eq!(tree(&state), state_before);
}

/// Round 16: the `verify` command `status` suggests when sampled files are gone carried
/// `--state-dir`, `--db` and `--files` but not the selection of the runs: after restores
/// with `--only`, it listed every file they left out as not on DEST. It now carries the
/// selection the checkpoint records for its runs (here two `--only` runs: both paths).
#[test]
fn the_verify_status_suggests_checks_the_files_the_runs_selected_regression_round_16() {
    let dump = Dump::new(65, 300, 1);
    let dest = dump.path("restored");
    let mut per_top: BTreeMap<String, usize> = BTreeMap::new();
    for f in of_type(&plan_json(&dump.root, &dest, &[]), "file") {
        if let Some((top, _)) = f["path"].as_str().unwrap().split_once('/') {
            if top != "Trash" && top != "_unlinked" {
                *per_top.entry(top.to_string()).or_default() += 1;
            }
        }
    }
    let mut tops: Vec<(usize, String)> = per_top.into_iter().map(|(t, n)| (n, t)).collect();
    tops.sort();
    assert!(tops.len() >= 3, "{tops:?}");
    let (a, b) = (&tops[tops.len() - 1].1, &tops[tops.len() - 2].1);
    for only in [a, b] {
        let (out, _) = restore(&dump, &dest, &["--only", only], &[]);
        assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    }
    let first = recorded_copies(&dump.path("state"));
    std::fs::remove_file(dest.join(&first[0])).unwrap();
    let out = bin()
        .arg("status")
        .arg(&dump.root)
        .arg(&dest)
        .arg("--state-dir")
        .arg(dump.path("state"))
        .output()
        .unwrap();
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(0), "{msg}");
    let (verify, out) = run_the_verify_status_suggests(&msg);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{verify}: {said}");
    // The one file removed differs; the files the runs left out are not listed.
    assert!(
        said.contains(" 1 differ,") && said.contains(&first[0]),
        "{verify}: {said}"
    );
}

/// Round 20: a restore whose objects were given with `--files` (the database copied off
/// the device, the objects read where they are) did not record that folder, so the `verify`
/// command `status --state-dir` alone suggested had no `--files`: it looked for the objects
/// beside the copied database and found none. The checkpoint now records the object folder
/// and the suggestion carries it.
#[test]
fn the_verify_status_suggests_reads_the_objects_the_restore_read_regression_round_20() {
    let dump = Dump::new(66, 200, 1);
    let source = dump.path("copied");
    std::fs::create_dir_all(source.join("db")).unwrap();
    std::fs::copy(dump.db(), source.join("db/index.db")).unwrap();
    let objects = dump.root.join("restsdk/data/files");
    assert!(objects.is_dir(), "{}", objects.display());
    let (dest, state) = (dump.path("restored"), dump.path("state"));
    let out = bin()
        .arg("restore")
        .arg(&source)
        .arg(&dest)
        .arg("--files")
        .arg(&objects)
        .arg("--state-dir")
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "the demo's missing objects: {}",
        text(&out)
    );
    let first = recorded_copies(&state);
    std::fs::remove_file(dest.join(&first[0])).unwrap();
    let out = bin()
        .arg("status")
        .arg("--state-dir")
        .arg(&state)
        .output()
        .unwrap();
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(0), "{msg}");
    let (verify, out) = run_the_verify_status_suggests(&msg);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{verify}: {said}");
    assert!(
        said.contains(" 1 differ,") && said.contains(&first[0]),
        "{verify}: {said}"
    );
}

/// Runs, as a shell would, the `verify` command `status` printed in `msg` (between
/// backquotes), with this build's binary for `mycloud-recover`.
fn run_the_verify_status_suggests(msg: &str) -> (String, std::process::Output) {
    let verify = msg
        .split('`')
        .find(|c| c.starts_with("mycloud-recover verify "))
        .unwrap_or_else(|| panic!("no verify command: {msg}"));
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec \"$0\" {}",
            verify.strip_prefix("mycloud-recover ").unwrap()
        ))
        .arg(assert_cmd::cargo::cargo_bin("mycloud-recover"))
        .output()
        .unwrap();
    (verify.to_string(), out)
}

/// The summary's "finished after" is the whole run: it was the copy's time alone, so a run
/// whose folders' dates took 26 s over a slow share (round 16's NAS review) said it had
/// finished 43 s before it did. The rate stays the copy's, and says so.
#[test]
fn the_time_a_restore_reports_includes_the_folders_dates_regression_round_16() {
    let dump = Dump::new(36, 200, 1);
    let dest = dump.path("restored");
    let (out, rep) = restore(
        &dump,
        &dest,
        &["--threads", "2"],
        &[("MYCLOUD_RECOVER_FAULTS", "folder_delay_ms=20")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let phase = |p: &str| rep["phases"][p].as_f64().unwrap();
    assert!(phase("folder_dates") > 0.2, "{}", rep["phases"]);
    let whole = rep["duration_s"].as_f64().unwrap();
    assert!(
        whole >= phase("copy") + phase("folder_dates"),
        "{whole} s for the run, phases {}",
        rep["phases"]
    );
    assert!(text(&out).contains("  copy rate: "), "{}", text(&out));
}

/// Round 20's review: a file in the way of a folder, on a DEST with under 1 MiB free,
/// stopped the whole run as "the destination is full" (the folder's "is in the way" was
/// weighed against the free space, since no file stands at the blocked file's own path).
/// It fails what belongs there, as on a roomy disk, and names the file in the way.
#[test]
fn a_file_in_the_way_on_a_nearly_full_disk_is_not_taken_for_a_full_one_regression_round_20() {
    let dump = Dump::new(46, 60, 1);
    let Some(small) = SmallDisk::mount(&dump, "2m") else {
        return;
    };
    let dest = small.path.join("out");
    let files: Vec<String> = planned_files(&plan_json(&dump.root, &dest, &[]))
        .into_keys()
        .collect();
    let holder = files
        .iter()
        .filter_map(|p| p.split_once('/').map(|(top, _)| top))
        .find(|top| *top != "Trash" && *top != "_unlinked")
        .expect("a top folder holding files")
        .to_string();
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join(&holder), b"in the way").unwrap();
    // Under 1 MiB left free: what a full share's I/O error is weighed against.
    std::fs::write(small.path.join("filler"), vec![0u8; 1_400_000]).unwrap();
    let free = rustix::fs::statvfs(&small.path).unwrap();
    assert!(free.f_bavail * free.f_frsize < 1 << 20, "{}", free.f_bavail);

    let (out, report) = restore(&dump, &dest, &["--only", &holder], &[]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(report["dest_full"].is_null(), "{msg}");
    assert!(!msg.contains("is full"), "{msg}");
    let blocker = format!("{} is a file, not a folder", dest.join(&holder).display());
    assert!(msg.contains(&blocker), "{msg}");
    assert!(report["outcomes"]["failed"].as_u64().unwrap() > 0, "{msg}");
}

/// A file in the way of a folder (here: of a whole top folder) fails what belongs there,
/// file by file and folder by folder, in the report; the run itself finishes (exit 1, not
/// 2), and the next run tries those folders again.
#[test]
fn a_folder_that_cannot_be_created_is_reported_and_the_run_finishes() {
    let dump = Dump::new(46, 60, 1);
    let dest = dump.path("out");
    let lines = plan_json(&dump.root, &dest, &[]);
    let files: Vec<&str> = of_type(&lines, "file")
        .iter()
        .map(|l| l["path"].as_str().unwrap())
        .collect();
    // An empty folder: no file lies below it.
    let empty = of_type(&lines, "folder")
        .into_iter()
        .map(|l| l["path"].as_str().unwrap())
        .find(|f| !files.iter().any(|p| p.starts_with(&format!("{f}/"))))
        .expect("the demo has empty folders");
    let top = empty.split('/').next().unwrap();
    // And a file where a folder holding files should be, elsewhere.
    let holder = files
        .iter()
        .filter_map(|p| p.rsplit_once('/').map(|(d, _)| d))
        .find(|d| !d.starts_with(&format!("{top}/")) && *d != top && !d.contains('/'))
        .expect("a top folder holding files directly");
    std::fs::create_dir(&dest).unwrap();
    let in_the_way =
        std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    for blocked in [top, holder] {
        std::fs::write(dest.join(blocked), b"in the way").unwrap();
        std::fs::File::options()
            .write(true)
            .open(dest.join(blocked))
            .unwrap()
            .set_modified(in_the_way)
            .unwrap();
    }

    let (out, report) = restore(&dump, &dest, &[], &[]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    let failed: Vec<&str> = report["folders_failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(failed.contains(&empty), "{failed:?}\n{msg}");
    assert!(
        msg.contains("Folders that could not be created") && msg.contains(empty),
        "{msg}"
    );
    let blocked_files = files
        .iter()
        .filter(|p| p.starts_with(&format!("{top}/")))
        .count();
    assert!(report["outcomes"]["failed"].as_u64().unwrap() >= blocked_files as u64);
    assert_eq!(outcome_sum(&report), dump.manifest.files);
    // Each failure names the file in the way, not the folder below it that it blocks
    // (round 15: "Music/Adele: a file of that name is in the way" where no file was named
    // Adele, the blocker `Music` only among "... and 20 more").
    let blocker = dest.join(top).display().to_string();
    let empty_why = report["folders_failed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == empty)
        .map(|f| f["error"].as_str().unwrap().to_string())
        .unwrap();
    assert!(
        empty_why.contains(&format!("{blocker} is a file, not a folder")),
        "{empty_why}"
    );
    let file_whys: Vec<&str> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["outcome"] == "failed" && p["path"].as_str().unwrap().starts_with(&format!("{top}/"))
        })
        .map(|p| p["reason"].as_str().unwrap())
        .collect();
    assert!(!file_whys.is_empty(), "{msg}");
    for why in file_whys {
        assert!(
            why.contains(&format!("{blocker} is a file, not a folder")),
            "{why}"
        );
    }
    for blocked in [top, holder] {
        let kept = std::fs::metadata(dest.join(blocked)).unwrap();
        assert_eq!(
            kept.modified().unwrap(),
            in_the_way,
            "{blocked} keeps its date"
        );
    }

    // Out of the way: the next run makes the folders and the files.
    std::fs::remove_file(dest.join(top)).unwrap();
    std::fs::remove_file(dest.join(holder)).unwrap();
    let (out, report) = restore(&dump, &dest, &[], &[]);
    assert_eq!(
        report["folders_failed"].as_array().unwrap().len(),
        0,
        "{}",
        text(&out)
    );
    assert!(dest.join(empty).is_dir());
}

/// An `--only` typo must not restore nothing and report success: a path that matches no
/// folder and no file is refused before anything is written (with the likely folder
/// named); a file name that matches nothing too (it ended in a warning after a run that
/// made DEST and a checkpoint: see the next test).
#[test]
fn an_only_path_that_matches_nothing_is_refused() {
    let dump = Dump::new(47, 80, 1);
    let dest = dump.path("out");
    let lines = plan_json(&dump.root, &dest, &[]);
    let top = of_type(&lines, "folder")
        .into_iter()
        .map(|l| l["path"].as_str().unwrap())
        .find(|p| !p.contains('/') && p.chars().any(char::is_alphabetic))
        .unwrap()
        .to_string();
    let typo: String = top
        .chars()
        .map(|c| {
            if c.is_uppercase() {
                c.to_ascii_lowercase()
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect();
    for (only, expect) in [
        (typo.clone(), format!("did you mean `{top}`")),
        (
            "No such folder/x".to_string(),
            "there is no folder `No such folder`".to_string(),
        ),
    ] {
        let (out, _) = restore(&dump, &dest, &["--only", &only], &[]);
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(2), "{msg}");
        assert!(msg.contains(&expect), "{msg}");
        assert!(!dest.exists(), "nothing created");
    }
    // Files whose parent is missing are listed under _unlinked/<parent id>/, a folder the
    // plan does not hold: such a path is accepted.
    let unlinked = of_type(&lines, "file")
        .into_iter()
        .map(|l| l["path"].as_str().unwrap())
        .find(|p| p.starts_with("_unlinked/") && !p.starts_with("_unlinked/cycle-"))
        .expect("the demo has files with a missing parent");
    let (parent, _) = unlinked.rsplit_once('/').unwrap();
    let (out, report) = restore(&dump, &dest, &["--only", parent], &[]);
    assert_ne!(out.status.code(), Some(2), "{}", text(&out));
    assert!(report["totals"]["selected_files"].as_u64().unwrap() >= 1);
    std::fs::remove_dir_all(&dest).unwrap();
    std::fs::remove_dir_all(dump.path("state")).unwrap();
    let file = format!("{top}/no such file.jpg");
    let (out, _) = restore(&dump, &dest, &["--only", &file], &[]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains(&format!(
            "there is no folder or file `no such file.jpg` in `{top}`"
        )),
        "{msg}"
    );
    assert!(!dest.exists() && !dump.path("state").exists(), "{msg}");
}

/// Exploratory test: an `--only` path whose folders exist but whose last part names nothing
/// (`zzz`, `Photos/Nope`, `Photo` for `Photos`, `Photos/2019/zzz`) was taken for the name of
/// a file without a look: `restore` made DEST (and the folders above the path), a state
/// folder with a checkpoint and a report, restored nothing and exited 0 ("selected no
/// file"), where `Nope/x` or `photos` were refused. Now the last part is looked up too (the
/// files of its folder, named as the plan names them): every command taking `--only`
/// refuses it, exit 2, before anything is written, naming the close names where there are
/// some; a path to an existing file (in a folder, at the top, renamed with a suffix) or
/// folder still selects it.
#[test]
fn an_only_path_whose_last_part_matches_nothing_is_refused_before_anything_is_written() {
    let dump = Dump::new(62, 200, 1);
    let dest = dump.path("out");
    let state = dump.path("state");
    let xdg = dump.path("xdg");
    let lines = plan_json(&dump.root, &dest, &[]);
    let paths: Vec<&str> = lines.iter().filter_map(|l| l["path"].as_str()).collect();
    let restored = |p: &serde_json::Value| {
        let path = p["path"].as_str().unwrap();
        p["skip"].is_null() && !path.starts_with("_unlinked/") && !path.starts_with("Trash/")
    };
    let folder = of_type(&lines, "folder")
        .iter()
        .filter(|l| restored(l))
        .map(|l| l["path"].as_str().unwrap())
        .find(|p| {
            p.matches('/').count() == 1 && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '/')
        })
        .expect("a folder in a top folder")
        .to_string();
    let (top, _) = folder.split_once('/').unwrap();
    let prefix = &top[..top.len() - 1];
    assert!(
        !paths.iter().any(|p| p.split('/').next() == Some(prefix)),
        "`{prefix}` names nothing at the top"
    );
    let files: Vec<&str> = of_type(&lines, "file")
        .iter()
        .filter(|l| restored(l))
        .map(|l| l["path"].as_str().unwrap())
        .collect();
    let in_folder = files
        .iter()
        .find(|p| p.starts_with(&format!("{folder}/")) && p.matches('/').count() == 2)
        .expect("a file in the folder");
    let at_top = files
        .iter()
        .find(|p| !p.contains('/'))
        .expect("the demo has a file at the top");
    let suffixed = of_type(&lines, "file")
        .into_iter()
        .filter(|l| restored(l))
        .find(|l| !l["renamed_from"].is_null() && l["path"].as_str().unwrap().contains(" (2)"))
        .and_then(|l| l["path"].as_str())
        .expect("the demo has two files of one name in one folder");

    let refused = [
        (
            "zzz".to_string(),
            "there is no folder or file `zzz` at the top of the restore; the top folders are",
        ),
        (
            format!("{top}/Nope"),
            "there is no folder or file `Nope` in",
        ),
        (prefix.to_string(), "did you mean"),
        (
            format!("{folder}/zzz"),
            "there is no folder or file `zzz` in",
        ),
        // Round 24: a path through a file said only that the folder "holds no folder".
        (
            format!("{in_folder}/x"),
            &*format!("`{in_folder}` is a file, not a folder"),
        ),
    ];
    let said = |out: &std::process::Output, only: &str, hint: &str| {
        let msg = text(out);
        assert_eq!(out.status.code(), Some(2), "--only {only}: {msg}");
        let matches = format!("--only `{only}` matches nothing in this dump");
        assert!(msg.contains(&matches) && msg.contains(hint), "{msg}");
    };
    for (only, hint) in &refused {
        // The state folder given, and the default one.
        let (out, _) = restore(&dump, &dest, &["--only", only], &[]);
        said(&out, only, hint);
        let out = bin()
            .arg("restore")
            .arg(&dump.root)
            .arg(&dest)
            .args(["--only", only])
            .env("XDG_STATE_HOME", &xdg)
            .output()
            .unwrap();
        said(&out, only, hint);
        let (out, _) = restore(&dump, &dest, &["--only", only, "--dry-run"], &[]);
        said(&out, only, hint);
        assert!(!dest.exists(), "--only {only}: DEST was made");
        assert!(
            !state.exists() && !xdg.exists(),
            "--only {only}: a state folder was made"
        );
    }
    let prefix_msg = text(&restore(&dump, &dest, &["--only", prefix], &[]).0);
    assert!(
        prefix_msg.contains(&format!("did you mean `{top}`")),
        "{prefix_msg}"
    );

    // Existing files and a folder still select what they name.
    for (only, selected) in [
        (*in_folder, Some(1)),
        (*at_top, Some(1)),
        (suffixed, Some(1)),
        (folder.as_str(), None),
    ] {
        let (out, report) = restore(&dump, &dest, &["--only", only], &[]);
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "--only {only}: {}",
            text(&out)
        );
        let n = report["totals"]["selected_files"].as_u64().unwrap();
        match selected {
            Some(want) => assert_eq!(n, want, "--only {only}"),
            None => assert!(n >= 1, "--only {only}"),
        }
        assert!(dest.join(only).exists(), "--only {only}: {}", text(&out));
    }

    // The other commands taking --only refuse the same, and change nothing.
    let before = (tree(&dest), tree(&state), file_hashes(&state));
    for cmd in ["plan", "verify", "regen", "preflight"] {
        for (only, hint) in &refused {
            let mut c = bin();
            c.arg(cmd).arg(&dump.root).arg(&dest).args(["--only", only]);
            if cmd != "plan" && cmd != "preflight" {
                c.arg("--state-dir").arg(&state);
            }
            if cmd == "preflight" {
                c.args(["--budget", "5"]);
            }
            said(&c.output().unwrap(), only, hint);
        }
    }
    assert_eq!((tree(&dest), tree(&state), file_hashes(&state)), before);
}

/// Round 11: `restore --only Documents` said "7 folders and files have a missing parent or
/// sit on a parent cycle; they are restored under _unlinked/" and listed them in the
/// report, while nothing under `_unlinked/` was selected or made (the plan's structure
/// problems and renamed folders were reported whatever the selection, and those of
/// files left out as the stream passed them). Only what the run restores is reported.
#[test]
fn an_only_run_reports_no_unlinked_rows_it_did_not_restore() {
    let dump = Dump::new(52, 300, 1);
    let dest = dump.path("out");
    let plan = plan_json(&dump.root, &dest, &[]);
    let files = planned_files(&plan);
    assert!(
        files.keys().any(|p| p.starts_with("_unlinked/")),
        "the demo has rows with a missing parent"
    );
    let top = files
        .keys()
        .filter_map(|p| p.split_once('/').map(|(t, _)| t))
        .find(|t| !t.starts_with('_'))
        .expect("a top folder")
        .to_string();
    let (out, report) = restore(&dump, &dest, &["--only", &top], &[]);
    let summary = text(&out);
    assert!(!dest.join("_unlinked").exists(), "{summary}");
    assert!(!summary.contains("_unlinked"), "{summary}");
    let listed = report["structure_problems"].as_array().unwrap();
    assert!(
        listed.iter().all(|p| p["restored_path"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{top}/"))),
        "{listed:?}"
    );
    // Without --only they are restored and reported.
    let (out, report) = restore(&dump, &dest, &[], &[]);
    assert!(
        text(&out).contains("restored under _unlinked/"),
        "{}",
        text(&out)
    );
    assert!(!report["structure_problems"].as_array().unwrap().is_empty());
    assert!(dest.join("_unlinked").is_dir());
}

/// Review A5: `restore --only Trash` without --include-trash selected 0 files, exited 0,
/// warned about case-sensitive paths and made an empty `Trash/` on DEST; `plan` gave no
/// hint, and the refusal of another --only listed `Trash` among the top folders. Now both
/// refuse it before writing (exit 2) and say Trash needs --include-trash; with it, the
/// Trash is restored.
#[test]
fn only_trash_without_include_trash_is_refused_and_makes_no_trash_folder() {
    let dump = Dump::new(47, 80, 1);
    let dest = dump.path("out");
    let trash = plan_json(&dump.root, &dest, &["--include-trash"])
        .into_iter()
        .filter(|l| l["type"] == "file" && l["skip"].is_null())
        .filter_map(|l| l["path"].as_str().map(str::to_string))
        .find(|p| p.starts_with("Trash/"))
        .expect("the demo has files in its Trash");
    let (parent, _) = trash.rsplit_once('/').unwrap();
    for only in ["Trash", "Trash/", parent, trash.as_str()] {
        let (out, _) = restore(&dump, &dest, &["--only", only], &[]);
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(2), "{only}: {msg}");
        assert!(msg.contains("restored only with --include-trash"), "{msg}");
        assert!(!dest.exists(), "nothing created: {only}");
        let out = bin()
            .arg("plan")
            .arg(&dump.root)
            .arg(&dest)
            .args(["--only", only, "--summary"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "plan {only}: {}", text(&out));
        assert!(
            text(&out).contains("restored only with --include-trash"),
            "{}",
            text(&out)
        );
    }
    let (out, _) = restore(&dump, &dest, &["--only", "No such folder/x"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(!text(&out).contains("Trash"), "{}", text(&out));

    let (out, report) = restore(&dump, &dest, &["--only", "Trash", "--include-trash"], &[]);
    assert_ne!(out.status.code(), Some(2), "{}", text(&out));
    assert!(report["totals"]["selected_files"].as_u64().unwrap() >= 1);
    assert!(dest.join("Trash").is_dir(), "{}", text(&out));
}

/// An object longer or shorter than the database says is restored as found, with a note.
/// Found again on the destination (a crash before the checkpoint's commit, `--fresh`), our
/// own copy is identical, not a conflict nor a "cut-short copy"; and the note stays in the
/// report of every later run, which does not look at the file again.
#[test]
fn objects_of_another_length_than_the_database_says_are_adopted_again_with_their_note() {
    let dump = Dump::new(48, 60, 1);
    let picked: Vec<(String, i64)> = dump
        .content_ids()
        .into_iter()
        .filter_map(|(id, (cid, size))| {
            (size > 100 && cid.as_deref().and_then(|c| dump.object(c)).is_some())
                .then_some((id, size))
        })
        .take(2)
        .collect();
    assert_eq!(picked.len(), 2);
    let conn = rusqlite::Connection::open(dump.db()).unwrap();
    // The database says 50 bytes more than the first object has, 50 less than the second.
    conn.execute(
        "UPDATE Files SET size = size + 50 WHERE id = ?1",
        [&picked[0].0],
    )
    .unwrap();
    conn.execute(
        "UPDATE Files SET size = size - 50 WHERE id = ?1",
        [&picked[1].0],
    )
    .unwrap();
    drop(conn);
    let ids: Vec<&str> = picked.iter().map(|(id, _)| id.as_str()).collect();
    let notes_for = |report: &serde_json::Value| -> Vec<(String, String)> {
        report["notes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| ids.contains(&n["id"].as_str().unwrap()))
            .map(|n| {
                (
                    n["outcome"].as_str().unwrap().to_string(),
                    n["reason"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };

    let dest = dump.path("out");
    let (out, first) = restore(&dump, &dest, &[], &[]);
    let notes = notes_for(&first);
    assert_eq!(notes.len(), 2, "{}", text(&out));
    assert!(notes
        .iter()
        .all(|(o, r)| o == "copied" && r.contains("the database says")));

    // A resume: nothing to do for them, and their notes are still in the report.
    let (out, resumed) = restore(&dump, &dest, &[], &[]);
    let notes = notes_for(&resumed);
    assert_eq!(notes.len(), 2, "{}", text(&out));
    assert!(notes.iter().all(|(o, _)| o == "already_done"), "{notes:?}");

    // Start over: the copies on the destination are found identical to their objects.
    let (out, fresh) = restore(&dump, &dest, &["--fresh"], &[]);
    let msg = text(&out);
    assert_eq!(fresh["outcomes"]["failed"], 0, "{msg}");
    let notes = notes_for(&fresh);
    assert_eq!(notes.len(), 2, "{msg}");
    assert!(
        notes
            .iter()
            .all(|(o, r)| o == "adopted" && r.contains("kept as found")),
        "{notes:?}"
    );
    assert!(!msg.contains("cut-short"), "{msg}");

    // Once each, however many runs recorded them; and only for files this run looked at.
    let (out, again) = restore(&dump, &dest, &[], &[]);
    assert_eq!(notes_for(&again).len(), 2, "{}", text(&out));
    let noted: Vec<String> = again["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["path"].as_str().unwrap().to_string())
        .collect();
    let lines = plan_json(&dump.root, &dest, &[]);
    let other = of_type(&lines, "folder")
        .into_iter()
        .map(|l| l["path"].as_str().unwrap().to_string())
        .find(|f| !f.contains('/') && !noted.iter().any(|p| p.starts_with(&format!("{f}/"))))
        .expect("a top folder without the noted files");
    let (out, elsewhere) = restore(&dump, &dest, &["--only", &other], &[]);
    assert_eq!(notes_for(&elsewhere).len(), 0, "{}", text(&out));
}

/// A file with no plausible date in any `--mtime-from` field keeps the time of the restore:
/// counted in the totals and said in the summary and the plan, not silently.
#[test]
fn files_without_a_plausible_date_are_counted_and_said() {
    let dump = Dump::new(49, 40, 1);
    let id = dump
        .content_ids()
        .into_iter()
        .find(|(_, (cid, _))| cid.as_deref().and_then(|c| dump.object(c)).is_some())
        .unwrap()
        .0;
    let conn = rusqlite::Connection::open(dump.db()).unwrap();
    // Junk the device stores: 0, seconds instead of milliseconds, far future.
    conn.execute(
        "UPDATE Files SET imageDate = 0, videoDate = NULL, cTime = 1500000000,
             birthTime = 99999999999999 WHERE id = ?1",
        [&id],
    )
    .unwrap();
    drop(conn);
    let dest = dump.path("out");
    let plan = bin()
        .arg("plan")
        .arg(&dump.root)
        .arg(&dest)
        .arg("--summary")
        .output()
        .unwrap();
    assert!(
        text(&plan).contains("1 without a plausible date"),
        "{}",
        text(&plan)
    );
    let before = std::time::SystemTime::now();
    let (out, report) = restore(&dump, &dest, &[], &[]);
    let msg = text(&out);
    assert_eq!(report["totals"]["undated_files"], 1, "{msg}");
    assert!(msg.contains("1 file has no plausible date"), "{msg}");
    let lines = plan_json(&dump.root, &dest, &[]);
    let file = of_type(&lines, "file")
        .into_iter()
        .find(|l| l["id"] == id.as_str())
        .unwrap()
        .clone();
    assert!(file["mtime_ms"].is_null());
    let restored = std::fs::metadata(dest.join(file["path"].as_str().unwrap())).unwrap();
    assert!(restored.modified().unwrap() >= before - std::time::Duration::from_secs(2));
}

/// A name stored as bytes that are not UTF-8 is restored with U+FFFD in their place, and
/// listed as renamed, showing the stored bytes escaped (`\xE9`).
#[test]
fn names_that_are_not_utf8_are_listed_as_renamed_with_their_bytes() {
    let dump = Dump::new(50, 40, 1);
    {
        let conn = rusqlite::Connection::open(dump.db()).unwrap();
        let file: String = conn
            .query_row(
                "SELECT id FROM Files WHERE mimeType <> 'application/x.wd.dir'
                 AND contentID IS NOT NULL ORDER BY autoID LIMIT 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        // A folder below the top (the user's own root is not restored under a name).
        let folder: String = conn
            .query_row(
                "SELECT f.id FROM Files f JOIN Files p ON f.parentID = p.id
                 WHERE f.mimeType = 'application/x.wd.dir' AND p.parentID IS NOT NULL
                 ORDER BY f.autoID LIMIT 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        conn.execute(
            "UPDATE Files SET name = CAST(X'436166E92E6A7067' AS TEXT) WHERE id = ?1",
            [&file],
        )
        .unwrap();
        conn.execute(
            "UPDATE Files SET name = CAST(X'4EE9' AS TEXT) WHERE id = ?1",
            [&folder],
        )
        .unwrap();
    }
    let dest = dump.path("out");
    let (out, report) = restore(&dump, &dest, &[], &[]);
    let msg = text(&out);
    let renamed = report["renamed"].as_array().unwrap();
    let file = renamed
        .iter()
        .find(|r| r["original"].as_str().unwrap().ends_with("Caf\\xE9.jpg"))
        .unwrap_or_else(|| panic!("{renamed:?}\n{msg}"));
    let restored = file["restored"].as_str().unwrap();
    assert!(restored.ends_with("Caf\u{FFFD}.jpg"), "{restored}");
    assert!(dest.join(restored).is_file());
    assert!(
        renamed
            .iter()
            .any(|r| r["original"].as_str().unwrap().ends_with("N\\xE9")
                && r["restored"].as_str().unwrap().ends_with("N\u{FFFD}")),
        "{renamed:?}"
    );
}

/// A `size` stored as text, a real, a negative or an impossible number stopped every
/// command ("Invalid column type Text at index: 4, name: size", an "integer overflow" in
/// inspect's SUM) or wrapped the plan's total. Now a real is rounded, what is not a byte
/// count counts as 0 and is reported naming the row and the stored value, and the restore
/// copies each object whole.
#[test]
fn odd_stored_sizes_are_reported_per_row_and_stop_nothing() {
    let dump = Dump::new(51, 60, 1);
    let picked: Vec<(String, String, i64)> = dump
        .content_ids()
        .into_iter()
        .filter_map(|(id, (cid, size))| {
            let cid = cid.filter(|c| dump.object(c).is_some())?;
            Some((id, cid, size))
        })
        .take(8)
        .collect();
    assert_eq!(picked.len(), 8);
    // (stored value as SQL, what the report shows; None: usable, rounded to 4)
    let odd: [(&str, Option<&str>); 8] = [
        ("''", Some("\"\"")),
        ("'abc'", Some("\"abc\"")),
        ("3.5", None),
        ("9e19", Some("90000000000000000000")),
        ("9223372036854775807", Some("9223372036854775807")),
        ("9223372036854775807", Some("9223372036854775807")),
        ("9223372036854775807", Some("9223372036854775807")),
        ("-5", Some("-5")),
    ];
    let conn = rusqlite::Connection::open(dump.db()).unwrap();
    for ((id, _, _), (sql, _)) in picked.iter().zip(&odd) {
        conn.execute(
            &format!("UPDATE Files SET size = {sql} WHERE id = ?1"),
            [id],
        )
        .unwrap();
    }
    drop(conn);
    let before = SourceSnapshot::take(&dump);
    let expected_bytes = dump.manifest.bytes - picked.iter().map(|p| p.2 as u64).sum::<u64>() + 4;
    let unusable: BTreeMap<String, String> = picked
        .iter()
        .zip(&odd)
        .filter_map(|((id, _, _), (_, shown))| Some((id.clone(), (*shown)?.to_string())))
        .collect();
    let size_problems = |problems: Vec<&serde_json::Value>| -> BTreeMap<String, String> {
        problems
            .into_iter()
            .filter(|p| p["kind"]["kind"] == "unusable_size")
            .map(|p| {
                (
                    p["id"].as_str().unwrap().to_string(),
                    p["kind"]["stored"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };

    let out = bin()
        .arg("inspect")
        .arg(&dump.root)
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["counts"]["bytes"], expected_bytes);
    assert_eq!(v["counts"]["files"], dump.manifest.files);
    let found = size_problems(v["structure_problems"].as_array().unwrap().iter().collect());
    assert_eq!(found, unusable);
    let human = bin().arg("inspect").arg(&dump.root).output().unwrap();
    assert!(
        text(&human).contains(&format!("{} \"", picked[0].0))
            && text(&human).contains("(\"\") is not a byte count"),
        "{}",
        text(&human)
    );

    let dest = dump.path("out");
    let lines = plan_json(&dump.root, &dest, &[]);
    let problems: Vec<&serde_json::Value> = of_type(&lines, "problem")
        .into_iter()
        .map(|l| &l["problem"])
        .collect();
    assert_eq!(size_problems(problems), unusable);
    let files = of_type(&lines, "file");
    let selected: u64 = files
        .iter()
        .filter(|f| f["skip"].is_null())
        .map(|f| f["size"].as_u64().unwrap())
        .sum();
    let summary = &of_type(&lines, "summary")[0]["totals"];
    assert_eq!(summary["selected_bytes"], selected);
    assert!(selected <= expected_bytes);

    let (out, report) = restore(&dump, &dest, &[], &[]);
    let msg = text(&out);
    // The demo dump has objects missing on purpose: exit 1, not 2.
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert_eq!(report["outcomes"]["failed"], 0, "{msg}");
    assert_eq!(
        size_problems(
            report["structure_problems"]
                .as_array()
                .unwrap()
                .iter()
                .collect()
        ),
        unusable
    );
    assert!(msg.contains("not a byte count"), "{msg}");
    let mut restored = 0;
    for (id, cid, _) in &picked {
        let f = files.iter().find(|f| f["id"] == id.as_str()).unwrap();
        if !f["skip"].is_null() {
            continue;
        }
        restored += 1;
        let path = dest.join(f["path"].as_str().unwrap());
        assert_eq!(
            hash_file(&path),
            hash_file(&dump.object(cid).unwrap()),
            "{id}"
        );
        if unusable.contains_key(id) {
            let note = report["notes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["id"] == id.as_str())
                .unwrap_or_else(|| panic!("no note for {id}: {msg}"));
            let reason = note["reason"].as_str().unwrap();
            assert!(
                reason.contains(&format!("({}) is not a byte count", unusable[id])),
                "{reason}"
            );
        }
    }
    assert!(restored > 0);
    let status = bin()
        .arg("status")
        .arg("--state-dir")
        .arg(dump.path("state"))
        .arg("--json")
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", text(&status));
    let st: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(st["bytes_done"].as_u64().unwrap() <= expected_bytes, "{st}");
    assert_eq!(SourceSnapshot::take(&dump), before);
}

/// A demo dump whose `index.db-wal` is random bytes (SQLite cannot use it): every command
/// says so in a note on stderr (`Index::wal_note`).
fn dump_with_an_unusable_write_ahead_log(seed: u64, files: u64) -> Dump {
    let dump = Dump::new(seed, files, 1);
    let garbage: Vec<u8> = (0..20_000u64)
        .map(|i| xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes()) as u8)
        .collect();
    std::fs::write(dump.root.join("restsdk/data/db/index.db-wal"), garbage).unwrap();
    dump
}

/// Review of round 20: a warning known at start-up was said three times in a restore's
/// output: as found ("warning: ..."), again in the start line ("WARNING: ..."), and in the
/// summary (the few-objects and full-DEST warnings; the others twice, in the start line
/// and the summary). Now each is said once before the first file (stderr, with the
/// progress) and listed once in the summary (stdout), and once in the report.
#[test]
fn start_up_warnings_are_said_once_and_listed_once_in_the_summary_regression_round_20() {
    let dump = dump_with_an_unusable_write_ahead_log(61, 40);
    // Few objects: one of the files' objects is left, the others (and the demo's stray
    // objects) removed.
    let kept = dump
        .content_ids()
        .into_values()
        .find_map(|(cid, _)| dump.object(cid.as_deref()?))
        .expect("an object");
    for p in walk_files(&dump.root.join("restsdk/data/files")) {
        if p != kept {
            std::fs::remove_file(p).unwrap();
        }
    }
    let before = SourceSnapshot::take(&dump);
    let dest = dump.path("restored");
    let (out, report) = restore(&dump, &dest, &[], &[]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "missing objects: {}",
        text(&out)
    );
    let warnings = [
        "sampled contentIDs have an object under",
        "has a write-ahead log",
    ];
    for w in warnings {
        assert_eq!(stderr.matches(w).count(), 1, "said once: {w}\n{stderr}");
        assert_eq!(stdout.matches(w).count(), 1, "listed once: {w}\n{stdout}");
        assert_eq!(
            (report["warnings"].as_array().unwrap().iter())
                .filter(|r| r.as_str().unwrap().contains(w))
                .count(),
            1,
            "{report}"
        );
        // Said as a warning, before the line that starts the copy.
        let lines: Vec<&str> = stderr.lines().collect();
        let said = lines.iter().position(|l| l.contains(w)).unwrap();
        let start = lines.iter().position(|l| l.starts_with("restoring "));
        assert!(lines[said].starts_with("warning: "), "{stderr}");
        assert!(start.is_some_and(|s| said < s), "{stderr}");
    }
    assert_eq!(SourceSnapshot::take(&dump), before);
}

/// A `-wal` file of random bytes was reported as holding changes "read from a private
/// copy", though SQLite ignored it and folded in nothing. Now the plan says the log could
/// not be used and its changes, if any, are not in the restore; the source is unchanged.
#[test]
fn a_write_ahead_log_sqlite_cannot_use_is_said_not_folded_in() {
    let dump = dump_with_an_unusable_write_ahead_log(52, 40);
    let wal = dump.root.join("restsdk/data/db/index.db-wal");
    let garbage = std::fs::read(&wal).unwrap();
    let before = SourceSnapshot::take(&dump);
    let tmp = dump.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let out = bin()
        .arg("plan")
        .arg(&dump.root)
        .arg(dump.path("out"))
        .arg("--summary")
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    let msg = text(&out);
    assert!(out.status.success(), "{msg}");
    assert!(
        msg.contains("index.db-wal") && msg.contains("could not use"),
        "{msg}"
    );
    assert!(
        msg.contains("the log's changes, if it held any, are not in this plan or restore"),
        "{msg}"
    );
    assert!(!msg.contains("they were read from a private copy"), "{msg}");
    assert!(
        msg.contains(&format!("Plan: {} files", dump.manifest.files)),
        "{msg}"
    );
    assert_eq!(SourceSnapshot::take(&dump), before);
    assert_eq!(std::fs::read(&wal).unwrap(), garbage);
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "copy removed");
}

/// Review of round 20: `plan`, `verify` and `regen` said their notes with `eprintln!`, which
/// panics when stderr cannot be written: with its reader gone (`|& head`, `2> >(...)`) or
/// on a full disk, the command ended with exit 101 before its output. The notes are now
/// said as `restore` says its lines (`commands::print_err`): the command does its job.
/// (A stderr closed with `2>&-` is not such a case: Rust opens /dev/null in its place.)
#[test]
fn notes_on_a_stderr_that_cannot_be_written_do_not_stop_a_command_regression_round_20() {
    let dump = dump_with_an_unusable_write_ahead_log(62, 40);
    let dest = dump.path("restored");
    let (out, _) = restore(&dump, &dest, &[], &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "missing objects: {}",
        text(&out)
    );
    assert!(
        text(&out).contains("has a write-ahead log"),
        "{}",
        text(&out)
    );
    let state = dump.path("state");
    let before = SourceSnapshot::take(&dump);
    let commands: [(&[&str], i32, &str); 3] = [
        (&["plan", "--summary"], 0, "Plan: 40 files"),
        // Exit 1 for the demo's files without an object.
        (&["verify"], 1, " 0 differ,"),
        (&["regen"], 0, "Regenerated the checkpoint"),
    ];
    for (args, code, said) in commands {
        let command = || {
            let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("mycloud-recover"));
            c.args(args)
                .arg(&dump.root)
                .arg(&dest)
                .arg("--state-dir")
                .arg(&state)
                .stdout(std::process::Stdio::piped());
            c
        };
        // A full disk.
        let full = command()
            .stderr(
                std::fs::File::options()
                    .write(true)
                    .open("/dev/full")
                    .unwrap(),
            )
            .output()
            .unwrap();
        // A pipe whose reader is gone: the command starts (`sh` waits for a line on its
        // input, then runs it) only once this end of its stderr is closed.
        let mut c = std::process::Command::new("sh");
        c.arg("-c")
            .arg(r#"read _ && exec "$@""#)
            .arg("sh")
            .arg(command().get_program())
            .args(command().get_args())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        drop(child.stderr.take());
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"go\n").unwrap();
        let gone = child.wait_with_output().unwrap();
        for (how, out) in [("full", full), ("reader gone", gone)] {
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert_eq!(
                out.status.code(),
                Some(code),
                "{args:?}, stderr {how}: {stdout}"
            );
            assert!(stdout.contains(said), "{args:?}, stderr {how}: {stdout}");
        }
    }
    assert_eq!(SourceSnapshot::take(&dump), before);
}

/// A source this user may not read was misdiagnosed: an unreadable `index.db` gave SQLite's
/// "unable to open database file ... Error code 14", and an unreadable object folder failed
/// every file one by one ("Permission denied", exit 1) while `inspect` blamed the layout.
/// Both now stop at the start with exit 2, naming the file or folder and suggesting sudo.
/// Run as an unprivileged user (see `unprivileged`): root would read them anyway.
#[test]
fn an_unreadable_database_or_object_folder_stops_early_and_suggests_sudo() {
    use std::os::unix::fs::PermissionsExt;
    let dump = Dump::new(53, 30, 1);
    let Some(run) = unprivileged(&dump) else {
        return;
    };
    let chmod = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    let before = SourceSnapshot::take(&dump);
    let dest = dump.path("out");
    let inspect = || run().arg("inspect").arg(&dump.root).output().unwrap();
    // All readable: the user can read the dump, so what follows fails for the permission.
    let o = inspect();
    assert!(o.status.success(), "{}", text(&o));

    chmod(&dump.db(), 0o000);
    for o in [
        inspect(),
        run()
            .arg("plan")
            .arg(&dump.root)
            .arg(&dest)
            .output()
            .unwrap(),
    ] {
        let msg = text(&o);
        assert_eq!(o.status.code(), Some(2), "{msg}");
        assert!(
            msg.contains("permission denied")
                && msg.contains(&dump.db().display().to_string())
                && msg.contains("sudo"),
            "{msg}"
        );
        assert!(!msg.contains("unable to open"), "{msg}");
    }
    chmod(&dump.db(), 0o644);

    let files = dump.root.join("restsdk/data/files");
    chmod(&files, 0o700);
    let restore = run()
        .arg("restore")
        .arg(&dump.root)
        .arg(&dest)
        .arg("--state-dir")
        .arg(dump.path("state"))
        .output()
        .unwrap();
    for o in [inspect(), restore] {
        let msg = text(&o);
        assert_eq!(o.status.code(), Some(2), "{msg}");
        assert!(
            msg.contains("permission denied")
                && msg.contains("object folder")
                && msg.contains(&files.display().to_string())
                && msg.contains("sudo"),
            "{msg}"
        );
        assert!(!msg.contains("layout may differ"), "{msg}");
    }
    assert!(!dest.exists());
    chmod(&files, 0o755);

    // One shard folder closed: inspect's sample names it rather than blaming the layout.
    let shard = dump
        .content_ids()
        .values()
        .filter_map(|(cid, _)| dump.object(cid.as_deref()?))
        .filter_map(|o| o.parent().map(Path::to_path_buf))
        .find(|p| *p != files)
        .unwrap();
    chmod(&shard, 0o700);
    let o = inspect();
    let msg = text(&o);
    assert_eq!(o.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains(&shard.display().to_string()) && msg.contains("sudo"),
        "{msg}"
    );
    chmod(&shard, 0o755);

    // Objects closed to this user in folders it may enter (kept for root): none readable
    // stops the restore before it writes anything; a few is a warning naming one. Each had
    // failed one by one.
    let objects: Vec<std::path::PathBuf> = dump
        .content_ids()
        .values()
        .filter_map(|(cid, _)| dump.object(cid.as_deref()?))
        .collect();
    for o in &objects {
        chmod(o, 0o000);
    }
    // A DEST and a state folder this user may write to.
    let (dest, state) = (dump.path("out2"), dump.path("state2"));
    for d in [&dest, &state] {
        std::fs::create_dir(d).unwrap();
        chmod(d, 0o777);
    }
    let restore = || {
        run()
            .arg("restore")
            .arg(&dump.root)
            .arg(&dest)
            .arg("--state-dir")
            .arg(&state)
            .output()
            .unwrap()
    };
    let o = restore();
    let msg = text(&o);
    assert_eq!(o.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains("cannot read objects such as") && msg.contains("sudo"),
        "{msg}"
    );
    assert_eq!(
        std::fs::read_dir(&dest).unwrap().count(),
        0,
        "nothing written"
    );
    for o in objects.iter().skip(2) {
        chmod(o, 0o644);
    }
    for o in [inspect(), restore()] {
        assert!(
            text(&o).contains("2 of ") && text(&o).contains("cannot be read by this user"),
            "{}",
            text(&o)
        );
    }
    for o in &objects {
        chmod(o, 0o644);
    }
    assert_eq!(SourceSnapshot::take(&dump), before);
}

/// A zero-byte `index.db` said "no `Files` table; this does not look like ..." without
/// suggesting the device's backup copy (other damage does), and an `index.db` that is a
/// folder was reported as not found. Now: "empty", with the backup copy named (or where to
/// look for one), and "a folder, not a database file"; exit 2, the source unchanged.
#[test]
fn an_empty_index_suggests_the_backup_copy_and_a_folder_is_named_a_folder() {
    let dump = Dump::new(54, 30, 1);
    let data = dump.root.join("restsdk/data");
    let backup = data.join("dbBackup/index.db");
    std::fs::create_dir_all(backup.parent().unwrap()).unwrap();
    std::fs::copy(dump.db(), &backup).unwrap();
    std::fs::write(dump.db(), b"").unwrap();
    let before = SourceSnapshot::take(&dump);
    let run = |cmd: &str, extra: &[&Path]| {
        let mut c = bin();
        c.arg(cmd).arg(&dump.root);
        if cmd == "plan" {
            c.arg(dump.path("out"));
        }
        let o = c.args(extra).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        text(&o)
    };
    for cmd in ["inspect", "plan"] {
        let msg = run(cmd, &[]);
        assert!(
            msg.contains("is empty (0 bytes)")
                && msg.contains("Try the backup copy: --db")
                && msg.contains(&backup.display().to_string()),
            "{msg}"
        );
    }
    assert_eq!(SourceSnapshot::take(&dump), before);
    std::fs::remove_dir_all(backup.parent().unwrap()).unwrap();
    let msg = run("inspect", &[]);
    assert!(
        msg.contains("is empty") && msg.contains("Look for restsdk/data/dbBackup/index.db"),
        "{msg}"
    );

    // The database's name taken by a folder, found or given with --db.
    std::fs::remove_file(dump.db()).unwrap();
    std::fs::create_dir(dump.db()).unwrap();
    let msg = run("inspect", &[]);
    assert!(
        msg.contains(&format!(
            "{} is a folder, not a database file",
            dump.db().display()
        )),
        "{msg}"
    );
    assert!(!msg.contains("no My Cloud index database found"), "{msg}");
    let msg = run("plan", &[Path::new("--db"), &data.join("db")]);
    assert!(msg.contains("is a folder, not a database file"), "{msg}");
}

/// Round 11: a DEST whose name is not UTF-8 (a folder named in Latin-1 on an old NAS), with
/// a newline and spaces, made every command that records its command line panic (exit
/// 101), and once past that the report could not be written ("path contains invalid UTF-8
/// characters", exit 2, nothing copied). Now it is restored like any other folder, and its
/// report and `status --json` give the path with the odd bytes replaced.
#[test]
fn a_destination_named_with_bytes_that_are_not_utf8_is_restored() {
    use std::os::unix::ffi::OsStrExt;
    let dump = Dump::new(111, 80, 1);
    let dest = dump
        .path("restored")
        .with_file_name(std::ffi::OsStr::from_bytes(b"caf\xe9 backup\nnew"));
    let (out, report) = restore(&dump, &dest, &[], &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the demo's missing objects only: {}",
        text(&out)
    );
    assert_eq!(report["outcomes"]["failed"], 0, "{}", text(&out));
    assert!(
        report["dest"]
            .as_str()
            .unwrap()
            .ends_with("caf\u{fffd} backup\nnew"),
        "{}",
        report["dest"]
    );
    assert_restored_exactly(&dump, &dest);
    let out = bin()
        .arg("status")
        .arg(&dump.root)
        .arg(&dest)
        .arg("--state-dir")
        .arg(dump.path("state"))
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let (out, report) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(report["outcomes"]["copied"], 0, "a resume: {}", text(&out));
    // Round 12: the commands `verify` prints name this DEST exactly when pasted into a
    // shell (they showed it with a replacement character: another folder).
    let plan = planned_files(&plan_json(&dump.root, &dest, &[]));
    let changed = plan
        .keys()
        .find(|p| plan[*p].1 > 0 && dest.join(p).is_file())
        .unwrap();
    std::fs::write(dest.join(changed), b"other").unwrap();
    let out = bin()
        .arg("verify")
        .arg(&dump.root)
        .arg(&dest)
        .arg("--state-dir")
        .arg(dump.path("state"))
        .output()
        .unwrap();
    let said = text(&out);
    let words = said
        .lines()
        .find_map(|l| l.trim().strip_prefix("mycloud-recover regen "))
        .unwrap_or_else(|| panic!("no regen command in {said}"));
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("printf '%s\\0' {words}"))
        .output()
        .unwrap();
    let args: Vec<&[u8]> = out.stdout.split(|b| *b == 0).collect();
    assert_eq!(
        args[..4],
        [
            dump.root.as_os_str().as_bytes(),
            dest.as_os_str().as_bytes(),
            b"--state-dir",
            dump.path("state").as_os_str().as_bytes()
        ],
        "{words}"
    );
}

/// Round 11: a destination out of inodes (room for files) with bytes to spare, as a small
/// ext4 made with few or a tmpfs with `nr_inodes` is, stopped with "free at least 0 B
/// more": nothing to free by that account. The message now says it is out of room for
/// files, and a resume after more room is made finishes the restore.
#[test]
fn a_destination_out_of_inodes_says_so_instead_of_asking_for_0_bytes() {
    let dump = Dump::new(112, 400, 1);
    let Some(small) = SmallDisk::mount_with(&dump, "size=256m,nr_inodes=150") else {
        return;
    };
    let dest = small.path.join("restored");
    let (out, report) = restore(&dump, &dest, &[], &[]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    let full = report["dest_full"].as_str().unwrap_or_default();
    assert!(
        full.contains("room for only") && full.contains("inodes") && !full.contains("0 B more"),
        "{msg}"
    );
    assert!(small.remount("nr_inodes=5000"));
    let report = the_same_command_finishes(&dump, &dest, &[], &[]);
    assert!(report["dest_full"].is_null(), "{report}");
}

/// Round 11: a destination remounted read-only during the run (Linux does so after a disk
/// error) failed every file left, one by one, each listed (a million lines overnight), and
/// the run "finished". It now stops at the first such file like a destination unmounted,
/// says what happened and what to do, and the next run, with the disk writable again,
/// finishes the restore.
#[test]
fn a_destination_turning_read_only_mid_run_stops_the_run() {
    let dump = Dump::new(113, 1500, 1);
    let Some(small) = SmallDisk::mount(&dump, "256m") else {
        return;
    };
    let dest = small.path.join("restored");
    let state = dump.path("state");
    let child = spawn_restore(&dump, &dest, &state, &["--threads", "2"], "delay_ms=10");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // Refused while a file is open for writing: tried until it lands between two files.
    let started = std::time::Instant::now();
    while !small.remount("ro") {
        assert!(
            started.elapsed().as_secs() < 30,
            "could not remount read-only"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(small.remount("rw"));
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    let report = report_in(&state);
    assert!(
        report["dest_lost"]
            .as_str()
            .is_some_and(|m| m.contains("became read-only") && m.contains("read-write again")),
        "{msg}"
    );
    // Round 13: the files the read-only DEST refused are not processed, not failed (one
    // per worker at most failed before).
    assert_eq!(report["outcomes"]["failed"], 0, "{msg}");
    assert!(report["not_processed"].as_u64().unwrap() > 0, "{msg}");
    // Said as what happened, in the headline and by `status` (round 15: "the destination
    // changed ... Mount the destination again").
    assert!(
        msg.contains("Restore stopped: the destination became read-only"),
        "{msg}"
    );
    let said = text(
        &bin()
            .arg("status")
            .arg("--state-dir")
            .arg(&state)
            .output()
            .unwrap(),
    );
    assert!(
        said.contains("stopped: the destination became read-only")
            && said.contains("Mount the destination read-write again"),
        "{said}"
    );
    let (out, report) = restore(&dump, &dest, &[], &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the demo's missing objects: {}",
        text(&out)
    );
    assert_eq!(report["outcomes"]["failed"], 0, "{}", text(&out));
    assert_restored_exactly(&dump, &dest);
}

/// A run stopped by a destination turned read-only (or unmounted, or unreachable) counted
/// as copied the files it placed after the checkpoint's last commit, which the checkpoint
/// never recorded: the summary said "copied 1,181" where `status` said 764, with nothing
/// saying why. The summary and the report now say how many of the copies were recorded
/// and how many were placed after the last commit (the next run checks them), and `status`
/// counts exactly those recorded. A real ext4 on a loop device, remounted read-only.
#[test]
fn a_stop_for_a_read_only_destination_says_which_copies_the_checkpoint_does_not_record() {
    let dump = Dump::new(117, 1500, 1);
    let Some(disk) = Ext4Disk::mount(&dump, "256M") else {
        return;
    };
    let dest = disk.path.join("restored");
    let state = dump.path("state");
    let child = spawn_restore(&dump, &dest, &state, &["--threads", "2"], "delay_ms=10");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    // Refused while a file is open for writing: tried until it lands between two files.
    let started = std::time::Instant::now();
    while !disk.remount("ro") {
        assert!(
            started.elapsed().as_secs() < 30,
            "could not remount read-only"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(disk.remount("rw"));
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains("Restore stopped: the destination became read-only"),
        "{msg}"
    );
    let report = report_in(&state);
    let copied = report["outcomes"]["copied"].as_u64().unwrap();
    let unrecorded = report["not_recorded"]["copied"].as_u64().unwrap();
    assert!(unrecorded > 0 && unrecorded <= copied, "{report}");
    assert_eq!(report["not_recorded"]["adopted"], 0, "{report}");
    let count = mycloud_recover::report::count;
    let said = format!(
        "({} recorded in the checkpoint, {} placed after its last commit and not recorded: the next run checks them)",
        count(copied - unrecorded),
        count(unrecorded)
    );
    let copied_line = msg.lines().find(|l| l.trim_start().starts_with("copied "));
    assert!(
        copied_line.is_some_and(|l| l.contains(&count(copied)) && l.ends_with(&said)),
        "{said}\n{msg}"
    );
    // Each file still one outcome: the counts add up to the file rows.
    assert_eq!(
        outcome_sum(&report) + report["not_processed"].as_u64().unwrap(),
        report["totals"]["files"].as_u64().unwrap(),
        "{report}"
    );
    // `status` counts what the checkpoint recorded, as the summary says.
    let status = status_json(&state);
    assert_eq!(
        status["counts"]["copied"].as_u64().unwrap_or(0),
        copied - unrecorded,
        "{status}"
    );
    // The next run finds the unrecorded ones there and restores the rest.
    the_same_command_finishes(&dump, &dest, &[], &[]);
}

/// Many files of a failing disk that fail with I/O errors while the disk still answers
/// (bad sectors) are reported one by one and the run goes on: the stop for a disk that
/// stopped answering asks the disks first. Stopping there would stop every later run at
/// the same files, and the good files after them would never be restored.
#[test]
fn bad_sectors_on_a_disk_that_still_answers_do_not_stop_the_run() {
    let dump = Dump::new(115, 60, 1);
    let bad: Vec<String> = dump
        .content_ids()
        .values()
        .filter_map(|(cid, _)| cid.clone().filter(|c| dump.object(c).is_some()))
        .take(40)
        .collect();
    assert_eq!(bad.len(), 40);
    let mut faults = String::from("backoff_ms=0");
    for c in &bad {
        faults.push_str(&format!(";bad_sector={c}"));
    }
    let (out, rep) = restore(
        &dump,
        &dump.path("out"),
        &["--threads", "2"],
        &[("MYCLOUD_RECOVER_FAULTS", &faults)],
    );
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(rep["stalled"].is_null(), "{msg}");
    // Those of them selected (some are in the Trash).
    assert!(rep["outcomes"]["failed"].as_u64().unwrap() >= 30, "{msg}");
    assert_eq!(rep["not_processed"], 0, "{msg}");
    assert!(!msg.contains("stopped answering"), "{msg}");
}

/// Round 13: a source disk dying with I/O errors (every read EIO, the filesystem still
/// mounted: an old USB disk failing), not "not connected". Each file's read was retried
/// for 5 s, and the failures reached the bookkeeping per chunk of up to 32 files, so a
/// loop-disk trial stopped 105-115 s after the disk died with 79-88 files listed as
/// failed. Files meeting such errors now make the run probe the disk (an uncached read of
/// the database): gone, the run stops within seconds, and the files met meanwhile are not
/// processed (the next run restores them), not failed. The disk is a real ext4 on a loop
/// device that starts failing every read (`DyingDisk`).
#[test]
fn a_source_disk_failing_with_io_errors_stops_soon_and_fails_no_file() {
    source_disk_failing_with_io_errors(false);
}

/// The same with the database copied elsewhere (`--db`): the probe reads an object the run
/// read before from the disk, not only the database (which still answers).
#[test]
fn a_source_disk_failing_with_io_errors_is_found_with_its_database_elsewhere() {
    source_disk_failing_with_io_errors(true);
}

fn source_disk_failing_with_io_errors(db_elsewhere: bool) {
    let dump = Dump::new(116, 1500, 1);
    let Some(mut disk) = DyingDisk::with_copy_of(&dump) else {
        return;
    };
    let dest = dump.path("restored");
    let state = dump.path("state");
    let source = disk.mnt.clone();
    let db = dump.db();
    let run = |faults: &str| {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("mycloud-recover"));
        c.arg("restore")
            .arg(&source)
            .arg(&dest)
            .arg("--state-dir")
            .arg(&state)
            .args(["--threads", "2"]);
        if db_elsewhere {
            c.arg("--db").arg(&db);
        }
        c.env("MYCLOUD_RECOVER_FAULTS", faults)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let child = run("delay_ms=10");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while tree(&dest).values().filter(|(dir, _, _)| !dir).count() < 50 {
        assert!(std::time::Instant::now() < until, "no files were restored");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    disk.fail();
    let failed_at = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    let took = failed_at.elapsed();
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    let report = report_in(&state);
    // What was read: the object store's disk, the database's or not.
    let read = if db_elsewhere {
        "/restsdk/data/files/"
    } else {
        "/restsdk/data/db/index.db"
    };
    assert!(
        report["stalled"].as_str().is_some_and(|m| m
            .contains("the source disk does not answer: reading")
            && m.contains(read)
            && m.contains("Input/output error")
            && m.contains("run the same command")),
        "{msg}"
    );
    assert!(msg.contains("stopped: a disk stopped answering"), "{msg}");
    assert_eq!(report["outcomes"]["failed"], 0, "{msg}");
    assert!(report["not_processed"].as_u64().unwrap() > 500, "{msg}");
    assert!(
        took.as_secs() < 30,
        "stopped {took:?} after the disk died: {msg}"
    );
    // The disk attached again: the next run restores the rest.
    disk.revive();
    let out = run("").wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "the demo's missing objects: {}",
        text(&out)
    );
    assert_restored_exactly(&dump, &dest);
}

/// Round 11: the source disk going away mid-run (a USB disk unplugged, its FUSE driver
/// dead) failed every file left, each listed: at once when the error says the disk is gone
/// ("Transport endpoint is not connected"), after 5 s of retries each when it is an I/O
/// error (1.7 files/s: days for a real disk's files). The run now stops once files failing
/// that way outnumber those restored by 16, says to attach the disk again, and the next run
/// restores the rest. The source here is a FUSE mount (`bindfs`) whose daemon is killed.
#[test]
fn a_source_disk_that_stops_answering_mid_run_stops_the_run() {
    let dump = Dump::new(114, 1500, 1);
    let src = dump.path("source");
    std::fs::create_dir_all(&src).unwrap();
    let mut bindfs = std::process::Command::new("bindfs");
    bindfs.arg("-f").arg(&dump.root).arg(&src);
    let Some(mut daemon) = serve_in_the_foreground(bindfs, &src, || src.join("restsdk").exists())
    else {
        return;
    };
    let dest = dump.path("restored");
    let state = dump.path("state");
    let run = || {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("mycloud-recover"));
        c.arg("restore")
            .arg(&src)
            .arg(&dest)
            .arg("--state-dir")
            .arg(&state)
            .args(["--threads", "2"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c
    };
    let child = run()
        .env("MYCLOUD_RECOVER_FAULTS", "delay_ms=10")
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let out = kill_the_daemon(&mut daemon, child, &src);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    let report = report_in(&state);
    assert!(
        report["stalled"]
            .as_str()
            .is_some_and(|m| m.contains("does not answer") && m.contains("run the same command")),
        "{msg}"
    );
    assert!(msg.contains("stopped: a disk stopped answering"), "{msg}");
    let failed = report["outcomes"]["failed"].as_u64().unwrap();
    assert!(failed < 100, "{failed} files failed: {msg}");
    assert!(report["not_processed"].as_u64().unwrap() > 500, "{msg}");
    // The disk back: the next run restores the rest.
    let Some(_mount) = FuseMount::new(&dump.root, &src) else {
        return;
    };
    let out = run().output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "the demo's missing objects: {}",
        text(&out)
    );
    assert_restored_exactly(&dump, &dest);
}

/// A chain of folders nested deeper than a Linux path (2,100 x `d`: 4,200 bytes below DEST)
/// made every folder past about 2,040 fail ("File name too long"), each listed with its
/// whole path (12 MB of report at 4,000 deep, quadratic in the depth), and the files below
/// them failed. The plan now goes on under `_unlinked/deep-<id>/` from the first folder that
/// cannot fit, reported as a structure problem, and the files are restored.
#[test]
fn a_folder_chain_deeper_than_a_linux_path_is_restored_under_unlinked_regression_round_13() {
    let dump = Dump::new(52, 30, 1);
    let (file, name) = {
        let conn = rusqlite::Connection::open(dump.db()).unwrap();
        let (file, parent, name): (String, String, String) = conn
            .query_row(
                "SELECT f.id, f.parentID, f.name FROM Files f JOIN Files p ON f.parentID = p.id
                 WHERE f.mimeType <> 'application/x.wd.dir' AND f.contentID IS NOT NULL
                 AND p.parentID IS NOT NULL ORDER BY f.autoID LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        conn.execute_batch(&format!(
            "CREATE TEMP TABLE t AS SELECT * FROM Files WHERE id = '{parent}';
             UPDATE t SET contentID = NULL, name = 'd';"
        ))
        .unwrap();
        let mut above = parent;
        for i in 0..2100 {
            let id = format!("deep{i:020}");
            conn.execute(
                "UPDATE t SET id = ?1, parentID = ?2, autoID = NULL",
                [&id, &above],
            )
            .unwrap();
            conn.execute("INSERT INTO Files SELECT * FROM t", [])
                .unwrap();
            above = id;
        }
        conn.execute(
            "UPDATE Files SET parentID = ?1 WHERE id = ?2",
            [&above, &file],
        )
        .unwrap();
        (file, name)
    };
    let dest = dump.path("out");
    let (out, report) = restore(&dump, &dest, &[], &[]);
    let msg = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the demo's missing objects: {msg}"
    );
    // Only the few folders that fit below `/` but not below this DEST's own path fail (one
    // per two bytes of it), each said so; the files below them are restored.
    let failed = report["folders_failed"].as_array().unwrap();
    assert!(failed.len() <= dest.as_os_str().len() / 2 + 2, "{msg}");
    assert!(
        failed
            .iter()
            .all(|f| f["error"].as_str().unwrap().contains("File name too long")),
        "{msg}"
    );
    let problems = report["problems"].as_array().unwrap();
    assert!(problems.iter().all(|p| p["id"] != file), "{problems:?}");
    let deep: Vec<&serde_json::Value> = report["structure_problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"]["kind"] == "too_deep")
        .collect();
    assert_eq!(deep.len(), 1, "{deep:?}");
    let top = deep[0]["restored_path"].as_str().unwrap();
    assert!(top.starts_with("_unlinked/deep-deep0"), "{top}");
    assert!(msg.contains("too deep for a Linux path"), "{msg}");
    let plan = plan_json(&dump.root, &dest, &[]);
    let path = of_type(&plan, "file")
        .into_iter()
        .find(|f| f["id"] == file.as_str())
        .unwrap()["path"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        path.starts_with(top) && path.ends_with(&format!("/d/{name}")),
        "{path}"
    );
    assert!(dest.join(&path).is_file(), "{path}");
}

/// `status --json` of the state folder `state`.
fn status_json(state: &Path) -> serde_json::Value {
    let out = bin()
        .arg("status")
        .arg("--state-dir")
        .arg(state)
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `regen` given another device's dump (or the wrong DEST) finds more files at planned paths
/// that differ from the plan than match it: it refuses, changing nothing, instead of marking
/// the user's files to be replaced by the next restore (which replaces marked files even
/// without --overwrite). The restore that follows keeps them, as it keeps any file it did not
/// write, and does not take the refused regen for a crash.
#[test]
fn regen_of_another_source_is_refused_rather_than_marking_files_to_replace_regression_round_15() {
    let dump = Dump::new(1, 2000, 1);
    let other = Dump::new(3, 2000, 1);
    let dest = dump.path("restored");
    let (out, _) = restore(&dump, &dest, &["--quiet"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let before = file_hashes(&dest);
    let state = dump.path("state-other");
    let out = bin()
        .arg("regen")
        .arg(&other.root)
        .arg(&dest)
        .arg("--state-dir")
        .arg(&state)
        .output()
        .unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("does not look like a restore of")
            && said.contains("Nothing was changed")
            && said.contains("--overwrite"),
        "{said}"
    );
    // Nor a state folder (a_refused_first_regen_leaves_no_state_folder_regression_round_20).
    assert!(!state.exists(), "{:?}", tree(&state).into_keys());
    // Over a damaged checkpoint, which regen replaces before it looks (it cannot be read),
    // the refusal does not claim that nothing changed (the review of round 15's diff).
    let damaged = dump.path("state-damaged");
    std::fs::create_dir(&damaged).unwrap();
    std::fs::write(damaged.join("checkpoint.db"), vec![b'x'; 8192]).unwrap();
    let out = bin()
        .arg("regen")
        .arg(&other.root)
        .arg(&dest)
        .arg("--state-dir")
        .arg(&damaged)
        .output()
        .unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("the damaged checkpoint, which could not be read, was already replaced")
            && !said.contains("Nothing was changed"),
        "{said}"
    );
    let (out, rep) = restore(
        &other,
        &dest,
        &["--quiet", "--state-dir", state.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(rep["phases"]["temp_cleanup"].is_null(), "no crash: {rep}");
    let after = file_hashes(&dest);
    for (path, hash) in &before {
        assert_eq!(after.get(path), Some(hash), "{path} was kept");
    }
}

/// Review of round 20: `regen` refused because more files at their planned paths would be
/// replaced than match the plan ("does not look like a restore of ... Nothing was
/// changed"), where there was no checkpoint, left a new state folder holding `lock` and the
/// checkpoint its rolled-back rebuild had opened: `status SOURCE DEST` then said "no file
/// restored yet" (exit 0) instead of that there is no checkpoint (exit 2). The checkpoint it
/// created goes, and the state folder with the folders above it that it made, as for a
/// refused first restore: neither one given with `--state-dir` nor the default one under
/// `$XDG_STATE_HOME` is left. A folder that was there keeps only its `lock`, as then. And
/// a checkpoint that was there gets no run added (one was, though it said "Nothing was
/// changed"), refused so or as another restore's.
#[test]
fn a_refused_first_regen_leaves_no_state_folder_regression_round_20() {
    let dump = Dump::new(3, 300, 1);
    let dest = dump.path("restored");
    let state = dump.path("state");
    let (out, _) = restore(&dump, &dest, &["--quiet"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // Another device's files at most planned paths: another size, or other bytes.
    for (path, (is_dir, size, _)) in tree(&dest) {
        if !is_dir {
            std::fs::write(dest.join(&path), vec![b'x'; size as usize + 1]).unwrap();
        }
    }
    let xdg = dump.path("xdg");
    let given = dump.path("states/first/state");
    let existing = dump.path("existing");
    std::fs::create_dir(&existing).unwrap();
    let run = |cmd: &str, state_dir: Option<&Path>| {
        let mut c = bin();
        c.arg(cmd).arg(&dump.root).arg(&dest);
        if let Some(s) = state_dir {
            c.arg("--state-dir").arg(s);
        }
        c.env("XDG_STATE_HOME", &xdg).output().unwrap()
    };
    let refused = |state_dir: Option<&Path>, says: &str| {
        let out = run("regen", state_dir);
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(2), "{state_dir:?}: {msg}");
        assert!(
            msg.contains(says) && msg.contains("Nothing was changed"),
            "{state_dir:?}: {msg}"
        );
    };
    let replaced = "does not look like a restore of";
    for state_dir in [Some(given.as_path()), None] {
        refused(state_dir, replaced);
        let out = run("status", state_dir);
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(2), "{state_dir:?}: {msg}");
        assert!(msg.contains("no checkpoint in"), "{state_dir:?}: {msg}");
    }
    for root in [dump.path("states"), xdg.clone()] {
        assert!(!root.exists(), "{:?}", tree(&root).into_keys());
    }
    refused(Some(&existing), replaced);
    assert_eq!(tree(&existing).into_keys().collect::<Vec<_>>(), ["lock"]);
    // A checkpoint that was there: kept, no run added, whether it is this restore's or
    // another's (another database).
    let runs = recorded_runs(&state);
    refused(Some(&state), replaced);
    assert_eq!(recorded_runs(&state), runs, "no run was added");
    let other = Dump::new(4, 60, 1);
    let out = bin()
        .arg("regen")
        .arg(&other.root)
        .arg(&dest)
        .arg("--state-dir")
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("belongs to another restore"),
        "{}",
        text(&out)
    );
    assert_eq!(recorded_runs(&state), runs, "no run was added");
}

/// The refusal above is not for a copy that kept no dates (`cp -r` of a restore, say): files
/// with the planned size under another date are compared with their objects by the restore
/// before anything is replaced, so they count with the matching ones, and regen marks them
/// to be dated (round 15: the first rule refused it, every file "differing").
#[test]
fn regen_over_a_copy_that_kept_no_dates_marks_them_to_be_dated() {
    let dump = Dump::new(4, 150, 1);
    let dest = dump.path("restored");
    let (out, _) = restore(&dump, &dest, &["--quiet"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let files: Vec<String> = tree(&dest)
        .into_iter()
        .filter(|(_, (is_dir, _, _))| !is_dir)
        .map(|(p, _)| p)
        .collect();
    let now = std::time::SystemTime::now();
    for f in &files {
        std::fs::File::options()
            .write(true)
            .open(dest.join(f))
            .unwrap()
            .set_modified(now)
            .unwrap();
    }
    let state = dump.path("state-new");
    let out = bin()
        .arg("regen")
        .arg(&dump.root)
        .arg(&dest)
        .arg("--state-dir")
        .arg(&state)
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rep: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rep["adopted"], 0, "{rep}");
    let differs = rep["differs"].as_array().unwrap().len();
    assert!(differs > 100, "{rep}");
    let (out, rep) = restore(
        &dump,
        &dest,
        &["--quiet", "--state-dir", state.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(rep["bytes_copied"], 0, "dated, not copied: {rep}");
    bin()
        .arg("verify")
        .arg(&dump.root)
        .arg(&dest)
        .arg("--state-dir")
        .arg(&state)
        .assert()
        .code(1)
        .stdout(predicate::str::contains(" 0 differ,"));
}

/// regen rebuilds the checkpoint in one transaction: while it runs, `status` reads the
/// records as they were (it read 0% and "a restore is running"), and a regen killed on the
/// way leaves them all (it left the checkpoint emptied, and the next restore copied
/// everything again).
#[test]
fn a_killed_regen_leaves_the_checkpoint_as_it_was_regression_round_15() {
    let dump = Dump::new(58, 200, 1);
    let dest = dump.path("restored");
    let (out, first) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let state = dump.path("state");
    let done = status_json(&state)["files_done"].clone();
    assert_eq!(done, first["outcomes"]["copied"]);
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("mycloud-recover"))
        .arg("regen")
        .arg(&dump.root)
        .arg(&dest)
        .arg("--state-dir")
        .arg(&state)
        .env("MYCLOUD_RECOVER_FAULTS", "regen_delay_ms=40")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let during = status_json(&state);
    assert!(child.try_wait().unwrap().is_none(), "regen still runs");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(during["files_done"], done, "while regen runs: {during}");
    let after = status_json(&state);
    assert_eq!(after["files_done"], done, "after regen was killed: {after}");
    let (out, rep) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(rep["outcomes"]["copied"], 0, "{rep}");
    assert_eq!(rep["outcomes"]["already_done"], done, "{rep}");
}

/// Round 16: a regen killed with kill -9 left its scratch file `regen-paths.tmp` in the
/// state folder (removed only on the way out). The scratch file now has no name, so
/// nothing is left; one an older regen left is removed by the next.
#[test]
fn a_killed_regen_leaves_no_scratch_file_regression_round_16() {
    let dump = Dump::new(66, 200, 1);
    let dest = dump.path("restored");
    let (out, _) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let state = dump.path("state");
    let names = || -> BTreeSet<String> {
        std::fs::read_dir(&state)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with("checkpoint.db"))
            .collect()
    };
    let before = names();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("mycloud-recover"))
        .arg("regen")
        .arg(&dump.root)
        .arg(&dest)
        .arg("--state-dir")
        .arg(&state)
        .env("MYCLOUD_RECOVER_FAULTS", "regen_delay_ms=40")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert!(child.try_wait().unwrap().is_none(), "regen still runs");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(names(), before, "the state folder after a killed regen");
    // A scratch file an older regen left behind is removed by the next one.
    std::fs::write(state.join("regen-paths.tmp"), b"Photos/a.jpg").unwrap();
    let out = regen(&dump, &dest, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(names(), before, "the state folder after a regen");
}

/// A regen over part of the selection (`--only`, or without the `--include-trash` the
/// restore had) replaces only the records of the files it looks at: the others' stay (it
/// erased them, and `status` fell from 99.8% to 6.8%).
#[test]
fn a_narrowed_regen_keeps_the_records_of_the_files_it_leaves_out_regression_round_15() {
    let dump = Dump::new(1, 2000, 1);
    let dest = dump.path("restored");
    let (out, first) = restore(&dump, &dest, &["--include-trash", "--quiet"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let state = dump.path("state");
    let done = |st: &serde_json::Value| {
        st["files_done"].as_u64().unwrap() + st["files_done_left_out"].as_u64().unwrap()
    };
    let all = done(&status_json(&state));
    assert_eq!(all, first["outcomes"]["copied"].as_u64().unwrap());
    let out = regen(&dump, &dest, &["--only", "Documents", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(r["adopted"].as_u64().unwrap() > 0, "{r}");
    assert!(
        r["unknown"].as_array().unwrap().is_empty(),
        "files outside the selection are not 'not in the plan': {r}"
    );
    assert_eq!(done(&status_json(&state)), all, "after regen --only");
    let out = regen(&dump, &dest, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let st = status_json(&state);
    assert_eq!(done(&st), all, "after regen without --include-trash: {st}");
    assert!(st["files_done_left_out"].as_u64().unwrap() > 0, "{st}");
    let (out, rep) = restore(&dump, &dest, &["--include-trash", "--quiet"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(rep["outcomes"]["copied"], 0, "{rep}");
}

/// A file `regen --content` found with other bytes stays marked through a plain regen,
/// which compares it with its object (it adopted it again by size and date).
#[test]
fn a_plain_regen_keeps_a_file_regen_content_found_with_other_bytes_regression_round_15() {
    let dump = Dump::new(59, 150, 1);
    let dest = dump.path("restored");
    let (out, _) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let (bad, _) = planned_files(&plan_json(&dump.root, &dest, &[]))
        .into_iter()
        .find(|(p, (_, size, ms))| *size > 200 && ms.is_some() && dest.join(p).is_file())
        .unwrap();
    flip_a_byte_keeping_the_date(&dest.join(&bad));
    for extra in [&["--content", "--json"][..], &["--json"][..]] {
        let out = regen(&dump, &dest, extra);
        assert!(out.status.success(), "{}", text(&out));
        let said: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            said["differs"][0][0],
            bad.as_str(),
            "regen {extra:?}: {said}"
        );
    }
    let (out, rep) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(rep["outcomes"]["copied"], 1, "{rep}");
    assert_restored_exactly(&dump, &dest);
}

/// A file where a folder of planned files goes makes regen list those files as in the way,
/// naming the file, not as absent "will be copied" (the restore fails them).
#[test]
fn regen_names_a_file_in_the_way_of_a_folder_regression_round_15() {
    let dump = Dump::new(1, 2000, 1);
    let dest = dump.path("restored");
    let (out, _) = restore(&dump, &dest, &["--quiet"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let below: Vec<String> = planned_files(&plan_json(&dump.root, &dest, &[]))
        .into_keys()
        .filter(|p| p.starts_with("Documents/Recipes/"))
        .collect();
    assert!(!below.is_empty());
    std::fs::remove_dir_all(dest.join("Documents/Recipes")).unwrap();
    std::fs::write(dest.join("Documents/Recipes"), b"hi\n").unwrap();
    let out = regen(&dump, &dest, &["--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let in_the_way: BTreeMap<&str, &str> = r["in_the_way"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap(), p[1].as_str().unwrap()))
        .collect();
    for p in &below {
        let why = in_the_way
            .get(p.as_str())
            .unwrap_or_else(|| panic!("{p}: {r}"));
        assert!(why.contains("a file stands at Documents/Recipes"), "{why}");
    }
    assert!(
        !r["absent"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().starts_with("Documents/Recipes/")),
        "{r}"
    );
}

/// After a regen that built a checkpoint from scratch, `status` says how many of the
/// selected files are done ("N of M"), as after a restore (it printed no total).
#[test]
fn status_after_a_regen_from_scratch_counts_the_selected_files_regression_round_15() {
    let dump = Dump::new(60, 120, 1);
    let dest = dump.path("restored");
    let (out, first) = restore(&dump, &dest, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let state = dump.path("state-new");
    let out = bin()
        .arg("regen")
        .arg(&dump.root)
        .arg(&dest)
        .arg("--state-dir")
        .arg(&state)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let st = status_json(&state);
    assert_eq!(
        st["selected_files"], first["totals"]["selected_files"],
        "{st}"
    );
    assert_eq!(st["files_done"], first["outcomes"]["copied"], "{st}");
}

/// A planned file below a folder regen cannot read (not listed, or not even searchable) is
/// not promised as "will be copied": regen could not see whether it is there, and the
/// restore would meet the same folder. Run as an unprivileged user (root reads anything).
#[test]
fn regen_does_not_promise_files_below_a_folder_it_cannot_read_regression_round_15() {
    use std::os::unix::fs::PermissionsExt;
    let dump = Dump::new(1, 2000, 1);
    let dest = dump.path("restored");
    let (out, _) = restore(&dump, &dest, &["--quiet"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let planned = planned_files(&plan_json(&dump.root, &dest, &[]));
    let below = |folder: &str| -> Vec<String> {
        planned
            .keys()
            .filter(|p| p.starts_with(&format!("{folder}/")) && dest.join(p).is_file())
            .cloned()
            .collect()
    };
    // Listed but not searchable; searchable but not listed, one of its files deleted.
    let (closed, unlisted) = ("Documents/Recipes", "Documents/House");
    let closed_files = below(closed);
    let deleted = below(unlisted).pop().expect("a file to delete");
    assert!(!closed_files.is_empty());
    std::fs::remove_file(dest.join(&deleted)).unwrap();
    let Some(run) = unprivileged(&dump) else {
        return;
    };
    let chmod = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    chmod(&dest.join(closed), 0o700);
    chmod(&dest.join(unlisted), 0o711);
    let state = dump.path("state-unprivileged");
    std::fs::create_dir(&state).unwrap();
    chmod(&state, 0o777);
    let out = run()
        .arg("regen")
        .arg(&dump.root)
        .arg(&dest)
        .arg("--state-dir")
        .arg(&state)
        .arg("--json")
        .output()
        .unwrap();
    chmod(&dest.join(closed), 0o755);
    chmod(&dest.join(unlisted), 0o755);
    assert!(out.status.success(), "{}", text(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let not_looked_at: BTreeSet<&str> = r["not_looked_at"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"))
        .iter()
        .map(|p| p[0].as_str().unwrap())
        .collect();
    for p in closed_files.iter().chain([&deleted]) {
        assert!(not_looked_at.contains(p.as_str()), "{p}: {r}");
    }
    assert!(
        !r["absent"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().starts_with("Documents/")),
        "{r}"
    );
}
