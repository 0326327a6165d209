//! nepho's AWS CloudFormation provider (being written).
