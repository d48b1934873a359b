//! Work that reads SOURCE or DEST outside the copy, made on a thread of its own and watched.
//!
//! Why: a share whose server hangs (a NAS gone from the network, an NFS hard mount) or a
//! disk that stops answering holds calls rather than failing them, and nothing in this
//! process can end such a call ([`crate::held`]). The copy watches its calls; what comes
//! before and beside it did not: `restore`'s checks of SOURCE and DEST (round 22), `plan`,
//! `inspect`, `preflight`'s reads of the source, `verify`'s and `regen`'s walks of DEST
//! (round 23). On a hung share each of them hung for good without a word.
//!
//! One mechanism for all of them ([`watched`]): the work runs on a thread of its own
//! ([`crate::held::Call`]); not back within `NO_ANSWER` (15 s), each disk it reads is asked, on
//! a thread of its own with that limit, for a name never asked for
//! (`look_up_a_new_name`: a share's cache cannot answer it, its server must).
//! - DEST silent, or the checkpoint folder given with `--state-dir` (it may be on a share of
//!   its own): the command stops at once, as the copy does.
//! - The source silent: waited for up to the patience (`SOURCE_PATIENCE`, the
//!   faults' `source_patience_ms`; a failing disk retrying a bad sector answers nothing for
//!   minutes, then goes on), said once a probe, then stopped.
//! - Both answering: the work is only slow. A step that should take seconds (the checks
//!   before a restore) says so; work whose length is the work (a walk of DEST, a listing
//!   read by a pager) is waited for without a word.
//!
//! A stop is [`super::HeldBeforeWriting`]: what the command says, naming the disk, its
//! mount point and what to do; the thread in its call is left behind (the process may stay
//! a zombie until the call returns, said with what ends it).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{look_up_a_new_name, span, HeldBeforeWriting, NO_ANSWER, SOURCE_PATIENCE};
use crate::config::RestoreConfig;
use crate::restore::copy::Faults;

/// What is watched, and how its stop is said ([`watched`]).
#[derive(Clone)]
pub struct Watch {
    /// The command, as the messages name it ("the restore", "`verify`").
    command: String,
    /// When the work runs, for the stop's text: "before the restore began", "while `plan`
    /// ran".
    when: String,
    /// Every folder of the source the work reads: SOURCE, and the database's and the
    /// objects' folders where given apart (`--db`, `--files`, which may be on disks of
    /// their own). The first silent one is what a wait or a stop names.
    source_paths: Vec<PathBuf>,
    /// The disks whose silence stops the work at once, as the messages name them: DEST where
    /// the work reads it, the checkpoint folder where given (`--state-dir`, which may be on
    /// a share of its own).
    stop_at_once: Vec<(&'static str, PathBuf)>,
    /// What is said every `NO_ANSWER` (15 s) while both disks answer ("checking SOURCE and DEST");
    /// None: nothing (the work's length is the work).
    slow: Option<String>,
    patience: Duration,
    quiet: bool,
}

impl Watch {
    /// Watches work of `command` reading the source `source` (and DEST where `dest`),
    /// stopped as "the source ... did not come back within 15 s {when}". Waited for without a
    /// word while the disks answer ([`Watch::say_slow`] says so instead).
    pub fn new(
        command: &str,
        when: &str,
        source: &crate::cli::SourceArgs,
        dest: Option<&Path>,
    ) -> Watch {
        // A bare file name's folder is the working one.
        let db_folder =
            source
                .db
                .as_deref()
                .and_then(Path::parent)
                .map(|p| match p.as_os_str().is_empty() {
                    true => Path::new("."),
                    false => p,
                });
        let source_paths = [
            Some(source.source.as_path()),
            db_folder,
            source.files_dir.as_deref(),
        ]
        .into_iter()
        .flatten()
        .map(Path::to_path_buf)
        .collect();
        Watch {
            command: command.to_string(),
            when: when.to_string(),
            source_paths,
            stop_at_once: dest
                .map(|d| ("the destination", d.to_path_buf()))
                .into_iter()
                .collect(),
            slow: None,
            patience: Faults::from_env()
                .source_patience_ms
                .map_or(SOURCE_PATIENCE, Duration::from_millis),
            quiet: false,
        }
    }

    /// Says, every `NO_ANSWER` (15 s) while both disks answer, that `doing` ("checking SOURCE and
    /// DEST") is slow and waited for.
    pub fn say_slow(mut self, doing: &str) -> Watch {
        self.slow = Some(doing.to_string());
        self
    }

    /// Watches the checkpoint folder `dir` too, where given (`--state-dir`): silent, it stops
    /// the work at once, as DEST does.
    pub fn state_dir(mut self, dir: Option<&Path>) -> Watch {
        self.stop_at_once
            .extend(dir.map(|d| ("the checkpoint folder", d.to_path_buf())));
        self
    }

    /// Waits for a silent source no longer than `limit` (`preflight`'s budget).
    pub fn patience_at_most(mut self, limit: Duration) -> Watch {
        self.patience = self.patience.min(limit);
        self
    }

    /// Says nothing while it waits (`--quiet`); a stop is still said, by the error.
    pub fn quiet(mut self, quiet: bool) -> Watch {
        self.quiet = quiet;
        self
    }
}

/// Runs `work` on a thread of its own and waits for it as the module says: its result, or
/// [`HeldBeforeWriting`] when a disk it reads does not answer. What `work` uses is owned
/// (it may be left behind in its call).
pub fn watched<T: Send + 'static>(
    w: &Watch,
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let mut call = crate::held::Call::start("mcr-watched", work)
        // The message std's own spawns give: `main` tells the user which limit.
        .expect("failed to spawn thread");
    let say = |what: String| {
        if !w.quiet {
            crate::commands::print_err(&format!("waiting: {what}\n"));
        }
    };
    let answers = |path: &Path| {
        let path = path.to_path_buf();
        crate::held::within("mcr-watch-probe", NO_ANSWER, move || {
            look_up_a_new_name(&path)
        })
        .is_some()
    };
    let began = Instant::now();
    // Since when the source has been found silent: the start of the first probe that found
    // it so, none since finding it answer (not the work's start: a walk may have run for
    // hours before the disk stopped answering).
    let mut silent_since = None;
    // A stop, unless the work came back while the disks were asked (up to `NO_ANSWER`): what
    // it did is then what happened (a `regen` that committed its records has changed them).
    let stop = |call: &mut crate::held::Call<anyhow::Result<T>>, text: String| {
        call.wait(Duration::ZERO)
            .unwrap_or_else(|| Err(HeldBeforeWriting(text).into()))
    };
    let mut wait = NO_ANSWER;
    loop {
        if let Some(done) = call.wait(wait) {
            return done;
        }
        if let Some((what, path)) = w.stop_at_once.iter().find(|(_, p)| !answers(p)) {
            return stop(&mut call, stop_text(w, what, path, None));
        }
        let probed = Instant::now();
        // The first of the source's folders that is silent: named in what is said (the
        // database's folder given with `--db` may be on a share of its own, and `umount -f`
        // of SOURCE's mount would cut off the wrong disk).
        let Some(silent) = w.source_paths.iter().find(|p| !answers(p)) else {
            if let Some(doing) = &w.slow {
                say(format!(
                    "{doing} has taken {} so far; {}, so {} waits for it (a slow link)",
                    span(began.elapsed()),
                    match w.stop_at_once.is_empty() {
                        false => "the disks answer",
                        true => "the source answers",
                    },
                    w.command
                ));
            }
            silent_since = None;
            wait = NO_ANSWER;
            continue;
        };
        let since: Instant = *silent_since.get_or_insert(probed);
        if since.elapsed() >= w.patience {
            let text = stop_text(w, "the source", silent, Some(w.patience));
            return stop(&mut call, text);
        }
        say(format!(
            "the source disk has not answered for {} (looking at {} {}); a failing disk can take minutes on a bad sector: waiting up to {} before stopping (`dmesg` shows the disk's errors)",
            span(since.elapsed()),
            silent.display(),
            w.when,
            span(w.patience)
        ));
        // The probe took `NO_ANSWER` itself.
        wait = Duration::ZERO;
    }
}

/// [`RestoreConfig::new`] for `restore` (and `verify`, `regen`: `command` names it in the
/// messages), watched ([`watched`]).
/// It looks at SOURCE (its layout, that it can be read) and DEST (where it leads, whether
/// it lies inside SOURCE, its filesystem) before anything is said: a DEST share whose
/// server hung held `restore` there for good without a word (round 22: its first
/// `readlink` of DEST), and so did a hung source. The looks should take moments: slow ones
/// are said. The lines go to stderr, unless `--quiet`.
pub fn config_watched(
    command: &str,
    source: &crate::cli::SourceArgs,
    dest: &Path,
    select: &crate::cli::SelectArgs,
    run: &crate::cli::RunArgs,
) -> anyhow::Result<RestoreConfig> {
    let w = Watch::new(
        command,
        &format!("before {command} began"),
        source,
        Some(dest),
    )
    .state_dir(run.state_dir.as_deref())
    .say_slow("checking SOURCE and DEST")
    .quiet(run.quiet);
    let (s, d, sel, r) = (
        source.clone(),
        dest.to_path_buf(),
        select.clone(),
        run.clone(),
    );
    watched(&w, move || RestoreConfig::new(&s, &d, &sel, &r))
}

/// What a command stopped by `what` (the source or the destination) at `path` not
/// answering says ([`watched`]); `patience`: how long a source was waited for.
fn stop_text(w: &Watch, what: &str, path: &Path, patience: Option<Duration>) -> String {
    let end = what_ends_a_held_call(path);
    let waited = match patience {
        Some(p) => format!(
            ", waited up to {} (a failing disk can take minutes on a bad sector)",
            span(p)
        ),
        None => String::new(),
    };
    let check = match patience {
        Some(_) => "Check the source (`dmesg`; for a share, its server and the network) and run the same command once it answers. A source disk that is failing is best copied first (ddrescue), then restored from the copy",
        None => "Check the share (its server, the network; mount it again if it was cut off) and run the same command once it answers",
    };
    format!(
        "{what} {} does not answer: looking at it did not come back within {} s {}{waited} (a share whose server hangs, or a disk that stops answering, holds calls rather than failing them). Nothing was changed. If this program does not end, a call it made there is still waiting: {end}. {check}",
        path.display(),
        NO_ANSWER.as_secs(),
        w.when,
    )
}

/// What ends a call left behind in `path`'s disk, which holds it: the disk answering, or
/// `umount -f` of its mount point, named where it can be found.
pub(crate) fn what_ends_a_held_call(path: &Path) -> String {
    match crate::fsinfo::mount_point_as_named(path) {
        Some(m) => format!(
            "it ends once the disk answers or is detached, or, on a share, `umount -f {}` ends it (and cuts the share off)",
            crate::preflight::model::shell_path(&m)
        ),
        None => "it ends once the disk answers or is detached, or, on a share, once the share is unmounted with `umount -f`".to_string(),
    }
}
