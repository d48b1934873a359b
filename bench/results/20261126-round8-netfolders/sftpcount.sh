#!/bin/bash
# sftpcount.sh CMD...: runs CMD against the sshfs_debug mount (mnt3) and counts SFTP requests it caused
L=/tmp/agentB/sshfs-debug.log
sleep 0.5; a=$(wc -l <$L)
"$@"
sleep 0.5; tail -n +$((a+1)) $L | awk '$2 ~ /^\[[0-9]+\]$/ && NF==3 {print $3}' | sort | uniq -c | tr '\n' ' '; echo
