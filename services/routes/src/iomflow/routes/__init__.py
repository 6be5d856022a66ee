"""iomflow routes service."""
