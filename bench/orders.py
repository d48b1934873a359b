#!/usr/bin/env python3
"""Write the object paths of a dump in four read orders, one file per order.

Usage: orders.py DUMP OUTDIR [--restore-order PLAN.jsonl]

  db.txt       Files rows in rowid order (insertion order: roughly when the device got them)
  cid.txt      sorted by contentID (what the predecessor did)
  restore.txt  the order our restore hands files to workers (from `plan --json`)
  phys.txt     by the physical address of each object's first extent (FIEMAP), which is
               what a rotational source disk rewards

The database is opened read-only and immutable: nothing is written to the dump.
"""
import array
import fcntl
import json
import os
import sqlite3
import struct
import sys

FS_IOC_FIEMAP = 0xC020660B
FIEMAP_FLAG_SYNC = 1


def first_physical(path):
    """Physical byte address of the file's first extent, or None (empty or unsupported)."""
    # struct fiemap: u64 start, u64 length, u32 flags, u32 mapped, u32 count, u32 reserved,
    # then `count` struct fiemap_extent of 56 bytes each.
    hdr = struct.pack("=QQIIII", 0, 0xFFFFFFFFFFFFFFFF, FIEMAP_FLAG_SYNC, 0, 1, 0)
    buf = array.array("B", hdr + bytes(56))
    try:
        with open(path, "rb") as f:
            fcntl.ioctl(f.fileno(), FS_IOC_FIEMAP, buf, True)
    except OSError:
        return None
    mapped = struct.unpack_from("=I", buf, 20)[0]
    if not mapped:
        return None
    logical, physical = struct.unpack_from("=QQ", buf, 32)
    return physical


def main():
    dump, out = sys.argv[1], sys.argv[2]
    plan = sys.argv[4] if len(sys.argv) > 4 and sys.argv[3] == "--restore-order" else None
    data = os.path.join(dump, "restsdk", "data")
    db = os.path.join(data, "db", "index.db")
    files = os.path.join(data, "files")
    con = sqlite3.connect(f"file:{db}?mode=ro&immutable=1", uri=True)
    rows = con.execute(
        "SELECT id, contentID FROM Files WHERE mimeType IS NOT 'application/x.wd.dir' "
        "AND contentID IS NOT NULL AND contentID != '' ORDER BY rowid"
    ).fetchall()

    def obj(cid):
        p = os.path.join(files, cid[0], cid)
        if os.path.exists(p):
            return p
        p = os.path.join(files, cid)
        return p if os.path.exists(p) else None

    by_id = {}
    db_order = []
    for rid, cid in rows:
        p = obj(cid)
        if p:
            by_id[rid] = (cid, p)
            db_order.append(p)
    os.makedirs(out, exist_ok=True)

    def write(name, ps):
        with open(os.path.join(out, name), "w") as f:
            for p in ps:
                f.write(p + "\n")

    write("db.txt", db_order)
    write("cid.txt", [p for _, p in sorted(by_id.values())])
    phys = []
    for cid, p in by_id.values():
        a = first_physical(p)
        phys.append((a if a is not None else -1, p))
    write("phys.txt", [p for _, p in sorted(phys)])
    if plan:
        order = []
        with open(plan) as f:
            for line in f:
                v = json.loads(line)
                if v.get("type") == "file" and v.get("skip") is None and v["id"] in by_id:
                    order.append(by_id[v["id"]][1])
        write("restore.txt", order)
    print(f"{len(db_order)} objects; FIEMAP addresses for {sum(1 for a, _ in phys if a >= 0)}")


if __name__ == "__main__":
    main()
