"""Privacy centre pages, one module per area (centre, policy, export, erasure, choices)."""
