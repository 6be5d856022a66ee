"""iomflow diagnostics service."""
