import re,sys,collections
# phase = from first utimensat with dfd=AT_FDCWD(0xffffff9c) minus the empty-folder pass: we take
# window [first statx/mkdir after the last file utimensat(fd), last utimensat exit]
ev=[]
for l in open(sys.argv[1]):
    m=re.match(r'\s*(\d+)\s+([\d.]+):\s+(\S+):\s*(.*)',l)
    if m: ev.append((int(m.group(1)),float(m.group(2)),m.group(3),m.group(4)))
fd_ut=[e for e in ev if e[2]=='syscalls:sys_enter_utimensat' and 'dfd: 0xffffff9c' not in e[3]]
path_ut=[e for e in ev if e[2]=='syscalls:sys_enter_utimensat' and 'dfd: 0xffffff9c' in e[3]]
last_file=max(e[1] for e in fd_ut)
t_dates=min(e[1] for e in path_ut)
dtids={e[0] for e in path_ut}
end=max(e[1] for e in ev if e[2]=='syscalls:sys_exit_utimensat' and e[0] in dtids)
# empty pass: statx/mkdir after last file op and before t_dates, by threads not in dtids
def count(a,b,tids=None):
    c=collections.Counter()
    for e in ev:
        if a<=e[1]<=b and (tids is None or e[0] in tids) and e[2]=='fuse:fuse_request_send':
            c[re.search(r'\((\w+)\)',e[3]).group(1)]+=1
    return c
print('dating: %d folders, %.3f s, %d threads'%(len(path_ut),end-t_dates,len(dtids)))
c=count(t_dates,end,dtids); print(' fuse requests during dating:',dict(c),'per folder %.2f'%(sum(c.values())/len(path_ut)))
print('before dating (after last file utimensat): %.3f s'%(t_dates-last_file), dict(count(last_file,t_dates)))
