"""iomflow command line."""
