#!/usr/bin/env python3
"""Degenerate but plausible dumps for bench/degenerate.sh (not part of CI).

    bench/degenerate.py BASE_DUMP OUT_DUMP SHAPE N

BASE_DUMP is a dump the tool's own generator wrote (`mycloud-recover demo DIR --no-restore
--files 20 --tiny`): it gives the full 87-column `Files` table, its indexes, a user root and
a Trash root. This script copies it, keeps only those two roots, and adds N rows of one
shape, each a copy of one of the generator's rows with its id, parent, name and contentID
changed. File objects are zero-length (their rows say size 0): these shapes are about
names, folders and bookkeeping, not bytes.

Shapes (N counts the rows that make the shape):
  flat       N files with distinct names in one folder
  samename   N files all named `IMG_0001.JPG` in one folder (sibling suffixes)
  case       N files whose names differ only in case (use with --names windows)
  longname   N files with 300-byte names sharing a 290-byte prefix (shortened names)
  long255    N files all with the same 250-byte name (suffixes that must truncate)
  chain      a chain of N nested folders, one file at the bottom
  loop       N folders forming one parent cycle, one file in each
  orphans    N files whose parents (N distinct ids) do not exist
  emptydirs  N empty folders under the user's root
"""
import os
import shutil
import sqlite3
import sys

DIR = "application/x.wd.dir"


def row_id(prefix, i):
    # 24 characters like the device's ids; a shape-specific prefix keeps them unique.
    return f"{prefix}{i:0{24 - len(prefix)}d}"


def main():
    base, out, shape, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    if os.path.exists(out):
        shutil.rmtree(out)
    shutil.copytree(os.path.join(base, "restsdk"), os.path.join(out, "restsdk"), symlinks=True)
    data = os.path.join(out, "restsdk", "data")
    shutil.rmtree(os.path.join(data, "dbBackup"), ignore_errors=True)
    files_dir = os.path.join(data, "files")
    shutil.rmtree(files_dir)
    os.makedirs(files_dir)
    db = sqlite3.connect(os.path.join(data, "db", "index.db"))
    cols = [r[1] for r in db.execute("PRAGMA table_info(Files)")]
    root = db.execute(
        "SELECT id FROM Files WHERE (parentID IS NULL OR parentID = '') AND name LIKE 'auth0|%'"
    ).fetchone()[0]
    file_tpl = db.execute(
        "SELECT * FROM Files WHERE mimeType = 'image/jpeg' AND contentID IS NOT NULL LIMIT 1"
    ).fetchone()
    dir_tpl = db.execute(
        "SELECT * FROM Files WHERE mimeType = ? AND parentID = ? LIMIT 1", (DIR, root)
    ).fetchone()
    db.execute(
        "DELETE FROM Files WHERE NOT ((parentID IS NULL OR parentID = '') "
        "AND (name LIKE 'auth0|%' OR name = 'Trash'))"
    )
    ci = {c: k for k, c in enumerate(cols)}
    sql = f"INSERT INTO Files ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})"
    auto = [db.execute("SELECT max(autoID) FROM Files").fetchone()[0]]
    objects = []

    def add(tpl, id_, parent, name, content):
        r = list(tpl)
        auto[0] += 1
        r[ci["id"]] = id_
        r[ci["parentID"]] = parent
        r[ci["name"]] = name
        r[ci["contentID"]] = content
        r[ci["size"]] = 0
        r[ci["autoID"]] = auto[0]
        db.execute(sql, r)
        if content is not None and tpl is file_tpl:
            objects.append(content)

    def folder(i, parent, name):
        fid = row_id("d", i)
        add(dir_tpl, fid, parent, name, "dc" + row_id("", i) + "abcdef")
        return fid

    def file(i, parent, name):
        add(file_tpl, row_id("f", i), parent, name, "fc" + row_id("", i) + "abcdef")

    if shape in ("flat", "samename", "case", "longname", "long255"):
        top = folder(0, root, "Camera")
        prefix = "p" * 290
        for i in range(n):
            if shape == "flat":
                name = f"IMG_{i:07d}.JPG"
            elif shape == "samename":
                name = "IMG_0001.JPG"
            elif shape == "case":
                # 17 letters, the case of each from one bit of i: up to 131,072 spellings.
                name = "".join(
                    ch.upper() if i >> k & 1 else ch for k, ch in enumerate("photographsofcats")
                ) + ".jpg"
            elif shape == "longname":
                name = f"{prefix}{i:06d}.jpg"
            else:
                name = "q" * 246 + ".jpg"
            file(i, top, name)
    elif shape == "chain":
        parent = root
        for i in range(n):
            parent = folder(i, parent, "d")
        file(0, parent, "bottom.jpg")
    elif shape == "loop":
        for i in range(n):
            folder(i, row_id("d", (i + 1) % n), f"loop {i}")
            file(i, row_id("d", i), "in loop.jpg")
    elif shape == "orphans":
        for i in range(n):
            file(i, row_id("x", i), f"orphan {i}.jpg")
    elif shape == "emptydirs":
        for i in range(n):
            folder(i, root, f"empty {i:07d}")
    else:
        sys.exit(f"unknown shape {shape}")
    db.commit()
    db.close()
    for c in objects:
        shard = os.path.join(files_dir, c[0])
        os.makedirs(shard, exist_ok=True)
        open(os.path.join(shard, c), "wb").close()


if __name__ == "__main__":
    main()
