use rusqlite::{Connection, OpenFlags};
use std::time::Instant;
fn cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    let f: Vec<&str> = s.rsplit(')').next().unwrap().split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}
fn run(conn: &Connection, label: &str, sql: &str, ncols: usize) {
    let t = Instant::now();
    let c0 = cpu();
    let mut stmt = conn.prepare(sql).unwrap();
    let mut rows = stmt.query([]).unwrap();
    let mut n = 0u64;
    let mut bytes = 0usize;
    while let Some(r) = rows.next().unwrap() {
        n += 1;
        for i in 0..ncols {
            if let rusqlite::types::ValueRef::Text(t) = r.get_ref(i).unwrap() { bytes += t.len(); }
        }
    }
    println!("{label:40} rows {n:8} {:.3}s wall {:.2}s cpu  ({bytes})", t.elapsed().as_secs_f64(), cpu() - c0);
}
fn main() {
    let db = std::env::args().nth(1).unwrap();
    let threads = std::env::args().nth(2).unwrap_or("0".into());
    let conn = Connection::open_with_flags(format!("file:{db}?immutable=1"), OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI).unwrap();
    conn.execute_batch(&format!("PRAGMA threads={threads}")).unwrap();
    let fm = "'application/x.wd.dir'";
    let dates = "cTime, birthTime, NULL, NULL, NULL, NULL";
    for _ in 0..2 {
    run(&conn, "folders scan", &format!("SELECT id, parentID, name, {dates} FROM Files WHERE mimeType = {fm}"), 3);
    run(&conn, "pass1 sorted", &format!("SELECT id, COALESCE(parentID, ''), name, mimeType = {fm}, rowid FROM Files ORDER BY COALESCE(parentID, ''), id"), 3);
    run(&conn, "pass1 unsorted", &format!("SELECT parentID, name, mimeType = {fm}, rowid FROM Files"), 2);
    run(&conn, "pass2 sorted by parent,rowid", &format!("SELECT Files.id, parentID, contentID, name, size, {dates}, rowid FROM Files WHERE mimeType <> {fm} ORDER BY parentID, rowid"), 4);
    run(&conn, "pass2 unsorted", &format!("SELECT Files.id, parentID, contentID, name, size, {dates}, rowid FROM Files WHERE mimeType <> {fm}"), 4);
    run(&conn, "pass2 by parentID index order", &format!("SELECT Files.id, parentID, contentID, name, size, {dates}, rowid FROM Files WHERE mimeType <> {fm} ORDER BY parentID"), 4);
    {
        let t = Instant::now(); let c0 = cpu();
        let mut ids: Vec<String> = conn.prepare(&format!("SELECT id FROM Files WHERE mimeType = {fm} ORDER BY name")).unwrap().query_map([], |r| r.get(0)).unwrap().map(|x| x.unwrap()).collect();
        ids.sort();
        let mut stmt = conn.prepare_cached(&format!("SELECT Files.id, parentID, contentID, name, size, {dates}, rowid FROM Files WHERE parentID = ?1 AND mimeType <> {fm}")).unwrap();
        let mut n = 0; let mut bytes = 0;
        for id in &ids { let mut rows = stmt.query([id]).unwrap(); while let Some(r) = rows.next().unwrap() { n += 1; for i in 0..4 { if let rusqlite::types::ValueRef::Text(t) = r.get_ref(i).unwrap() { bytes += t.len(); } } } }
        println!("{:40} rows {n:8} {:.3}s wall {:.2}s cpu  ({bytes})", "pass2 per-folder queries", t.elapsed().as_secs_f64(), cpu() - c0);
    }
    run(&conn, "count", &format!("SELECT mimeType = {fm}, size, contentID IS NULL OR contentID = '' FROM Files WHERE mimeType IS NOT NULL"), 0);
    }
}
