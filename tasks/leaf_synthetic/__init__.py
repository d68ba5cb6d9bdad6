"""LEAF's Synthetic task: 1000 users of a softmax-regression model, grouped into NVFlare clients."""
