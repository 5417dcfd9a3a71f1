//! A hostile gossip message within the 65,507-byte cap whose zstd blocks would inflate to
//! hundreds of megabytes is refused before anything is inflated: decoding it allocates next
//! to nothing. (Measured with a counting allocator, on this test's own thread.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use starling_cluster::transport::{
    GOSSIP_MAX_INFLATED, GOSSIP_MAX_MESSAGE_SIZE, InflationError, check_inflation, decode_gossip,
};

struct Counting;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator unchanged; only adds to a thread-local counter
// (a const-initialised Cell, which needs no allocation and has no destructor).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATED.try_with(|a| a.set(a.get() + layout.size()));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATED.try_with(|a| a.set(a.get() + new_size));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocated_by<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCATED.with(Cell::get);
    let out = f();
    (out, ALLOCATED.with(Cell::get) - before)
}

fn block(len: u16) -> Vec<u8> {
    zstd::bulk::compress(&vec![0u8; usize::from(len)], 0).unwrap()
}

/// An ACK (or, with a digest, a SYN-ACK) whose delta is `blocks`, then the end tag.
fn message(kind: u8, digest: &[u8], blocks: &[Vec<u8>]) -> Vec<u8> {
    let mut msg = 45_139u16.to_le_bytes().to_vec();
    msg.extend_from_slice(&[0, kind]);
    msg.extend_from_slice(digest);
    for b in blocks {
        msg.push(1);
        msg.extend_from_slice(&(b.len() as u16).to_le_bytes());
        msg.extend_from_slice(b);
    }
    msg.push(0);
    msg
}

#[test]
fn an_inflation_bomb_within_the_size_cap_is_refused_without_allocating() {
    let one = block(u16::MAX);
    let count = (GOSSIP_MAX_MESSAGE_SIZE - 5) / (one.len() + 3);
    let bomb = message(2, &[], &vec![one; count]);
    assert!(bomb.len() <= GOSSIP_MAX_MESSAGE_SIZE);
    assert!(count * 65_535 > 100 << 20, "the bomb inflates past 100 MB");
    let (result, bytes) = allocated_by(|| decode_gossip(&bomb));
    // chitchat alone inflates every block into one buffer (about 260 MB here) and then parses
    // the zeros as a delta.
    assert!(
        bytes < 64 << 10,
        "decoding the bomb allocated {bytes} bytes"
    );
    let err = result.unwrap_err();
    assert!(
        matches!(err.downcast_ref(), Some(InflationError::OverBudget { .. })),
        "{err}"
    );

    // The same inside a SYN-ACK, behind a digest of one node.
    let mut digest = 1u16.to_le_bytes().to_vec();
    digest.extend_from_slice(&2u16.to_le_bytes());
    digest.extend_from_slice(b"n1");
    digest.extend_from_slice(&7u64.to_le_bytes());
    digest.extend_from_slice(&[4, 127, 0, 0, 1]);
    digest.extend_from_slice(&7946u16.to_le_bytes());
    digest.extend_from_slice(&[0; 24]);
    let blocks = vec![block(u16::MAX); GOSSIP_MAX_INFLATED / 65_535 + 1];
    assert!(matches!(
        check_inflation(&message(1, &digest, &blocks), GOSSIP_MAX_INFLATED),
        Err(InflationError::OverBudget { .. })
    ));
    // Within the budget, the check lets it through (chitchat then parses the zeros).
    let blocks = vec![block(u16::MAX); GOSSIP_MAX_INFLATED / 65_535];
    check_inflation(&message(1, &digest, &blocks), GOSSIP_MAX_INFLATED).unwrap();
}
