import sys,collections,statistics as st
f,a,b=sys.argv[1:4]
reps=collections.defaultdict(dict)
for l in open(f):
    r=l.split()
    if r[0]=='1': continue
    u=float(r[3].split('=')[1].split('/')[0]); reps[r[0]][r[1]]=(float(r[2]),u)
ws=[v[b][0]/v[a][0] for v in reps.values() if a in v and b in v]
us=[v[b][1]-v[a][1] for v in reps.values() if a in v and b in v]
print('wall ratio %s/%s median %.3f'%(b,a,st.median(ws)), ' '.join('%.2f'%x for x in ws))
print('user diff median %.3f'%st.median(us), ' '.join('%.2f'%x for x in us))
for t in (a,b): print(t, 'wall med %.2f user med %.2f'%(st.median(v[t][0] for v in reps.values()), st.median(v[t][1] for v in reps.values())))
