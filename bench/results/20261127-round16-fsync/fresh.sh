#!/bin/bash
# fresh ext4 like bench/run.sh, mounted at /work/benchdata/out-exp
set -e
D=/work/benchdata; M=$D/out-exp
mountpoint -q $M && umount $M
mkdir -p $M; rm -f $D/exp.img; truncate -s 12G $D/exp.img
mkfs.ext4 -q -F -J size=1024 -E lazy_itable_init=0,lazy_journal_init=0 $D/exp.img
mount -o loop $D/exp.img $M
sync
