"""iomflow registries service."""
