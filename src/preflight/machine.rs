//! This computer: CPU, memory, open-file limits, OS and kernel, read from `/proc`,
//! `/etc/os-release` and `uname` (no dependency needed for these few lines).

use std::path::Path;

use super::model::Machine;

/// Describes this machine; fields it cannot read stay empty.
pub fn probe() -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let meminfo = read("/proc/meminfo");
    let lim = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let u = rustix::system::uname();
    let kernel = format!(
        "{} {} ({})",
        u.sysname().to_string_lossy(),
        u.release().to_string_lossy(),
        u.machine().to_string_lossy()
    );
    Machine {
        cpu_model: cpu_model(&cpuinfo),
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        cpus_online: cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count(),
        ram_total: meminfo_bytes(&meminfo, "MemTotal"),
        ram_available: meminfo_bytes(&meminfo, "MemAvailable"),
        fd_soft: lim.current,
        fd_hard: lim.maximum,
        os: os_name(&read("/etc/os-release")),
        kernel,
    }
}

/// The CPU's model name (x86 `model name`, ARM `Hardware` / `Model` / `CPU part`).
pub fn cpu_model(cpuinfo: &str) -> String {
    for key in ["model name", "Hardware", "Model", "cpu model", "cpu"] {
        for line in cpuinfo.lines() {
            if let Some((k, v)) = line.split_once(':') {
                if k.trim() == key && !v.trim().is_empty() {
                    return v.trim().to_string();
                }
            }
        }
    }
    "unknown".into()
}

/// A `/proc/meminfo` field in bytes.
pub fn meminfo_bytes(meminfo: &str, key: &str) -> Option<u64> {
    meminfo.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        if k != key {
            return None;
        }
        let mut parts = v.split_whitespace();
        let n: u64 = parts.next()?.parse().ok()?;
        Some(match parts.next() {
            Some("kB") => n * 1024,
            _ => n,
        })
    })
}

/// `PRETTY_NAME` from os-release.
pub fn os_name(os_release: &str) -> String {
    os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim().trim_matches('"').to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Whether the block device holding `path` spins, from `/sys/dev/block/<major>:<minor>`
/// (the partition's own entry has no `queue/`, its disk's has). `None` for network and
/// virtual filesystems, which have no block device.
pub fn rotational(path: &Path) -> Option<bool> {
    let st = rustix::fs::stat(path).ok()?;
    let (major, minor) = (rustix::fs::major(st.st_dev), rustix::fs::minor(st.st_dev));
    if major == 0 {
        return None;
    }
    let dev = Path::new("/sys/dev/block")
        .join(format!("{major}:{minor}"))
        .canonicalize()
        .ok()?;
    let found = [Some(dev.as_path()), dev.parent()]
        .into_iter()
        .flatten()
        .find_map(|d| std::fs::read_to_string(d.join("queue/rotational")).ok());
    found.map(|s| s.trim() == "1")
}

/// The whole disk under `path` (`vda`, `sda`), following a partition to its disk and a loop
/// device to the disk that holds its backing file: a disk image (as data recovery often
/// makes of a failing disk first) restored onto the disk that holds the image shares that
/// disk's bandwidth, although the two are different filesystems. `None` without a block
/// device (network filesystems, tmpfs) or when `/sys` does not say.
pub fn physical_disk(path: &Path) -> Option<String> {
    disk_of_device(rustix::fs::stat(path).ok()?.st_dev, 0)
}

fn disk_of_device(dev: u64, depth: u8) -> Option<String> {
    let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    if major == 0 || depth > 4 {
        return None;
    }
    let sys = Path::new("/sys/dev/block")
        .join(format!("{major}:{minor}"))
        .canonicalize()
        .ok()?;
    if let Ok(backing) = std::fs::read_to_string(sys.join("loop/backing_file")) {
        let st = rustix::fs::stat(backing.trim()).ok()?;
        return disk_of_device(st.st_dev, depth + 1);
    }
    let whole = if sys.join("partition").exists() {
        sys.parent()?
    } else {
        &sys
    };
    Some(whole.file_name()?.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disk_under_a_path_is_found_or_none() {
        // A tmpfs has no block device; the disk holding the build, where there is one, has a
        // plain name (no slashes).
        assert_eq!(physical_disk(Path::new("/dev/shm")), None);
        if let Some(d) = physical_disk(Path::new(env!("CARGO_MANIFEST_DIR"))) {
            assert!(!d.is_empty() && !d.contains('/'), "{d}");
        }
    }

    #[test]
    fn parses_proc_files() {
        let cpu = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD Ryzen 5 3600 6-Core Processor\n\nprocessor\t: 1\n";
        assert_eq!(cpu_model(cpu), "AMD Ryzen 5 3600 6-Core Processor");
        assert_eq!(cpu_model("processor : 0\nHardware : BCM2835\n"), "BCM2835");
        assert_eq!(cpu_model(""), "unknown");
        let mem = "MemTotal:       11534336 kB\nMemFree:  100 kB\nMemAvailable:    8388608 kB\n";
        assert_eq!(meminfo_bytes(mem, "MemTotal"), Some(11_811_160_064));
        assert_eq!(meminfo_bytes(mem, "MemAvailable"), Some(8_589_934_592));
        assert_eq!(meminfo_bytes(mem, "SwapTotal"), None);
        assert_eq!(
            os_name("NAME=x\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"),
            "Debian GNU/Linux 12 (bookworm)"
        );
    }

    #[test]
    fn probes_this_machine() {
        let m = probe();
        assert!(m.cores >= 1);
        assert!(!m.kernel.is_empty());
        let _ = rotational(Path::new("/"));
    }
}
