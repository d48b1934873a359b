#!/bin/bash
# fresh ext4 on a loop device that reads and writes its image with direct I/O (no second
# copy of DEST in the page cache), mounted at /work/benchdata/out-exp
set -e
D=/work/benchdata; M=$D/out-exp
if mountpoint -q $M; then dev=$(findmnt -n -o SOURCE $M); umount $M; losetup -d "$dev" 2>/dev/null || true; fi
mkdir -p $M; rm -f $D/exp.img; truncate -s 12G $D/exp.img
mkfs.ext4 -q -F $MKFS_OPTS -J size=1024 -E lazy_itable_init=0,lazy_journal_init=0 $D/exp.img
dev=$(losetup --direct-io=on --show -f $D/exp.img)
mount $dev $M
sync
