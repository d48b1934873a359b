import statistics as st,collections,sys
d=collections.defaultdict(list);c=collections.defaultdict(list)
for l in open(sys.argv[1]):
    r=l.split(); d[r[1]].append(float(r[2])); u,s,i=r[3][4:].split('/'); c[r[1]].append((float(u),float(s),int(i)))
for k in sorted(d): print('%-28s wall %.2f  user %.2f sys %.2f  n=%d  range %.2f-%.2f maxread %d' % (k, st.median(d[k]), st.median(x[0] for x in c[k]), st.median(x[1] for x in c[k]), len(d[k]), min(d[k]), max(d[k]), max(x[2] for x in c[k])))
