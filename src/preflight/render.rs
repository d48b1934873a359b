//! The human pre-flight report.

use std::fmt::Write;

use super::model::{band, Disk, NameOutcome, MODEL_TEXT};
use super::PreflightReport;
use crate::report::{count, count_decimal, human_bytes};

fn opt_bytes(b: Option<u64>) -> String {
    b.map(human_bytes).unwrap_or_else(|| "unknown".into())
}

fn secs(s: f64) -> String {
    super::model::human_secs(s)
}

fn rate(bytes_per_s: f64) -> String {
    format!("{}/s", human_bytes(bytes_per_s.max(0.0) as u64))
}

fn disk_lines(s: &mut String, d: &Disk) {
    let kind = match d.rotational {
        Some(true) => ", rotational disk",
        Some(false) => ", solid-state or virtual disk",
        None if d.network => ", network filesystem",
        None => "",
    };
    let _ = writeln!(s, "  Filesystem   {}{kind}", d.fs.described());
    if d.network {
        let _ = writeln!(s, "  Options      {}", d.fs.options);
    }
}

/// Renders the report for people.
pub fn human(r: &PreflightReport) -> String {
    let mut s = String::new();
    let m = &r.measurements;
    let w = &r.work;
    let a = &r.advice;
    let _ = writeln!(
        s,
        "Pre-flight: {} -> {}",
        r.source.display(),
        r.dest.display()
    );

    let mc = &m.machine;
    let _ = writeln!(s, "\nMachine");
    let _ = writeln!(
        s,
        "  CPU          {}, {} cores usable ({} online)",
        mc.cpu_model, mc.cores, mc.cpus_online
    );
    let _ = writeln!(
        s,
        "  Memory       {} total, {} available",
        opt_bytes(mc.ram_total),
        opt_bytes(mc.ram_available)
    );
    let lim = |l: Option<u64>| {
        l.map(|v| v.to_string())
            .unwrap_or_else(|| "unlimited".into())
    };
    let _ = writeln!(
        s,
        "  Open files   soft {}, hard {}; restore raises its soft limit to {}",
        lim(mc.fd_soft),
        lim(mc.fd_hard),
        mc.fd_limit_for_restore()
    );
    let _ = writeln!(s, "  System       {}; {}", mc.os, mc.kernel);

    let _ = writeln!(s, "\nSource       {}", r.source.display());
    if let Some(d) = &m.source {
        disk_lines(&mut s, d);
    }
    let _ = writeln!(s, "\nDestination  {}", r.dest.display());
    if let Some(d) = &m.dest {
        disk_lines(&mut s, d);
    }
    if let Some(sp) = &a.space {
        let _ = writeln!(
            s,
            "  Space        {} free{}; about {} needed ({} + block rounding and folders): {}",
            human_bytes(sp.free),
            if sp.roots_reserve > 0 {
                format!(" ({} of it kept for root)", human_bytes(sp.roots_reserve))
            } else {
                String::new()
            },
            human_bytes(sp.needed),
            human_bytes(w.bytes),
            if !sp.fits {
                "DOES NOT FIT"
            } else if sp.in_roots_reserve {
                "fits only in the blocks kept for root"
            } else if sp.tight {
                "fits, but tight (less than 5% + 1 GB to spare)"
            } else {
                "fits"
            }
        );
    }
    if let Some(n) = &m.names {
        let case = match n.case_insensitive {
            Some(true) => "case-insensitive",
            Some(false) => "case-sensitive",
            None => "case handling unknown",
        };
        let mut parts = vec![case.to_string()];
        let rejected: Vec<&str> = n
            .checks
            .iter()
            .filter(|c| matches!(c.outcome, NameOutcome::Rejected { .. }))
            .map(|c| c.what.as_str())
            .collect();
        let altered: Vec<&str> = n
            .checks
            .iter()
            .filter(|c| matches!(c.outcome, NameOutcome::Altered { .. }))
            .map(|c| c.what.as_str())
            .collect();
        if !rejected.is_empty() {
            parts.push(format!("refuses {}", rejected.join(" ")));
        }
        if !altered.is_empty() {
            parts.push(format!("alters {}", altered.join(" ")));
        }
        let tested: Vec<&str> = n
            .checks
            .iter()
            .filter(|c| !matches!(c.outcome, NameOutcome::NotTested { .. }))
            .map(|c| c.what.as_str())
            .collect();
        if rejected.is_empty() && altered.is_empty() && !tested.is_empty() {
            parts.push(format!("accepts every tested name ({})", tested.join(" ")));
        }
        let untested = super::model::untested(n);
        if !untested.is_empty() {
            parts.push(format!("not tested (out of time): {untested}"));
        }
        let _ = writeln!(s, "  Names        {}", parts.join("; "));
    }
    if m.same_filesystem {
        let _ = writeln!(s, "  Same filesystem as the source");
    } else if m.same_disk {
        let _ = writeln!(
            s,
            "  Same physical disk as the source ({}): reads and writes share it",
            m.dest
                .as_ref()
                .and_then(|d| d.physical_disk.as_deref())
                .unwrap_or("?")
        );
    }

    let _ = writeln!(s, "\nThe work (from the database)");
    let _ = writeln!(
        s,
        "  Files        {} ({}) in {} folders{}",
        count(w.files),
        human_bytes(w.bytes),
        count(w.folders),
        if w.filtered_files > 0 {
            format!("; {} more not selected", count(w.filtered_files))
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        s,
        "  Names        {:?} rules ({}): {} and {} get another name",
        w.policy,
        w.policy_reason,
        crate::report::plural(w.renamed_files, "file", "files"),
        crate::report::plural(w.renamed_folders, "folder", "folders")
    );
    let _ = writeln!(s, "  Sizes");
    for b in &w.histogram {
        let _ = writeln!(
            s,
            "    {:<11} {:>10} files  {:>9}",
            b.label,
            count(b.files),
            human_bytes(b.bytes)
        );
    }
    let _ = writeln!(
        s,
        "  Planning     {} (the restore plans the same way)",
        secs(w.plan_secs)
    );
    for n in &w.notes {
        let _ = writeln!(s, "  Note: {n}");
    }

    let _ = writeln!(s, "\nBenchmarks");
    match &m.read {
        Some(rb) => {
            let _ = writeln!(
                s,
                "  Source read  {} streaming, {} overall; {} objects, {}{}",
                rb.stream_bytes_per_s
                    .map(rate)
                    .unwrap_or_else(|| "n/a (small objects)".into()),
                rate(rb.bytes_per_s()),
                count(rb.objects),
                human_bytes(rb.bytes),
                if rb.cache_bypassed {
                    ", cached pages dropped first"
                } else {
                    ", page cache NOT dropped: numbers are optimistic"
                }
            );
            let _ = writeln!(
                s,
                "               open {:.2} ms, first byte {:.2} ms median ({:.2} ms p90)",
                rb.open_ms.median, rb.first_byte_ms.median, rb.first_byte_ms.p90
            );
        }
        None => {
            let _ = writeln!(s, "  Source read  not measured");
        }
    }
    match &m.write {
        Some(wb) => {
            let rounds: Vec<String> = wb.rounds.iter().map(|r| rate(r.bytes_per_s())).collect();
            let bytes: u64 = wb.rounds.iter().map(|r| r.bytes).sum();
            let _ = writeln!(
                s,
                "  Dest write   {} in {} ({} in all, fsync included){}",
                rounds.join(" and "),
                crate::report::plural(wb.rounds.len() as u64, "round", "rounds"),
                human_bytes(bytes),
                if wb.cut_short {
                    "; cut short: out of time"
                } else {
                    ""
                }
            );
        }
        None => {
            let _ = writeln!(s, "  Dest write   not measured");
        }
    }
    if m.scaling.is_empty() {
        let _ = writeln!(s, "  Per-file     not measured");
    } else {
        let _ = writeln!(s, "  Per-file cost on the destination (create, write 4 kB, set dates, rename; then sync):");
        let _ = writeln!(
            s,
            "    {:>7} {:>10} {:>10} {:>8}",
            "threads", "files/s", "lowest", "files"
        );
        for p in &m.scaling {
            let _ = writeln!(
                s,
                "    {:>7} {:>10} {:>10} {:>8}",
                p.threads,
                count_decimal(p.files_per_s, 0),
                count_decimal(p.low_files_per_s, 0),
                count(p.files)
            );
        }
        let few: Vec<String> = (m.scaling.iter())
            .filter(|p| p.few_files)
            .map(|p| format!("{} ({} files)", p.threads, count(p.files)))
            .collect();
        if !few.is_empty() {
            let _ = writeln!(
                s,
                "    too few files to tell the slowest stretch at {} {}: its lowest is its overall rate (a larger --budget measures more)",
                if few.len() == 1 { "level" } else { "levels" },
                few.join(", ")
            );
        }
    }
    for n in &m.notes {
        let _ = writeln!(s, "  Note: {n}");
    }
    if !m.out_of_time.is_empty() {
        let _ = writeln!(
            s,
            "  Left out or cut short to end within --budget {} s (a larger --budget does them all):",
            r.budget_s
        );
        for x in &m.out_of_time {
            let _ = writeln!(s, "    - {x}");
        }
    }

    let _ = writeln!(s, "\nRecommendation");
    let _ = writeln!(s, "  Threads      {}: {}", a.threads, a.threads_reason);
    let _ = writeln!(s, "  Names        {:?}: {}", a.names, a.names_reason);
    let _ = writeln!(s, "  Buffer       {}", a.buffer);
    if !a.blocking.is_empty() {
        let _ = writeln!(s, "  Problems that stop the restore:");
        for b in &a.blocking {
            let _ = writeln!(s, "    - {b}");
        }
    }
    if !a.warnings.is_empty() {
        let _ = writeln!(s, "  Warnings:");
        for x in &a.warnings {
            let _ = writeln!(s, "    - {x}");
        }
    }
    let _ = writeln!(s, "  Command:\n    {}", a.command);

    match &r.estimate {
        Some(e) => {
            let _ = writeln!(
                s,
                "\nEstimated duration: {} with {}",
                band(e),
                crate::report::plural(e.threads as u64, "thread", "threads")
            );
            let _ = writeln!(
                s,
                "  Bytes        {} at {} to {}: {} to {}",
                human_bytes(w.bytes),
                rate(e.bandwidth_best),
                rate(e.bandwidth_worst),
                secs(e.bytes_best_s),
                secs(e.bytes_worst_s)
            );
            let _ = writeln!(
                s,
                "  Items        {} files + {} folders (half weight) at {} to {}/s: {} to {}",
                count(w.files),
                count(w.folders),
                count_decimal(e.items_per_s_best, 0),
                count_decimal(e.items_per_s_worst, 0),
                secs(e.items_best_s),
                secs(e.items_worst_s)
            );
            let _ = writeln!(s, "  Planning     {}", secs(e.plan_s));
            let _ = writeln!(
                s,
                "  Bound by     {}",
                if e.bound == "bandwidth" {
                    "bandwidth: more threads will not make it faster; a faster disk or link would"
                } else {
                    "per-file cost: round trips, not bytes, set the pace"
                }
            );
            let _ = writeln!(s, "{MODEL_TEXT}");
        }
        None => {
            let _ = writeln!(s, "\nEstimated duration: unknown (the benchmarks it needs did not run; see the notes)");
        }
    }
    let verdict = if r.interrupted {
        "interrupted: the numbers above are partial"
    } else if !m.out_of_time.is_empty() && a.blocking.is_empty() {
        "ready to restore (some tests were left out for lack of time: see above)"
    } else if !m.out_of_time.is_empty() {
        "NOT ready: fix the problems above first (some tests were left out for lack of time)"
    } else if a.blocking.is_empty() {
        "ready to restore"
    } else {
        "NOT ready: fix the problems above first"
    };
    let _ = writeln!(
        s,
        "\nPre-flight took {} (budget {} s): {verdict}.",
        secs(r.duration_s),
        r.budget_s
    );
    s
}

/// Replaces every number with `#`, so a report can be compared across machines and runs.
pub fn redact_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            // A grouped count ("1,310,000") is one number; ", " after one is not part of it.
            while chars
                .peek()
                .is_some_and(|n| n.is_ascii_digit() || *n == '.')
                || (chars.peek() == Some(&',')
                    && chars.clone().nth(1).is_some_and(|n| n.is_ascii_digit()))
            {
                chars.next();
            }
            out.push('#');
        } else {
            out.push(c);
        }
    }
    out
}
