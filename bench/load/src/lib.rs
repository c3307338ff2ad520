//! Load benchmarks on the local stack: saturation against a naive baseline, isolation, scheduling precision.
