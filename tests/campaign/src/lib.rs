//! Fault-injection campaign against the local stack, judged by the simulators' ground truth and the table.
