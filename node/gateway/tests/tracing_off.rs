//! With tracing off, the request path's span calls build nothing and allocate nothing. A
//! counting allocator watches this thread while every span method runs on an inert span.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderMap;
use starling::telemetry::{Finish, Telemetry};
use starling_wire::api::Endpoint;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Counts only this thread's allocations while set, so the test harness's own threads
    /// do not disturb the count.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller upholds `alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

#[test]
fn an_inert_request_span_allocates_nothing() {
    // The counter works: a real allocation is seen.
    assert!(allocations(|| drop(std::hint::black_box(vec![1u8; 16]))) > 0);

    let telemetry = Telemetry::off();
    let mut headers = HeaderMap::new();
    headers.insert(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            .parse()
            .expect("header"),
    );
    let reasons = Vec::new();
    let counted = allocations(|| {
        let span =
            telemetry.start_request(Endpoint::ChatCompletions, "/v1/chat/completions", &headers);
        assert!(!span.is_on());
        assert!(span.trace_id().is_none());
        span.set_request("gpt-4o", Some(100), true);
        span.set_identity("request-id", Some("vk_1"));
        {
            let admission = span.child("starling.admission");
            admission.set_bool("starling.governed", true);
            admission.fail("budget_exceeded", "over budget");
        }
        let attempt = span.attempt(1, "openai", "openai", "gpt-4o", "https://api.openai.com/v1");
        assert!(attempt.headers().is_empty(), "no trace headers go upstream");
        attempt.status(500);
        attempt.fail("timeout", "timed out");
        drop(attempt);
        span.finish(&Finish {
            status: 200,
            error: Some(("upstream_error", "broken")),
            provider: Some(("openai", "openai")),
            model: Some("gpt-4o"),
            response_model: Some("gpt-4o"),
            usage: None,
            cost_micros: Some(12),
            finish_reasons: &reasons,
            attempts: 1,
        });
    });
    assert_eq!(counted, 0, "tracing off allocated {counted} times");
}
