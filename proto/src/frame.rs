//! Frame types: everything a client and a server can say to each other.

use bytes::Bytes;

/// The protocol version a client announces in [`Frame::Hello`].
/// Version 2 added Hello's flags and the Receipt frame.
pub const PROTOCOL_VERSION: u16 = 2;

/// A [`Frame::Hello`] flag: the client confirms what it received with [`Frame::Receipt`], and the
/// server keeps every delivery until it is confirmed (redelivering it on the next connection if
/// the connection ends first).
pub const HELLO_RECEIPTS: u8 = 0x01;

/// Length of the authentication token in [`Frame::Hello`] (an HMAC-SHA256 tag).
pub const TOKEN_LEN: usize = 32;

/// Length of a SHA-256 digest, as carried in file offers.
pub const SHA256_LEN: usize = 32;

/// Transfer ids the server chooses (those in [`Frame::FileIncoming`]) have this bit set, and
/// those a client chooses (in [`Frame::FileOffer`]) do not, so a [`Frame::FileCancel`] names
/// one transfer whichever way it goes.
pub const RELAY_ID_BIT: u64 = 1 << 63;

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dest {
    /// One user, by id.
    User(u64),
    /// Every member of a group, by id.
    Group(u64),
}

/// A typed reason carried by [`Frame::Error`] and [`Frame::Reject`].
///
/// A newtype rather than an enum so that a code this build does not know still decodes: the
/// protocol can grow codes without breaking older peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    /// The frame could not be decoded (truncated, trailing bytes, bad UTF-8, bad destination).
    pub const BAD_FRAME: Self = Self(1);
    /// The frame declared a length above the receiver's limit.
    pub const FRAME_TOO_LARGE: Self = Self(2);
    /// The frame kind is unknown to the receiver.
    pub const UNKNOWN_KIND: Self = Self(3);
    /// A frame other than Hello arrived before the session was authenticated.
    pub const HELLO_REQUIRED: Self = Self(4);
    /// The token in Hello is not valid for the user id.
    pub const BAD_TOKEN: Self = Self(5);
    /// The connection did not say Hello in time.
    pub const HELLO_TIMEOUT: Self = Self(6);
    /// The client did not read its deliveries fast enough; its queue filled up.
    pub const SLOW_CONSUMER: Self = Self(7);
    /// The recipient is offline and its hold is full: the message was not accepted.
    pub const HOLD_FULL: Self = Self(8);
    /// The client speaks a protocol version the server does not.
    pub const UNSUPPORTED_VERSION: Self = Self(9);
    /// The destination kind is not served by this server.
    pub const UNSUPPORTED_DEST: Self = Self(10);
    /// Another connection logged in as the same user.
    pub const REPLACED: Self = Self(11);
    /// The server is shutting down.
    pub const SHUTTING_DOWN: Self = Self(12);
    /// The frame is valid but not expected here (for example a second Hello).
    pub const UNEXPECTED_FRAME: Self = Self(13);
    /// The message body is larger than the server accepts.
    pub const BODY_TOO_LARGE: Self = Self(14);
    /// The group already has the most members the server allows.
    pub const GROUP_FULL: Self = Self(15);
    /// The user is already in the most groups the server allows.
    pub const TOO_MANY_GROUPS: Self = Self(16);
    /// The user is not a member of the group it sent to or tried to leave.
    pub const NOT_A_MEMBER: Self = Self(17);
    /// The user asked to join or leave groups faster than the server allows.
    pub const TOO_MANY_REQUESTS: Self = Self(18);
    /// The offered file is larger than the server accepts.
    pub const FILE_TOO_LARGE: Self = Self(19);
    /// The sender already has the most transfers in flight the server allows.
    pub const TOO_MANY_TRANSFERS: Self = Self(20);
    /// The file's recipient is not connected; files are not held for offline users.
    pub const RECIPIENT_OFFLINE: Self = Self(21);
    /// The other side of the transfer went away or cancelled it.
    pub const TRANSFER_ABORTED: Self = Self(22);
    /// The sender sent more or fewer bytes than it offered.
    pub const SIZE_MISMATCH: Self = Self(23);
    /// The transfer id names no transfer in flight (or one already in use).
    pub const UNKNOWN_TRANSFER: Self = Self(24);
    /// No byte of the transfer moved for longer than the server waits.
    pub const TRANSFER_STALLED: Self = Self(25);
    /// The server has more work queued than it accepts; the message was not accepted.
    pub const BUSY: Self = Self(26);
    /// The client's address already has the most connections the server allows.
    pub const TOO_MANY_CONNECTIONS: Self = Self(27);

    /// A short stable name for reports and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::BAD_FRAME => "bad_frame",
            Self::FRAME_TOO_LARGE => "frame_too_large",
            Self::UNKNOWN_KIND => "unknown_kind",
            Self::HELLO_REQUIRED => "hello_required",
            Self::BAD_TOKEN => "bad_token",
            Self::HELLO_TIMEOUT => "hello_timeout",
            Self::SLOW_CONSUMER => "slow_consumer",
            Self::HOLD_FULL => "hold_full",
            Self::UNSUPPORTED_VERSION => "unsupported_version",
            Self::UNSUPPORTED_DEST => "unsupported_dest",
            Self::REPLACED => "replaced",
            Self::SHUTTING_DOWN => "shutting_down",
            Self::UNEXPECTED_FRAME => "unexpected_frame",
            Self::BODY_TOO_LARGE => "body_too_large",
            Self::GROUP_FULL => "group_full",
            Self::TOO_MANY_GROUPS => "too_many_groups",
            Self::NOT_A_MEMBER => "not_a_member",
            Self::TOO_MANY_REQUESTS => "too_many_requests",
            Self::FILE_TOO_LARGE => "file_too_large",
            Self::TOO_MANY_TRANSFERS => "too_many_transfers",
            Self::RECIPIENT_OFFLINE => "recipient_offline",
            Self::TRANSFER_ABORTED => "transfer_aborted",
            Self::SIZE_MISMATCH => "size_mismatch",
            Self::UNKNOWN_TRANSFER => "unknown_transfer",
            Self::TRANSFER_STALLED => "transfer_stalled",
            Self::BUSY => "busy",
            Self::TOO_MANY_CONNECTIONS => "too_many_connections",
            _ => "unknown_code",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

/// One protocol frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Client → server, first frame on a connection: who I am and proof of it.
    Hello {
        /// Protocol version the client speaks.
        version: u16,
        /// The user id the client speaks as.
        user: u64,
        /// HMAC-SHA256 of the user id under the server's secret.
        token: [u8; TOKEN_LEN],
        /// Options the client asks for ([`HELLO_RECEIPTS`]); unknown bits are ignored.
        flags: u8,
    },
    /// Server → client: Hello accepted.
    Welcome {
        /// Server-assigned session id.
        session: u64,
    },
    /// Either way: a typed error; the sender closes the connection after it.
    Error {
        /// What went wrong.
        code: ErrorCode,
        /// A human-readable explanation.
        reason: String,
    },
    /// Client → server: route this body to `to`.
    Send {
        /// Client-chosen id, echoed in Ack, Reject and Deliver.
        msg_id: u64,
        /// Destination.
        to: Dest,
        /// Opaque body.
        body: Bytes,
    },
    /// Server → client: the message is routed (queued for every online recipient or held).
    Ack {
        /// The id from Send.
        msg_id: u64,
    },
    /// Server → client: the message was refused and will not be delivered.
    Reject {
        /// The id from Send.
        msg_id: u64,
        /// Why.
        code: ErrorCode,
    },
    /// Server → client: a message for this client.
    Deliver {
        /// The sender's msg_id.
        msg_id: u64,
        /// The sender's user id.
        from: u64,
        /// The destination the sender used.
        to: Dest,
        /// Opaque body, as sent.
        body: Bytes,
    },
    /// Client → server, on a session that asked for receipts: `count` Deliver frames of this
    /// connection have been received, counting from its first. Counts only grow.
    Receipt {
        /// Deliver frames received on this connection so far.
        count: u64,
    },
    /// Client → server: make me a member of `group` (created on first join). Joining a group
    /// one is already in is answered with Joined again.
    Join {
        /// The group.
        group: u64,
    },
    /// Client → server: stop my membership of `group`.
    Leave {
        /// The group.
        group: u64,
    },
    /// Server → client: the Join took effect. Every group message routed after it follows it
    /// on the member's connection.
    Joined {
        /// The group.
        group: u64,
        /// Members after the join.
        members: u32,
    },
    /// Server → client: the Leave took effect. No message of the group follows it.
    Left {
        /// The group.
        group: u64,
    },
    /// Server → client: a Join or Leave was refused; membership is unchanged.
    GroupRefused {
        /// The group.
        group: u64,
        /// Why.
        code: ErrorCode,
    },
    /// Client → server: I want to send a file of `size` bytes to `to`. The server answers
    /// FileAccepted, after which the sender sends the bytes (on a QUIC stream that starts with
    /// FileData, or as FileChunk frames on the byte-stream transports), or FileCancel.
    FileOffer {
        /// Sender-chosen id, unique among the sender's transfers in flight.
        transfer_id: u64,
        /// The recipient (a user; groups are refused by this server).
        to: Dest,
        /// Bytes that will follow.
        size: u64,
        /// SHA-256 of the bytes, for the recipient to verify.
        sha256: [u8; SHA256_LEN],
        /// File name, for display.
        name: String,
    },
    /// Server → sender: send the bytes of this transfer now.
    FileAccepted {
        /// The id from FileOffer.
        transfer_id: u64,
    },
    /// Server → recipient: a file follows. Over QUIC this is the first frame of a
    /// unidirectional stream whose remaining bytes are the file; on the byte-stream transports
    /// FileChunk frames with this id follow on the connection.
    FileIncoming {
        /// Server-chosen id, unique on the recipient's connection.
        transfer_id: u64,
        /// The sender's user id.
        from: u64,
        /// Bytes that will follow.
        size: u64,
        /// SHA-256 of the bytes, as the sender declared it.
        sha256: [u8; SHA256_LEN],
        /// File name, as the sender gave it.
        name: String,
    },
    /// Sender → server over QUIC: the first frame of a unidirectional stream whose remaining
    /// bytes are the file of this (accepted) transfer.
    FileData {
        /// The id from FileOffer.
        transfer_id: u64,
    },
    /// Either way on the byte-stream transports: the next bytes of a transfer, in order.
    FileChunk {
        /// The transfer (the sender's id towards the server, the server's id towards the
        /// recipient).
        transfer_id: u64,
        /// The bytes.
        data: Bytes,
    },
    /// Either way: the transfer is refused or ended early, and why. Nothing more of it follows.
    FileCancel {
        /// The transfer, numbered as on this connection.
        transfer_id: u64,
        /// Why.
        code: ErrorCode,
    },
    /// Either way: liveness probe.
    Ping {
        /// Echoed in Pong.
        nonce: u64,
    },
    /// Reply to Ping.
    Pong {
        /// The nonce from Ping.
        nonce: u64,
    },
    /// Either way: orderly goodbye; nothing follows.
    Bye {
        /// Why the connection ends.
        reason: String,
    },
}

impl Frame {
    /// A short stable name for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Frame::Hello { .. } => "Hello",
            Frame::Welcome { .. } => "Welcome",
            Frame::Error { .. } => "Error",
            Frame::Send { .. } => "Send",
            Frame::Ack { .. } => "Ack",
            Frame::Reject { .. } => "Reject",
            Frame::Deliver { .. } => "Deliver",
            Frame::Receipt { .. } => "Receipt",
            Frame::Join { .. } => "Join",
            Frame::Leave { .. } => "Leave",
            Frame::Joined { .. } => "Joined",
            Frame::Left { .. } => "Left",
            Frame::GroupRefused { .. } => "GroupRefused",
            Frame::FileOffer { .. } => "FileOffer",
            Frame::FileAccepted { .. } => "FileAccepted",
            Frame::FileIncoming { .. } => "FileIncoming",
            Frame::FileData { .. } => "FileData",
            Frame::FileChunk { .. } => "FileChunk",
            Frame::FileCancel { .. } => "FileCancel",
            Frame::Ping { .. } => "Ping",
            Frame::Pong { .. } => "Pong",
            Frame::Bye { .. } => "Bye",
        }
    }
}
