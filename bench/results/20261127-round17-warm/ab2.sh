#!/bin/bash
# A/B with each tool's source pre-read into the page cache right before its run
cd /work/benchdata
XCP=/work/main/bench/.tools/bin/xcp
out=${OUT:-/tmp/exp/ab2.txt}
warm() { find "$1" -type f -print0 | xargs -0 cat > /dev/null; }
run() { # name cmd...
  local name=$1; shift
  ${FRESH:-/tmp/exp/fresh.sh}; rm -rf exp-st
  case $name in xcp) warm exp-tree;; *) warm exp-small/dump;; esac
  sync
  local l=$(cut -d' ' -f1 /proc/loadavg)
  local t0=$(date +%s.%N)
  /usr/bin/time -f "%U %S %I" -o /tmp/exp/t.txt "$@" >/dev/null 2>&1
  local t1=$(date +%s.%N)
  local ph=""
  if [ -f exp-st/report.json ]; then ph=$(python3 -c "import json;d=json.load(open('exp-st/report.json'))['phases'];print('plan=%.2f copy=%.2f dates=%.2f' % (d.get('plan',0),d.get('copy',0),d.get('folder_dates',0)))"); fi
  echo "$rep $name $(echo "$t1 - $t0" | bc) cpu=$(tail -1 /tmp/exp/t.txt | tr ' ' /) load=$l $ph" | tee -a $out
}
TOOLS=${TOOLS:-"xcp r16"}
for rep in $(seq 1 ${REPS:-4}); do
  set -- $TOOLS
  # rotate the order each repetition
  for i in $(seq 1 $(( (rep - 1) % $# ))); do set -- "${@:2}" "$1"; done
  for w in "$@"; do
    case $w in
      xcp) run xcp $XCP -r --no-progress exp-tree out-exp/dst ;;
      *) run $w bin/mcr-$w restore exp-small/dump out-exp/dst --threads 4 --state-dir exp-st --quiet --durability none ;;
    esac
  done
done
