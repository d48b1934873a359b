#!/bin/bash
# matrix.sh: every mode x threads, 3 reps, each after 21 s idle (sshfs's 20 s cache and the kernel's
# FUSE entries expired, as at the end of a long copy), on the sshfs_debug mount (counts SFTP requests)
for rep in 1 2 3; do for mode in path chunk parentfd heldfd; do for T in 1 4 16; do
  echo -n "rep $rep "; /tmp/agentB/sftpcount.sh python3 /tmp/agentB/datebench.py /tmp/agentB/net/mnt3/dst $mode $T 21 2>&1 | tr '\n' ' '; echo
done; done; done
