//! A TCP proxy in front of the AWS emulator that delays every byte by half
//! a fixed round trip in each direction, so each request/response exchange
//! costs one round trip, as between a function and a service in a real
//! region. It is a delay line, not a queue: bytes go out at their arrival
//! time plus the delay, so concurrent requests and large bodies pay the
//! round trip once, not once per packet, and a client that needs two
//! exchanges for a call (boto3's `Expect: 100-continue` on PutObject) pays
//! two. Connections are set up without delay (both implementations keep
//! theirs open where the emulator lets them).
//!
//! Plain threads and blocking sockets: a thread's sleep is accurate to tens
//! of microseconds, where an async timer rounds each delay up to the next
//! millisecond.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::Error;

/// Stack of the proxy's threads: they hold one read buffer each.
const STACK: usize = 256 * 1024;
const CHUNK: usize = 64 * 1024;

/// A running proxy; it serves until the process exits.
#[derive(Debug)]
pub struct LatencyProxy {
    addr: SocketAddr,
}

impl LatencyProxy {
    /// Starts a proxy to `upstream` on a free local port.
    pub fn start(upstream: SocketAddr, round_trip: Duration) -> Result<Self, Error> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let one_way = round_trip / 2;
        thread::Builder::new()
            .name("proxy-accept".into())
            .stack_size(STACK)
            .spawn(move || {
                for client in listener.incoming().flatten() {
                    let _ = thread::Builder::new()
                        .name("proxy-conn".into())
                        .stack_size(STACK)
                        .spawn(move || connection(client, upstream, one_way));
                }
            })?;
        Ok(Self { addr })
    }

    /// The endpoint URL clients use.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn connection(client: TcpStream, upstream: SocketAddr, one_way: Duration) {
    let Ok(server) = TcpStream::connect(upstream) else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(client_read), Ok(server_read)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let upward = thread::Builder::new()
        .name("proxy-up".into())
        .stack_size(STACK)
        .spawn(move || delay_line(client_read, server, one_way));
    delay_line(server_read, client, one_way);
    if let Ok(upward) = upward {
        let _ = upward.join();
    }
}

/// Forwards what `from` reads to `to`, each chunk `delay` after it arrived;
/// closes `to`'s write side when `from` ends.
fn delay_line(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (chunks, pending) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = thread::Builder::new()
        .name("proxy-write".into())
        .stack_size(STACK)
        .spawn(move || {
            for (due, chunk) in pending {
                let now = Instant::now();
                if due > now {
                    thread::sleep(due - now);
                }
                if to.write_all(&chunk).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(Shutdown::Write);
        });
    let mut buffer = vec![0u8; CHUNK];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if chunks
                    .send((Instant::now() + delay, buffer[..n].to_vec()))
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    drop(chunks);
    if let Ok(writer) = writer {
        let _ = writer.join();
    }
}
