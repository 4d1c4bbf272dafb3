//! The smux v1 frame codec that mux-mode port forwarding carries inside Output payloads (§7.4).
//!
//! Both ends run `github.com/xtaci/smux` with its DefaultConfig (protocol version 1). The smux
//! byte stream travels in PayloadType-1 data-channel messages of at most 1024 bytes whose
//! boundaries have nothing to do with smux frames, so the reader is a streaming [`Decoder`]:
//! push whatever bytes arrive, pull out whole frames.
//!
//! ```text
//! offset  size  field
//!      0     1  version, always 1
//!      1     1  command: SYN 0, FIN 1, PSH 2, NOP 3 (UPD 4 exists only in version 2)
//!      2     2  length of the data, LITTLE-endian
//!      4     4  stream id, LITTLE-endian (the plugin opens 3, 5, 7, …)
//!      8     …  data (PSH only)
//! ```

use std::fmt;

use crate::limits::{SMUX_HEADER_LEN, SMUX_MAX_FRAME_SIZE, SMUX_VERSION};

/// One smux frame. Only PSH carries data, which is what makes a frame we write one that the
/// real smux reads the same way (it reads the data of PSH frames only).
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    cmd: Command,
    stream_id: u32,
    data: Vec<u8>,
}

/// The smux v1 commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    /// 0: open a stream; the receiver accepts it.
    Syn,
    /// 1: close a stream (one direction).
    Fin,
    /// 2: data for a stream.
    Psh,
    /// 3: keepalive, stream id 0.
    Nop,
}

/// Why the smux byte stream cannot be read on. The real smux session dies on all of these.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SmuxError {
    /// The version byte is not 1 (smux reports `ErrInvalidProtocol`).
    #[error("smux version {0} is not {SMUX_VERSION}")]
    BadVersion(u8),
    /// An unknown command byte; 4 (UPD) belongs to smux v2 and is refused here too.
    #[error("unknown smux command {0}")]
    UnknownCommand(u8),
    /// A SYN, FIN or NOP with a non-zero length. Real smux ignores the length of these frames,
    /// so it would read the data as the next header: the stream is no longer in step.
    #[error("smux {cmd:?} frame with {len} bytes of data")]
    DataOnControlFrame {
        /// The command of the frame.
        cmd: Command,
        /// Its length field.
        len: u16,
    },
    /// PSH data longer than the 16-bit length field can describe.
    #[error("smux frame data of {0} bytes does not fit the 16-bit length field")]
    DataTooLong(usize),
}

impl Frame {
    /// Opens `stream_id`.
    pub fn syn(stream_id: u32) -> Frame {
        Frame {
            cmd: Command::Syn,
            stream_id,
            data: Vec::new(),
        }
    }

    /// Closes `stream_id`.
    pub fn fin(stream_id: u32) -> Frame {
        Frame {
            cmd: Command::Fin,
            stream_id,
            data: Vec::new(),
        }
    }

    /// A keepalive, always on stream 0 as smux writes it.
    pub fn nop() -> Frame {
        Frame {
            cmd: Command::Nop,
            stream_id: 0,
            data: Vec::new(),
        }
    }

    /// Data for `stream_id`. Fails above 65 535 bytes; use [`psh_frames`] to split a write
    /// the way smux does.
    pub fn psh(stream_id: u32, data: Vec<u8>) -> Result<Frame, SmuxError> {
        if data.len() > usize::from(u16::MAX) {
            return Err(SmuxError::DataTooLong(data.len()));
        }
        Ok(Frame {
            cmd: Command::Psh,
            stream_id,
            data,
        })
    }

    /// The command.
    pub fn cmd(&self) -> Command {
        self.cmd
    }

    /// The stream the frame belongs to.
    pub fn stream_id(&self) -> u32 {
        self.stream_id
    }

    /// The data; empty except for PSH.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Takes the data out of the frame.
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }

    /// The frame's bytes: header, then data.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SMUX_HEADER_LEN + self.data.len());
        self.encode_into(&mut out);
        out
    }

    /// Appends the frame's bytes to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        // The constructors keep data within u16, so the cast cannot truncate.
        let len = self.data.len() as u16;
        out.push(SMUX_VERSION);
        out.push(self.cmd.as_u8());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&self.stream_id.to_le_bytes());
        out.extend_from_slice(&self.data);
    }
}

impl fmt::Debug for Frame {
    // Data is summarised: bulk PSH frames are 32 KiB.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("cmd", &self.cmd)
            .field("stream_id", &self.stream_id)
            .field("len", &self.data.len())
            .finish()
    }
}

impl Command {
    /// Maps the command byte of a version-1 frame.
    pub fn from_u8(value: u8) -> Result<Command, SmuxError> {
        match value {
            0 => Ok(Command::Syn),
            1 => Ok(Command::Fin),
            2 => Ok(Command::Psh),
            3 => Ok(Command::Nop),
            other => Err(SmuxError::UnknownCommand(other)),
        }
    }

    /// The command byte.
    pub fn as_u8(self) -> u8 {
        match self {
            Command::Syn => 0,
            Command::Fin => 1,
            Command::Psh => 2,
            Command::Nop => 3,
        }
    }
}

/// Splits one write to a stream into PSH frames of at most [`SMUX_MAX_FRAME_SIZE`] bytes, as
/// smux's `Stream.Write` does. An empty write gives no frame.
pub fn psh_frames(stream_id: u32, data: &[u8]) -> Vec<Frame> {
    data.chunks(SMUX_MAX_FRAME_SIZE)
        .map(|chunk| Frame {
            cmd: Command::Psh,
            stream_id,
            data: chunk.to_vec(),
        })
        .collect()
}

/// Streaming smux reader: bytes go in as they arrive, whole frames come out.
///
/// After an error the stream cannot be resynchronised (smux has no frame delimiter), so the
/// decoder keeps returning the same error.
#[derive(Clone, Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    /// An empty decoder.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Appends received bytes, e.g. one Output payload.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame; `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, SmuxError> {
        let Some(header) = self.buf.first_chunk::<SMUX_HEADER_LEN>() else {
            return Ok(None);
        };
        let (cmd, len, stream_id) = parse_header(header)?;
        let total = SMUX_HEADER_LEN + usize::from(len);
        if self.buf.len() < total {
            return Ok(None);
        }
        let data = self.buf[SMUX_HEADER_LEN..total].to_vec();
        self.buf.drain(..total);
        Ok(Some(Frame {
            cmd,
            stream_id,
            data,
        }))
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

/// Reads and checks the 8-byte header: command, data length, stream id.
fn parse_header(header: &[u8; SMUX_HEADER_LEN]) -> Result<(Command, u16, u32), SmuxError> {
    let [version, cmd, l0, l1, s0, s1, s2, s3] = *header;
    if version != SMUX_VERSION {
        return Err(SmuxError::BadVersion(version));
    }
    let cmd = Command::from_u8(cmd)?;
    let len = u16::from_le_bytes([l0, l1]);
    if cmd != Command::Psh && len != 0 {
        return Err(SmuxError::DataOnControlFrame { cmd, len });
    }
    Ok((cmd, len, u32::from_le_bytes([s0, s1, s2, s3])))
}
