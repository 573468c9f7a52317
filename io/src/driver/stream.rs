//! A TCP stream, in the clear or inside rustls, driven by edge-triggered readiness.
//!
//! The stream is registered once for both readable and writable readiness; after every
//! event the owner calls [`Stream::read`] and [`Stream::flush`], each of which works until
//! the socket would block, as edge triggering requires.

use std::io::{self, Read, Write};

use mio::net::TcpStream;

/// Bytes read from the socket per `read` call.
const READ_CHUNK: usize = 16 * 1024;

/// A connection's byte stream.
pub struct Stream {
    /// The socket.
    pub tcp: TcpStream,
    tls: Option<rustls::Connection>,
    /// Plaintext queued for a stream in the clear.
    out: Vec<u8>,
    /// The peer has closed its side (or TLS said `close_notify`).
    eof: bool,
    /// The TCP connection ended inside TLS without `close_notify`.
    cut: bool,
}

/// What a [`Stream::read`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Read what there was; more may come.
    Open,
    /// The peer closed its side after whatever was read.
    Closed,
    /// The TCP connection ended after whatever was read, inside TLS without the peer's
    /// `close_notify`: anyone on the path can do that, so what was read may be cut short.
    Cut,
    /// `cap` bytes would be exceeded.
    TooLarge,
}

impl Stream {
    /// A stream in the clear.
    pub fn plain(tcp: TcpStream) -> Stream {
        Stream {
            tcp,
            tls: None,
            out: Vec::new(),
            eof: false,
            cut: false,
        }
    }

    /// A stream inside TLS (client or server side).
    pub fn tls(tcp: TcpStream, tls: rustls::Connection) -> Stream {
        Stream {
            tcp,
            tls: Some(tls),
            out: Vec::new(),
            eof: false,
            cut: false,
        }
    }

    /// Reads all the plaintext available now, appending to `into`, but never letting
    /// `into` grow past `cap` bytes. TLS protocol errors are `InvalidData` errors.
    pub fn read(&mut self, into: &mut Vec<u8>, cap: usize) -> io::Result<ReadOutcome> {
        match &mut self.tls {
            None => read_plain(&mut self.tcp, into, cap, &mut self.eof),
            Some(tls) => {
                let r = read_tls(&mut self.tcp, tls, into, cap, &mut self.eof, &mut self.cut);
                // Handshake messages and alerts may need sending, even after an error.
                let _ = flush_tls(&mut self.tcp, tls);
                r
            }
        }
    }

    /// Queues `data` to be sent; call [`Stream::flush`] next.
    pub fn queue(&mut self, data: &[u8]) -> io::Result<()> {
        match &mut self.tls {
            None => {
                self.out.extend_from_slice(data);
                Ok(())
            }
            Some(tls) => tls.writer().write_all(data),
        }
    }

    /// Sends as much as the socket takes now. `Ok(true)` when nothing is left to send.
    pub fn flush(&mut self) -> io::Result<bool> {
        match &mut self.tls {
            None => {
                while !self.out.is_empty() {
                    match self.tcp.write(&self.out) {
                        Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                        Ok(n) => {
                            self.out.drain(..n);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => (),
                        Err(e) => return Err(e),
                    }
                }
                Ok(true)
            }
            Some(tls) => flush_tls(&mut self.tcp, tls),
        }
    }

    /// Sends TLS `close_notify` (if TLS) and tries to flush it; best effort.
    pub fn close(&mut self) {
        if let Some(tls) = &mut self.tls {
            tls.send_close_notify();
            let _ = flush_tls(&mut self.tcp, tls);
        }
        let _ = self.tcp.shutdown(std::net::Shutdown::Write);
    }
}

fn read_plain(
    tcp: &mut TcpStream,
    into: &mut Vec<u8>,
    cap: usize,
    eof: &mut bool,
) -> io::Result<ReadOutcome> {
    let mut buf = [0u8; READ_CHUNK];
    loop {
        if *eof {
            return Ok(ReadOutcome::Closed);
        }
        match tcp.read(&mut buf) {
            Ok(0) => *eof = true,
            Ok(n) => {
                if into.len() + n > cap {
                    buf.fill(0);
                    return Ok(ReadOutcome::TooLarge);
                }
                into.extend_from_slice(&buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                buf.fill(0);
                return Ok(ReadOutcome::Open);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => (),
            Err(e) => return Err(e),
        }
    }
}

fn read_tls(
    tcp: &mut TcpStream,
    tls: &mut rustls::Connection,
    into: &mut Vec<u8>,
    cap: usize,
    eof: &mut bool,
    cut: &mut bool,
) -> io::Result<ReadOutcome> {
    let mut socket_open = !*eof;
    loop {
        // Pull ciphertext until the socket would block (rustls buffers a bounded amount;
        // drain plaintext in between so it can take more).
        let mut progressed = false;
        if socket_open && tls.wants_read() {
            match tls.read_tls(tcp) {
                Ok(0) => socket_open = false,
                Ok(_) => progressed = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => (),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => progressed = true,
                Err(e) => return Err(e),
            }
        }
        let state = tls
            .process_new_packets()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let available = state.plaintext_bytes_to_read();
        if available > 0 {
            if into.len() + available > cap {
                return Ok(ReadOutcome::TooLarge);
            }
            let start = into.len();
            into.resize(start + available, 0);
            let n = tls.reader().read(&mut into[start..])?;
            into.truncate(start + n);
            progressed = true;
        }
        if state.peer_has_closed() {
            *eof = true;
        } else if !socket_open {
            *eof = true;
            *cut = true;
        }
        if *eof {
            return Ok(if *cut {
                ReadOutcome::Cut
            } else {
                ReadOutcome::Closed
            });
        }
        if !progressed {
            return Ok(ReadOutcome::Open);
        }
    }
}

fn flush_tls(tcp: &mut TcpStream, tls: &mut rustls::Connection) -> io::Result<bool> {
    while tls.wants_write() {
        match tls.write_tls(tcp) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => (),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => (),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}
