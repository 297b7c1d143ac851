use super::*;

fn fail_report(frame: u64, captured_unix_us: u64) -> FrameReport {
    FrameReport { frame, captured_unix_us, verdict: Verdict::Fail, ..FrameReport::default() }
}

fn image() -> RgbImage {
    RgbImage::from_fn(64, 64, |x, y| image::Rgb([(x * 4) as u8, (y * 4) as u8, ((x ^ y) * 4) as u8]))
}

fn config(dir: &Path) -> ArchiveConfig {
    ArchiveConfig { dir: dir.to_path_buf(), quota_mib: 100.0, all_frames: false, jpeg_quality: 90 }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// An archive whose quota holds `entries` entries of `image()` with overlay.
fn sized_for(dir: &Path, entries: f64) -> ArchiveSink {
    let img = image();
    let probe_dir = tempfile::tempdir().unwrap();
    let mut probe = ArchiveSink::open(&config(probe_dir.path()), Path::new("."), &[]).unwrap();
    probe.emit(&fail_report(0, 0), &FramePixels { image: &img, overlay: Some(&img) }).unwrap();
    let mut sink = ArchiveSink::open(&config(dir), Path::new("."), &[]).unwrap();
    sink.quota_bytes = (probe.total_bytes() as f64 * entries) as u64;
    sink.make_room(0);
    sink
}

fn emit(sink: &mut ArchiveSink, frame: u64, captured: u64) {
    let img = image();
    sink.emit(&fail_report(frame, captured), &FramePixels { image: &img, overlay: Some(&img) }).unwrap();
}

#[test]
fn keeps_failing_frames_under_quota_oldest_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = sized_for(dir.path(), 3.5);
    emit(&mut sink, 0, 1_000);
    let img = image();
    sink.emit(&FrameReport::default(), &FramePixels { image: &img, overlay: Some(&img) }).unwrap(); // a pass: not archived
    assert_eq!(sink.stored(), 1);
    for frame in 1..6 {
        emit(&mut sink, frame, 1_000 + frame);
    }
    assert_eq!(sink.stored(), 3);
    let n = names(dir.path());
    assert_eq!(n.len(), 9, "{n:?}");
    assert!(n[0].ends_with("-f3.jpg"), "oldest kept is frame 3: {n:?}");
    let quota = sink.quota_bytes;
    drop(sink);
    let mut again = ArchiveSink::open(&config(dir.path()), Path::new("."), &[]).unwrap();
    assert_eq!(again.stored(), 3, "picks up what was archived before");
    again.quota_bytes = quota;
    emit(&mut again, 0, 2_000);
    assert!(names(dir.path()).iter().any(|n| n.starts_with("edgeseg-000000000006-f0.")), "numbering goes on after a restart: {:?}", names(dir.path()));
}

/// Issue 24 item 8: a file of the old archive's shape that the archive did not
/// write (a phone photo) counted toward the quota and was evicted.
#[test]
fn files_it_did_not_write_are_neither_counted_nor_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let photo = dir.path().join("20231005_142311.jpg");
    std::fs::write(&photo, vec![0xAB; 200_000]).unwrap();
    // Even with a JSON of the same stem, unless it is the frame report of that stem.
    std::fs::write(dir.path().join("20231005_142311.json"), br#"{"note": "holiday"}"#).unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"line 3 camera moved").unwrap();
    let mut sink = sized_for(dir.path(), 2.5);
    assert_eq!((sink.stored(), sink.total_bytes()), (0, 0));
    for frame in 0..6 {
        emit(&mut sink, frame, 5_000 + frame);
    }
    assert_eq!(sink.stored(), 2);
    assert!(photo.exists() && dir.path().join("notes.txt").exists(), "{:?}", names(dir.path()));
    assert_eq!(std::fs::read(&photo).unwrap().len(), 200_000);
}

/// Entries of the previous naming (`<µs>_<frame>`) whose report matches their
/// name are still the archive's: counted, and evicted first.
#[test]
fn entries_of_the_previous_naming_are_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let old = "1700000000000000_7";
    std::fs::write(dir.path().join(format!("{old}.jpg")), vec![1u8; 5000]).unwrap();
    let json = serde_json::to_vec(&fail_report(7, 1_700_000_000_000_000)).unwrap();
    std::fs::write(dir.path().join(format!("{old}.json")), &json).unwrap();
    let mut sink = sized_for(dir.path(), 2.2);
    assert_eq!(sink.stored(), 1);
    assert_eq!(sink.total_bytes(), 5000 + json.len() as u64);
    emit(&mut sink, 8, 1);
    emit(&mut sink, 9, 2);
    assert!(!dir.path().join(format!("{old}.jpg")).exists(), "the adopted entry is the oldest: {:?}", names(dir.path()));
}

/// Issue 24 item 9: a quota smaller than one frame wrote and deleted every frame,
/// with only a DEBUG line; now nothing is written and it is counted (and warned).
#[test]
fn a_frame_larger_than_the_quota_is_not_written_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = sized_for(dir.path(), 0.5);
    emit(&mut sink, 0, 1);
    emit(&mut sink, 1, 2);
    assert_eq!(names(dir.path()), Vec::<String>::new());
    assert_eq!((sink.not_archived(), sink.overflow()), ((0, 2), 2));
    let e = ArchiveConfig { quota_mib: 0.05, ..config(dir.path()) }.check().unwrap_err().to_string();
    assert!(e.contains("sinks.archive.quota_mib") && e.contains("fix:"), "{e}");
}

/// Issue 24 item 10: a failed write left a 0-byte `.jpg` outside the quota and no `.json`.
#[test]
fn a_failed_write_leaves_nothing_and_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = ArchiveSink::open(&config(dir.path()), Path::new("."), &[]).unwrap();
    // JPEG holds at most 65535 pixels a side.
    let wide = RgbImage::new(65_536, 1);
    let e = sink.emit(&fail_report(0, 1), &FramePixels { image: &wide, overlay: None }).unwrap_err();
    assert!(format!("{e:#}").contains("65536x1"), "{e:#}");
    assert_eq!(names(dir.path()), Vec::<String>::new());
    // A full disk: the temporary file of the next entry is /dev/full.
    let stem = store::stem(sink.next_seq, 1);
    std::os::unix::fs::symlink("/dev/full", dir.path().join(store::tmp_name(&format!("{stem}.json")))).unwrap();
    let img = image();
    let e = sink.emit(&fail_report(1, 2), &FramePixels { image: &img, overlay: Some(&img) }).unwrap_err();
    assert!(format!("{e:#}").contains("cannot write"), "{e:#}");
    assert_eq!(names(dir.path()), Vec::<String>::new(), "the image files written before the report are removed too");
    assert_eq!((sink.stored(), sink.total_bytes(), sink.overflow()), (0, 0, 2));
    emit(&mut sink, 2, 3);
    assert_eq!(sink.stored(), 1, "the next frame is archived");
}

/// Issue 24 item 20: eviction followed the capture time in the names, so after a
/// restart a clock that had stepped back (a board without RTC) made the newest
/// frames go first.
#[test]
fn eviction_follows_write_order_not_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = sized_for(dir.path(), 3.5);
    let quota = sink.quota_bytes;
    // Frame 2 stamped in 2025; the clock then steps back to 1970 for frames 3 and 4.
    emit(&mut sink, 2, 1_750_000_000_000_000);
    emit(&mut sink, 3, 1_003);
    emit(&mut sink, 4, 1_004);
    drop(sink);
    // A restart: the order comes from the folder now.
    let mut sink = ArchiveSink::open(&config(dir.path()), Path::new("."), &[]).unwrap();
    sink.quota_bytes = quota;
    emit(&mut sink, 5, 1_005);
    let kept: Vec<String> = names(dir.path()).into_iter().filter(|n| n.ends_with(".json")).collect();
    assert_eq!(kept.len(), 3);
    assert!(kept.iter().all(|n| !n.ends_with("-f2.json")), "frame 2 was written first and goes first: {kept:?}");
}
