import re,sys,collections
# phase2.py PERF_SCRIPT_TXT OFFSET(realtime-monotonic) SSHFS_DEBUG_LOG REPORT_JSON
import json
OFF=float(sys.argv[2]); del sys.argv[2]
ev=[]
for l in open(sys.argv[1]):
    m=re.match(r'\s*(\d+)\s+([\d.]+):\s+(\S+):\s*(.*)',l)
    if m: ev.append((int(m.group(1)),float(m.group(2))+OFF,m.group(3),m.group(4)))
fd_ut=[e for e in ev if e[2]=='syscalls:sys_enter_utimensat' and 'dfd: 0xffffff9c' not in e[3]]
path_ut=[e for e in ev if e[2]=='syscalls:sys_enter_utimensat' and 'dfd: 0xffffff9c' in e[3]]
last_file=max(e[1] for e in fd_ut)
t_dates=min(e[1] for e in path_ut)
dtids={e[0] for e in path_ut}
end=max(e[1] for e in ev if e[2]=='syscalls:sys_exit_utimensat' and e[0] in dtids)
def fuse(a,b):
    c=collections.Counter()
    for e in ev:
        if a<=e[1]<=b and e[2]=='fuse:fuse_request_send':
            c[re.search(r'\(FUSE_(\w+)\)',e[3]).group(1)]+=1
    return c
def sftp(a,b):
    c=collections.Counter()
    for l in open(sys.argv[2]):
        p=l.split()
        if len(p)==3 and re.match(r'\[\d+\]$',p[1]) and a<=float(p[0])<=b: c[p[2]]+=1
    return c
n=len(path_ut)
ph=json.load(open(sys.argv[3]))['phases']['folder_dates']
f=fuse(t_dates,end); s=sftp(t_dates,end)
print(f"phase {ph:.3f} s | dating {n} folders in {end-t_dates:.3f} s = {1000*(end-t_dates)/n:.2f} ms/folder | FUSE {dict(f)} = {sum(f.values())/n:.2f}/folder | SFTP {dict(s)} = {sum(s.values())/n:.2f}/folder")
f=fuse(last_file,t_dates); s=sftp(last_file,t_dates)
print(f"   before dating (empty-folder pass etc.): {t_dates-last_file:.3f} s FUSE {dict(f)} SFTP {dict(s)}")
