"""Everything that rejects a candidate before it runs: surface, args, contract, compile, model, integrity."""
