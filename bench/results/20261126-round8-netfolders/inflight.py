import re,sys
out=set(); mx=0; hist={}
prev=None; area=0.0; t0=None
for l in open(sys.argv[1]):
    m=re.match(r'([\d.]+) (\s*)\[(\d+)\]\s+(\S+)',l)
    if not m: continue
    t=float(m.group(1)); rid=m.group(3)
    if t0 is None: t0=t
    if prev is not None: area+=len(out)*(t-prev)
    prev=t
    if m.group(2)=='': out.add(rid)
    else: out.discard(rid)
    mx=max(mx,len(out))
print('max in flight',mx,'mean in flight %.1f'%(area/(prev-t0)))
