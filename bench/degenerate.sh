#!/usr/bin/env bash
# Degenerate shapes (optional, not part of CI and not a section of run.sh): dumps that real
# damaged indexes and odd habits produce, at a few sizes each, to see the growth order of
# every phase. See bench/README.md, "Degenerate shapes", and docs/PERFORMANCE.md, round 13.
#
#   bench/degenerate.sh [--bin PATH] [--data DIR] [--reps N] [--phases LIST] SHAPE:N[,N...] ...
#
#   bench/degenerate.sh samename:5000,10000,20000 chain:2000,4000 flat:100000,200000
#
# Shapes: flat, samename, case (run with --names windows), longname, long255, chain, loop,
# orphans, emptydirs (bench/degenerate.py describes each). Phases (default all): plan,
# restore, resume, status, verify, regen. Each phase runs --reps times (default 2) under
# /usr/bin/time (wall, user and system CPU, peak RSS); rows go to
# bench/results/<stamp>-degenerate.csv and the medians are printed.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BIN=""
DATA=${BENCH_DATA:-/work/benchdata}/degenerate
REPS=2
PHASES="plan restore resume status verify regen"
SPECS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) BIN=$2; shift ;;
        --data) DATA=$2; shift ;;
        --reps) REPS=$2; shift ;;
        --phases) PHASES=${2//,/ }; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *:*) SPECS+=("$1") ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
if [ -z "$BIN" ]; then
    (cd "$REPO" && cargo build --release --locked -q)
    BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/mycloud-recover
fi
mkdir -p "$DATA" "$HERE/results"
cp "$BIN" "$DATA/mcr"
MCR=$DATA/mcr
CSV=$HERE/results/$(date +%Y%m%d-%H%M%S)-degenerate.csv
echo "shape,n,phase,rep,wall_s,maxrss_kb,rc,user_s,sys_s" >"$CSV"

BASE=$DATA/base
[ -d "$BASE/dump" ] || "$MCR" demo "$BASE" --no-restore --seed 1 --files 20 --users 1 --tiny >/dev/null

measure() { # shape n phase rep -- command...
    local shape=$1 n=$2 phase=$3 rep=$4 out rc=0
    shift 5
    out=$DATA/time.txt
    /usr/bin/time -f '%e %M %U %S' -o "$out" "$@" >"$DATA/last.out" 2>&1 || rc=$?
    read -r wall rss user sys < <(tail -1 "$out")
    echo "$shape,$n,$phase,$rep,$wall,$rss,$rc,$user,$sys" | tee -a "$CSV" >&2
}

for spec in "${SPECS[@]}"; do
    shape=${spec%%:*}
    extra=()
    [ "$shape" = case ] && extra=(--names windows)
    IFS=, read -r -a sizes <<<"${spec#*:}"
    for n in "${sizes[@]}"; do
        D=$DATA/$shape-$n
        python3 "$HERE/degenerate.py" "$BASE/dump" "$D/dump" "$shape" "$n"
        S=$D/dump; T=$D/dst; ST=$D/state
        for phase in $PHASES; do
            for rep in $(seq "$REPS"); do
                case $phase in
                    plan) measure "$shape" "$n" plan "$rep" -- "$MCR" plan "$S" "$T" --summary "${extra[@]}" ;;
                    restore)
                        rm -rf "$T" "$ST"; sync
                        measure "$shape" "$n" restore "$rep" -- "$MCR" restore "$S" "$T" --state-dir "$ST" --quiet "${extra[@]}" ;;
                    resume) measure "$shape" "$n" resume "$rep" -- "$MCR" restore "$S" "$T" --state-dir "$ST" --quiet "${extra[@]}" ;;
                    status) measure "$shape" "$n" status "$rep" -- "$MCR" status "$S" "$T" --state-dir "$ST" ;;
                    verify) measure "$shape" "$n" verify "$rep" -- "$MCR" verify "$S" "$T" --state-dir "$ST" "${extra[@]}" ;;
                    regen)
                        rm -rf "$D/regen-state"
                        measure "$shape" "$n" regen "$rep" -- "$MCR" regen "$S" "$T" --state-dir "$D/regen-state" "${extra[@]}" ;;
                esac
            done
        done
        rm -rf "$D"
    done
done

python3 - "$CSV" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
groups = {}
for r in rows:
    groups.setdefault((r["shape"], int(r["n"]), r["phase"]), []).append(r)
print(f"{'shape':10} {'n':>8} {'phase':8} {'wall s':>8} {'CPU s':>8} {'RSS MB':>8} rc")
for (shape, n, phase), rs in groups.items():
    wall = statistics.median(float(r["wall_s"]) for r in rs)
    rss = statistics.median(int(r["maxrss_kb"]) for r in rs) / 1024
    # user + system: less disturbed than wall time by other load on a shared machine.
    cpu = statistics.median(float(r.get("user_s") or "nan") + float(r.get("sys_s") or "nan") for r in rs)
    print(f"{shape:10} {n:>8} {phase:8} {wall:8.2f} {cpu:8.2f} {rss:8.1f} {','.join(sorted({r['rc'] for r in rs}))}")
print(f"rows: {sys.argv[1]}")
EOF
