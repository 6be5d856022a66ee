"""iomflow monitoring service."""
