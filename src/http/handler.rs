//! Handlers: what a route runs, what it may return, and its inline first poll.
//!
//! Owns: the `Handler` and `IntoResponse` traits, and starting a handler
//! (`Endpoint::start`). Must never: allocate to run a handler that completes
//! on its first poll (the fast path), or poll a handler future after moving
//! it.
//!
//! A handler's future is created inside a pinned slot that is reused: the
//! slot is the route's hot one (or, while that one is out with a pending
//! handler, one from the route's free list), the future is written into it,
//! polled once, and (if it finished) dropped in place and the slot kept as
//! the hot one.
//! Only a future that is still pending is handed over, slot and all, to a
//! task: the slow path pays for its allocation, the fast path never does.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::request::Request;
use super::response::Response;

/// What a handler may return.
pub trait IntoResponse {
    /// Converts into a response.
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl IntoResponse for &'static str {
    fn into_response(self) -> Response {
        Response::text(self)
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        Response::text(self)
    }
}

/// An I/O error becomes a status: invalid data 400, too large 413, timed out
/// 408, anything else 500 (whose details are not sent to the client).
impl<T: IntoResponse> IntoResponse for Result<T, io::Error> {
    fn into_response(self) -> Response {
        match self {
            Ok(r) => r.into_response(),
            Err(e) => {
                let status = match e.kind() {
                    io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput => 400,
                    io::ErrorKind::FileTooLarge => 413,
                    io::ErrorKind::TimedOut => 408,
                    _ => 500,
                };
                Response::text(super::response::reason(status)).with_status(status)
            }
        }
    }
}

impl<T: IntoResponse> IntoResponse for Result<T, Response> {
    fn into_response(self) -> Response {
        match self {
            Ok(r) => r.into_response(),
            Err(r) => r,
        }
    }
}

/// A request handler: any `Fn(Request) -> impl Future<Output = impl IntoResponse>`.
pub trait Handler: 'static {
    /// The handler's future.
    type Future: Future<Output = Self::Output> + 'static;
    /// What the future resolves to.
    type Output: IntoResponse;
    /// Starts handling `req`.
    fn call(&self, req: Request) -> Self::Future;
}

impl<F, Fut> Handler for F
where
    F: Fn(Request) -> Fut + 'static,
    Fut: Future + 'static,
    Fut::Output: IntoResponse,
{
    type Future = Fut;
    type Output = Fut::Output;
    fn call(&self, req: Request) -> Fut {
        self(req)
    }
}

/// The result of starting a handler.
pub(crate) enum Started {
    /// The response is in the slot `start` was given.
    Ready,
    Pending(Pin<Box<dyn Future<Output = Response>>>),
}

/// A route's handler with its slot free list, behind one object type.
pub(crate) trait Endpoint {
    /// Starts the handler on the request in `req`, which it takes; a
    /// handler done at once leaves its response in `resp`.
    fn start(&self, req: &mut Option<Request>, resp: &mut Option<Response>) -> Started;
}

/// The endpoint of `handler`, with a free list of its own.
pub(crate) fn endpoint<H: Handler>(handler: H) -> Box<dyn Endpoint> {
    Box::new(Route {
        handler,
        hot: Cell::new(None),
        free: Rc::new(RefCell::new(Vec::new())),
    })
}

/// Free slots kept per route: enough for a burst of concurrent pending
/// handlers to come back without reallocating.
const SLOTS_KEPT: usize = 64;

type Slot<F> = Pin<Box<Option<F>>>;

struct Route<H: Handler> {
    handler: H,
    /// The slot a handler that finishes on its first poll uses, taken and
    /// put back with no borrow and no vector: nearly every request of a
    /// route finishes so. `free` serves the rest (while `hot` is out with a
    /// pending handler, or was never made).
    hot: Cell<Option<Slot<H::Future>>>,
    free: Rc<RefCell<Vec<Slot<H::Future>>>>,
}

/// A pending handler future, still in its slot; the slot goes back to the
/// free list once the future is done.
struct SlotFuture<F: Future> {
    slot: Option<Slot<F>>,
    free: Rc<RefCell<Vec<Slot<F>>>>,
}

impl<F: Future> Future for SlotFuture<F>
where
    F::Output: IntoResponse,
{
    type Output = Response;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let slot = self.slot.as_mut().expect("SlotFuture polled after completion");
        let future = slot.as_mut().as_pin_mut().expect("slot holds the future");
        let output = std::task::ready!(future.poll(cx));
        let mut slot = self.slot.take().expect("slot present");
        slot.set(None);
        let mut free = self.free.borrow_mut();
        if free.len() < SLOTS_KEPT {
            free.push(slot);
        }
        Poll::Ready(output.into_response())
    }
}

impl<H: Handler> Endpoint for Route<H> {
    fn start(&self, req: &mut Option<Request>, resp: &mut Option<Response>) -> Started {
        let mut slot = match self.hot.take() {
            Some(slot) => slot,
            None => self.free.borrow_mut().pop().unwrap_or_else(|| Box::pin(None)),
        };
        let req = req.take().expect("a request to start on");
        slot.set(Some(self.handler.call(req)));
        // Polled outside any task: a handler that is not ready becomes a task,
        // which polls it again at once with the task's own waker (a future
        // must use the waker of its latest poll), so the no-op waker given
        // here is never needed.
        let mut cx = Context::from_waker(Waker::noop());
        let poll = slot.as_mut().as_pin_mut().expect("just set").poll(&mut cx);
        match poll {
            Poll::Ready(output) => {
                slot.set(None);
                // `hot` is empty: this call took it, or it was out already
                // (were it not, the slot there would be dropped, not leaked).
                self.hot.set(Some(slot));
                *resp = Some(output.into_response());
                Started::Ready
            }
            Poll::Pending => Started::Pending(Box::pin(SlotFuture {
                slot: Some(slot),
                free: self.free.clone(),
            })),
        }
    }
}
