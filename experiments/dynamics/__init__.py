"""Training dynamics through the lens of the EL2N scores (docs/dynamics.md)."""
