"""CIFAR-10 with a Dirichlet label split over 8 NVFlare sites (the reference workflow's default task)."""
