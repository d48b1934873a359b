#!/usr/bin/env python3
"""Summarize a bench/run.sh results CSV: medians per configuration, ratios against cp -a.

Usage: summarize.py RESULTS.csv [MORE.csv ...]   (prints Markdown tables)

"vs cp -a" is cp -a's median wall time divided by this row's median wall time, both from the
same CSV, same section, shape, cache state (and network delay): above 1 means faster than
cp -a. Rows measured fewer than 3 times are marked with their count.
"""
import csv
import statistics
import sys
from collections import OrderedDict


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def load(paths):
    rows = []
    for p in paths:
        with open(p) as f:
            rows.extend(csv.DictReader(f))
    return rows


def delay_of(extra):
    for part in (extra or "").split(";"):
        if part.startswith("delay_ms="):
            return part.split("=", 1)[1]
    return ""


def auto_of(extras):
    for e in extras:
        for part in (e or "").split(";"):
            if part.startswith("auto_threads="):
                return part.split("=", 1)[1]
    return ""


def group(rows):
    g = OrderedDict()
    for r in rows:
        key = (r["section"], r["shape"], r["tool"], r["threads"], r["cache"], delay_of(r["extra"]))
        g.setdefault(key, []).append(r)
    return g


def stats(rs):
    f = lambda k: [float(r[k]) for r in rs if r[k] not in ("", None)]
    wall = f("wall_s")
    cpu = [float(r["user_s"]) + float(r["sys_s"]) for r in rs]
    return {
        "n": len(rs),
        "wall": med(wall),
        "wmin": min(wall) if wall else float("nan"),
        "wmax": max(wall) if wall else float("nan"),
        "load": med([float(x.split("=")[1]) for r in rs for x in (r["extra"] or "").split(";") if x.startswith("load1=")]),
        "cpu": med(cpu),
        "rss_mb": med(f("maxrss_kb")) / 1024,
        "files": int(rs[0]["files"] or 0),
        "bytes": int(float(rs[0]["bytes"] or 0)),
        "plan": med(f("plan_s")),
        "copy": med(f("copy_s")),
        "fdates": med(f("folder_dates_s")),
        "rc": ",".join(sorted({r["rc"] for r in rs})),
        "auto": auto_of([r["extra"] for r in rs]),
        "ckpt": med(extra_floats(rs, "ckpt_write")),
        "flush": med(extra_floats(rs, "ckpt_flush")),
        "est_best": med(extra_floats(rs, "est_best")),
        "est_worst": med(extra_floats(rs, "est_worst")),
    }


def extra_floats(rs, key):
    out = []
    for r in rs:
        for part in (r["extra"] or "").split(";"):
            k, _, v = part.partition("=")
            if k == key and v:
                try:
                    out.append(float(v))
                except ValueError:
                    pass
    return out


def md(text):
    """A table cell: pipes escaped."""
    return text.replace("|", "\\|")


def fmt(x, nd=2):
    if x != x:  # nan
        return "-"
    if abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:.{nd}f}"


def main():
    rows = load(sys.argv[1:])
    if not rows:
        print("no results")
        return
    g = group(rows)
    st = {k: stats(v) for k, v in g.items()}
    sections = list(OrderedDict.fromkeys(k[0] for k in st))
    for sec in sections:
        keys = [k for k in st if k[0] == sec]
        print(f"\n### {sec}\n")
        if sec == "scale":
            print("| shape | what | cache | wall s (median) | min-max | CPU s | peak RSS MB | runs | vs find | load |")
            print("|---|---|---|---|---|---|---|---|---|---|")
            for k in keys:
                s = st[k]
                f = st.get((sec, k[1], "find DEST | wc -l", "1", k[4], k[5]))
                ratio = fmt(s["wall"] / f["wall"]) + "x" if f and ("resume" in k[2] or "regen" in k[2]) else ""
                print(f"| {k[1]} | {md(k[2])} | {k[4]} | {fmt(s['wall'])} | {fmt(s['wmin'])}-{fmt(s['wmax'])} | {fmt(s['cpu'])} | {fmt(s['rss_mb'], 0)} | {s['n']} | {ratio} | {fmt(s['load'], 1)} |")
            continue
        if sec == "estimate":
            # One row per repetition: that repetition's pre-flight estimate against the
            # restore it recommended, run right after it.
            print("| shape | rep | threads | cache | estimate best s | estimate worst s | actual wall s | verdict |")
            print("|---|---|---|---|---|---|---|---|")
            for r in rows:
                if r["section"] != sec:
                    continue
                lo = (extra_floats([r], "est_best") or [float("nan")])[0]
                hi = (extra_floats([r], "est_worst") or [float("nan")])[0]
                w = float(r["wall_s"])
                if lo <= w <= hi:
                    verdict = "bracketed"
                else:
                    near = min(abs(w - lo), abs(w - hi)) / w if w > 0 else float("nan")
                    verdict = f"outside, {near * 100:.0f}% from the nearer bound"
                print(f"| {r['shape']} | {r['rep']} | {r['threads']} | {r['cache']} | {fmt(lo)} | {fmt(hi)} | {fmt(w)} | {verdict} |")
            continue
        base_tool = {"copymethod": "cfr", "procs": "mcr 1 proc x 4 threads", "create": "xcp"}.get(sec, "cp -a")
        base_name = "vs db order" if sec == "readorder" else f"vs {base_tool}"
        print(f"| shape | tool | threads | cache | delay ms | files/s | MB/s | wall s | min-max | CPU s | peak RSS MB | {base_name} | runs | load | phases plan/copy/dirs s |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for k in keys:
            s = st[k]
            bt = base_tool
            if sec == "copymethod" and k[2].endswith("+sync"):
                bt = "cfr+sync"
            if sec == "readorder":
                bt = "read db order"
            bth = k[3] if sec in ("readorder", "procs", "create") else "1"
            b = st.get((sec, k[1], bt, bth, k[4], k[5]))
            ratio = fmt(b["wall"] / s["wall"]) if b else "-"
            fps = s["files"] / s["wall"] if s["wall"] > 0 else float("nan")
            mbs = s["bytes"] / 1e6 / s["wall"] if s["wall"] > 0 else float("nan")
            th = k[3] + (f" ({s['auto']})" if k[3] == "auto" and s["auto"] else "")
            phases = "" if s["copy"] != s["copy"] else f"{fmt(s['plan'])}/{fmt(s['copy'])}/{fmt(s['fdates'])}"
            if s["ckpt"] == s["ckpt"] and s["files"]:
                phases += f"; checkpoint {s['ckpt'] / s['files'] * 1e6:.1f} us/file, flush {fmt(s['flush'])} s"
            print(f"| {k[1]} | {k[2]} | {th} | {k[4]} | {k[5] or '-'} | {fmt(fps, 0)} | {fmt(mbs, 0)} | {fmt(s['wall'])} | {fmt(s['wmin'])}-{fmt(s['wmax'])} | {fmt(s['cpu'])} | {fmt(s['rss_mb'], 0)} | {ratio} | {s['n']} | {fmt(s['load'], 1)} | {phases} |")


if __name__ == "__main__":
    main()
