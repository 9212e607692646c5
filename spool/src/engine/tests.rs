//! The engine conformance suite: every test function runs against every
//! engine (see the `conformance!` macro at the end).

use std::ops::{Bound, ControlFlow};
use std::path::Path;

use super::{Batch, Engine, EngineKind, Tree, prefix_successor};

fn open(kind: EngineKind, dir: &Path) -> Box<dyn Engine> {
    kind.open(dir).expect("open engine")
}

fn collect(e: &dyn Engine, tree: Tree, lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    e.scan(tree, lo, hi, &mut |k, _| {
        out.push(k.to_vec());
        ControlFlow::Continue(())
    })
    .unwrap();
    out
}

fn keys(list: &[&[u8]]) -> Vec<Vec<u8>> {
    list.iter().map(|k| k.to_vec()).collect()
}

pub(super) fn fresh_engine_has_empty_trees(kind: EngineKind, dir: &Path) {
    let e = open(kind, dir);
    assert_eq!(e.kind(), kind);
    for tree in Tree::ALL {
        assert_eq!(e.len(tree).unwrap(), 0, "{tree}");
        assert_eq!(e.get(tree, b"x").unwrap(), None);
    }
    assert!(kind.exists_in(dir));
    assert_eq!(EngineKind::detect(dir), Some(kind));
}

pub(super) fn put_get_overwrite_delete(kind: EngineKind, dir: &Path) {
    let e = open(kind, dir);
    let mut b = Batch::new();
    b.put(Tree::Envelopes, b"k1".to_vec(), b"v1".to_vec());
    b.put(Tree::Envelopes, b"k2".to_vec(), b"v2".to_vec());
    e.commit(&b).unwrap();
    assert_eq!(
        e.get(Tree::Envelopes, b"k1").unwrap().as_deref(),
        Some(&b"v1"[..])
    );
    assert_eq!(e.len(Tree::Envelopes).unwrap(), 2);

    let mut b = Batch::new();
    b.put(Tree::Envelopes, b"k1".to_vec(), b"v1-new".to_vec());
    b.delete(Tree::Envelopes, b"k2".to_vec());
    b.delete(Tree::Envelopes, b"absent".to_vec());
    e.commit(&b).unwrap();
    assert_eq!(
        e.get(Tree::Envelopes, b"k1").unwrap().as_deref(),
        Some(&b"v1-new"[..])
    );
    assert_eq!(e.get(Tree::Envelopes, b"k2").unwrap(), None);
    assert_eq!(e.len(Tree::Envelopes).unwrap(), 1);
}

pub(super) fn writes_apply_in_order(kind: EngineKind, dir: &Path) {
    let e = open(kind, dir);
    let mut b = Batch::new();
    b.put(Tree::Due, b"a".to_vec(), b"1".to_vec());
    b.delete(Tree::Due, b"a".to_vec());
    b.delete(Tree::Due, b"b".to_vec());
    b.put(Tree::Due, b"b".to_vec(), b"2".to_vec());
    b.put(Tree::Due, b"c".to_vec(), b"3".to_vec());
    b.put(Tree::Due, b"c".to_vec(), b"4".to_vec());
    e.commit(&b).unwrap();
    assert_eq!(e.get(Tree::Due, b"a").unwrap(), None);
    assert_eq!(e.get(Tree::Due, b"b").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(e.get(Tree::Due, b"c").unwrap().as_deref(), Some(&b"4"[..]));
}

pub(super) fn trees_are_isolated(kind: EngineKind, dir: &Path) {
    let e = open(kind, dir);
    let mut b = Batch::new();
    for (i, tree) in Tree::ALL.into_iter().enumerate() {
        b.put(tree, b"same".to_vec(), vec![i as u8]);
    }
    e.commit(&b).unwrap();
    for (i, tree) in Tree::ALL.into_iter().enumerate() {
        assert_eq!(e.get(tree, b"same").unwrap(), Some(vec![i as u8]));
        assert_eq!(e.len(tree).unwrap(), 1);
    }
    let mut b = Batch::new();
    b.delete(Tree::Held, b"same".to_vec());
    e.commit(&b).unwrap();
    assert_eq!(e.get(Tree::Held, b"same").unwrap(), None);
    assert_eq!(
        e.get(Tree::Due, b"same").unwrap(),
        Some(vec![Tree::Due.index() as u8])
    );
}

pub(super) fn scans_are_ordered_and_bounded(kind: EngineKind, dir: &Path) {
    let e = open(kind, dir);
    let mut b = Batch::new();
    // Inserted out of order; big-endian numbers sort numerically.
    for n in [300u64, 5, 70_000, 1, 256, 255] {
        b.put(Tree::Due, n.to_be_bytes().to_vec(), Vec::new());
    }
    e.commit(&b).unwrap();
    let all = collect(&*e, Tree::Due, Bound::Unbounded, Bound::Unbounded);
    let nums: Vec<u64> = all
        .iter()
        .map(|k| u64::from_be_bytes(k.as_slice().try_into().unwrap()))
        .collect();
    assert_eq!(nums, vec![1, 5, 255, 256, 300, 70_000]);

    let k5 = 5u64.to_be_bytes();
    let k300 = 300u64.to_be_bytes();
    assert_eq!(
        collect(&*e, Tree::Due, Bound::Included(&k5), Bound::Included(&k300)).len(),
        4
    );
    assert_eq!(
        collect(&*e, Tree::Due, Bound::Excluded(&k5), Bound::Excluded(&k300)).len(),
        2
    );
    assert_eq!(
        collect(&*e, Tree::Due, Bound::Unbounded, Bound::Excluded(&k5)).len(),
        1
    );
    // An inverted range is empty, not a panic.
    assert!(collect(&*e, Tree::Due, Bound::Included(&k300), Bound::Included(&k5)).is_empty());

    // Early stop.
    let mut seen = 0;
    e.scan(
        Tree::Due,
        Bound::Unbounded,
        Bound::Unbounded,
        &mut |_, _| {
            seen += 1;
            if seen == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    )
    .unwrap();
    assert_eq!(seen, 3);
}

pub(super) fn prefix_scans(kind: EngineKind, dir: &Path) {
    let e = open(kind, dir);
    let mut b = Batch::new();
    for k in [
        &b"alice@a\0\x01"[..],
        b"alice@a\0\x02",
        b"alice@ab\0\x01",
        b"alice@a",
        b"bob@b\0\x01",
        b"\xff\xff\x01",
        b"\xff\xff",
    ] {
        b.put(Tree::Held, k.to_vec(), b"v".to_vec());
    }
    e.commit(&b).unwrap();
    let mut got = Vec::new();
    e.scan_prefix(Tree::Held, b"alice@a\0", &mut |k, v| {
        assert_eq!(v, b"v");
        got.push(k.to_vec());
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(got, keys(&[b"alice@a\0\x01", b"alice@a\0\x02"]));

    let mut got = Vec::new();
    e.scan_prefix(Tree::Held, b"\xff\xff", &mut |k, _| {
        got.push(k.to_vec());
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(got, keys(&[b"\xff\xff", b"\xff\xff\x01"]));

    let mut n = 0;
    e.scan_prefix(Tree::Held, b"", &mut |_, _| {
        n += 1;
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(n, 7);
    assert_eq!(prefix_successor(b"ab\xff"), Some(b"ac".to_vec()));
    assert_eq!(prefix_successor(b"\xff"), None);
}

pub(super) fn commits_survive_reopen(kind: EngineKind, dir: &Path) {
    let big: Vec<u8> = (0..(1usize << 20)).map(|i| (i * 31 % 251) as u8).collect();
    {
        let e = open(kind, dir);
        for round in 0..20u8 {
            let mut b = Batch::new();
            b.put(Tree::Envelopes, vec![round], vec![round; 100]);
            b.put(Tree::Content, vec![round], vec![round; 3000]);
            b.put(Tree::Due, vec![0, round], Vec::new());
            if round % 2 == 1 {
                b.delete(Tree::Due, vec![0, round - 1]);
            }
            e.commit(&b).unwrap();
        }
        let mut b = Batch::new();
        b.put(Tree::Content, b"big".to_vec(), big.clone());
        e.commit(&b).unwrap();
    }
    let e = open(kind, dir);
    assert_eq!(e.len(Tree::Envelopes).unwrap(), 20);
    assert_eq!(e.len(Tree::Due).unwrap(), 10);
    for round in 0..20u8 {
        assert_eq!(
            e.get(Tree::Envelopes, &[round]).unwrap(),
            Some(vec![round; 100])
        );
        assert_eq!(
            e.get(Tree::Content, &[round]).unwrap(),
            Some(vec![round; 3000])
        );
    }
    assert_eq!(e.get(Tree::Content, b"big").unwrap(), Some(big));
}

pub(super) fn empty_batch_is_a_no_op(kind: EngineKind, dir: &Path) {
    let e = open(kind, dir);
    e.commit(&Batch::new()).unwrap();
    for tree in Tree::ALL {
        assert_eq!(e.len(tree).unwrap(), 0);
    }
}

pub(super) fn concurrent_reads_during_commits(kind: EngineKind, dir: &Path) {
    let e: std::sync::Arc<dyn Engine> = std::sync::Arc::from(open(kind, dir));
    let reader = {
        let e = e.clone();
        std::thread::spawn(move || {
            let mut last = 0;
            for _ in 0..200 {
                // Commits are atomic and ordered: counts never go backwards.
                let n = e.len(Tree::Envelopes).unwrap();
                assert!(n >= last);
                last = n;
            }
        })
    };
    for i in 0..50u32 {
        let mut b = Batch::new();
        b.put(Tree::Envelopes, i.to_be_bytes().to_vec(), vec![1]);
        b.put(Tree::Due, i.to_be_bytes().to_vec(), vec![]);
        e.commit(&b).unwrap();
    }
    reader.join().unwrap();
    assert_eq!(e.len(Tree::Envelopes).unwrap(), 50);
}

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod redb_conformance {
            $(
                #[test]
                fn $test() {
                    let dir = tempfile::tempdir().unwrap();
                    super::$test(super::EngineKind::Redb, dir.path());
                }
            )*
        }
        mod sled_conformance {
            $(
                #[test]
                fn $test() {
                    let dir = tempfile::tempdir().unwrap();
                    super::$test(super::EngineKind::Sled, dir.path());
                }
            )*
        }
    };
}

conformance!(
    fresh_engine_has_empty_trees,
    put_get_overwrite_delete,
    writes_apply_in_order,
    trees_are_isolated,
    scans_are_ordered_and_bounded,
    prefix_scans,
    commits_survive_reopen,
    empty_batch_is_a_no_op,
    concurrent_reads_during_commits,
);
