//! Per-job cost, cold start and footprint, reconciler scaling and publisher memory benchmarks.
