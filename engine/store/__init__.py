"""What afr writes: ledgers, journals and the git workspace, and the rules every writer follows."""
