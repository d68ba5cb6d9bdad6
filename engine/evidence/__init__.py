"""Evidence before claims: repeats, held-out checks, comparisons, statistics, plots and the report."""
