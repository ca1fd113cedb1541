//! The message ids the generator mints. Each carries the message's intended send time, so an
//! Ack or Reject is timed from its id alone, without per-message state.
//!
//! ```text
//! direct: 0 | intended µs (43 bits)         | per-client counter (20 bits)
//! group:  1 | intended µs (40 bits, 12 days) | group ledger slot (23 bits)
//! ```

/// The bit that marks a message id as a group message.
const GROUP_MSG_BIT: u64 = 1 << 63;
/// Bits of a direct message id below the intended time.
const COUNTER_BITS: u32 = 20;
const SLOT_BITS: u32 = 23;
const SLOT_MASK: u64 = (1 << SLOT_BITS) - 1;
const INTENDED_MASK: u64 = (1 << 40) - 1;

/// Group ledger slots a message id can name.
pub const MAX_SLOTS: usize = 1 << SLOT_BITS;

/// The id of a client's direct message intended at `intended_us`, its `counter`th.
pub fn direct_msg_id(intended_us: u64, counter: u64) -> u64 {
    (intended_us << COUNTER_BITS) | (counter & ((1 << COUNTER_BITS) - 1))
}

/// The id of the group message intended at `intended_us` and recorded in ledger `slot`.
pub fn group_msg_id(intended_us: u64, slot: usize) -> u64 {
    GROUP_MSG_BIT | (intended_us & INTENDED_MASK) << SLOT_BITS | slot as u64
}

/// Whether `msg_id` is a group message's.
pub fn is_group(msg_id: u64) -> bool {
    msg_id & GROUP_MSG_BIT != 0
}

/// The intended send time carried in any message id.
pub fn intended_of(msg_id: u64) -> u64 {
    if is_group(msg_id) {
        (msg_id >> SLOT_BITS) & INTENDED_MASK
    } else {
        msg_id >> COUNTER_BITS
    }
}

/// The group ledger slot a message id names; `None` for a direct message's id.
pub fn slot_in_id(msg_id: u64) -> Option<usize> {
    is_group(msg_id).then_some((msg_id & SLOT_MASK) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_intended_time_and_kind() {
        let d = direct_msg_id(123_456_789, (1 << 20) + 5);
        assert!(!is_group(d));
        assert_eq!(intended_of(d), 123_456_789);
        assert_eq!(slot_in_id(d), None);
        let g = group_msg_id(987_654_321, 77);
        assert!(is_group(g));
        assert_eq!(intended_of(g), 987_654_321);
        assert_eq!(slot_in_id(g), Some(77));
    }
}
