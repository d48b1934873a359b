#!/usr/bin/env bash
# Round 14: verify and regen of the `orphans` shape, round 13's binary (base) against the
# fix (one stat per object in verify), interleaved in each repetition (the first of the two alternating); DEST restored once.
#   pairs.sh DATA REPS SIZES...   (DATA holds mcr-base, mcr-fix, p<N>/{dump,dst,state})
set -euo pipefail
DATA=$1; REPS=$2; shift 2
CSV=$DATA/pairs.csv
echo "bin,n,phase,rep,wall_s,maxrss_kb,rc,user_s,sys_s" >"$CSV"
for rep in $(seq "$REPS"); do
  for n in "$@"; do
    D=$DATA/p$n
    for bin in $(if ((rep % 2)); then echo base fix; else echo fix base; fi); do
      rc=0; /usr/bin/time -f '%e %M %U %S' -o "$DATA/t.txt" "$DATA/mcr-$bin" verify "$D/dump" "$D/dst" --state-dir "$D/state" >/dev/null 2>&1 || rc=$?
      read -r w m u s < <(tail -1 "$DATA/t.txt"); echo "$bin,$n,verify,$rep,$w,$m,$rc,$u,$s" >>"$CSV"
    done
    for bin in $(if ((rep % 2)); then echo base fix; else echo fix base; fi); do
      rm -rf "$D/rs"; rc=0
      /usr/bin/time -f '%e %M %U %S' -o "$DATA/t.txt" "$DATA/mcr-$bin" regen "$D/dump" "$D/dst" --state-dir "$D/rs" >/dev/null 2>&1 || rc=$?
      read -r w m u s < <(tail -1 "$DATA/t.txt"); echo "$bin,$n,regen,$rep,$w,$m,$rc,$u,$s" >>"$CSV"
    done
  done
done
