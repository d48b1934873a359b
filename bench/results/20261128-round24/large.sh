#!/bin/bash
# Large files A/B: alternated pairs, fresh direct-I/O ext4 each run, source read into memory first.
cd /work/benchdata
out=${OUT:-/tmp/exp/large-r23.txt}
for rep in $(seq 1 ${REPS:-9}); do
  set -- $TOOLS
  [ $((rep % 2)) -eq 0 ] && set -- $2 $1
  for t in "$@"; do
    /tmp/exp/fresh-dio.sh; rm -rf exp-st-l
    find exp-large/d/dump -type f -print0 | xargs -0 cat > /dev/null; sync
    t0=$(date +%s.%N)
    /usr/bin/time -f "%U %S" -o /tmp/exp/tl.txt bin/mcr-$t restore exp-large/d/dump out-exp/dst --state-dir exp-st-l --quiet >/dev/null 2>&1
    t1=$(date +%s.%N)
    echo "$rep $t $(echo "$t1 - $t0" | bc) $(tail -1 /tmp/exp/tl.txt)" | tee -a $out
  done
done
umount /work/benchdata/out-exp; losetup -D; rm -f /work/benchdata/exp.img
