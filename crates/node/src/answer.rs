//! The hand-over of an update's answer from the driver to the connection
//! that asked, without waking the connection when it need not be woken.
//!
//! Like a oneshot channel, with one difference: an answer the driver sends
//! *quietly* (it already wrote the whole answer to the client's socket
//! itself, see `state::DirectReply`) does not wake the waiting connection.
//! The connection learns of it when its socket becomes readable (the
//! client's next request, or its close), which the client can only do after
//! it has read the answer, so after the driver wrote it. That saves the
//! master one wake-up of a client worker per such write (a context switch
//! on a machine whose cores are the bottleneck for a single client's
//! latency).
//!
//! # Invariants
//!
//! - A waiter is woken by the answer unless the answer is quiet *and* the
//!   waiter, at its last poll, had a socket it was watching that was not
//!   readable yet (then the socket's readiness wakes it). Both sides decide
//!   under one lock, so no wake-up is lost: a waiter that finds its socket
//!   readable before the answer is there asks to be woken by the answer.
//! - A sender dropped without an answer (the driver is gone) wakes the
//!   waiter, which then gets `None`.

use replica::UpdateAnswer;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use tokio::net::TcpStream;

/// An answer as the driver hands it back to the connection.
#[derive(Debug)]
pub struct Answered {
    pub answer: UpdateAnswer,
    /// How many bytes of the encoded success answer the driver already
    /// wrote to the client's socket (see `state::DirectReply`); the
    /// connection writes the rest. Zero unless the answer is
    /// `Ok(Ok(store::UpdateOk::Done))`.
    pub written: usize,
    /// When the driver handed over an answer it wrote whole (quietly: the
    /// connection picks it up later).
    pub quiet_at: Option<std::time::Instant>,
    /// The encoded success answer the connection gave the driver, back with
    /// an `Ok(Ok(Done))` answer: the connection writes what the driver did
    /// not from these bytes (the answer is encoded once).
    pub done: Option<Vec<u8>>,
}

impl Answered {
    pub fn new(answer: UpdateAnswer) -> Answered {
        Answered {
            answer,
            written: 0,
            quiet_at: None,
            done: None,
        }
    }
}

#[derive(Debug, Default)]
struct Slot {
    answer: Option<Answered>,
    /// The sender was dropped without an answer.
    closed: bool,
    waker: Option<Waker>,
    /// The waiter cannot count on its socket: wake it with any answer.
    wake_with_answer: bool,
}

#[derive(Debug, Default)]
struct Shared {
    slot: Mutex<Slot>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        // Nothing under the lock can panic midway; a poisoned lock's slot
        // is as consistent as it was.
        self.slot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The driver's end.
#[derive(Debug)]
pub struct AnswerSender {
    shared: Option<Arc<Shared>>,
}

/// The connection's end.
#[derive(Debug)]
pub struct AnswerReceiver {
    shared: Arc<Shared>,
}

/// A new pair of ends.
pub fn channel() -> (AnswerSender, AnswerReceiver) {
    let shared = Arc::new(Shared::default());
    (
        AnswerSender {
            shared: Some(Arc::clone(&shared)),
        },
        AnswerReceiver { shared },
    )
}

impl AnswerSender {
    /// Hands over the answer. A quiet one (`Answered::quiet_at`: the client
    /// has the whole answer on its socket already) need not wake the waiter
    /// (see the module doc).
    pub fn send(mut self, answered: Answered) {
        let Some(shared) = self.shared.take() else {
            return;
        };
        let quiet = answered.quiet_at.is_some();
        let waker = {
            let mut slot = shared.lock();
            slot.answer = Some(answered);
            if quiet && !slot.wake_with_answer {
                None
            } else {
                slot.waker.take()
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Drop for AnswerSender {
    fn drop(&mut self) {
        let Some(shared) = self.shared.take() else {
            return;
        };
        let waker = {
            let mut slot = shared.lock();
            slot.closed = true;
            slot.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl AnswerReceiver {
    /// Waits for the answer; `None` if the driver dropped its end without
    /// one. With `socket` (the client's connection, which nothing else reads
    /// meanwhile), a quiet answer is picked up once the socket is readable;
    /// without it, every answer wakes this waiter.
    pub async fn recv(&self, socket: Option<&TcpStream>) -> Option<Answered> {
        std::future::poll_fn(|cx| self.poll_recv(cx, socket)).await
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        socket: Option<&TcpStream>,
    ) -> Poll<Option<Answered>> {
        let mut slot = self.shared.lock();
        if let Some(answer) = slot.answer.take() {
            return Poll::Ready(Some(answer));
        }
        if slot.closed {
            return Poll::Ready(None);
        }
        match &mut slot.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            w => *w = Some(cx.waker().clone()),
        }
        // Whether the socket will wake this task: only if it has nothing to
        // read now. A peek (nothing is taken) says so for sure, where
        // readiness alone may be stale (it is cleared only by a read that
        // finds nothing); finding nothing, it registers this task's waker
        // with the socket.
        let socket_wakes_us = socket.is_some_and(|s| {
            let mut byte = [0u8; 1];
            s.poll_peek(cx, &mut tokio::io::ReadBuf::new(&mut byte))
                .is_pending()
        });
        if !socket_wakes_us {
            slot.wake_with_answer = true;
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use replica::Refused;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;

    /// A success of which the driver wrote 3 bytes; `quiet`: all of it.
    fn done(quiet: bool) -> Answered {
        Answered {
            answer: Ok(Ok(store::UpdateOk::Done)),
            written: 3,
            quiet_at: quiet.then(std::time::Instant::now),
            done: Some(vec![0; 8]),
        }
    }

    async fn socket_pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (client.unwrap(), server.unwrap().0)
    }

    /// Lets a spawned task run as far as it can (a current-thread runtime:
    /// yielding runs it).
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    /// `rx.recv(socket)` on a task of its own, run until it waits; its
    /// result is the answer's `written`.
    async fn waiting(
        rx: AnswerReceiver,
        socket: Option<TcpStream>,
    ) -> tokio::task::JoinHandle<Option<usize>> {
        let waiter = tokio::spawn(async move { rx.recv(socket.as_ref()).await.map(|a| a.written) });
        settle().await;
        assert!(!waiter.is_finished(), "done before any answer");
        waiter
    }

    /// The waiter's result, once `why` woke it (within a generous bound).
    async fn woken(waiter: tokio::task::JoinHandle<Option<usize>>, why: &str) -> Option<usize> {
        let got = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        got.unwrap_or_else(|_| panic!("not woken by {why}"))
            .unwrap()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_loud_answer_wakes_the_waiter() {
        let (_client, server) = socket_pair().await;
        let (tx, rx) = channel();
        let waiter = waiting(rx, Some(server)).await;
        tx.send(done(false));
        assert_eq!(woken(waiter, "the answer").await, Some(3));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_quiet_answer_waits_for_the_socket() {
        let (mut client, server) = socket_pair().await;
        let (tx, rx) = channel();
        let waiter = waiting(rx, Some(server)).await;
        tx.send(done(true));
        settle().await;
        assert!(!waiter.is_finished(), "a quiet answer woke the waiter");
        // The client's next request: now the waiter picks the answer up.
        client.write_all(b"next").await.unwrap();
        assert_eq!(woken(waiter, "the socket").await, Some(3));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_quiet_answer_after_the_socket_became_readable_wakes() {
        let (mut client, server) = socket_pair().await;
        let (tx, rx) = channel();
        // The client sends before the answer is handed over (a pipelining
        // client, or the driver between its write and its send).
        client.write_all(b"early").await.unwrap();
        let waiter = waiting(rx, Some(server)).await;
        tx.send(done(true));
        assert_eq!(woken(waiter, "the answer").await, Some(3));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn without_a_socket_every_answer_wakes() {
        let (tx, rx) = channel();
        let waiter = waiting(rx, None).await;
        tx.send(done(true));
        assert_eq!(woken(waiter, "the answer").await, Some(3));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_dropped_sender_wakes_with_none() {
        let (_client, server) = socket_pair().await;
        let (tx, rx) = channel();
        let waiter = waiting(rx, Some(server)).await;
        drop(tx);
        assert_eq!(woken(waiter, "the drop").await, None);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_answer_sent_before_the_wait_is_there_at_once() {
        let (tx, rx) = channel();
        tx.send(Answered::new(Err(Refused::ReadOnly)));
        let got = rx.recv(None).await.expect("the answer");
        assert!(matches!(got.answer, Err(Refused::ReadOnly)));
    }
}
