#!/usr/bin/env bash
# The mycloud-recover benchmark harness (not part of CI). See bench/README.md.
#
#   bench/run.sh [quick|full] [--keep] [--data DIR] [--sections LIST] [--reps N] [--no-build]
#
# Builds demo dumps of several shapes with the tool itself, lays the same bytes out as a
# plain tree, and times, in one run and interleaved: our restore at several thread counts,
# `cp -a`, `cp -a` + `sync`, `rsync -a` and `xcp` (if installable). Plus the network-like
# destination (sshfs over a delay proxy), copy_file_range vs read/write buffers, durability
# levels, profiling (strace -c, perf), and the 1.7M-row scale figures (plan, resume, find).
#
# Every measurement goes to bench/results/<stamp>-<mode>.csv; bench/summarize.py prints the
# tables (medians, ratios against cp -a measured in the same run).
set -euo pipefail

MODE=quick
KEEP=0
BUILD=1
DATA=${BENCH_DATA:-/work/benchdata}
SECTIONS=""
REPS=""
while [ $# -gt 0 ]; do
    case "$1" in
        quick|full) MODE=$1 ;;
        --keep) KEEP=1 ;;
        --no-build) BUILD=0 ;;
        --data) DATA=$2; shift ;;
        --sections) SECTIONS=$2; shift ;;
        --reps) REPS=$2; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
TOOLS=$HERE/.tools
RESULTS=$HERE/results
mkdir -p "$RESULTS" "$TOOLS" "$DATA"

# ---------------------------------------------------------------- sizes per mode
if [ "$MODE" = full ]; then
    SMALL_FILES=100000; REAL_FILES=4000; LARGE_FILES=32; DEMO_FILES=20000; SUSTAINED_FILES=88
    THREADS="1 2 4 8 16 32 auto"
    NET_FILES=1000; NET_THREADS="1 2 4 8 16 32 64"; NET_DELAYS="0 2"
    SCALE_FILES=1350000
    : "${REPS:=3}"
    EST_SMALL=20000; EST_REAL=2000; PROC_FILES=100000
    DEFAULT_SECTIONS="shapes,cold,durability,copymethod,create,profile,net,scale,readorder,procs,estimate"
else
    SMALL_FILES=10000; REAL_FILES=400; LARGE_FILES=16; DEMO_FILES=20000; SUSTAINED_FILES=48
    THREADS="1 4 16 auto"
    NET_FILES=200; NET_THREADS="1 4 16"; NET_DELAYS="2"
    SCALE_FILES=100000
    : "${REPS:=3}"
    EST_SMALL=5000; EST_REAL=400; PROC_FILES=10000
    DEFAULT_SECTIONS="shapes,cold,durability,copymethod,create,profile,net,scale,readorder,procs,estimate"
fi
SECTIONS=${SECTIONS:-$DEFAULT_SECTIONS}
# Narrower runs: BENCH_SHAPES="small demo20k" and BENCH_THREADS="4 auto" override the lists.
# The shape `sustained` (large files, more than the kernel lets wait in memory; 8.4 GB of
# objects in full mode, held three times over as dump, tree and destination: about 40 GB
# free on the data disk) is opt-in: BENCH_SHAPES="large sustained".
SHAPES=${BENCH_SHAPES:-small real large demo20k}
THREADS=${BENCH_THREADS:-$THREADS}
want() { [[ ",$SECTIONS," == *",$1,"* ]]; }

STAMP=$(date +%Y%m%d-%H%M%S)
CSV=$RESULTS/$STAMP-$MODE.csv
LOG=$RESULTS/$STAMP-$MODE.log
NOTES=$RESULTS/$STAMP-$MODE.notes
: >"$NOTES"
note() { echo "$*" | tee -a "$NOTES" >&2; }
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$LOG" >&2; }

echo "mode,section,shape,tool,threads,cache,rep,wall_s,user_s,sys_s,maxrss_kb,files,bytes,rc,plan_s,copy_s,folder_dates_s,extra" >"$CSV"

# ---------------------------------------------------------------- prerequisites
need_pkg() { # command package
    command -v "$1" >/dev/null 2>&1 && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        log "installing $2"
        DEBIAN_FRONTEND=noninteractive apt-get install -y "$2" >>"$LOG" 2>&1 || true
    fi
    command -v "$1" >/dev/null 2>&1
}
[ -x /usr/bin/time ] || need_pkg /usr/bin/time time || { echo "need /usr/bin/time (apt-get install time)" >&2; exit 2; }
need_pkg rsync rsync || note "rsync: not available, skipped"
XCP=$TOOLS/bin/xcp
if [ ! -x "$XCP" ]; then
    log "installing xcp from crates.io into $TOOLS"
    CARGO_HOME=$TOOLS/cargo cargo install xcp --root "$TOOLS" >>"$LOG" 2>&1 || note "xcp: cargo install failed, skipped"
fi
[ -x "$XCP" ] || XCP=""
python3 -c 'import json' 2>/dev/null || { echo "need python3" >&2; exit 2; }

if [ "$BUILD" = 1 ]; then
    for try in 1 2 3 4 5; do
        if (cd "$REPO" && cargo build --release >>"$LOG" 2>&1); then break; fi
        [ "$try" = 5 ] && { echo "cargo build --release failed 5 times; see $LOG" >&2; exit 2; }
        log "build failed (someone may be mid-edit); retrying in 60 s"; sleep 60
    done
fi
# Freeze the binary for the whole run: others rebuild target/ while we measure.
mkdir -p "$DATA/bin"
# Where cargo put it: CARGO_TARGET_DIR if set (relative to the repository, as cargo reads it).
TARGET=${CARGO_TARGET_DIR:-target}
case "$TARGET" in /*) ;; *) TARGET=$REPO/$TARGET ;; esac
cp "$TARGET/release/mycloud-recover" "$DATA/bin/mcr"
MCR=$DATA/bin/mcr
cc -O2 -o "$DATA/bin/copytest" "$HERE/copytest.c"
cc -O2 -pthread -o "$DATA/bin/readorder" "$HERE/readorder.c"
cc -O2 -pthread -o "$DATA/bin/createtest" "$HERE/createtest.c"

# Can we drop the page cache? (root, and /proc/sys/vm writable)
CAN_DROP=0
if [ "$(id -u)" = 0 ] && (sync; echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then CAN_DROP=1; fi
drop_caches() { sync; [ "$CAN_DROP" = 1 ] && echo 3 >/proc/sys/vm/drop_caches; true; }
# What runs at exit whatever happens (sections add theirs in front of it).
at_exit() { if [ -n "${OLD_DIRTY:-}" ]; then restore_dirty; fi; true; }
trap at_exit EXIT

# BENCH_DIRTY_MB=512: for this run, the kernel keeps at most that much written data in
# memory (vm.dirty_bytes; half of it before background write-back starts), as on a machine
# with 3-4 GB of RAM. With the default 20% of 24 GB, a tool that does not flush leaves
# up to 4.6 GB in memory when it exits, and that write-behind, not bandwidth, is most of
# its lead on a few GB of large files. Needs root; the old values are put back at exit.
if [ -n "${BENCH_DIRTY_MB:-}" ]; then
    OLD_DIRTY="$(cat /proc/sys/vm/dirty_ratio) $(cat /proc/sys/vm/dirty_background_ratio) $(cat /proc/sys/vm/dirty_bytes) $(cat /proc/sys/vm/dirty_background_bytes)"
    restore_dirty() {
        read -r r br b bb <<<"$OLD_DIRTY"
        if [ "$b" != 0 ]; then echo "$b" >/proc/sys/vm/dirty_bytes; else echo "$r" >/proc/sys/vm/dirty_ratio; fi
        if [ "$bb" != 0 ]; then echo "$bb" >/proc/sys/vm/dirty_background_bytes; else echo "$br" >/proc/sys/vm/dirty_background_ratio; fi
    }
    echo $(( BENCH_DIRTY_MB << 20 )) >/proc/sys/vm/dirty_bytes
    echo $(( BENCH_DIRTY_MB << 19 )) >/proc/sys/vm/dirty_background_bytes
fi

{
    echo "machine: $(uname -srm); nproc=$(nproc); $(grep MemTotal /proc/meminfo | tr -s ' ')"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
    echo "data fs: $(df -hT "$DATA" | tail -1)"
    echo "commit: $(cd "$REPO" && git rev-parse --short HEAD) dirty-files=$(cd "$REPO" && git status --porcelain src Cargo.toml | wc -l) binary-sha256=$(sha256sum "$MCR" | cut -c1-16)"
    echo "drop_caches: $([ $CAN_DROP = 1 ] && echo works || echo not permitted)"
    echo "xcp: ${XCP:+$($XCP --version)}"; echo "rsync: $(rsync --version | head -1)"; echo "cp: $(cp --version | head -1)"
    echo "dirty page limits: vm.dirty_background_ratio=$(cat /proc/sys/vm/dirty_background_ratio) vm.dirty_ratio=$(cat /proc/sys/vm/dirty_ratio) (percent of available memory; 0 when set in bytes) vm.dirty_bytes=$(cat /proc/sys/vm/dirty_bytes) vm.dirty_background_bytes=$(cat /proc/sys/vm/dirty_background_bytes)"
    echo "mode=$MODE reps=$REPS sections=$SECTIONS"
} | tee -a "$NOTES" >&2

# ---------------------------------------------------------------- measurement
# measure SECTION SHAPE TOOL THREADS CACHE REP FILES BYTES CLEAN -- command...
# CLEAN is a space-separated list of paths removed (then sync) before the run.
# For our tool, REPORT (global) names the JSON report to read the phases from.
REPORT=""
EXTRA=""
# BENCH_FRESH_FS=1: every measurement that writes to $OUT gets a new ext4 filesystem there
# (a loop-mounted image, made with mkfs just before). Without it, each run follows the
# deletion of the previous destination, and ext4's inode allocator then skips recently
# freed inodes (`recently_deleted` in the profile), which made creating 100,000 files
# take 17 s right after a fresh tree and 52 s right after a deletion.
# The journal is 1 GiB, what mke2fs gives any filesystem of 128 GiB or more (every real
# destination disk). The 12 GB image would get 64 MB, and then every tool creating small
# files waits for journal space (`__jbd2_log_wait_for_space` in an off-CPU profile), which
# a real disk does not do. BENCH_FRESH_JOURNAL_MB overrides it.
# The image is read and written with direct I/O (`losetup --direct-io=on`), as a real disk
# would be: through `mount -o loop` each byte a tool wrote was cached twice (the new
# filesystem's page and the image file's), and the 7 GB a 100,000-file run then added to
# the page cache pushed the sources out as it ran: "warm" runs read 1.5-1.8 GB of their
# source from disk (round 17, `/usr/bin/time`'s inputs). BENCH_FRESH_DIO=0 goes back.
unmount_out() {
    if mountpoint -q "$OUT"; then
        local dev; dev=$(findmnt -n -o SOURCE "$OUT")
        umount "$OUT"
        case $dev in /dev/loop*) losetup -d "$dev" 2>/dev/null || true ;; esac
    fi
}
fresh_fs() {
    unmount_out
    rm -f "$DATA/fresh.img"
    truncate -s "${FRESH_SIZE:-${BENCH_FRESH_SIZE:-12G}}" "$DATA/fresh.img"
    mkfs.ext4 -q -F -J size="${BENCH_FRESH_JOURNAL_MB:-1024}" -E lazy_itable_init=0,lazy_journal_init=0 "$DATA/fresh.img"
    if [ "${BENCH_FRESH_DIO:-1}" = 1 ]; then
        mount "$(losetup --direct-io=on --show -f "$DATA/fresh.img")" "$OUT"
    else
        mount -o loop "$DATA/fresh.img" "$OUT"
    fi
}
# Reads every file under the folders given, so that a "warm" run finds its source in memory
# whatever ran before it (set WARM before `measure`; the tools read different copies of the
# same bytes: the dump's objects, the plain tree).
prewarm() {
    find "$@" -type f -print0 | xargs -0 -r cat >/dev/null
}
measure() {
    local section=$1 shape=$2 tool=$3 threads=$4 cache=$5 rep=$6 files=$7 bytes=$8 clean=$9
    shift 10
    local p
    for p in $clean; do rm -rf "$p"; done
    if [ "${BENCH_FRESH_FS:-0}" = 1 ] && [[ " $clean " == *" $OUT/dst "* ]]; then
        fresh_fs; EXTRA="${EXTRA:+$EXTRA;}fresh_fs=1"
    fi
    if [ "$cache" = cold ]; then drop_caches; else
        [ -n "${WARM:-}" ] && prewarm $WARM
        sync
    fi
    local tf; tf=$(mktemp)
    local rc=0
    local load1; load1=$(cut -d' ' -f1 /proc/loadavg)
    /usr/bin/time -f "%e %U %S %M %I" -o "$tf" "$@" >>"$LOG" 2>&1 || rc=$?
    local t; t=$(tail -1 "$tf"); rm -f "$tf"
    # What the run read from disk (512-byte blocks): near 0 when "warm" was warm.
    local inputs=${t##* }; t=${t% *}
    local plan="" copy="" fd="" extra=$EXTRA
    if [ -n "$REPORT" ] && [ -f "$REPORT" ]; then
        read -r plan copy fd th ck < <(python3 - "$REPORT" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
ph = d.get("phases", {})
print(ph.get("plan", ""), ph.get("copy", ""), ph.get("folder_dates", ""), d.get("threads", ""),
      "ckpt_write=%s;ckpt_flush=%s" % (ph.get("checkpoint_write", ""), ph.get("checkpoint_flush", "")))
EOF
        ) || true
        [ -n "${ck:-}" ] && extra="${extra:+$extra;}$ck"
        [ "$threads" = auto ] && extra="${extra:+$extra;}auto_threads=$th"
    fi
    extra="${extra:+$extra;}load1=$load1;read_mb=$(( ${inputs:-0} / 2048 ))"
    echo "$MODE,$section,$shape,$tool,$threads,$cache,$rep,${t// /,},$files,$bytes,$rc,$plan,$copy,$fd,$extra" >>"$CSV"
    log "$section $shape $tool t=$threads $cache rep$rep: ${t%% *} s (rc $rc)"
    REPORT=""
    EXTRA=""
    WARM=""
}

# Generates DIR/dump (idempotent by seed/files/mix marker).
gen_dump() { # name files mix [extra flags]
    local name=$1 files=$2 mix=$3; shift 3
    local dir=$DATA/$name marker="$files $mix $*"
    if [ -f "$dir/.spec" ] && [ "$(cat "$dir/.spec")" = "$marker" ]; then return; fi
    rm -rf "$dir"
    log "generating $name: $files files, mix $mix $*"
    local tf; tf=$(mktemp)
    /usr/bin/time -f "%e %M" -o "$tf" "$MCR" demo "$dir" --no-restore --seed 1 --files "$files" --size-mix "$mix" --force "$@" >>"$LOG" 2>&1
    note "generate $name ($files rows, $mix $*): $(cut -d' ' -f1 "$tf") s, peak RSS $(( $(cut -d' ' -f2 "$tf") / 1024 )) MB"
    rm -f "$tf"
    echo "$marker" >"$dir/.spec"
}

# The plain tree: our own restore, once, with the same bytes under the final names.
make_tree() { # name
    local dir=$DATA/$1
    if [ ! -d "$dir/tree" ]; then
        "$MCR" restore "$dir/dump" "$dir/tree" --state-dir "$dir/tree-state" --quiet --durability none >>"$LOG" 2>&1 || true
        rm -rf "$dir/tree-state"
    fi
    TREE_FILES=$(find "$dir/tree" -type f | wc -l)
    # File bytes only (folders' own sizes left out); %.0f because mawk's %d stops at 2^31-1.
    TREE_BYTES=$(find "$dir/tree" -type f -printf '%s\n' | awk '{s += $1} END {printf "%.0f\n", s}')
}

OUT=$DATA/out   # destinations, one at a time
# Our checkpoint: off the destination, as by default (~/.local/state on the system disk).
STATE=$DATA/state
mkdir -p "$OUT"

ours() { # section shape threads cache rep files bytes [flags...]
    local section=$1 shape=$2 th=$3 cache=$4 rep=$5 files=$6 bytes=$7; shift 7
    local dump=$DATA/$shape/dump
    REPORT=$STATE/report.json
    measure "$section" "$shape" "mcr${1:+ $*}" "$th" "$cache" "$rep" "$files" "$bytes" "$OUT/dst $STATE" -- \
        "$MCR" restore "$dump" "$OUT/dst" --threads "$th" --state-dir "$STATE" --quiet "$@"
}

baselines() { # section shape cache rep files bytes
    local section=$1 shape=$2 cache=$3 rep=$4 files=$5 bytes=$6
    local tree=$DATA/$shape/tree
    measure "$section" "$shape" "cp -a" 1 "$cache" "$rep" "$files" "$bytes" "$OUT/dst" -- cp -a "$tree" "$OUT/dst"
    measure "$section" "$shape" "cp -a+sync" 1 "$cache" "$rep" "$files" "$bytes" "$OUT/dst" -- sh -c 'cp -a "$1" "$2" && sync' _ "$tree" "$OUT/dst"
    if command -v rsync >/dev/null; then
        measure "$section" "$shape" "rsync -a" 1 "$cache" "$rep" "$files" "$bytes" "$OUT/dst" -- rsync -a "$tree/" "$OUT/dst/"
    fi
    if [ -n "$XCP" ]; then
        measure "$section" "$shape" "xcp" 4 "$cache" "$rep" "$files" "$bytes" "$OUT/dst" -- "$XCP" -r --no-progress "$tree" "$OUT/dst"
        measure "$section" "$shape" "xcp+sync" 4 "$cache" "$rep" "$files" "$bytes" "$OUT/dst" -- sh -c '"$1" -r --no-progress "$2" "$3" && sync' _ "$XCP" "$tree" "$OUT/dst"
    fi
}

# ---------------------------------------------------------------- shapes (warm cache)
if want shapes; then
    for spec in "small $SMALL_FILES small" "real $REAL_FILES real" "large $LARGE_FILES large" "demo20k $DEMO_FILES demo" "sustained $SUSTAINED_FILES large"; do
        set -- $spec
        shape=$1
        [[ " $SHAPES " == *" $shape "* ]] || continue
        gen_dump "$shape" "$2" "$3"
        # The plain tree and one destination at a time need twice the dump, plus a margin.
        need=$(( $(du -sb "$DATA/$shape/dump" | cut -f1) * 2 + (4 << 30) ))
        [ -d "$DATA/$shape/tree" ] && need=$(( need / 2 ))
        free=$(df --output=avail -B1 "$DATA" | tail -1)
        if [ "$free" -lt "$need" ]; then
            note "shape $shape skipped: it needs $(( need >> 30 )) GB free in $DATA, there are $(( free >> 30 )) GB"
            continue
        fi
        make_tree "$shape"
        note "shape $shape: $TREE_FILES files, $TREE_BYTES bytes in the plain tree"
        ths=$THREADS
        FRESH_SIZE=""
        [ "$shape" = demo20k ] && ths="auto"
        # More bytes than the kernel keeps dirty in memory, so `cp -a` too runs at the
        # disk's speed, as in any restore of hundreds of GB.
        cache=warm
        if [ "$shape" = sustained ]; then
            ths="auto"; FRESH_SIZE=$(( TREE_BYTES / 1000000000 * 13 / 10 + 4 ))G
            # The dump, the tree and the files written do not all fit in the page cache, so
            # "warm" would mean "whichever tool read its source last" (the tools ran in turn:
            # round 3 measured our restore, last in the rep, 0.87x `cp -a` that way, 1.04x
            # with every run cold). Every run starts cold here.
            [ "$CAN_DROP" = 1 ] && cache=cold
        fi
        for rep in $(seq 1 "$REPS"); do
            # warm the database before each rep (the objects and the tree stay cached from the
            # previous rep; the first rep of a shape may find them partly cold)
            cat "$DATA/$shape/dump/restsdk/data/db/index.db" >/dev/null
            baselines shapes "$shape" "$cache" "$rep" "$TREE_FILES" "$TREE_BYTES"
            for th in $ths; do
                ours shapes "$shape" "$th" "$cache" "$rep" "$TREE_FILES" "$TREE_BYTES"
            done
            ours shapes "$shape" auto "$cache" "$rep" "$TREE_FILES" "$TREE_BYTES" --durability none
        done
    done
fi

# ---------------------------------------------------------------- cold page cache
if want cold; then
    if [ "$CAN_DROP" = 1 ]; then
        for spec in "small $SMALL_FILES small" "real $REAL_FILES real"; do
            set -- $spec; shape=$1
            gen_dump "$shape" "$2" "$3"; make_tree "$shape"
            for rep in $(seq 1 "$REPS"); do
                measure cold "$shape" "cp -a" 1 cold "$rep" "$TREE_FILES" "$TREE_BYTES" "$OUT/dst" -- cp -a "$DATA/$shape/tree" "$OUT/dst"
                [ -n "$XCP" ] && measure cold "$shape" "xcp" 4 cold "$rep" "$TREE_FILES" "$TREE_BYTES" "$OUT/dst" -- "$XCP" -r --no-progress "$DATA/$shape/tree" "$OUT/dst"
                for th in 1 4 auto; do
                    REPORT=$STATE/report.json
                    measure cold "$shape" "mcr" "$th" cold "$rep" "$TREE_FILES" "$TREE_BYTES" "$OUT/dst $STATE" -- \
                        "$MCR" restore "$DATA/$shape/dump" "$OUT/dst" --threads "$th" --state-dir "$STATE" --quiet
                done
            done
        done
    else
        note "cold cache: not measured (cannot write /proc/sys/vm/drop_caches)"
    fi
fi

# ---------------------------------------------------------------- durability levels
if want durability; then
    shapes_d="small"; [ "$MODE" = full ] && shapes_d="small real"
    for shape in $shapes_d; do
        [ -d "$DATA/$shape/tree" ] || { gen_dump small "$SMALL_FILES" small; make_tree small; }
        make_tree "$shape"
        for rep in $(seq 1 "$REPS"); do
            for d in none batch file; do
                ours durability "$shape" auto warm "$rep" "$TREE_FILES" "$TREE_BYTES" --durability "$d"
            done
            measure durability "$shape" "cp -a" 1 warm "$rep" "$TREE_FILES" "$TREE_BYTES" "$OUT/dst" -- cp -a "$DATA/$shape/tree" "$OUT/dst"
        done
    done
fi

# ---------------------------------------------------------------- copy_file_range vs read/write
if want copymethod; then
    gen_dump large "$LARGE_FILES" large
    list=$DATA/large/objects.txt
    find "$DATA/large/dump/restsdk/data/files" -type f -size +1M >"$list"
    n=$(wc -l <"$list"); b=$(xargs -a "$list" du -cb --apparent-size | tail -1 | cut -f1)
    for cache in warm cold; do
        [ "$cache" = cold ] && [ "$CAN_DROP" = 0 ] && continue
        for rep in $(seq 1 "$REPS"); do
            for m in cfr sendfile rw:65536 rw:262144 rw:1048576 rw:4194304 rw:16777216; do
                measure copymethod large "$m" 1 "$cache" "$rep" "$n" "$b" "$OUT/dst" -- \
                    sh -c 'mkdir -p "$2" && "$1" "$3" "$2" < "$4"' _ "$DATA/bin/copytest" "$OUT/dst" "$m" "$list"
                measure copymethod large "$m+sync" 1 "$cache" "$rep" "$n" "$b" "$OUT/dst" -- \
                    sh -c 'mkdir -p "$2" && "$1" "$3" "$2" < "$4" && sync' _ "$DATA/bin/copytest" "$OUT/dst" "$m" "$list"
            done
        done
    done
fi

# ---------------------------------------------------------------- per-file strategy and order
# How one small file is best put in place (bench/createtest.c: create at the final name as
# cp/xcp do, temporary name + rename, unnamed file + link) and in which order (folder by
# folder as the restore now does, rowid order, shuffled), with 4 threads and folders made
# as files need them, like a restore. Best with BENCH_FRESH_FS=1.
if want create; then
    gen_dump small "$SMALL_FILES" small
    "$MCR" plan "$DATA/small/dump" "$OUT/plan-dest" --json >"$DATA/small/plan.jsonl"
    python3 "$HERE/pairs.py" "$DATA/small/dump" "$DATA/small/plan.jsonl" "$DATA/small/pairs" 2>&1 | tee -a "$NOTES" >&2
    n=$(wc -l <"$DATA/small/pairs/restore.txt")
    b=$(cut -f1 "$DATA/small/pairs/restore.txt" | xargs -d '\n' du -cb --apparent-size | awk '/total$/ {s += $1} END {printf "%.0f\n", s}')
    # The floor: each strategy's system calls alone, from a C program with nothing else to
    # do, beside `xcp` and our whole restore in the same repetition (all unflushed), so the
    # ratios say how much of a gap to `xcp` the crash-safe placement itself explains.
    [ -n "$XCP" ] || note "create: xcp not installed; the floor comparison has no xcp row"
    make_tree small
    for rep in $(seq 1 "$REPS"); do
        for order in restore rowid shuffled; do
            for m in plain rename tmpfile tmpfileat; do
                WARM="$DATA/small/dump/restsdk/data/files"
                measure create small "createtest $m $order-order" 4 warm "$rep" "$n" "$b" "$OUT/dst" -- \
                    sh -c 'mkdir -p "$2" && CREATETEST_MKDIR=1 "$1" "$3" 4 "$2" < "$4"' _ "$DATA/bin/createtest" "$OUT/dst" "$m" "$DATA/small/pairs/$order.txt"
            done
        done
        if [ -n "$XCP" ]; then
            WARM="$DATA/small/tree"
            measure create small "xcp" 4 warm "$rep" "$TREE_FILES" "$TREE_BYTES" "$OUT/dst" -- "$XCP" -r --no-progress "$DATA/small/tree" "$OUT/dst"
        fi
        WARM="$DATA/small/dump"
        ours create small 4 warm "$rep" "$TREE_FILES" "$TREE_BYTES" --durability none
    done
fi

# ---------------------------------------------------------------- profiling
if want profile; then
    gen_dump small "$SMALL_FILES" small; make_tree small
    PROF=$RESULTS/$STAMP-$MODE-profile
    mkdir -p "$PROF"
    for d in none batch; do
        rm -rf "$OUT/dst" "$STATE"; sync
        if command -v strace >/dev/null || need_pkg strace strace; then
            strace -c -f -o "$PROF/strace-$d.txt" "$MCR" restore "$DATA/small/dump" "$OUT/dst" --threads 4 \
                --state-dir "$STATE" --quiet --durability "$d" >>"$LOG" 2>&1 || true
            note "strace -c -f (--durability $d, $TREE_FILES files): $PROF/strace-$d.txt"
        fi
    done
    rm -rf "$OUT/dst" "$STATE"; sync
    if perf record -e cpu-clock -F 999 -g -o "$PROF/perf.data" -- true >/dev/null 2>&1; then
        perf record -e cpu-clock -F 999 -g -o "$PROF/perf.data" -- "$MCR" restore "$DATA/small/dump" "$OUT/dst" \
            --threads 4 --state-dir "$STATE" --quiet >>"$LOG" 2>&1 || true
        perf report -i "$PROF/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null | grep -v '^$' | head -80 >"$PROF/perf-top.txt" || true
        perf report -i "$PROF/perf.data" --no-children --sort comm --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -20 >"$PROF/perf-threads.txt" || true
        rm -f "$PROF/perf.data" "$PROF/perf.data.old"
        note "perf (cpu-clock; hardware counters are not supported here): $PROF/perf-top.txt"
    else
        note "perf record: not permitted, skipped"
    fi
    rm -rf "$OUT/dst" "$STATE"
fi

# ---------------------------------------------------------------- network-like destination
if want net; then
    NETDIR=$DATA/net
    NETLOG=$LOG
    net_ok=1
    need_pkg sshfs sshfs || true
    if [ ! -x /usr/sbin/sshd ] && [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y openssh-server >>"$LOG" 2>&1 || true
    fi
    if ! command -v sshfs >/dev/null || [ ! -x /usr/sbin/sshd ] || [ ! -e /dev/fuse ]; then
        note "network destination: sshfs/sshd/FUSE not available, not measured"; net_ok=0
    fi
    if [ $net_ok = 1 ]; then
        if tc qdisc add dev lo root netem delay 1ms 2>/dev/null; then
            tc qdisc del dev lo root; note "tc netem works here (the proxy is used anyway, for one method on every machine)"
        else
            note "tc netem: not available (no sch_netem in this kernel, no modprobe); latency injected by bench/delayproxy.py"
        fi
        gen_dump net "$NET_FILES" small; make_tree net
        mkdir -p "$NETDIR/ssh" "$NETDIR/export" "$NETDIR/mnt" /run/sshd
        [ -f "$NETDIR/ssh/id" ] || ssh-keygen -q -t ed25519 -N '' -f "$NETDIR/ssh/id"
        [ -f "$NETDIR/ssh/hostkey" ] || ssh-keygen -q -t ed25519 -N '' -f "$NETDIR/ssh/hostkey"
        cp "$NETDIR/ssh/id.pub" "$NETDIR/ssh/authorized_keys"
        SSH_PORT=22${RANDOM:0:2}; PROXY_PORT=$((SSH_PORT + 1000))
        cat >"$NETDIR/ssh/sshd_config" <<EOF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $NETDIR/ssh/hostkey
PermitRootLogin prohibit-password
AuthorizedKeysFile $NETDIR/ssh/authorized_keys
PasswordAuthentication no
PidFile $NETDIR/ssh/sshd.pid
Subsystem sftp internal-sftp
StrictModes no
EOF
        /usr/sbin/sshd -f "$NETDIR/ssh/sshd_config" -E "$NETDIR/ssh/sshd.log"
        sleep 1
        SSHD_PID=$(cat "$NETDIR/ssh/sshd.pid")
        PROXY_PID=""
        net_down() {
            fusermount -u "$NETDIR/mnt" 2>/dev/null || umount "$NETDIR/mnt" 2>/dev/null || true
            [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null || true
            PROXY_PID=""
        }
        trap 'net_down; kill $SSHD_PID 2>/dev/null || true; at_exit' EXIT
        for delay in $NET_DELAYS; do
            port=$SSH_PORT
            if [ "$delay" != 0 ]; then
                python3 "$HERE/delayproxy.py" "$PROXY_PORT" "$SSH_PORT" "$delay" &
                PROXY_PID=$!; port=$PROXY_PORT; sleep 1
            fi
            sshfs -p "$port" -o IdentityFile="$NETDIR/ssh/id",StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null \
                root@127.0.0.1:"$NETDIR/export" "$NETDIR/mnt"
            rtt=$( { /usr/bin/time -f %e stat "$NETDIR/mnt/." >/dev/null; } 2>&1 | tail -1)
            note "sshfs with one-way delay ${delay} ms each direction (RTT +$((2 * delay)) ms); a stat round trip took ${rtt} s"
            for rep in $(seq 1 "$REPS"); do
                EXTRA="delay_ms=$delay"
                measure net net "cp -a" 1 warm "$rep" "$TREE_FILES" "$TREE_BYTES" "$NETDIR/mnt/dst" -- cp -a "$DATA/net/tree" "$NETDIR/mnt/dst"
                if [ -n "$XCP" ]; then
                    EXTRA="delay_ms=$delay"
                    measure net net "xcp" 4 warm "$rep" "$TREE_FILES" "$TREE_BYTES" "$NETDIR/mnt/dst" -- "$XCP" -r --no-progress "$DATA/net/tree" "$NETDIR/mnt/dst"
                fi
                for th in $NET_THREADS auto; do
                    EXTRA="delay_ms=$delay"
                    REPORT=$STATE/report.json
                    measure net net "mcr" "$th" warm "$rep" "$TREE_FILES" "$TREE_BYTES" "$NETDIR/mnt/dst $STATE" -- \
                        "$MCR" restore "$DATA/net/dump" "$NETDIR/mnt/dst" --threads "$th" --state-dir "$STATE" --quiet
                done
            done
            rm -rf "$NETDIR/mnt/dst"
            net_down
        done
        kill "$SSHD_PID" 2>/dev/null || true
        trap at_exit EXIT
        [ "$KEEP" = 1 ] || rm -rf "$NETDIR"
    fi
fi

# ---------------------------------------------------------------- scale: 1.7M rows
if want scale; then
    # plan: database only
    gen_dump scale "$SCALE_FILES" real --no-content
    for rep in $(seq 1 "$REPS"); do
        measure scale "scale-$SCALE_FILES" "plan --summary" 1 warm "$rep" "$SCALE_FILES" 0 "" -- \
            "$MCR" plan "$DATA/scale/dump" "$OUT/plan-dest" --summary
    done
    rm -rf "$DATA/scale"
    # restore, resume with nothing to do, regen, next to find
    gen_dump tiny "$SCALE_FILES" real --tiny
    T=$DATA/tiny
    REPORT=$T/state/report.json
    measure scale "tiny-$SCALE_FILES" "mcr restore" auto warm 1 "$SCALE_FILES" 0 "$T/dst $T/state" -- \
        "$MCR" restore "$T/dump" "$T/dst" --state-dir "$T/state" --quiet
    for cache in warm cold; do
        [ "$cache" = cold ] && [ "$CAN_DROP" = 0 ] && continue
        for rep in $(seq 1 "$REPS"); do
            REPORT=$T/state/report.json
            measure scale "tiny-$SCALE_FILES" "mcr resume (nothing to do)" auto "$cache" "$rep" "$SCALE_FILES" 0 "" -- \
                "$MCR" restore "$T/dump" "$T/dst" --state-dir "$T/state" --quiet
            measure scale "tiny-$SCALE_FILES" "find DEST | wc -l" 1 "$cache" "$rep" "$SCALE_FILES" 0 "" -- \
                sh -c 'find "$1" | wc -l' _ "$T/dst"
        done
    done
    if "$MCR" regen --help >/dev/null 2>&1; then
        for cache in warm cold; do
            [ "$cache" = cold ] && [ "$CAN_DROP" = 0 ] && continue
            for rep in $(seq 1 "$REPS"); do
                measure scale "tiny-$SCALE_FILES" "mcr regen" auto "$cache" "$rep" "$SCALE_FILES" 0 "$T/regen-state" -- \
                    "$MCR" regen "$T/dump" "$T/dst" --state-dir "$T/regen-state"
            done
        done
        REPORT=$T/regen-state/report.json
        measure scale "tiny-$SCALE_FILES" "mcr resume after regen" auto warm 1 "$SCALE_FILES" 0 "" -- \
            "$MCR" restore "$T/dump" "$T/dst" --state-dir "$T/regen-state" --quiet
    else
        note "regen: not available in this build"
    fi
    [ "$KEEP" = 1 ] || rm -rf "$T"
fi

# ---------------------------------------------------------------- read order and reader count
# Cold reads of every object of the small shape, in four orders, with 1, 4 and 16 readers.
if want readorder; then
    if [ "$CAN_DROP" = 1 ]; then
        gen_dump small "$SMALL_FILES" small
        "$MCR" plan "$DATA/small/dump" "$OUT/plan-dest" --json >"$DATA/small/plan.jsonl"
        python3 "$HERE/orders.py" "$DATA/small/dump" "$DATA/small/orders" --restore-order "$DATA/small/plan.jsonl" 2>&1 | tee -a "$NOTES" >&2
        n=$(wc -l <"$DATA/small/orders/db.txt")
        b=$(xargs -d '\n' -a "$DATA/small/orders/db.txt" du -cb --apparent-size | awk '/total$/ {s += $1} END {printf "%.0f\n", s}')
        for rep in $(seq 1 "$REPS"); do
            for order in db cid restore phys; do
                for th in 1 4 16; do
                    measure readorder small "read $order order" "$th" cold "$rep" "$n" "$b" "" -- \
                        sh -c '"$1" "$2" < "$3"' _ "$DATA/bin/readorder" "$th" "$DATA/small/orders/$order.txt"
                done
            done
        done
    else
        note "readorder: not measured (cannot drop the page cache, so reads would hit memory)"
    fi
fi

# ---------------------------------------------------------------- threads vs processes
# The same selection restored by 1 process x 4 threads, 2 x 2 and 4 x 1 (each process gets
# its own --only prefixes, balanced by file count, and its own state folder).
if want procs; then
    gen_dump small "$PROC_FILES" small
    "$MCR" plan "$DATA/small/dump" "$OUT/plan-dest" --json >"$DATA/small/plan.jsonl"
    mkdir -p "$DATA/small/split"
    python3 - "$DATA/small/plan.jsonl" "$DATA/small/split" <<'PY' 2>&1 | tee -a "$NOTES" >&2
import json, sys, collections
plan, out = sys.argv[1], sys.argv[2]
count = collections.Counter()
for line in open(plan):
    v = json.loads(line)
    if v.get("type") == "file" and v.get("skip") is None:
        parts = v["path"].split("/")
        if len(parts) >= 3:  # files two levels down: these prefixes split evenly
            count["/".join(parts[:2])] += 1
for p in (1, 2, 4):
    bins = [[0, []] for _ in range(p)]
    for prefix, n in sorted(count.items(), key=lambda kv: -kv[1]):
        b = min(bins, key=lambda x: x[0])
        b[0] += n
        b[1].append(prefix)
    for i, (n, prefixes) in enumerate(bins):
        with open(f"{out}/p{p}-{i}.args", "w") as f:
            f.write("".join(f"--only\n{x}\n" for x in prefixes))
    print(f"procs: {p} group(s) of {[b[0] for b in bins]} files")
open(f"{out}/total", "w").write(str(sum(count.values())))
PY
    cat >"$DATA/bin/procs.sh" <<'SH'
#!/usr/bin/env bash
# procs.sh MCR DUMP DEST STATEBASE SPLITDIR P T: P processes with T threads each, in parallel.
set -u
mcr=$1 dump=$2 dest=$3 state=$4 split=$5 p=$6 t=$7
pids=()
for i in $(seq 0 $((p - 1))); do
    mapfile -t args <"$split/p$p-$i.args"
    "$mcr" restore "$dump" "$dest" --threads "$t" --state-dir "$state-$i" --quiet "${args[@]}" >/dev/null 2>&1 &
    pids+=($!)
done
rc=0
for pid in "${pids[@]}"; do wait "$pid" || rc=$?; done
exit $rc
SH
    chmod +x "$DATA/bin/procs.sh"
    for rep in $(seq 1 "$REPS"); do
        for pt in "1 4" "2 2" "4 1"; do
            set -- $pt
            measure procs small "mcr $1 proc x $2 threads" "$(( $1 * $2 ))" warm "$rep" "$(cat "$DATA/small/split/total")" "" \
                "$OUT/dst $OUT/st-0 $OUT/st-1 $OUT/st-2 $OUT/st-3" -- \
                "$DATA/bin/procs.sh" "$MCR" "$DATA/small/dump" "$OUT/dst" "$OUT/st" "$DATA/small/split" "$1" "$2"
        done
    done
fi

# ---------------------------------------------------------------- estimate against actual
# Pre-flight's estimate, then the restore it recommends, on two size mixes; cold and warm.
if want estimate; then
    for spec in "est-small $EST_SMALL small" "est-real $EST_REAL real"; do
        set -- $spec; shape=$1
        gen_dump "$shape" "$2" "$3"
        for rep in $(seq 1 "$REPS"); do
            rm -rf "$OUT/dst" "$STATE"
            # With fresh filesystems, pre-flight measures one too, like the restore gets.
            if [ "${BENCH_FRESH_FS:-0}" = 1 ]; then fresh_fs; fi
            drop_caches
            "$MCR" preflight "$DATA/$shape/dump" "$OUT/dst" --json >"$OUT/preflight.json" 2>>"$LOG" || true
            read -r th best worst < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); e=d.get("estimate") or {}; print(d["advice"]["threads"], e.get("best_s",""), e.get("worst_s",""))' "$OUT/preflight.json")
            for cache in cold warm; do
                EXTRA="est_best=$best;est_worst=$worst"
                REPORT=$STATE/report.json
                measure estimate "$shape" "mcr (pre-flight's advice)" "$th" "$cache" "$rep" "" "" "$OUT/dst $STATE" -- \
                    "$MCR" restore "$DATA/$shape/dump" "$OUT/dst" --threads "$th" --state-dir "$STATE" --quiet
            done
            note "estimate $shape rep $rep: $th threads, best $best s, worst $worst s"
        done
        [ "$KEEP" = 1 ] || rm -rf "${DATA:?}/$shape"
    done
fi

# ---------------------------------------------------------------- summary and cleanup
unmount_out
rm -f "$DATA/fresh.img"
rm -rf "$OUT"
if [ "$KEEP" != 1 ]; then
    for s in small real large demo20k net tiny scale; do rm -rf "${DATA:?}/$s"; done
fi
python3 "$HERE/summarize.py" "$CSV" | tee "${CSV%.csv}.md"
echo
echo "raw results: $CSV"
echo "notes:       $NOTES"
