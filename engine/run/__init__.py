"""Running one candidate: the sandbox, the trusted evaluator and the environment checks."""
