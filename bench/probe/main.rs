//! Where a sweep's time goes (bench/probe.sh builds and runs this; see docs/benchmarks.md).
//!
//! Over the page files bench/gen_dataset.py wrote, with the exporter's own library code, times:
//!   decode        models::decode_chats_page on every page, from memory
//!   aggregate     decode + SnapshotBuilder::add_chat + finish, from memory
//!   render        exposition::render_snapshot (plain text + cached gzip) of that snapshot
//! and against the nginx serving them (a base URL argument), one page at a time like one walk:
//!   fetch         a reqwest client set up like the exporter's, body read, nothing decoded
//!   fetch+agg     fetch, decode, aggregate, one page after the other (no pipelining)
//!   overlap       a deep pipeline: pages go to a decoding thread through a 4-page queue while
//!                 the next ones download, each fetched with the cursor read from its
//!                 predecessor's tail (`poller::peek_next_cursor`) and never checked. The
//!                 exporter's own walk checks each guess against the decoded page before it
//!                 uses the prefetched page, so it keeps one page in flight; this stage shows
//!                 what a deeper, still verified, pipeline could reach.
//!   overlap2      the same with two decoding threads taking pages from one queue and adding
//!                 them to one builder: whether a second decoding core would help
//! Each stage runs REPS times; the median is printed as `probe_<stage>_ms=N`. An optional last
//! argument `memory` runs only the in-memory stages (for `perf record`).
//!
//! Then where the bytes go: the heap bytes each structure holds (counted by a wrapper around the
//! allocator: bytes requested, before jemalloc's size classes), per chat, as
//! `probe_bytes_<structure>=N`: the builder at the end of the walk, the snapshot, the summary,
//! the webhook receiver's chat directory, and each cached rendering (text or protobuf, gzip
//! only or with the plain bytes).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use linq_exporter::metrics::exposition::{render_snapshot, RenderOptions};
use linq_exporter::api::decode::decode_chats_page;
use linq_exporter::metrics::snapshot::SnapshotBuilder;

/// The allocator src/main.rs uses, so allocation costs match the exporter's.
#[global_allocator]
static GLOBAL: Counting = Counting;

/// jemalloc, counting the bytes live on the heap.
struct Counting;

static LIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), std::sync::atomic::Ordering::Relaxed);
        unsafe { tikv_jemallocator::Jemalloc.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        LIVE.fetch_sub(l.size(), std::sync::atomic::Ordering::Relaxed);
        unsafe { tikv_jemallocator::Jemalloc.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        LIVE.fetch_sub(l.size(), std::sync::atomic::Ordering::Relaxed);
        unsafe { tikv_jemallocator::Jemalloc.realloc(p, l, n) }
    }
}

fn live() -> usize {
    LIVE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Heap bytes per chat that `make` leaves live while its result is held.
fn held<T>(chats: usize, make: impl FnOnce() -> T) -> (usize, T) {
    let before = live();
    let v = make();
    (live().saturating_sub(before) / chats.max(1), v)
}

fn where_the_bytes_go(pages: &[Vec<u8>]) -> Res<()> {
    use linq_exporter::metrics::exposition::{render_snapshot_cached, Encoding};
    let (builder_b, builder) = held(1, || -> Res<SnapshotBuilder> {
        let mut b = SnapshotBuilder::new(false);
        for body in pages {
            let page = decode_chats_page(body)?;
            b.count_page();
            for chat in &page.chats {
                b.add_chat(0, None, chat);
            }
        }
        Ok(b)
    });
    let builder = builder?;
    let chats = builder.len();
    println!("probe_bytes_builder={}", builder_b / chats.max(1));
    drop(builder);
    let (snap_b, snap) = held(chats, || aggregate(pages));
    let snap = snap?;
    println!("probe_bytes_snapshot={snap_b}");
    let (b, summary) = held(chats, || snap.summary());
    println!("probe_bytes_summary={b}");
    drop(summary);
    let (b, dir) = held(chats, || {
        linq_exporter::sweep::state::ChatDirectory::from_snapshot(&snap)
    });
    println!("probe_bytes_chat_directory={b}");
    drop(dir);
    let opts = RenderOptions::default();
    for (name, enc, plain) in [
        ("text_gzip_only", Encoding::Text, false),
        ("text_plain_and_gzip", Encoding::Text, true),
        ("protobuf_gzip_only", Encoding::Protobuf, false),
        ("protobuf_plain_and_gzip", Encoding::Protobuf, true),
    ] {
        let (b, r) = held(chats, || render_snapshot_cached(&snap, &opts, enc, plain));
        println!("probe_bytes_render_{name}={b}");
        drop(r);
    }
    Ok(())
}

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn median(mut v: Vec<Duration>) -> u128 {
    v.sort();
    v[v.len() / 2].as_millis()
}

fn aggregate(pages: &[Vec<u8>]) -> Res<linq_exporter::metrics::snapshot::Snapshot> {
    let mut b = SnapshotBuilder::new(false);
    for body in pages {
        let page = decode_chats_page(body)?;
        b.count_page();
        for chat in &page.chats {
            b.add_chat(0, None, chat);
        }
    }
    Ok(b.finish(&[]))
}

/// The next cursor without decoding the page, as the exporter's walk reads it.
fn tail_cursor(body: &[u8]) -> Option<String> {
    linq_exporter::sweep::poller::peek_next_cursor(body)
}

async fn fetch(client: &reqwest::Client, base: &str, cursor: Option<&str>) -> Res<bytes::Bytes> {
    let mut q = vec![("limit", "100")];
    if let Some(c) = cursor {
        q.push(("cursor", c));
    }
    let resp = client
        .get(format!("{base}/v3/chats"))
        .header("authorization", "Bearer bench")
        .query(&q)
        .send()
        .await?
        .error_for_status()?;
    Ok(resp.bytes().await?)
}

#[tokio::main]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    if !(4..=5).contains(&args.len()) {
        return Err("usage: probe DATASET_DIR BASE_URL REPS [memory]".into());
    }
    let memory_only = args.get(4).is_some_and(|a| a == "memory");
    let (dir, base, reps) = (Path::new(&args[1]), args[2].as_str(), args[3].parse::<usize>()?);
    let order = std::fs::read_to_string(dir.join("order.txt"))?;
    let cursors: Vec<&str> = order.lines().collect();
    let pages: Vec<Vec<u8>> = cursors
        .iter()
        .map(|c| {
            let name = if c.is_empty() { "first" } else { c };
            std::fs::read(dir.join("pages").join(format!("{name}.json")))
        })
        .collect::<Result<_, _>>()?;
    let bytes: usize = pages.iter().map(Vec::len).sum();
    println!("probe_pages={} probe_bytes={bytes}", pages.len());

    let (mut dec, mut agg, mut ren) = (vec![], vec![], vec![]);
    let mut total = 0;
    for _ in 0..reps {
        let t = Instant::now();
        let mut n = 0;
        for body in &pages {
            n += decode_chats_page(body)?.chats.len();
        }
        dec.push(t.elapsed());
        total = n;
        let t = Instant::now();
        let snap = aggregate(&pages)?;
        agg.push(t.elapsed());
        assert_eq!(snap.total_chats(), total, "aggregate");
        let t = Instant::now();
        let r = render_snapshot(&snap, &RenderOptions::default());
        ren.push(t.elapsed());
        std::hint::black_box(&r);
    }
    println!("probe_chats={total}");
    println!("probe_decode_ms={}", median(dec));
    println!("probe_aggregate_ms={}", median(agg));
    println!("probe_render_ms={}", median(ren));
    where_the_bytes_go(&pages)?;
    if memory_only {
        return Ok(());
    }

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .build()?;
    let (mut fet, mut full, mut over, mut over2) = (vec![], vec![], vec![], vec![]);
    for _ in 0..reps {
        let t = Instant::now();
        let mut cursor: Option<String> = None;
        let mut n = 0;
        loop {
            let body = fetch(&client, base, cursor.as_deref()).await?;
            n += 1;
            cursor = tail_cursor(&body);
            if cursor.is_none() {
                break;
            }
        }
        fet.push(t.elapsed());
        assert_eq!(n, pages.len(), "walk length");

        let t = Instant::now();
        let mut b = SnapshotBuilder::new(false);
        let mut cursor: Option<String> = None;
        loop {
            let body = fetch(&client, base, cursor.as_deref()).await?;
            let page = decode_chats_page(&body)?;
            b.count_page();
            for chat in &page.chats {
                b.add_chat(0, None, chat);
            }
            cursor = page.next_cursor.filter(|c| !c.is_empty());
            if cursor.is_none() {
                break;
            }
        }
        let snap = b.finish(&[]);
        full.push(t.elapsed());
        assert_eq!(snap.total_chats(), total, "fetch+aggregate");

        let t = Instant::now();
        let (tx, rx) = std::sync::mpsc::sync_channel::<bytes::Bytes>(4);
        let worker = std::thread::spawn(move || -> Res<usize> {
            let mut b = SnapshotBuilder::new(false);
            for body in rx {
                let page = decode_chats_page(&body)?;
                b.count_page();
                for chat in &page.chats {
                    b.add_chat(0, None, chat);
                }
            }
            Ok(b.finish(&[]).total_chats())
        });
        let mut cursor: Option<String> = None;
        loop {
            let body = fetch(&client, base, cursor.as_deref()).await?;
            cursor = tail_cursor(&body);
            tx.send(body)?;
            if cursor.is_none() {
                break;
            }
        }
        drop(tx);
        let chats = worker.join().map_err(|_| "worker panicked")??;
        over.push(t.elapsed());
        assert_eq!(chats, total, "overlap");

        let t = Instant::now();
        let (tx, rx) = std::sync::mpsc::sync_channel::<bytes::Bytes>(4);
        let rx = Arc::new(Mutex::new(rx));
        let builder = Arc::new(Mutex::new(SnapshotBuilder::new(false).with_capacity(total)));
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (rx, builder) = (rx.clone(), builder.clone());
                std::thread::spawn(move || -> Res<()> {
                    loop {
                        let next = rx.lock().map_err(|_| "poisoned")?.recv();
                        let Ok(body) = next else { return Ok(()) };
                        let page = decode_chats_page(&body)?;
                        let mut b = builder.lock().map_err(|_| "poisoned")?;
                        b.count_page();
                        for chat in &page.chats {
                            b.add_chat(0, None, chat);
                        }
                    }
                })
            })
            .collect();
        let mut cursor: Option<String> = None;
        loop {
            let body = fetch(&client, base, cursor.as_deref()).await?;
            cursor = tail_cursor(&body);
            tx.send(body)?;
            if cursor.is_none() {
                break;
            }
        }
        drop(tx);
        for w in workers {
            w.join().map_err(|_| "worker panicked")??;
        }
        let b = std::mem::take(&mut *builder.lock().map_err(|_| "poisoned")?);
        over2.push(t.elapsed());
        assert_eq!(b.finish(&[]).total_chats(), total, "overlap2");
    }
    println!("probe_fetch_ms={}", median(fet));
    println!("probe_fetch_aggregate_ms={}", median(full));
    println!("probe_overlap_ms={}", median(over));
    println!("probe_overlap2_ms={}", median(over2));
    Ok(())
}
