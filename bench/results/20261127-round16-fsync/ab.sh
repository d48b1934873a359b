#!/bin/bash
# A/B: xcp vs 441e4f3 vs 2adcb9c (--durability none), 100,000 small files, a new ext4 per run
cd /work/benchdata
XCP=/work/main/bench/.tools/bin/xcp
out=/tmp/exp/ab.txt
run() { # name cmd...
  local name=$1; shift
  /tmp/exp/fresh.sh; rm -rf exp-st; sync
  local l=$(cut -d' ' -f1 /proc/loadavg)
  local t0=$(date +%s.%N)
  "$@" >/dev/null 2>&1
  local t1=$(date +%s.%N)
  local ph=""
  if [ -f exp-st/report.json ]; then ph=$(python3 -c "import json;d=json.load(open('exp-st/report.json'))['phases'];print('plan=%.2f copy=%.2f dates=%.2f' % (d.get('plan',0),d.get('copy',0),d.get('folder_dates',0)))"); fi
  echo "$rep $name $(echo "$t1 - $t0" | bc) load=$l $ph" | tee -a $out
}
for rep in $(seq 1 ${REPS:-6}); do
  set -- xcp old new
  case $((rep % 3)) in 1) set -- old new xcp;; 2) set -- new xcp old;; esac
  for w in "$@"; do
    case $w in
      xcp) run xcp $XCP -r --no-progress exp-tree out-exp/dst ;;
      old) run old bin/mcr-old restore exp-small/dump out-exp/dst --threads 4 --state-dir exp-st --quiet --durability none ;;
      new) run new bin/mcr-new restore exp-small/dump out-exp/dst --threads 4 --state-dir exp-st --quiet --durability none ;;
    esac
  done
done
