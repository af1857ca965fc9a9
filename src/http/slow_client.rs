//! A header-read timeout for the HTTP server.
//!
//! poem (and hyper under it, as poem configures it) never times out a client that trickles its
//! request head a byte at a time, so a few hundred such clients hold as many connections and
//! tasks for as long as they like. poem's `idle_timeout` does not help (each byte counts as
//! activity) and would also cut long-running requests. So the acceptor wraps each connection:
//!
//! - While the connection has **no request in flight** — just accepted, or after a response —
//!   a read that has not produced a whole request head `http.header_read_timeout_ms` after the
//!   later of accept, the last write, and the end of the last request fails with `TimedOut`,
//!   and hyper closes the connection. This also bounds idle keep-alive connections.
//! - While a request is **in flight** (between the router receiving it and returning its
//!   response), the connection has no deadline: handlers may take their time, and a long upload
//!   must not be cut. Its body, though, must keep coming: [`idle_limited`] fails a body read
//!   that waits longer than the same timeout for its next bytes, so a client that sends a head
//!   and then trickles or withholds its body is answered and let go.
//!
//! "In flight" is known to the router only, so [`track_request`] (called by `http::router`)
//! finds the connection's shared state by its (local, remote) address pair, which is unique
//! among open connections.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Request};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

type ConnKey = (SocketAddr, SocketAddr);

/// What the router and the connection share.
#[derive(Debug)]
struct ConnState {
    in_flight: AtomicUsize,
    /// When the last request's handler returned; the deadline restarts from there.
    last_done: Mutex<Instant>,
}

/// Open connections by (local, remote) address.
/// A read-write lock: every request looks its connection up (reads, in parallel on all worker
/// threads); only accepting and closing a connection write.
static CONNECTIONS: LazyLock<RwLock<HashMap<ConnKey, Arc<ConnState>>>> =
    LazyLock::new(Default::default);

fn socket_addrs(local: &LocalAddr, remote: &RemoteAddr) -> Option<ConnKey> {
    match (&local.0, &remote.0) {
        (Addr::SocketAddr(l), Addr::SocketAddr(r)) => Some((*l, *r)),
        _ => None,
    }
}

/// Marks a request of its connection in flight until the returned guard is dropped.
pub fn track_request(req: &Request) -> Option<InFlight> {
    let key = socket_addrs(req.local_addr(), req.remote_addr())?;
    let state = CONNECTIONS.read().ok()?.get(&key)?.clone();
    state.in_flight.fetch_add(1, Ordering::SeqCst);
    Some(InFlight(state))
}

/// Held while a request is handled.
pub struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut t) = self.0.last_done.lock() {
            *t = Instant::now();
        }
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `body`, whose reads fail with `TimedOut` when the next chunk takes longer than `idle`.
pub fn idle_limited(body: poem::Body, idle: Duration) -> poem::Body {
    use futures::StreamExt as _;
    let chunks = Box::pin(body.into_bytes_stream());
    let limited = futures::stream::unfold(Some(chunks), move |chunks| async move {
        let mut chunks = chunks?;
        match tokio::time::timeout(idle, chunks.next()).await {
            Ok(Some(chunk)) => Some((chunk, Some(chunks))),
            Ok(None) => None,
            Err(_) => Some((
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the request body stopped coming (http.header_read_timeout_ms)",
                )),
                None,
            )),
        }
    });
    poem::Body::from_bytes_stream(limited)
}

/// Wraps an acceptor so every connection gets the header-read timeout.
pub struct HeaderTimeoutAcceptor<A> {
    inner: A,
    timeout: Duration,
}

impl<A> HeaderTimeoutAcceptor<A> {
    pub fn new(inner: A, timeout: Duration) -> Self {
        Self { inner, timeout }
    }
}

impl<A: Acceptor> Acceptor for HeaderTimeoutAcceptor<A> {
    type Io = HeaderTimeoutIo<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    fn accept(
        &mut self,
    ) -> impl Future<Output = io::Result<(Self::Io, LocalAddr, RemoteAddr, poem::http::uri::Scheme)>>
           + Send {
        let timeout = self.timeout;
        let accept = self.inner.accept();
        async move {
            let (io, local, remote, scheme) = accept.await?;
            let now = Instant::now();
            let state = Arc::new(ConnState {
                in_flight: AtomicUsize::new(0),
                last_done: Mutex::new(now),
            });
            let key = socket_addrs(&local, &remote);
            if let (Some(key), Ok(mut conns)) = (key, CONNECTIONS.write()) {
                conns.insert(key, state.clone());
            }
            let io = HeaderTimeoutIo {
                inner: io,
                timeout,
                state,
                key,
                last_write: now,
                sleep: Box::pin(tokio::time::sleep_until(now + timeout)),
            };
            Ok((io, local, remote, scheme))
        }
    }
}

/// A connection with the header-read deadline applied to its reads.
pub struct HeaderTimeoutIo<T> {
    inner: T,
    timeout: Duration,
    state: Arc<ConnState>,
    key: Option<ConnKey>,
    last_write: Instant,
    sleep: Pin<Box<Sleep>>,
}

impl<T> Drop for HeaderTimeoutIo<T> {
    fn drop(&mut self) {
        if let (Some(key), Ok(mut conns)) = (self.key, CONNECTIONS.write()) {
            // Only our own entry: the address pair may already belong to a newer connection.
            if conns.get(&key).is_some_and(|s| Arc::ptr_eq(s, &self.state)) {
                conns.remove(&key);
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for HeaderTimeoutIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.state.in_flight.load(Ordering::SeqCst) == 0 {
            let last_done = this
                .state
                .last_done
                .lock()
                .map(|t| *t)
                .unwrap_or(this.last_write);
            let deadline = last_done.max(this.last_write) + this.timeout;
            if this.sleep.deadline() != deadline {
                this.sleep.as_mut().reset(deadline);
            }
            if this.sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no complete request head within http.header_read_timeout_ms",
                )));
            }
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for HeaderTimeoutIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut this.inner).poll_write(cx, data);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.last_write = Instant::now();
        }
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.last_write = Instant::now();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
