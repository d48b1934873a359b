import sys,collections,statistics as st
reps=collections.defaultdict(dict)
for f in sys.argv[1:]:
    for l in open(f):
        r=l.split(); reps[(f,r[0])][r[1]]=float(r[2])
tools=set(k for v in reps.values() for k in v)
for t in sorted(tools-{'xcp'}):
    rs=[v['xcp']/v[t] for v in reps.values() if t in v and 'xcp' in v]
    print('%-26s vs xcp: median %.2f  n=%d  %s' % (t, st.median(rs), len(rs), ' '.join('%.2f'%x for x in rs)))
