import csv, statistics as st, sys
rows = list(csv.DictReader(open(sys.argv[1])))
g = {}
for r in rows:
    g.setdefault((r["phase"], int(r["n"]), r["bin"]), []).append(r)
cpu = lambda r: float(r["user_s"]) + float(r["sys_s"])
print(f"{'phase':7}{'n':>8} {'bin':5}{'runs':>5}{'wall':>7}{'CPU':>7}{'user':>7}{'sys':>7}{'RSS MB':>8}  fix/base wall, CPU (median of pairs)")
for (ph, n, b), rs in sorted(g.items()):
    line = f"{ph:7}{n:>8} {b:5}{len(rs):>5}{st.median(float(r['wall_s']) for r in rs):7.2f}{st.median(cpu(r) for r in rs):7.2f}{st.median(float(r['user_s']) for r in rs):7.2f}{st.median(float(r['sys_s']) for r in rs):7.2f}{st.median(int(r['maxrss_kb']) for r in rs)/1024:8.1f}"
    if b == "fix":
        base = {r["rep"]: r for r in g[(ph, n, "base")]}
        wr = st.median(float(r["wall_s"]) / float(base[r["rep"]]["wall_s"]) for r in rs)
        cr = st.median(cpu(r) / cpu(base[r["rep"]]) for r in rs)
        line += f"  {wr:.2f}, {cr:.2f}"
    print(line)
