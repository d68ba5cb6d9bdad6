"""Code shared by every task: server aggregators, client training helpers, the metric."""
