//! The floor under a paced fan-out on this machine: the CPU one thread
//! spends on one small write to one of many idle loopback sockets, one
//! write per socket per round, nobody reading. At a few events per second
//! a server cannot batch events into one write without delaying them, so
//! this is what one event to one subscriber costs any server; on loopback
//! it includes the receiving side's TCP work, which the kernel does in the
//! sender's context.

use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use crate::proc;

/// Writes `bytes` bytes to each of `sockets` loopback connections, `rounds`
/// times with `pause` between rounds; returns the writing thread's CPU per
/// write.
pub fn write_floor(
    sockets: usize,
    rounds: usize,
    bytes: usize,
    pause: Duration,
) -> io::Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    // The reading ends stay open and unread: their data waits in the
    // kernel (rounds × bytes each, well inside a socket's buffer).
    let mut readers = Vec::with_capacity(sockets);
    let mut writers = Vec::with_capacity(sockets);
    for _ in 0..sockets {
        readers.push(TcpStream::connect(addr)?);
        let (writer, _) = listener.accept()?;
        writer.set_nodelay(true)?;
        writers.push(writer);
    }
    let message = vec![b'x'; bytes];
    let before = proc::thread_cpu();
    for _ in 0..rounds {
        for writer in &mut writers {
            writer.write_all(&message)?;
        }
        std::thread::sleep(pause);
    }
    let spent = proc::thread_cpu().saturating_sub(before);
    drop(readers);
    Ok(spent / (sockets * rounds).max(1) as u32)
}
