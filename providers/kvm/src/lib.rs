//! nepho's KVM provider (being written).
