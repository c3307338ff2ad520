//! Reads template.yaml: provisions its resources into a local AWS endpoint and checks its rules.
