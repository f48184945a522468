use super::*;
use std::path::PathBuf;

/// A deterministic chooser: cycles through the given answers (mod n).
fn chooser(answers: Vec<u64>) -> impl FnMut(u64) -> u64 {
    let mut i = 0;
    move |n| {
        let a = answers[i % answers.len()] % n;
        i += 1;
        a
    }
}

fn dir() -> PathBuf {
    PathBuf::from("/d")
}

#[test]
fn sim_crash_keeps_synced_contents_and_names() {
    let disk = SimDisk::new();
    disk.create_dir_all(&dir()).unwrap();
    let f = disk.open(&dir().join("a"), OpenMode::CreateNew).unwrap();
    f.write_all_at(0, b"hello").unwrap();
    f.sync_data().unwrap();
    disk.sync_dir(&dir()).unwrap();
    f.write_all_at(5, b" world").unwrap();
    // Keep none of the pending writes, tear nothing.
    disk.crash(&mut chooser(vec![0]));
    assert!(f.len().is_err(), "a handle must die with the crash");
    assert_eq!(read_all(&disk, &dir().join("a")).unwrap(), b"hello");
}

#[test]
fn sim_crash_without_dir_sync_loses_the_name() {
    let disk = SimDisk::new();
    disk.create_dir_all(&dir()).unwrap();
    let f = disk.open(&dir().join("a"), OpenMode::CreateNew).unwrap();
    f.write_all_at(0, b"x").unwrap();
    f.sync_data().unwrap();
    disk.crash(&mut chooser(vec![0]));
    assert!(!disk.exists(&dir().join("a")));
    assert_eq!(disk.list(&dir()).unwrap(), Vec::<String>::new());
}

#[test]
fn sim_crash_keeps_an_in_order_prefix_and_may_tear_the_next_write() {
    let disk = SimDisk::new();
    disk.create_dir_all(&dir()).unwrap();
    let path = dir().join("log");
    let f = disk.open(&path, OpenMode::CreateNew).unwrap();
    f.sync_data().unwrap();
    disk.sync_dir(&dir()).unwrap();
    f.write_all_at(0, b"aaaa").unwrap();
    f.write_all_at(4, b"bbbb").unwrap();
    f.write_all_at(8, b"cccc").unwrap();
    // Keep 1 write whole, tear the second after 2 bytes.
    disk.crash(&mut chooser(vec![1, 2]));
    assert_eq!(read_all(&disk, &path).unwrap(), b"aaaabb");
}

#[test]
fn sim_rename_is_durable_only_after_dir_sync() {
    let disk = SimDisk::new();
    disk.create_dir_all(&dir()).unwrap();
    let target = dir().join("state");
    write_atomic(&disk, &target, b"one").unwrap();
    let tmp = dir().join("state.tmp");
    let f = disk.open(&tmp, OpenMode::Truncate).unwrap();
    f.write_all_at(0, b"two").unwrap();
    f.sync_data().unwrap();
    disk.rename(&tmp, &target).unwrap();
    assert_eq!(read_all(&disk, &target).unwrap(), b"two");
    disk.crash(&mut chooser(vec![0]));
    assert_eq!(read_all(&disk, &target).unwrap(), b"one");
    write_atomic(&disk, &target, b"three").unwrap();
    disk.crash(&mut chooser(vec![0]));
    assert_eq!(read_all(&disk, &target).unwrap(), b"three");
}

#[test]
fn sim_set_len_and_reads_past_end() {
    let disk = SimDisk::new();
    disk.create_dir_all(&dir()).unwrap();
    let f = disk.open(&dir().join("f"), OpenMode::Create).unwrap();
    f.write_all_at(2, b"xy").unwrap();
    let mut buf = [9u8; 4];
    f.read_exact_at(0, &mut buf).unwrap();
    assert_eq!(buf, [0, 0, b'x', b'y']);
    f.set_len(3).unwrap();
    assert_eq!(f.len().unwrap(), 3);
    let err = f.read_exact_at(0, &mut buf).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    let ro = disk.open(&dir().join("f"), OpenMode::Read).unwrap();
    assert!(ro.write_all_at(0, b"z").is_err());
}

#[test]
fn sim_flip_bit_changes_one_bit() {
    let disk = SimDisk::new();
    disk.create_dir_all(&dir()).unwrap();
    let path = dir().join("f");
    write_atomic(&disk, &path, &[0u8; 8]).unwrap();
    assert!(disk.flip_bit(&path, 3, 1));
    assert_eq!(read_all(&disk, &path).unwrap(), [0, 0, 0, 2, 0, 0, 0, 0]);
    assert!(!disk.flip_bit(&path, 8, 0));
}

/// Removes its directory when dropped, also when the test fails.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn real_disk_round_trip_and_atomic_replace() {
    let guard = TempDir(std::env::temp_dir().join(format!("disk-test-{}", std::process::id())));
    let tmp = guard.0.clone();
    let disk = RealDisk;
    disk.create_dir_all(&tmp).unwrap();
    let path = tmp.join("f");
    write_atomic(&disk, &path, b"first").unwrap();
    write_atomic(&disk, &path, b"second").unwrap();
    assert_eq!(read_all(&disk, &path).unwrap(), b"second");
    assert_eq!(disk.list(&tmp).unwrap(), vec!["f".to_string()]);
    let f = disk.open(&path, OpenMode::ReadWrite).unwrap();
    f.write_all_at(6, b"!").unwrap();
    f.sync_data().unwrap();
    assert_eq!(f.len().unwrap(), 7);
    disk.remove(&path).unwrap();
    assert!(!disk.exists(&path));
}

#[test]
fn sim_allocate_grows_with_zeros_and_never_shrinks_or_overwrites() {
    let disk = SimDisk::new();
    disk.create_dir_all(&dir()).unwrap();
    let path = dir().join("f");
    let f = disk.open(&path, OpenMode::CreateNew).unwrap();
    f.write_all_at(0, b"abc").unwrap();
    f.allocate(8).unwrap();
    assert_eq!(read_all(&disk, &path).unwrap(), b"abc\0\0\0\0\0");
    // Smaller or equal: nothing changes.
    f.allocate(2).unwrap();
    f.allocate(8).unwrap();
    assert_eq!(read_all(&disk, &path).unwrap(), b"abc\0\0\0\0\0");
    // Writes inside the allocated space do not change the length.
    f.write_all_at(3, b"de").unwrap();
    assert_eq!(f.len().unwrap(), 8);
    assert_eq!(read_all(&disk, &path).unwrap(), b"abcde\0\0\0");
    assert_eq!(disk.stats().bytes_written, 5, "allocating writes nothing");
}

#[test]
fn sim_allocate_is_durable_after_sync_and_ordered_with_writes_before() {
    let disk = SimDisk::new();
    disk.create_dir_all(&dir()).unwrap();
    let path = dir().join("f");
    let f = disk.open(&path, OpenMode::CreateNew).unwrap();
    f.write_all_at(0, b"hd").unwrap();
    f.allocate(6).unwrap();
    f.sync_data().unwrap();
    disk.sync_dir(&dir()).unwrap();
    disk.crash(&mut chooser(vec![0]));
    assert_eq!(read_all(&disk, &path).unwrap(), b"hd\0\0\0\0");

    // Pending: a write, an allocation, a write into it. A crash keeps an
    // in-order prefix of the three.
    let outcomes: Vec<(u64, &[u8])> = vec![
        (0, b"hd\0\0\0\0"),
        (1, b"hdxx\0\0"),
        (2, b"hdxx\0\0\0\0\0\0"),
        (3, b"hdxx\0\0\0\0yy"),
    ];
    for (kept, expected) in outcomes {
        let disk = SimDisk::new();
        disk.create_dir_all(&dir()).unwrap();
        let f = disk.open(&path, OpenMode::CreateNew).unwrap();
        f.write_all_at(0, b"hd").unwrap();
        f.allocate(6).unwrap();
        f.sync_data().unwrap();
        disk.sync_dir(&dir()).unwrap();
        f.write_all_at(2, b"xx").unwrap();
        f.allocate(10).unwrap();
        f.write_all_at(8, b"yy").unwrap();
        // Keep `kept` operations; the next one, if a write, is not torn
        // (its kept prefix is chosen as 0 bytes).
        disk.crash(&mut chooser(vec![kept, 0]));
        assert_eq!(
            read_all(&disk, &path).unwrap(),
            expected,
            "{kept} operations kept"
        );
    }
}

#[test]
fn real_disk_allocate_extends_with_allocated_zeros_and_keeps_contents() {
    use std::os::unix::fs::MetadataExt;
    let guard =
        TempDir(std::env::temp_dir().join(format!("disk-test-allocate-{}", std::process::id())));
    let tmp = guard.0.clone();
    let disk = RealDisk;
    disk.create_dir_all(&tmp).unwrap();
    let path = tmp.join("f");
    let f = disk.open(&path, OpenMode::CreateNew).unwrap();
    f.write_all_at(0, b"header").unwrap();
    let len = 1 << 20;
    f.allocate(len).unwrap();
    assert_eq!(f.len().unwrap(), len);
    let bytes = read_all(&disk, &path).unwrap();
    assert_eq!(&bytes[..6], b"header");
    assert!(bytes[6..].iter().all(|&b| b == 0));
    // Real blocks, not a hole (the file system here supports fallocate:
    // the tests run on ext4; a sparse file would hold one block).
    let meta = std::fs::metadata(&path).unwrap();
    assert!(
        meta.blocks() * 512 >= len,
        "{} blocks of 512 bytes for {len} bytes",
        meta.blocks()
    );
    // Never shrinks, never changes what is there.
    f.write_all_at(100, b"data").unwrap();
    f.allocate(10).unwrap();
    f.allocate(len).unwrap();
    assert_eq!(f.len().unwrap(), len);
    let mut buf = [0u8; 4];
    f.read_exact_at(100, &mut buf).unwrap();
    assert_eq!(&buf, b"data");
    f.allocate(0).unwrap();
    assert_eq!(f.len().unwrap(), len);
    f.sync_data().unwrap();
}
