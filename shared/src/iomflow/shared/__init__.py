"""iomflow shared: event contracts and delivery plumbing."""
