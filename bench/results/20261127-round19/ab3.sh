#!/bin/bash
# A/B: tools named in TOOLS; each run on a fresh ext4 (direct-I/O loop), source pre-read.
# Expects, under /work/benchdata: exp-small/dump (the 100,000-file demo dump), exp-tree (its
# restore, the plain tree for xcp), exp-small/pairs/*.txt (bench/pairs.py), bin/createtest
# (cc -O2 -pthread bench/createtest.c), bin/mcr-NAME for each tool NAME; xcp from
# bench/run.sh's bench/.tools. FRESH names the script that makes the fresh filesystem
# (default /tmp/exp/fresh-dio.sh: copy fresh-dio.sh there). Output lines go to $OUT.
cd /work/benchdata
XCP=/work/main/bench/.tools/bin/xcp
out=${OUT:-/tmp/exp/ab3.txt}
warm() { find "$1" -type f -print0 | xargs -0 cat > /dev/null; }
run() { # name cmd...
  local name=$1; shift
  ${FRESH:-/tmp/exp/fresh-dio.sh}; rm -rf exp-st; [ "${name#ct-}" != "$name" ] && mkdir -p out-exp/dst
  case $name in xcp) warm exp-tree;; *) warm exp-small/dump;; esac
  sync
  local l=$(cut -d' ' -f1 /proc/loadavg)
  local t0=$(date +%s.%N)
  /usr/bin/time -f "%U %S %I" -o /tmp/exp/t.txt "$@" >/dev/null 2>/tmp/exp/err.txt || echo "rc!=0 $name $(tail -2 /tmp/exp/err.txt)" >&2
  local t1=$(date +%s.%N)
  echo "$rep $name $(echo "$t1 - $t0" | bc) cpu=$(tail -1 /tmp/exp/t.txt | tr ' ' /) load=$l" | tee -a $out
}
ct() { # method order [chunk]
  run "ct-$1-$2${3:+-c$3}" env CREATETEST_MKDIR=1 CREATETEST_CHUNK=${3:-1} bin/createtest $1 4 out-exp/dst < exp-small/pairs/$2.txt
}
TOOLS=${TOOLS:-"xcp r18"}
for rep in $(seq 1 ${REPS:-4}); do
  set -- $TOOLS
  for i in $(seq 1 $(( (rep - 1) % $# ))); do set -- "${@:2}" "$1"; done
  for w in "$@"; do
    case $w in
      xcp) run xcp $XCP -r --no-progress exp-tree out-exp/dst ;;
      ct:*) IFS=: read -r _ m o c <<<"$w"; ct $m $o $c ;;
      *) run $w bin/mcr-$w restore exp-small/dump out-exp/dst --threads 4 --state-dir exp-st --quiet --durability none ;;
    esac
  done
done
