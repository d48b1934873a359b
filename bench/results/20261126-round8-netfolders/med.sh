#!/bin/bash
# med.sh N CMD... : run CMD N times, print each wall time (5th field) and the median
r=(); for i in $(seq 1 $1); do r+=($("${@:2}" | awk '{print $5}')); done
printf '%s\n' "${r[@]}" | sort -n | awk -v c="${*:2}" '{a[NR]=$1} END{printf "%s: median %s  [", c, a[int((NR+1)/2)]; for(i=1;i<=NR;i++) printf " %s", a[i]; print " ]"}'
