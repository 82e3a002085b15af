//! A client for llama.cpp's RPC protocol (`ggml/src/ggml-rpc/ggml-rpc.cpp`, protocol 7.x), just
//! enough for `placer host detect --rpc`: ask a running `rpc-server` for its devices, their
//! free and total memory, their buffer alignment and allocation rule, and time the link.
//!
//! Wire format (`send_rpc_cmd`, `send_msg`, `recv_msg`): a request is `cmd (1 byte) | size
//! (u64 LE) | payload`, a response `size (u64 LE) | payload`; structs are packed, little-endian.
//! The first command must be `HELLO` (`rpc_serve_client`); a server serves one client at a
//! time, so the connection is closed before llama.cpp needs the server. Every read and write
//! has a timeout and every response size is checked before it is read.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// `RPC_PROTO_MAJOR_VERSION` of the reference llama.cpp (`ggml/include/ggml-rpc.h`); the server
/// refuses another major version, and so does this client.
pub const PROTO_MAJOR: u8 = 7;

// `enum rpc_cmd` (ggml-rpc.cpp).
const CMD_ALLOC_BUFFER: u8 = 0;
const CMD_GET_ALIGNMENT: u8 = 1;
const CMD_BUFFER_GET_BASE: u8 = 3;
const CMD_FREE_BUFFER: u8 = 4;
const CMD_GET_TENSOR: u8 = 8;
const CMD_GET_DEVICE_MEMORY: u8 = 11;
const CMD_GET_ALLOC_SIZE: u8 = 13;
const CMD_HELLO: u8 = 14;
const CMD_DEVICE_COUNT: u8 = 15;

/// `RPC_CONN_CAPS_SIZE` (ggml-rpc/transport.h): all zero = plain TCP, no transport upgrade.
const CONN_CAPS: usize = 24;
/// `sizeof(rpc_tensor)`: id 8, type 4, buffer 8, ne 4×4, nb 4×4, op 4, op_params 64, flags 4,
/// src 10×8, view_src 8, view_offs 8, data 8, name 64, use_count 4.
const RPC_TENSOR: usize = 296;
/// `GGML_MAX_SRC`.
const MAX_SRC: usize = 10;
/// `GGML_TYPE_F32`, `GGML_TYPE_Q8_0` (ggml.h).
const TYPE_F32: u32 = 0;
const TYPE_Q8_0: u32 = 8;

/// Bytes timed for the bandwidth probe, per transfer, and transfers.
const PROBE_BYTES: u64 = 4 << 20;
const PROBE_TRANSFERS: usize = 4;
/// Round trips timed for the latency probe (the median is kept).
const PROBE_PINGS: usize = 15;
/// Largest response accepted (a probe transfer; every other response is a few bytes).
const MAX_RESPONSE: u64 = PROBE_BYTES;

/// One device of an rpc-server, as the server reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteDevice {
    /// The server's own index of the device.
    pub index: u32,
    /// Free memory now, bytes (`ggml_backend_dev_memory` on the server).
    pub free: u64,
    /// Total memory, bytes.
    pub total: u64,
    /// Buffer alignment, bytes.
    pub alignment: u64,
    /// The device pads quantized rows to 512 columns (a CUDA/HIP buffer): the server's
    /// allocation size for one Q8_0 row of 32 is more than its 34 bytes.
    pub row_padding: bool,
}

/// What one server reports, and the link to it as measured.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerReport {
    /// `host:port`.
    pub endpoint: String,
    /// Protocol version `(major, minor, patch)`.
    pub version: (u8, u8, u8),
    /// Its devices in its order.
    pub devices: Vec<RemoteDevice>,
    /// Median round trip of a small request, microseconds.
    pub latency_us: f64,
    /// Server → client throughput of 4 MiB reads, GB/s; None when the probe buffer could not be
    /// allocated on device 0.
    pub link_gbs: Option<f64>,
}

/// A connection to one rpc-server.
struct Conn {
    s: TcpStream,
    endpoint: String,
}

impl Conn {
    fn open(endpoint: &str, timeout: Duration) -> anyhow::Result<Conn> {
        let addr = endpoint
            .to_socket_addrs()
            .map_err(|e| anyhow::anyhow!("--rpc {endpoint}: not a host:port ({e})"))?
            .next()
            .ok_or_else(|| anyhow::anyhow!("--rpc {endpoint}: the name resolves to nothing"))?;
        let s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| {
            anyhow::anyhow!(
                "--rpc {endpoint}: cannot connect ({e}); start `rpc-server -H 0.0.0.0 -p PORT` \
                 on that machine (it serves one client at a time: stop any llama-server using it)"
            )
        })?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        s.set_nodelay(true)?;
        Ok(Conn {
            s,
            endpoint: endpoint.to_string(),
        })
    }

    fn send(&mut self, cmd: u8, payload: &[u8]) -> anyhow::Result<()> {
        let mut msg = Vec::with_capacity(9 + payload.len());
        msg.push(cmd);
        msg.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        msg.extend_from_slice(payload);
        self.s.write_all(&msg).map_err(|e| self.lost(e))
    }

    fn recv(&mut self, expect: Option<u64>) -> anyhow::Result<Vec<u8>> {
        let mut len = [0u8; 8];
        self.s.read_exact(&mut len).map_err(|e| self.lost(e))?;
        let n = u64::from_le_bytes(len);
        anyhow::ensure!(
            expect.is_none_or(|e| e == n) && n <= MAX_RESPONSE,
            "--rpc {}: response of {n} bytes where {} were expected: not a llama.cpp rpc-server \
             of protocol {PROTO_MAJOR}.x",
            self.endpoint,
            expect.map_or("at most 4 MiB".to_string(), |e| e.to_string())
        );
        let mut buf = vec![0u8; n as usize];
        self.s.read_exact(&mut buf).map_err(|e| self.lost(e))?;
        Ok(buf)
    }

    fn call(&mut self, cmd: u8, payload: &[u8], expect: u64) -> anyhow::Result<Vec<u8>> {
        self.send(cmd, payload)?;
        self.recv(Some(expect))
    }

    fn lost(&self, e: std::io::Error) -> anyhow::Error {
        anyhow::anyhow!(
            "--rpc {}: connection failed ({e}); the server closes a connection it cannot serve \
             (another client, a protocol mismatch: see its log)",
            self.endpoint
        )
    }
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// A serialized `rpc_tensor` (`ggml-rpc.cpp: serialize_tensor`) of `type` and shape `ne`,
/// contiguous, in `buffer` at `data` (0, 0: no buffer).
fn tensor(ty: u32, ne: [u32; 4], row_bytes: u32, buffer: u64, data: u64) -> Vec<u8> {
    let mut t = vec![0u8; RPC_TENSOR];
    t[0..8].copy_from_slice(&1u64.to_le_bytes());
    t[8..12].copy_from_slice(&ty.to_le_bytes());
    t[12..20].copy_from_slice(&buffer.to_le_bytes());
    let (nb0, nb1) = if ty == TYPE_F32 {
        (4, row_bytes)
    } else {
        (34, row_bytes)
    };
    let nb = [nb0, nb1, nb1 * ne[1], nb1 * ne[1] * ne[2]];
    for i in 0..4 {
        t[20 + 4 * i..24 + 4 * i].copy_from_slice(&ne[i].to_le_bytes());
        t[36 + 4 * i..40 + 4 * i].copy_from_slice(&nb[i].to_le_bytes());
    }
    // data: after id, type, buffer, ne, nb, op, op_params, flags, src, view_src, view_offs.
    let at = 8 + 4 + 8 + 16 + 16 + 4 + 64 + 4 + 8 * MAX_SRC + 8 + 8;
    t[at..at + 8].copy_from_slice(&data.to_le_bytes());
    t
}

/// Ask the rpc-server at `endpoint` for its devices and time the link. Bounded: one connection,
/// `timeout` per read or write, [`PROBE_PINGS`] + [`PROBE_TRANSFERS`] round trips.
pub fn probe(endpoint: &str, timeout: Duration) -> anyhow::Result<ServerReport> {
    let mut c = Conn::open(endpoint, timeout)?;
    let hello = c.call(CMD_HELLO, &[0u8; CONN_CAPS], 4 + CONN_CAPS as u64)?;
    let version = (hello[0], hello[1], hello[2]);
    anyhow::ensure!(
        version.0 == PROTO_MAJOR,
        "--rpc {endpoint}: rpc-server speaks protocol {}.{}.{}, placer {PROTO_MAJOR}.x (llama.cpp \
         {}); use an rpc-server of the same llama.cpp build as the client",
        version.0,
        version.1,
        version.2,
        crate::llama::REFERENCE_SOURCE
    );
    let n = c.call(CMD_DEVICE_COUNT, &[], 4)?;
    let n = u32::from_le_bytes(n[..4].try_into().expect("4 bytes"));
    anyhow::ensure!(
        (1..=64).contains(&n),
        "--rpc {endpoint}: the server reports {n} devices"
    );
    let mut devices = Vec::new();
    for d in 0..n {
        let mem = c.call(CMD_GET_DEVICE_MEMORY, &d.to_le_bytes(), 16)?;
        let al = c.call(CMD_GET_ALIGNMENT, &d.to_le_bytes(), 8)?;
        // One Q8_0 row of 32 columns: 34 bytes by ggml_nbytes; CUDA/HIP add a 480-column piece.
        let mut req = d.to_le_bytes().to_vec();
        req.extend(tensor(TYPE_Q8_0, [32, 1, 1, 1], 34, 0, 0));
        req.extend(vec![0u8; RPC_TENSOR * MAX_SRC]);
        let size = c.call(CMD_GET_ALLOC_SIZE, &req, 8)?;
        devices.push(RemoteDevice {
            index: d,
            free: u64_at(&mem, 0),
            total: u64_at(&mem, 8),
            alignment: u64_at(&al, 0),
            row_padding: u64_at(&size, 0) > 34,
        });
    }
    let mut rtts: Vec<f64> = (0..PROBE_PINGS)
        .map(|_| {
            let t = Instant::now();
            c.call(CMD_GET_ALIGNMENT, &0u32.to_le_bytes(), 8)
                .map(|_| t.elapsed().as_secs_f64() * 1e6)
        })
        .collect::<anyhow::Result<_>>()?;
    rtts.sort_by(f64::total_cmp);
    let latency_us = rtts[rtts.len() / 2];
    let link_gbs = bandwidth(&mut c, latency_us)?;
    Ok(ServerReport {
        endpoint: endpoint.to_string(),
        version,
        devices,
        latency_us,
        link_gbs,
    })
}

/// Server → client throughput: a 4 MiB buffer on device 0 read back [`PROBE_TRANSFERS`] times
/// (`RPC_CMD_GET_TENSOR`), latency subtracted, then freed.
fn bandwidth(c: &mut Conn, latency_us: f64) -> anyhow::Result<Option<f64>> {
    let mut req = 0u32.to_le_bytes().to_vec();
    req.extend(PROBE_BYTES.to_le_bytes());
    let buf = c.call(CMD_ALLOC_BUFFER, &req, 16)?;
    let (remote, size) = (u64_at(&buf, 0), u64_at(&buf, 8));
    if remote == 0 || size < PROBE_BYTES {
        return Ok(None);
    }
    let base = u64_at(&c.call(CMD_BUFFER_GET_BASE, &remote.to_le_bytes(), 8)?, 0);
    let n = (PROBE_BYTES / 4) as u32;
    let mut get = tensor(TYPE_F32, [n, 1, 1, 1], 4 * n, remote, base);
    get.extend(0u64.to_le_bytes());
    get.extend(PROBE_BYTES.to_le_bytes());
    let mut best = f64::INFINITY;
    for _ in 0..PROBE_TRANSFERS {
        let t = Instant::now();
        c.call(CMD_GET_TENSOR, &get, PROBE_BYTES)?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    c.send(CMD_FREE_BUFFER, &remote.to_le_bytes())?;
    // The free has no response; a last small call makes sure it was read before closing.
    c.call(CMD_GET_ALIGNMENT, &0u32.to_le_bytes(), 8)?;
    let s = (best - latency_us * 1e-6).max(1e-7);
    Ok(Some(PROBE_BYTES as f64 / s / 1e9))
}
