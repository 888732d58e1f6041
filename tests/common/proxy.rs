//! A TCP proxy between clerk and a test server that cuts connections on
//! cue, as a server that dies or a network that drops mid-conversation.
//! Each planned cut applies to one connection, in order; connections past
//! the plan pass through untouched. An outage (`down`) cuts every open
//! connection and refuses new ones until `up`.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// When a connection is cut.
#[derive(Debug, Clone)]
pub enum Cut {
    /// Once the server has sent this many bytes.
    AfterServerBytes(usize),
    /// When the client sends this text (before it reaches the server).
    OnClientText(&'static str),
}

type Open = Arc<Mutex<Vec<(TcpStream, TcpStream)>>>;

pub struct CuttingProxy {
    pub port: u16,
    plan: Arc<Mutex<VecDeque<Cut>>>,
    cuts: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
    open: Open,
}

impl CuttingProxy {
    pub fn start(upstream: u16) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let plan: Arc<Mutex<VecDeque<Cut>>> = Arc::default();
        let cuts = Arc::new(AtomicUsize::new(0));
        let down = Arc::new(AtomicBool::new(false));
        let open: Open = Arc::default();
        let (p, c, d, o) = (plan.clone(), cuts.clone(), down.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if d.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                if let (Ok(a), Ok(b)) = (client.try_clone(), server.try_clone()) {
                    o.lock().expect("open").push((a, b));
                }
                let cut = p.lock().expect("plan").pop_front();
                relay(client, server, cut, c.clone());
            }
        });
        CuttingProxy {
            port,
            plan,
            cuts,
            down,
            open,
        }
    }

    /// An outage: cut every open connection and refuse new ones.
    pub fn down(&self) {
        self.down.store(true, Ordering::SeqCst);
        for (a, b) in self.open.lock().expect("open").drain(..) {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }

    /// The outage is over.
    pub fn up(&self) {
        self.down.store(false, Ordering::SeqCst);
    }

    /// Cut the next connections, one cut each, in this order.
    pub fn plan(&self, cuts: impl IntoIterator<Item = Cut>) {
        self.plan.lock().expect("plan").extend(cuts);
    }

    /// Connections cut so far.
    pub fn cuts(&self) -> usize {
        self.cuts.load(Ordering::SeqCst)
    }
}

fn relay(client: TcpStream, server: TcpStream, cut: Option<Cut>, cuts: Arc<AtomicUsize>) {
    let pair = Arc::new((
        client.try_clone().expect("clone"),
        server.try_clone().expect("clone"),
    ));
    let close = |pair: &(TcpStream, TcpStream)| {
        let _ = pair.0.shutdown(Shutdown::Both);
        let _ = pair.1.shutdown(Shutdown::Both);
    };
    let (mut c_read, mut s_write) = (
        client.try_clone().expect("clone"),
        server.try_clone().expect("clone"),
    );
    let upward_cut = match &cut {
        Some(Cut::OnClientText(t)) => Some(t.as_bytes().to_vec()),
        _ => None,
    };
    let (up_pair, counter) = (pair.clone(), cuts.clone());
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match c_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if let Some(text) = &upward_cut
                && buf[..n].windows(text.len()).any(|w| w == text.as_slice())
            {
                counter.fetch_add(1, Ordering::SeqCst);
                break;
            }
            if s_write.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        close(&up_pair);
    });
    let (mut s_read, mut c_write) = (server, client);
    let limit = match cut {
        Some(Cut::AfterServerBytes(n)) => Some(n),
        _ => None,
    };
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        let mut sent = 0usize;
        loop {
            let n = match s_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if let Some(limit) = limit
                && sent + n >= limit
            {
                let _ = c_write.write_all(&buf[..limit - sent]);
                cuts.fetch_add(1, Ordering::SeqCst);
                break;
            }
            sent += n;
            if c_write.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        close(&pair);
    });
}
