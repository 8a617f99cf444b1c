"""End-to-end tests and their infrastructure (the offline lab in e2e.lab)."""
