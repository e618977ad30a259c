//! Connections, each owned by its own thread. The storage traits are synchronous and are
//! called from the writer and indexer threads, tokio's blocking pool and — for a few cheap
//! calls — async tasks; `postgres::Client` drives tokio-postgres on a runtime of its own and
//! must not run on a tokio worker. A job sent to a connection thread runs there, whatever
//! thread asked.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use postgres::Client;

type Job = Box<dyn FnOnce(&mut Client) + Send>;

/// One or more connections taking jobs from one queue.
pub(crate) struct Conns {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Conns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conns").finish_non_exhaustive()
    }
}

/// The connection thread is gone (it panicked, or the handle closed).
#[derive(Debug)]
pub(crate) struct Gone;

impl Conns {
    /// Opens `n` connections with `config`, each set up by `init` (run on its thread).
    pub(crate) fn connect(
        config: &postgres::Config,
        n: usize,
        name: &str,
        init: &'static (dyn Fn(&mut Client) -> Result<(), postgres::Error> + Sync),
    ) -> Result<Conns, String> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::new();
        for i in 0..n {
            let (ready_tx, ready_rx) = mpsc::channel();
            let config = config.clone();
            let rx = rx.clone();
            let spawned = std::thread::Builder::new().name(format!("kvitto-pg-{name}-{i}")).spawn(move || {
                let mut client = match config.connect(postgres::NoTls).and_then(|mut c| init(&mut c).map(|()| c)) {
                    Ok(c) => {
                        let _ = ready_tx.send(Ok(()));
                        c
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(crate::describe_pg(&e)));
                        return;
                    }
                };
                loop {
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    match job {
                        // A job that panics (a row of the wrong shape) fails alone: its caller
                        // sees the connection gone for that call, the thread goes on serving.
                        Ok(job) => {
                            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut client))).is_err() {
                                tracing::error!("a PostgreSQL job panicked; its call failed");
                            }
                        }
                        Err(_) => return,
                    }
                }
            });
            let handle = match spawned {
                Ok(h) => h,
                Err(e) => return Err(format!("cannot start a connection thread: {e}")),
            };
            threads.push(handle);
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err("the connection thread stopped".into()),
            }
        }
        Ok(Conns { tx: Mutex::new(Some(tx)), threads: Mutex::new(threads) })
    }

    /// Runs `f` on one of the connections and waits for its result.
    pub(crate) fn run<T: Send + 'static>(&self, f: impl FnOnce(&mut Client) -> T + Send + 'static) -> Result<T, Gone> {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |c| {
            let _ = tx.send(f(c));
        });
        {
            let guard = self.tx.lock().map_err(|_| Gone)?;
            guard.as_ref().ok_or(Gone)?.send(job).map_err(|_| Gone)?;
        }
        rx.recv().map_err(|_| Gone)
    }

    /// Closes the connections (their sessions end: an advisory lock held by one is released).
    pub(crate) fn close(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        if let Ok(mut threads) = self.threads.lock() {
            for t in threads.drain(..) {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Conns {
    fn drop(&mut self) {
        self.close();
    }
}
