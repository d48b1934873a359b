#!/usr/bin/env python3
"""Write "object<TAB>restored path" lines for bench/createtest.c, in three orders.

Usage: pairs.py DUMP PLAN.jsonl OUTDIR

  restore.txt  the order our restore hands files to workers (`plan --json`: folder by folder,
               folders in path order)
  rowid.txt    Files rows in rowid order (roughly when the device got them; what the
               restore did before it went folder by folder)
  shuffled.txt a fixed pseudo-random order (seed 1)

Only files whose object exists are listed. The database is opened read-only and immutable.
"""
import json
import os
import random
import sqlite3
import sys


def main():
    dump, plan, out = sys.argv[1:4]
    data = os.path.join(dump, "restsdk", "data")
    db = sqlite3.connect(
        "file:%s?mode=ro&immutable=1" % os.path.join(data, "db", "index.db"), uri=True
    )
    rows = {i: (r, c) for r, i, c in db.execute("SELECT rowid, id, contentID FROM Files")}
    files = os.path.join(data, "files")
    pairs = []
    with open(plan) as f:
        for line in f:
            e = json.loads(line)
            if e.get("type") != "file" or e.get("skip"):
                continue
            rowid, cid = rows.get(e["id"], (None, None))
            if not cid:
                continue
            obj = os.path.join(files, cid[0], cid)
            if os.path.exists(obj):
                pairs.append((rowid, obj, e["path"]))
    os.makedirs(out, exist_ok=True)

    def write(name, seq):
        with open(os.path.join(out, name), "w") as f:
            for _, obj, path in seq:
                f.write("%s\t%s\n" % (obj, path))

    write("restore.txt", pairs)
    write("rowid.txt", sorted(pairs))
    shuffled = list(pairs)
    random.Random(1).shuffle(shuffled)
    write("shuffled.txt", shuffled)
    print("pairs: %d files in %s" % (len(pairs), out))


main()
