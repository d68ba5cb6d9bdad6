"""What a campaign keeps: the ledgers, the journal, the git workspace and the bundled template."""
