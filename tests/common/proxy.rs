//! A TCP proxy between clerk and a test server that cuts connections on
//! cue, as a server that dies or a network that drops mid-conversation.
//! Each planned cut applies to one connection, in order; connections past
//! the plan pass through untouched.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// When a connection is cut.
#[derive(Debug, Clone)]
pub enum Cut {
    /// Once the server has sent this many bytes.
    AfterServerBytes(usize),
    /// When the client sends this text (before it reaches the server).
    OnClientText(&'static str),
}

pub struct CuttingProxy {
    pub port: u16,
    plan: Arc<Mutex<VecDeque<Cut>>>,
    cuts: Arc<AtomicUsize>,
}

impl CuttingProxy {
    pub fn start(upstream: u16) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let plan: Arc<Mutex<VecDeque<Cut>>> = Arc::default();
        let cuts = Arc::new(AtomicUsize::new(0));
        let (p, c) = (plan.clone(), cuts.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let cut = p.lock().expect("plan").pop_front();
                relay(client, server, cut, c.clone());
            }
        });
        CuttingProxy { port, plan, cuts }
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
