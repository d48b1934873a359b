#!/usr/bin/env python3
"""datebench.py ROOT MODE THREADS [SLEEP]: set the mtime of every folder in dated.txt under ROOT,
like mcr's folder-dates phase, and print the wall time.
MODE: path     full-path utimensat, items handed out one by one (mcr's in_parallel)
      chunk    full-path utimensat, each thread a contiguous slice
      heldfd   utimensat(fd, "", AT_EMPTY_PATH) on O_PATH fds opened before the pause (kept from the copy)
      parentfd open each distinct parent once (O_PATH, relative to its own parent fd, in tree
               order), then utimensat(parent_fd, name)"""
import os, sys, time, threading, codecs
root, mode, T = sys.argv[1], sys.argv[2], int(sys.argv[3])
pause = float(sys.argv[4]) if len(sys.argv) > 4 else 2.0
rels = [codecs.escape_decode(l.rstrip('\n'))[0].decode() for l in open('/tmp/agentB/dated.txt')]
rels.sort()
ts = 1_600_000_000_000_000_000
held = {}
if mode == 'heldfd':  # O_PATH fds opened before the pause, as if kept from the copy
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    class TS(ctypes.Structure): _fields_ = [('s', ctypes.c_long), ('ns', ctypes.c_long)]
    times = (TS * 2)(TS(ts // 10**9, 0), TS(ts // 10**9, 0))
    for r in rels: held[r] = os.open(os.path.join(root, r), os.O_PATH | os.O_DIRECTORY)
time.sleep(pause)  # let the kernel's FUSE dentries/attrs expire, as after a long copy
t0 = time.monotonic()
if mode in ('path', 'chunk'):
    nxt = [0]; lock = threading.Lock()
    def work_path(k):
        while True:
            with lock:
                i = nxt[0]; nxt[0] += 1
            if i >= len(rels): return
            os.utime(os.path.join(root, rels[i]), ns=(ts, ts))
    def work_chunk(k):
        n = len(rels); lo = n * k // T; hi = n * (k + 1) // T
        for r in rels[lo:hi]:
            os.utime(os.path.join(root, r), ns=(ts, ts))
    f = work_path if mode == 'path' else work_chunk
    th = [threading.Thread(target=f, args=(k,)) for k in range(T)]
    [t.start() for t in th]; [t.join() for t in th]
elif mode == 'heldfd':
    nxt = [0]; lock = threading.Lock()
    def work(k):
        while True:
            with lock:
                i = nxt[0]; nxt[0] += 1
            if i >= len(rels): return
            if libc.utimensat(held[rels[i]], b"", times, 0x1000) != 0:  # AT_EMPTY_PATH
                raise OSError(ctypes.get_errno(), rels[i])
    th = [threading.Thread(target=work, args=(k,)) for k in range(T)]
    [t.start() for t in th]; [t.join() for t in th]
elif mode == 'parentfd':
    fds = {'': os.open(root, os.O_PATH | os.O_DIRECTORY)}
    parents = sorted({'/'.join(r.split('/')[:k]) for r in rels for k in range(1, r.count('/') + 1)}, key=lambda p: p.count('/'))
    # open parents level by level, each relative to its own parent, in parallel within a level
    levels = {}
    for p in parents: levels.setdefault(p.count('/'), []).append(p)
    def opener(items):
        for p in items:
            par, _, name = p.rpartition('/')
            fds[p] = os.open(name, os.O_PATH | os.O_DIRECTORY, dir_fd=fds[par])
    for d in sorted(levels):
        items = levels[d]
        th = [threading.Thread(target=opener, args=(items[k::T],)) for k in range(T)]
        [t.start() for t in th]; [t.join() for t in th]
    t1 = time.monotonic()
    nxt = [0]; lock = threading.Lock()
    def work(k):
        while True:
            with lock:
                i = nxt[0]; nxt[0] += 1
            if i >= len(rels): return
            par, _, name = rels[i].rpartition('/')
            os.utime(name, dir_fd=fds[par], ns=(ts, ts))
    th = [threading.Thread(target=work, args=(k,)) for k in range(T)]
    [t.start() for t in th]; [t.join() for t in th]
    print(f"  (opening {len(parents)} parents: {t1 - t0:.3f} s)", file=sys.stderr)
print(f"{mode} T={T} {len(rels)} folders {time.monotonic() - t0:.3f} s")
